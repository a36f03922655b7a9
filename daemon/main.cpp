// reeld: the reel daemon. Also the worker process (`--worker-fd`), so a worker is
// always exactly the same build as the daemon that started it.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "core/config.hpp"
#include "server/daemon.hpp"
#include "worker/worker_main.hpp"

namespace {

const char* kUsage =
    "usage: reeld [--config FILE] [--check-config] [--version] [--help]\n"
    "\n"
    "Runs the reel job daemon in the foreground (systemd runs it as Type=notify).\n"
    "  --config FILE    use FILE instead of searching $REEL_CONFIG, /etc/reel/reeld.toml,\n"
    "                   $XDG_CONFIG_HOME/reel/reeld.toml (no file at all: built-in defaults)\n"
    "  --check-config   load and validate the config, print where it came from, exit\n"
    "Signals: SIGHUP re-reads the config; SIGTERM drains running jobs and exits.\n";

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "reeld";
  buf[n] = '\0';
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  reel::DaemonOptions options;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--worker-fd" && i + 1 < argc) return reel::worker_main(std::atoi(argv[++i]));
    if (a == "--config" && i + 1 < argc) options.config_path = argv[++i];
    else if (a.rfind("--config=", 0) == 0) options.config_path = a.substr(9);
    else if (a == "--check-config") check_only = true;
    else if (a == "--version") { std::cout << "reeld " << REEL_VERSION << "\n"; return 0; }
    else if (a == "--help" || a == "-h") { std::cout << kUsage; return 0; }
    else {
      std::cerr << "reeld: unknown argument '" << a << "'\n" << kUsage;
      return 2;
    }
  }
  if (check_only) {
    try {
      auto cfg = reel::load_config(options.config_path);
      std::cout << "config ok: " << (cfg.source_path.empty() ? "embedded defaults" : cfg.source_path) << "\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "reeld: " << e.what() << "\n";
      return 2;
    }
  }
  options.worker_exe = self_exe();
  reel::Daemon daemon(options);
  return daemon.run();
}
