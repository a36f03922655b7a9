// process_memory; see process_memory.hpp.
#include "process_memory.hpp"

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace reel::wan {

namespace {

// The same value reeld's workers set (daemon/worker/worker_main.hpp, kWorkerMmapThreshold):
// this library does not link the daemon.
constexpr int kMmapThreshold = 128 * 1024;

}  // namespace

int64_t proc_status_kib(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(field.size()));
  return -1;
}

std::vector<double> measure_in_child(const std::function<std::vector<double>()>& measure) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::vector<double> out;
    try {
      ::mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
      { std::ofstream("/proc/self/clear_refs") << "5"; }  // VmHWM := VmRSS
      out = measure();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "measure_in_child: %s\n", e.what());
      out.clear();
    }
    const uint64_t n = out.size();
    (void)!::write(fds[1], &n, sizeof n);
    if (n) (void)!::write(fds[1], out.data(), n * sizeof(double));
    ::_exit(0);
  }
  ::close(fds[1]);
  uint64_t n = 0;
  std::vector<double> out;
  if (::read(fds[0], &n, sizeof n) == sizeof n && n < 1024) {
    out.resize(n);
    if (n && ::read(fds[0], out.data(), n * sizeof(double)) != static_cast<ssize_t>(n * sizeof(double))) out.clear();
  }
  ::close(fds[0]);
  ::waitpid(pid, nullptr, 0);
  return out;
}

}  // namespace reel::wan
