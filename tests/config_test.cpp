// Config loading (strictness, messages, search order) and path resolution.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "core/config.hpp"
#include "core/paths.hpp"
#include "support/test_support.hpp"

using namespace reel;
using reel::test::TempDir;
using reel::test::write_file;

namespace {

// EXPECT_TRUE(contains(text, part)) prints both on failure.
::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// Clears the given variables for the test and restores their values afterwards.
class EnvGuard {
 public:
  explicit EnvGuard(std::vector<std::string> names) {
    for (auto& n : names) {
      const char* v = std::getenv(n.c_str());
      saved_[n] = v ? std::optional<std::string>(v) : std::nullopt;
      unsetenv(n.c_str());
    }
  }
  ~EnvGuard() {
    for (auto& [n, v] : saved_) {
      if (v) setenv(n.c_str(), v->c_str(), 1);
      else unsetenv(n.c_str());
    }
  }
  void set(const std::string& name, const std::string& value) { setenv(name.c_str(), value.c_str(), 1); }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

const std::vector<std::string> kPathEnv = {"REEL_CONFIG", "XDG_CONFIG_HOME", "HOME", "STATE_DIRECTORY",
                                           "XDG_STATE_HOME", "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR",
                                           "REEL_SOCKET"};

std::string error_of(const std::string& text, const std::string& name = "reeld.toml") {
  try {
    parse_config(text, name);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return "";
}

// The dotted keys of a TOML document (tables flattened).
std::set<std::string> keys_of(const std::string& toml_text) {
  std::set<std::string> out;
  std::string table;
  std::istringstream in(toml_text);
  std::regex header(R"(^\s*\[([a-z_.]+)\]\s*$)"), kv(R"(^\s*([a-z_]+)\s*=)");
  std::smatch m;
  for (std::string line; std::getline(in, line);) {
    if (std::regex_search(line, m, header)) table = m[1];
    else if (std::regex_search(line, m, kv)) out.insert(table + "." + std::string(m[1]));
  }
  return out;
}

}  // namespace

// ---- defaults and the shipped file ----

TEST(Config, EmptyFileGivesDefaults) {
  Config c = parse_config("", "empty.toml");
  EXPECT_EQ(c.source_path, "empty.toml");
  EXPECT_EQ(to_toml(c), to_toml(Config{}));
  EXPECT_EQ(c.daemon.max_concurrent_jobs, 1);
  EXPECT_EQ(c.storage.synchronous, "full");
}

TEST(Config, ToTomlRoundTrips) {
  Config c;
  c.daemon.max_clients = 7;
  c.daemon.stop_grace_seconds = 2.5;
  c.daemon.drain_on_stop = false;
  c.log.level = "debug";
  c.log.file_max_bytes = int64_t{1} << 33;
  c.jobs.output_dir = "/srv/out";
  std::string text = to_toml(c);
  EXPECT_TRUE(contains(text, "max_clients = 7"));
  Config back = parse_config(text, "dump.toml");
  EXPECT_EQ(to_toml(back), text);
  EXPECT_EQ(back.log.file_max_bytes, int64_t{1} << 33);
  EXPECT_FALSE(back.daemon.drain_on_stop);
}

TEST(Config, ShippedFileParsesToTheDefaults) {
  std::string path = std::string(REEL_SOURCE_DIR) + "/config/reeld.toml";
  Config c = load_config_file(path);
  EXPECT_EQ(c.source_path, path);
  EXPECT_EQ(to_toml(c), to_toml(Config{}));
}

TEST(Config, ShippedFileDocumentsEveryKeyWithItsDefault) {
  // Uncommenting every "#key = value" line must still give the defaults, and must
  // name every key there is, so the file can neither lie nor fall behind.
  std::string text = reel::test::read_file(std::string(REEL_SOURCE_DIR) + "/config/reeld.toml");
  ASSERT_FALSE(text.empty());
  std::string uncommented = std::regex_replace(text, std::regex(R"((^|\n)#([a-z_]+ = ))"), "$1$2");
  ASSERT_NE(uncommented, text);
  Config c = parse_config(uncommented, "uncommented.toml");
  EXPECT_EQ(to_toml(c), to_toml(Config{}));
  EXPECT_EQ(keys_of(uncommented), keys_of(to_toml(Config{})));
  EXPECT_EQ(keys_of(to_toml(Config{})).size(), 40u);
}

TEST(Config, InputRootsAndParamsLimit) {
  Config d = parse_config("", "empty.toml");
  EXPECT_TRUE(d.jobs.input_roots.empty()) << "no local inputs unless the operator names folders";
  EXPECT_EQ(d.jobs.max_params_bytes, 64 << 10);
  Config c = parse_config("[jobs]\ninput_roots = [\"/srv/reel/in\", \"/data\"]\nmax_params_bytes = 4096\n", "j.toml");
  EXPECT_EQ(c.jobs.input_roots, (std::vector<std::string>{"/srv/reel/in", "/data"}));
  EXPECT_EQ(c.jobs.max_params_bytes, 4096);
  EXPECT_EQ(parse_config(to_toml(c), "again.toml").jobs.input_roots, c.jobs.input_roots);
  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"[jobs]\ninput_roots = [\"in\"]", "j.toml:2: jobs.input_roots[0]: expected an absolute folder path, got 'in'"},
           {"[jobs]\ninput_roots = \"/srv\"", "j.toml:2: jobs.input_roots: expected an array, got a string"},
           {"[jobs]\nmax_params_bytes = 100", "j.toml:2: jobs.max_params_bytes: must be between 1024 and 67108864, got 100"},
       }) {
    try {
      parse_config(text, "j.toml");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), message);
    }
  }
}

TEST(Config, EveryKeyIsRead) {
  Config c = parse_config(R"(
[daemon]
state_dir = "/var/lib/x"
socket_path = "/run/x/s.sock"
socket_mode = "0600"
socket_group = "video"
max_concurrent_jobs = 4
max_clients = 10
max_request_bytes = 2048
max_queued_jobs = 50
stop_grace_seconds = 1.5
drain_on_stop = false
cancel_grace_seconds = 2
status_interval_seconds = 0.5
[jobs]
max_attempts = 5
max_crashes = 6
aging_seconds = 60
output_dir = "/srv/out"
[log]
level = "warn"
file = "/var/log/reeld.log"
file_max_bytes = 4096
file_count = 2
[storage]
journal_mode = "delete"
busy_timeout_ms = 0
synchronous = "normal"
[gpu]
simulate = ["24GiB", "8G", 1073741824]
reserve = "1GiB"
reserve_fraction = 0.05
inference_margin = "0.5 GB"
worker_overhead = "600MiB"
devices = ["GPU-8f6c2f1a-0000", "1", 2]
probe_interval_seconds = 2.5
[host]
ram_reserve = "4G"
ram_fraction = 0.75
[scheduler]
quality_fallback = true
degrade_now = true
keep_alive_seconds = 0
max_resident_models = 2
)",
                          "all.toml");
  EXPECT_EQ(c.daemon.state_dir, "/var/lib/x");
  EXPECT_EQ(c.daemon.socket_path, "/run/x/s.sock");
  EXPECT_EQ(c.daemon.socket_mode, "0600");
  EXPECT_EQ(c.daemon.socket_group, "video");
  EXPECT_EQ(c.daemon.max_concurrent_jobs, 4);
  EXPECT_EQ(c.daemon.max_clients, 10);
  EXPECT_EQ(c.daemon.max_request_bytes, 2048);
  EXPECT_EQ(c.daemon.max_queued_jobs, 50);
  EXPECT_DOUBLE_EQ(c.daemon.stop_grace_seconds, 1.5);
  EXPECT_FALSE(c.daemon.drain_on_stop);
  EXPECT_DOUBLE_EQ(c.daemon.cancel_grace_seconds, 2.0);  // integer accepted for a float key
  EXPECT_DOUBLE_EQ(c.daemon.status_interval_seconds, 0.5);
  EXPECT_EQ(c.jobs.max_attempts, 5);
  EXPECT_EQ(c.jobs.max_crashes, 6);
  EXPECT_DOUBLE_EQ(c.jobs.aging_seconds, 60.0);
  EXPECT_EQ(c.jobs.output_dir, "/srv/out");
  EXPECT_EQ(c.log.level, "warn");
  EXPECT_EQ(c.log.file, "/var/log/reeld.log");
  EXPECT_EQ(c.log.file_max_bytes, 4096);
  EXPECT_EQ(c.log.file_count, 2);
  EXPECT_EQ(c.storage.journal_mode, "delete");
  EXPECT_EQ(c.storage.busy_timeout_ms, 0);
  EXPECT_EQ(c.storage.synchronous, "normal");
  EXPECT_EQ(c.gpu.simulate, (std::vector<int64_t>{int64_t{24} << 30, int64_t{8} << 30, int64_t{1} << 30}));
  EXPECT_EQ(c.gpu.reserve, int64_t{1} << 30);
  EXPECT_DOUBLE_EQ(c.gpu.reserve_fraction, 0.05);
  EXPECT_EQ(c.gpu.inference_margin, 500000000);
  EXPECT_EQ(c.gpu.worker_overhead, int64_t{600} << 20);
  EXPECT_EQ(c.gpu.devices, (std::vector<std::string>{"GPU-8f6c2f1a-0000", "1", "2"}));
  EXPECT_DOUBLE_EQ(c.gpu.probe_interval_seconds, 2.5);
  EXPECT_EQ(c.host.ram_reserve, int64_t{4} << 30);
  EXPECT_DOUBLE_EQ(c.host.ram_fraction, 0.75);
  EXPECT_TRUE(c.scheduler.quality_fallback);
  EXPECT_TRUE(c.scheduler.degrade_now);
  EXPECT_DOUBLE_EQ(c.scheduler.keep_alive_seconds, 0.0);
  EXPECT_EQ(c.scheduler.max_resident_models, 2);
  // Sizes and lists round-trip through to_toml() exactly.
  std::string text = to_toml(c);
  EXPECT_TRUE(contains(text, "simulate = [ '24GiB', '8GiB', '1GiB' ]")) << text;
  EXPECT_TRUE(contains(text, "inference_margin = '500MB'")) << text;
  EXPECT_EQ(to_toml(parse_config(text, "again.toml")), text);
}

TEST(Config, NewKeyDefaults) {
  Config c = parse_config("", "empty.toml");
  EXPECT_TRUE(c.gpu.simulate.empty());
  EXPECT_EQ(c.gpu.reserve, int64_t{400} << 20);
  EXPECT_DOUBLE_EQ(c.gpu.reserve_fraction, 0.0);
  EXPECT_EQ(c.gpu.inference_margin, int64_t{800} << 20);
  EXPECT_EQ(c.gpu.worker_overhead, int64_t{500} << 20);
  EXPECT_TRUE(c.gpu.devices.empty());
  EXPECT_DOUBLE_EQ(c.gpu.probe_interval_seconds, 10.0);
  EXPECT_EQ(c.host.ram_reserve, int64_t{2} << 30);
  EXPECT_DOUBLE_EQ(c.host.ram_fraction, 0.9);
  EXPECT_FALSE(c.scheduler.quality_fallback);
  EXPECT_FALSE(c.scheduler.degrade_now);
  EXPECT_DOUBLE_EQ(c.scheduler.keep_alive_seconds, 300.0);
  EXPECT_EQ(c.scheduler.max_resident_models, 4);
  std::string text = to_toml(c);
  EXPECT_TRUE(contains(text, "reserve = '400MiB'")) << text;
  EXPECT_TRUE(contains(text, "ram_reserve = '2GiB'")) << text;
  EXPECT_TRUE(contains(text, "simulate = []")) << text;
}

TEST(Config, SizesAcceptEveryUnitAndPlainBytes) {
  auto reserve = [](const std::string& v) { return parse_config("[gpu]\nreserve = " + v + "\n", "s.toml").gpu.reserve; };
  EXPECT_EQ(reserve("\"0\""), 0);
  EXPECT_EQ(reserve("0"), 0);
  EXPECT_EQ(reserve("1048576"), 1048576);
  EXPECT_EQ(reserve("\"512MiB\""), int64_t{512} << 20);
  EXPECT_EQ(reserve("\"0.4 GB\""), 400000000);
  EXPECT_EQ(reserve("\"1.5g\""), int64_t{3} << 29);
  EXPECT_EQ(reserve("\"2 kb\""), 2000);
}

TEST(Config, DottedKeysAndInlineTablesWork) {
  Config c = parse_config("daemon.max_clients = 3\nlog = { level = \"error\" }\n", "d.toml");
  EXPECT_EQ(c.daemon.max_clients, 3);
  EXPECT_EQ(c.log.level, "error");
}

// ---- strictness ----

TEST(Config, UnknownKeyNamesFileLineAndKey) {
  std::string e = error_of("[daemon]\nmax_clients = 3\nfoo = 1\n", "/etc/reel/reeld.toml");
  EXPECT_EQ(e, "/etc/reel/reeld.toml:3: unknown key 'daemon.foo'");
}

TEST(Config, UnknownKeySuggestsTheClosest) {
  EXPECT_EQ(error_of("[daemon]\nmax_client = 3\n"),
            "reeld.toml:2: unknown key 'daemon.max_client' (did you mean 'daemon.max_clients'?)");
  // The right key in the wrong table.
  EXPECT_EQ(error_of("[daemon]\n\nmax_attempts = 3\n"),
            "reeld.toml:3: unknown key 'daemon.max_attempts' (did you mean 'jobs.max_attempts'?)");
  // A key outside any table.
  EXPECT_EQ(error_of("level = \"info\"\n"), "reeld.toml:1: unknown key 'level' (did you mean 'log.level'?)");
}

TEST(Config, UnknownTableNamesLine) {
  EXPECT_EQ(error_of("[daemon]\n[deamon]\nx = 1\n"),
            "reeld.toml:2: unknown table 'deamon' (did you mean 'daemon'?)");
  EXPECT_EQ(error_of("\n[network]\n"), "reeld.toml:2: unknown table 'network'");
  EXPECT_EQ(error_of("[daemon.extra]\n"), "reeld.toml:1: unknown table 'daemon.extra'");
}

TEST(Config, QuotedDottedKeyIsNotTheRealKey) {
  EXPECT_TRUE(contains(error_of("\"daemon.max_clients\" = 3\n"), "unknown key 'daemon.max_clients'"));
}

TEST(Config, KnownTableGivenAsValue) {
  EXPECT_EQ(error_of("daemon = 1\n"), "reeld.toml:1: daemon: expected a table, got an integer");
}

TEST(Config, WrongTypeNamesKeyAndBothTypes) {
  EXPECT_EQ(error_of("[daemon]\nmax_clients = \"64\"\n"),
            "reeld.toml:2: daemon.max_clients: expected an integer, got a string");
  EXPECT_EQ(error_of("[daemon]\nmax_clients = 64.0\n"),
            "reeld.toml:2: daemon.max_clients: expected an integer, got a float");
  EXPECT_EQ(error_of("[daemon]\ndrain_on_stop = \"yes\"\n"),
            "reeld.toml:2: daemon.drain_on_stop: expected a boolean, got a string");
  EXPECT_EQ(error_of("[daemon]\nstop_grace_seconds = \"30\"\n"),
            "reeld.toml:2: daemon.stop_grace_seconds: expected a number, got a string");
  EXPECT_EQ(error_of("[log]\nlevel = 3\n"), "reeld.toml:2: log.level: expected a string, got an integer");
  EXPECT_EQ(error_of("[daemon]\nsocket_mode = 0o660\n"),
            "reeld.toml:2: daemon.socket_mode: expected a string, got an integer");
  EXPECT_EQ(error_of("[jobs]\nmax_attempts = [1]\n"),
            "reeld.toml:2: jobs.max_attempts: expected an integer, got an array");
  EXPECT_EQ(error_of("[daemon.max_clients]\n"),
            "reeld.toml:1: daemon.max_clients: expected an integer, got a table");
}

TEST(Config, PluginFoldersMustBeAbsolute) {
  Config c = parse_config("[plugins]\ndirs = [\"/opt/reel/plugins\"]\nload_timeout_seconds = 5\n", "reeld.toml");
  EXPECT_EQ(c.plugins.dirs, std::vector<std::string>{"/opt/reel/plugins"});
  EXPECT_EQ(c.plugins.load_timeout_seconds, 5);
  EXPECT_EQ(error_of("[plugins]\ndirs = [\"plugins\"]\n"),
            "reeld.toml:2: plugins.dirs[0]: expected an absolute folder path, got 'plugins'");
  EXPECT_EQ(error_of("[plugins]\ndirs = [1]\n"),
            "reeld.toml:2: plugins.dirs[0]: expected an absolute folder path, got an integer");
}

struct RangeCase {
  std::string toml, message;
};

TEST(Config, OutOfRangeNamesKeyAndTheAllowedRange) {
  const std::vector<RangeCase> cases = {
      {"[daemon]\nmax_concurrent_jobs = 0", "daemon.max_concurrent_jobs: must be between 1 and 1024, got 0"},
      {"[daemon]\nmax_concurrent_jobs = 1025", "daemon.max_concurrent_jobs: must be between 1 and 1024, got 1025"},
      {"[daemon]\nmax_clients = 0", "daemon.max_clients: must be between 1 and 65536, got 0"},
      {"[daemon]\nmax_clients = 5000000000", "daemon.max_clients: must be between 1 and 65536, got 5000000000"},
      {"[daemon]\nmax_request_bytes = 1023", "daemon.max_request_bytes: must be between 1024 and 67108864, got 1023"},
      {"[daemon]\nmax_request_bytes = 67108865",
       "daemon.max_request_bytes: must be between 1024 and 67108864, got 67108865"},
      {"[daemon]\nmax_queued_jobs = 0", "daemon.max_queued_jobs: must be between 1 and 100000000, got 0"},
      {"[daemon]\nstop_grace_seconds = -1", "daemon.stop_grace_seconds: must be at least 0, got -1"},
      {"[daemon]\nstop_grace_seconds = inf", "daemon.stop_grace_seconds: must be at least 0, got inf"},
      {"[daemon]\ncancel_grace_seconds = -0.5", "daemon.cancel_grace_seconds: must be at least 0, got -0.5"},
      {"[daemon]\nstatus_interval_seconds = 0", "daemon.status_interval_seconds: must be between 0.1 and 86400, got 0"},
      {"[jobs]\nmax_attempts = 0", "jobs.max_attempts: must be between 1 and 100, got 0"},
      {"[jobs]\nmax_attempts = 101", "jobs.max_attempts: must be between 1 and 100, got 101"},
      {"[jobs]\nmax_crashes = 0", "jobs.max_crashes: must be between 1 and 100, got 0"},
      {"[jobs]\naging_seconds = 0", "jobs.aging_seconds: must be at least 1, got 0"},
      {"[log]\nfile_count = 0", "log.file_count: must be between 1 and 100, got 0"},
      {"[log]\nfile_max_bytes = 10", "log.file_max_bytes: must be between 1024 and 1099511627776, got 10"},
      {"[storage]\nbusy_timeout_ms = -1", "storage.busy_timeout_ms: must be between 0 and 600000, got -1"},
      {"[storage]\nbusy_timeout_ms = 600001", "storage.busy_timeout_ms: must be between 0 and 600000, got 600001"},
      {"[log]\nlevel = \"verbose\"", "log.level: must be one of trace, debug, info, warn, error; got 'verbose'"},
      {"[log]\nlevel = \"inf\"",
       "log.level: must be one of trace, debug, info, warn, error; got 'inf' (did you mean 'info'?)"},
      {"[storage]\njournal_mode = \"WAL\"", "storage.journal_mode: must be one of auto, wal, delete; got 'WAL'"},
      {"[storage]\nsynchronous = \"off\"", "storage.synchronous: must be one of full, normal; got 'off'"},
      {"[daemon]\nsocket_mode = \"0999\"", "daemon.socket_mode: must be an octal permission string"},
      {"[daemon]\nsocket_mode = \"1777\"", "daemon.socket_mode: must be an octal permission string"},
      {"[daemon]\nsocket_mode = \"rw\"", "daemon.socket_mode: must be an octal permission string"},
      {"[daemon]\nsocket_mode = \"\"", "daemon.socket_mode: must be an octal permission string"},
      {"[daemon]\nstate_dir = \"state\"", "daemon.state_dir: must be an absolute path"},
      {"[jobs]\noutput_dir = \"~/out\"", "jobs.output_dir: must be an absolute path"},
      {"[daemon]\nsocket_path = \"/" + std::string(120, 'x') + "\"",
       "daemon.socket_path: must be at most 107 bytes long, got 121"},
      {"[gpu]\nreserve_fraction = -0.1", "gpu.reserve_fraction: must be between 0 and 0.9, got -0.1"},
      {"[gpu]\nreserve_fraction = 0.95", "gpu.reserve_fraction: must be between 0 and 0.9, got 0.95"},
      {"[gpu]\nprobe_interval_seconds = 0", "gpu.probe_interval_seconds: must be between 0.1 and 86400, got 0"},
      {"[host]\nram_fraction = 0.05", "host.ram_fraction: must be between 0.1 and 1, got 0.05"},
      {"[host]\nram_fraction = 1.5", "host.ram_fraction: must be between 0.1 and 1, got 1.5"},
      {"[scheduler]\nkeep_alive_seconds = -1",
       "scheduler.keep_alive_seconds: must be between 0 and 1000000000, got -1"},
      {"[scheduler]\nkeep_alive_seconds = inf",
       "scheduler.keep_alive_seconds: must be between 0 and 1000000000, got inf"},
      {"[scheduler]\nmax_resident_models = 0", "scheduler.max_resident_models: must be between 1 and 1024, got 0"},
  };
  for (const auto& c : cases) {
    std::string e = error_of(c.toml + "\n", "r.toml");
    EXPECT_TRUE(contains(e, "r.toml:2: " + c.message)) << c.toml;
  }
}

TEST(Config, BadSizeNamesFileLineKeyAndAnExample) {
  EXPECT_EQ(error_of("[gpu]\nreserve = \"lots\"\n", "/etc/reel/reeld.toml"),
            "/etc/reel/reeld.toml:2: gpu.reserve: not a size: 'lots' (expected a number followed by an optional "
            "unit, e.g. \"24GiB\"); write a number and a unit, e.g. \"400MiB\", \"24GiB\" or \"0.5GB\"");
  EXPECT_EQ(error_of("[gpu]\n\ninference_margin = \"800 MiBs\"\n"),
            "reeld.toml:3: gpu.inference_margin: not a size: '800 MiBs' (unknown unit 'MiBs'; use B, KiB, MiB, GiB, "
            "TiB (or K, M, G, T), KB, MB, GB, TB); write a number and a unit, e.g. \"400MiB\", \"24GiB\" or "
            "\"0.5GB\"");
  const std::vector<RangeCase> cases = {
      {"[gpu]\nworker_overhead = \"-500MiB\"", "gpu.worker_overhead: not a size: '-500MiB' (must not be negative)"},
      {"[gpu]\nworker_overhead = -1", "gpu.worker_overhead: must not be negative, got -1"},
      {"[gpu]\nreserve = \"1.5\"", "gpu.reserve: not a size: '1.5' (a number of bytes must be whole)"},
      {"[gpu]\nreserve = \"99999999999TiB\"", "gpu.reserve: not a size: '99999999999TiB' (too large"},
      {"[gpu]\nreserve = \"\"", "gpu.reserve: not a size: '' (empty)"},
      {"[gpu]\nreserve = 0.5", "gpu.reserve: expected a size (a string, e.g. \"400MiB\", \"24GiB\" or \"0.5GB\"; "
                                "or an integer number of bytes), got a float"},
      {"[gpu]\nreserve = true", "gpu.reserve: expected a size (a string"},
      {"[host]\nram_reserve = \"2 gigs\"", "host.ram_reserve: not a size: '2 gigs' (unknown unit 'gigs'"},
      {"[host]\nram_reserve = [\"2GiB\"]", "host.ram_reserve: expected a size (a string"},
  };
  for (const auto& c : cases) {
    std::string e = error_of(c.toml + "\n", "r.toml");
    EXPECT_TRUE(contains(e, "r.toml:2: " + c.message)) << c.toml;
  }
}

TEST(Config, BadListsNameTheEntry) {
  const std::vector<RangeCase> cases = {
      {"[gpu]\nsimulate = \"24GiB\"", "gpu.simulate: expected an array, got a string"},
      {"[gpu]\nsimulate = [\"24GiB\", \"8 GiBs\"]", "gpu.simulate[1]: not a size: '8 GiBs' (unknown unit 'GiBs'"},
      {"[gpu]\nsimulate = [\"24\"]", "gpu.simulate[0]: must be at least 1MiB, got 24"},
      {"[gpu]\nsimulate = [0]", "gpu.simulate[0]: must be at least 1MiB, got 0"},
      {"[gpu]\nsimulate = [\"8GiB\", false]", "gpu.simulate[1]: expected a size (a string"},
      {"[gpu]\ndevices = \"0\"", "gpu.devices: expected an array, got a string"},
      {"[gpu]\ndevices = [\"0\", \"\"]", "gpu.devices[1]: expected a GPU UUID (\"GPU-...\") or index (\"0\"), got ''"},
      {"[gpu]\ndevices = [1.5]", "gpu.devices[0]: expected a GPU UUID (\"GPU-...\") or index (\"0\"), got a float"},
      {"[gpu]\ndevices = [-1]", "gpu.devices[0]: a GPU index must not be negative, got -1"},
      {"[gpu]\ndevices = [\"GPU-a\", \"1\", \"GPU-a\"]", "gpu.devices[2]: 'GPU-a' is listed twice"},
      {"[gpu]\ndevices = [1, \"1\"]", "gpu.devices[1]: '1' is listed twice"},
  };
  for (const auto& c : cases) {
    std::string e = error_of(c.toml + "\n", "r.toml");
    EXPECT_TRUE(contains(e, "r.toml:2: " + c.message)) << c.toml;
  }
  std::string many = "[gpu]\nsimulate = [";
  for (int i = 0; i < 65; ++i) many += "\"1GiB\", ";
  EXPECT_TRUE(contains(error_of(many + "]\n", "r.toml"), "r.toml:2: gpu.simulate: must have at most 64 entries, got 65"));
  EXPECT_TRUE(contains(error_of("[gpu.simulate]\n", "r.toml"), "r.toml:1: gpu.simulate: expected an array, got a table"));
  // Empty arrays are the defaults.
  Config c = parse_config("[gpu]\nsimulate = []\ndevices = []\n", "e.toml");
  EXPECT_TRUE(c.gpu.simulate.empty());
  EXPECT_TRUE(c.gpu.devices.empty());
}

TEST(Config, NewKeysWrongTypes) {
  EXPECT_EQ(error_of("[scheduler]\nquality_fallback = \"yes\"\n"),
            "reeld.toml:2: scheduler.quality_fallback: expected a boolean, got a string");
  EXPECT_EQ(error_of("[scheduler]\ndegrade_now = 1\n"),
            "reeld.toml:2: scheduler.degrade_now: expected a boolean, got an integer");
  EXPECT_EQ(error_of("[scheduler]\nmax_resident_models = 2.0\n"),
            "reeld.toml:2: scheduler.max_resident_models: expected an integer, got a float");
  EXPECT_EQ(error_of("[host]\nram_fraction = \"90%\"\n"),
            "reeld.toml:2: host.ram_fraction: expected a number, got a string");
  EXPECT_EQ(error_of("[gpu]\nprobe_interval_seconds = \"10s\"\n"),
            "reeld.toml:2: gpu.probe_interval_seconds: expected a number, got a string");
  // The right key in the wrong table.
  EXPECT_EQ(error_of("[gpu]\nram_reserve = \"2GiB\"\n"),
            "reeld.toml:2: unknown key 'gpu.ram_reserve' (did you mean 'host.ram_reserve'?)");
}

TEST(Config, BoundsAreInclusive) {
  Config c = parse_config(
      "[daemon]\nmax_concurrent_jobs = 1024\nmax_request_bytes = 67108864\nsocket_mode = \"0777\"\n"
      "stop_grace_seconds = 0\n[storage]\nbusy_timeout_ms = 600000\n[jobs]\nmax_attempts = 100\n",
      "b.toml");
  EXPECT_EQ(c.daemon.max_concurrent_jobs, 1024);
  EXPECT_EQ(c.daemon.max_request_bytes, 64 << 20);
  EXPECT_EQ(c.daemon.socket_mode, "0777");
  EXPECT_EQ(c.storage.busy_timeout_ms, 600000);
  EXPECT_EQ(parse_config("[daemon]\nsocket_mode = \"600\"\n", "m.toml").daemon.socket_mode, "600");
}

TEST(Config, AllProblemsAreReportedSortedByLine) {
  std::string e = error_of("[log]\nlevel = \"loud\"\n[daemon]\nmax_clients = 0\nbogus = 1\n");
  EXPECT_EQ(e,
            "reeld.toml:2: log.level: must be one of trace, debug, info, warn, error; got 'loud'\n"
            "reeld.toml:4: daemon.max_clients: must be between 1 and 65536, got 0\n"
            "reeld.toml:5: unknown key 'daemon.bogus'");
}

TEST(Config, ParseErrorNamesFileLineAndColumn) {
  std::string e = error_of("[daemon]\nmax_clients = = 3\n", "bad.toml");
  EXPECT_TRUE(std::regex_search(e, std::regex(R"(^bad\.toml:2:\d+: \S)"))) << e;
  e = error_of("[daemon]\nmax_clients = 1\nmax_clients = 2\n", "dup.toml");
  EXPECT_TRUE(std::regex_search(e, std::regex(R"(^dup\.toml:3:\d+: .*max_clients)"))) << e;
}

// ---- files ----

TEST(ConfigFile, MissingFileNamesPathAndErrno) {
  TempDir d;
  try {
    load_config_file(d.file("nope.toml"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read config file '" + d.file("nope.toml") + "': No such file or directory");
  }
}

TEST(ConfigFile, DirectoryIsRefused) {
  TempDir d;
  try {
    load_config_file(d.path());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), d.path()));
    EXPECT_TRUE(contains(e.what(), "Is a directory"));
  }
}

TEST(ConfigFile, UnreadableFileIsRefused) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir d;
  write_file(d.file("secret.toml"), "");
  chmod(d.file("secret.toml").c_str(), 0);
  try {
    load_config_file(d.file("secret.toml"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "secret.toml': Permission denied"));
  }
}

TEST(ConfigFile, PathThroughAFileIsRefused) {
  TempDir d;
  write_file(d.file("plain"), "");
  try {
    load_config_file(d.file("plain/reeld.toml"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read config file '" + d.file("plain/reeld.toml") + "': Not a directory");
  }
}

TEST(ConfigFile, ErrorsNameTheFilePath) {
  TempDir d;
  write_file(d.file("reeld.toml"), "[jobs]\nmax_attempts = 0\n");
  try {
    load_config_file(d.file("reeld.toml"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), d.file("reeld.toml") + ":2: jobs.max_attempts: must be between 1 and 100, got 0");
  }
}

TEST(ConfigFile, OversizedFileIsRefused) {
  TempDir d;
  write_file(d.file("big.toml"), std::string((1 << 20) + 1, '#'));
  EXPECT_THROW(
      {
        try {
          load_config_file(d.file("big.toml"));
        } catch (const ConfigError& e) {
          EXPECT_TRUE(contains(e.what(), "larger than the limit"));
          throw;
        }
      },
      ConfigError);
}

// ---- search order ----

class FindConfig : public ::testing::Test {
 protected:
  EnvGuard env{kPathEnv};
  TempDir d;
  std::string system() const { return d.file("etc/reeld.toml"); }
  std::string make(const std::string& rel) {
    std::filesystem::create_directories(std::filesystem::path(d.file(rel)).parent_path());
    write_file(d.file(rel), "");
    return d.file(rel);
  }
};

TEST_F(FindConfig, NothingFoundMeansDefaults) {
  env.set("HOME", d.file("home"));
  EXPECT_EQ(find_config_file("", system()), std::nullopt);
  Config c = load_config("", system());
  EXPECT_EQ(c.source_path, "");
  EXPECT_EQ(to_toml(c), to_toml(Config{}));
}

TEST_F(FindConfig, ExplicitWinsOverEverything) {
  std::string cli = make("cli.toml");
  env.set("REEL_CONFIG", make("env.toml"));
  make("etc/reeld.toml");
  EXPECT_EQ(find_config_file(cli, system()), cli);
}

TEST_F(FindConfig, ExplicitMissingIsAnError) {
  env.set("REEL_CONFIG", make("env.toml"));
  try {
    find_config_file(d.file("missing.toml"), system());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "config file '" + d.file("missing.toml") + "' (from --config): No such file or directory");
  }
  EXPECT_THROW(load_config(d.file("missing.toml"), system()), ConfigError);
}

TEST_F(FindConfig, EnvVariableComesNext) {
  std::string e = make("env.toml");
  env.set("REEL_CONFIG", e);
  make("etc/reeld.toml");
  EXPECT_EQ(find_config_file("", system()), e);
}

TEST_F(FindConfig, EnvVariableMissingIsAnError) {
  env.set("REEL_CONFIG", d.file("gone.toml"));
  make("etc/reeld.toml");
  try {
    find_config_file("", system());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "'" + d.file("gone.toml") + "' (from $REEL_CONFIG): No such file"));
  }
}

TEST_F(FindConfig, SystemFileBeforeUserFile) {
  env.set("XDG_CONFIG_HOME", d.file("xdg"));
  make("xdg/reel/reeld.toml");
  make("etc/reeld.toml");
  EXPECT_EQ(find_config_file("", system()), system());
}

TEST_F(FindConfig, XdgConfigHome) {
  env.set("XDG_CONFIG_HOME", d.file("xdg"));
  env.set("HOME", d.file("home"));
  make("home/.config/reel/reeld.toml");
  std::string x = make("xdg/reel/reeld.toml");
  EXPECT_EQ(find_config_file("", system()), x);
}

TEST_F(FindConfig, HomeConfigWhenXdgUnsetOrRelative) {
  env.set("HOME", d.file("home"));
  std::string h = make("home/.config/reel/reeld.toml");
  EXPECT_EQ(find_config_file("", system()), h);
  env.set("XDG_CONFIG_HOME", "relative/dir");  // invalid per the XDG spec: ignored
  EXPECT_EQ(find_config_file("", system()), h);
}

TEST_F(FindConfig, LoadConfigLoadsTheFoundFile) {
  std::string path = d.file("cli.toml");
  write_file(path, "[daemon]\nmax_clients = 9\n");
  Config c = load_config(path, system());
  EXPECT_EQ(c.source_path, path);
  EXPECT_EQ(c.daemon.max_clients, 9);
}

// ---- paths ----

class Paths : public ::testing::Test {
 protected:
  EnvGuard env{kPathEnv};
  std::string uid = std::to_string(getuid());
};

TEST_F(Paths, ConfigValuesWin) {
  env.set("STATE_DIRECTORY", "/sd/state");
  env.set("RUNTIME_DIRECTORY", "/sd/run");
  Config c;
  c.daemon.state_dir = "/data/reel";
  c.daemon.socket_path = "/run/custom.sock";
  c.jobs.output_dir = "/data/out";
  ResolvedPaths p = resolve_paths(c);
  EXPECT_EQ(p.state_dir, "/data/reel");
  EXPECT_EQ(p.socket_path, "/run/custom.sock");
  EXPECT_EQ(p.database, "/data/reel/reel.db");
  EXPECT_EQ(p.lock_file, "/data/reel/reeld.lock");
  EXPECT_EQ(p.work_dir, "/data/reel/work");
  EXPECT_EQ(p.output_dir, "/data/out");
}

TEST_F(Paths, SystemdDirectoriesTakeTheFirstEntry) {
  env.set("STATE_DIRECTORY", "/var/lib/reel:/var/lib/other");
  env.set("RUNTIME_DIRECTORY", "/run/reel:/run/other");
  env.set("XDG_STATE_HOME", "/xdg/state");
  env.set("XDG_RUNTIME_DIR", "/xdg/run");
  ResolvedPaths p = resolve_paths(Config{});
  EXPECT_EQ(p.state_dir, "/var/lib/reel");
  EXPECT_EQ(p.socket_path, "/run/reel/reeld.sock");
  EXPECT_EQ(p.output_dir, "/var/lib/reel/outputs");
}

TEST_F(Paths, XdgDirectories) {
  env.set("XDG_STATE_HOME", "/xdg/state");
  env.set("XDG_RUNTIME_DIR", "/xdg/run/");
  env.set("HOME", "/home/u");
  ResolvedPaths p = resolve_paths(Config{});
  EXPECT_EQ(p.state_dir, "/xdg/state/reel");
  EXPECT_EQ(p.socket_path, "/xdg/run/reel/reeld.sock");
  EXPECT_EQ(p.database, "/xdg/state/reel/reel.db");
}

TEST_F(Paths, HomeAndTmpFallbacks) {
  env.set("HOME", "/home/u");
  env.set("XDG_STATE_HOME", "not/absolute");
  ResolvedPaths p = resolve_paths(Config{});
  EXPECT_EQ(p.state_dir, "/home/u/.local/state/reel");
  EXPECT_EQ(p.work_dir, "/home/u/.local/state/reel/work");
  EXPECT_EQ(p.socket_path, "/tmp/reel-" + uid + "/reeld.sock");
}

TEST_F(Paths, ConfigStateDirTrailingSlash) {
  Config c;
  c.daemon.state_dir = "/data/reel/";
  EXPECT_EQ(resolve_paths(c).database, "/data/reel/reel.db");
}

class SocketDefault : public Paths {
 protected:
  TempDir d;
  std::string system_socket() const { return d.file("system.sock"); }
  void make_user_socket() {
    std::filesystem::create_directories(d.file("xdg/reel"));
    write_file(d.file("xdg/reel/reeld.sock"), "");
  }
  void SetUp() override { env.set("XDG_RUNTIME_DIR", d.file("xdg")); }
};

TEST_F(SocketDefault, EnvironmentVariableWins) {
  env.set("REEL_SOCKET", "/somewhere/s.sock");
  write_file(system_socket(), "");
  EXPECT_EQ(default_socket_path(system_socket()), "/somewhere/s.sock");
}

TEST_F(SocketDefault, UserSocketWhenNeitherExists) {
  EXPECT_EQ(default_socket_path(system_socket()), d.file("xdg/reel/reeld.sock"));
}

TEST_F(SocketDefault, SystemSocketWhenOnlyItExists) {
  write_file(system_socket(), "");
  EXPECT_EQ(default_socket_path(system_socket()), system_socket());
}

TEST_F(SocketDefault, UserSocketWhenBothExist) {
  write_file(system_socket(), "");
  make_user_socket();
  EXPECT_EQ(default_socket_path(system_socket()), d.file("xdg/reel/reeld.sock"));
}

TEST_F(SocketDefault, TmpFallbackWithoutRuntimeDir) {
  unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(default_socket_path(system_socket()), "/tmp/reel-" + uid + "/reeld.sock");
}
