// DeviceProbe (simulated GPUs, NVML absent or present, host memory from /proc and
// cgroups) and make_budgets()'s arithmetic.
#include <dlfcn.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/config.hpp"
#include "server/device_probe.hpp"
#include "support/test_support.hpp"

using namespace reel;
using reel::test::TempDir;
using reel::test::write_file;

namespace {

constexpr int64_t KiB = 1024, MiB = KiB << 10, GiB = MiB << 10;

GpuInfo gpu(int index, int64_t total, int64_t used, std::string uuid = "") {
  GpuInfo g;
  g.id = "cuda:" + std::to_string(index);
  g.uuid = uuid.empty() ? "GPU-" + std::to_string(index) + "aaa" : uuid;
  g.name = "Test GPU";
  g.total_bytes = total;
  g.used_bytes = used;
  g.free_bytes = total - used;
  return g;
}

HostMemory host_mem(int64_t total, int64_t available, int64_t limit = 0, int64_t limit_used = 0) {
  HostMemory h;
  h.total_bytes = total;
  h.available_bytes = available;
  h.cgroup_limit_bytes = limit;
  h.cgroup_used_bytes = limit_used;
  return h;
}

const DeviceBudget* find(const std::vector<DeviceBudget>& b, const std::string& id) {
  for (const auto& d : b)
    if (d.id == id) return &d;
  return nullptr;
}

std::vector<std::string> ids(const std::vector<DeviceBudget>& b) {
  std::vector<std::string> out;
  for (const auto& d : b) out.push_back(d.id);
  return out;
}

bool nvml_present() {
  void* h = dlopen(kNvmlLibrary, RTLD_NOW | RTLD_LOCAL);
  if (h) dlclose(h);
  return h != nullptr;
}

}  // namespace

// ---- make_budgets: GPUs ----

struct GpuCase {
  const char* what;
  int64_t total, used, ours;
  int64_t reserve;
  double fraction;
  int64_t margin;
  int64_t want_reserve, want_foreign;
};

TEST(MakeBudgets, GpuReserveAndForeignArithmetic) {
  const std::vector<GpuCase> cases = {
      {"defaults-like: fixed reserve wins", 24 * GiB, 1 * GiB, 0, 400 * MiB, 0.0, 800 * MiB, 1200 * MiB, 1 * GiB},
      {"fraction wins when larger", 24 * GiB, 0, 0, 400 * MiB, 0.1, 800 * MiB,
       static_cast<int64_t>(24 * GiB * 0.1) + 800 * MiB, 0},
      {"fixed wins over a small fraction", 8 * GiB, 0, 0, 1 * GiB, 0.05, 0, 1 * GiB, 0},
      {"ours are not foreign", 24 * GiB, 10 * GiB, 6 * GiB, 0, 0, 0, 0, 4 * GiB},
      {"foreign never negative", 24 * GiB, 2 * GiB, 5 * GiB, 0, 0, 0, 0, 0},
      {"reserve capped at total", 4 * GiB, 0, 0, 3 * GiB, 0, 2 * GiB, 4 * GiB, 0},
      {"zero reserve and margin", 16 * GiB, 512 * MiB, 0, 0, 0, 0, 0, 512 * MiB},
  };
  for (const auto& c : cases) {
    Config cfg;
    cfg.gpu.reserve = c.reserve;
    cfg.gpu.reserve_fraction = c.fraction;
    cfg.gpu.inference_margin = c.margin;
    cfg.gpu.worker_overhead = 321 * MiB;
    OurMemory ours;
    if (c.ours) ours.device_bytes["cuda:0"] = c.ours;
    auto b = make_budgets({gpu(0, c.total, c.used)}, host_mem(64 * GiB, 60 * GiB), cfg, ours);
    ASSERT_EQ(ids(b), (std::vector<std::string>{"cuda:0", "cpu"})) << c.what;
    EXPECT_TRUE(b[0].gpu) << c.what;
    EXPECT_EQ(b[0].total_bytes, c.total) << c.what;
    EXPECT_EQ(b[0].reserve_bytes, c.want_reserve) << c.what;
    EXPECT_EQ(b[0].foreign_bytes, c.want_foreign) << c.what;
    EXPECT_EQ(b[0].per_worker_overhead, 321 * MiB) << c.what;
  }
}

TEST(MakeBudgets, DefaultConfigNumbers) {
  Config cfg;  // reserve 400MiB, fraction 0, margin 800MiB, overhead 500MiB
  auto b = make_budgets({gpu(0, 24 * GiB, 300 * MiB)}, host_mem(32 * GiB, 30 * GiB), cfg);
  EXPECT_EQ(b[0].reserve_bytes, 1200 * MiB);
  EXPECT_EQ(b[0].foreign_bytes, 300 * MiB);
  EXPECT_EQ(b[0].per_worker_overhead, 500 * MiB);
}

TEST(MakeBudgets, OursAreMatchedPerGpu) {
  Config cfg;
  OurMemory ours;
  ours.device_bytes["cuda:1"] = 3 * GiB;
  ours.device_bytes["cuda:7"] = 9 * GiB;  // a GPU that is gone: ignored
  auto b = make_budgets({gpu(0, 24 * GiB, 4 * GiB), gpu(1, 24 * GiB, 4 * GiB)}, host_mem(32 * GiB, 30 * GiB), cfg,
                        ours);
  EXPECT_EQ(find(b, "cuda:0")->foreign_bytes, 4 * GiB);
  EXPECT_EQ(find(b, "cuda:1")->foreign_bytes, 1 * GiB);
}

TEST(MakeBudgets, DevicesSelectByIndexOrUuid) {
  std::vector<GpuInfo> gpus = {gpu(0, 8 * GiB, 0, "GPU-aaaa"), gpu(1, 24 * GiB, 0, "GPU-bbbb"),
                               gpu(2, 24 * GiB, 0, "GPU-cccc")};
  HostMemory h = host_mem(32 * GiB, 30 * GiB);
  Config cfg;
  EXPECT_EQ(ids(make_budgets(gpus, h, cfg)), (std::vector<std::string>{"cuda:0", "cuda:1", "cuda:2", "cpu"}));
  cfg.gpu.devices = {"2"};
  EXPECT_EQ(ids(make_budgets(gpus, h, cfg)), (std::vector<std::string>{"cuda:2", "cpu"}));
  cfg.gpu.devices = {"gpu-BBBB", "0"};  // UUIDs match case-insensitively; order is the GPUs'
  EXPECT_EQ(ids(make_budgets(gpus, h, cfg)), (std::vector<std::string>{"cuda:0", "cuda:1", "cpu"}));
  cfg.gpu.devices = {"GPU-zzzz", "5", "cuda:1"};  // none match: only the host is left
  EXPECT_EQ(ids(make_budgets(gpus, h, cfg)), (std::vector<std::string>{"cpu"}));
  EXPECT_EQ(unmatched_devices(gpus, cfg), (std::vector<std::string>{"GPU-zzzz", "5", "cuda:1"}));
  cfg.gpu.devices = {"GPU-cccc", "7"};
  EXPECT_EQ(unmatched_devices(gpus, cfg), (std::vector<std::string>{"7"}));
  cfg.gpu.devices = {};
  EXPECT_TRUE(unmatched_devices(gpus, cfg).empty());
}

TEST(MakeBudgets, NoGpusStillGivesTheHost) {
  auto b = make_budgets({}, host_mem(16 * GiB, 8 * GiB), Config{});
  ASSERT_EQ(ids(b), (std::vector<std::string>{"cpu"}));
  EXPECT_FALSE(b[0].gpu);
}

TEST(MakeBudgets, SimulatedGpus) {
  Config cfg;
  cfg.gpu.simulate = {24 * GiB, 8 * GiB};
  DeviceProbe probe(cfg, "/nonexistent/libnvidia-ml.so.1");  // never loaded with simulate
  auto gpus = probe.gpus();
  OurMemory ours;
  ours.device_bytes["cuda:0"] = 5 * GiB;
  auto b = make_budgets(gpus, host_mem(32 * GiB, 30 * GiB), cfg, ours);
  ASSERT_EQ(ids(b), (std::vector<std::string>{"cuda:0", "cuda:1", "cpu"}));
  EXPECT_EQ(b[0].total_bytes, 24 * GiB);
  EXPECT_EQ(b[1].total_bytes, 8 * GiB);
  EXPECT_EQ(b[0].foreign_bytes, 0);  // nothing else uses a simulated GPU
  EXPECT_EQ(b[1].foreign_bytes, 0);
  EXPECT_EQ(b[1].reserve_bytes, 1200 * MiB);
  cfg.gpu.devices = {"SIM-1"};
  EXPECT_EQ(ids(make_budgets(gpus, host_mem(32 * GiB, 30 * GiB), cfg)), (std::vector<std::string>{"cuda:1", "cpu"}));
}

// ---- make_budgets: host RAM ----

struct HostCase {
  const char* what;
  HostMemory host;
  double fraction;
  int64_t ram_reserve, ours;
  int64_t want_total, want_reserve, want_foreign;
};

TEST(MakeBudgets, HostArithmetic) {
  const int64_t T = 64 * GiB;
  const int64_t share = static_cast<int64_t>(T * 0.9);
  const std::vector<HostCase> cases = {
      {"others use 10 GiB", host_mem(T, 54 * GiB), 0.9, 2 * GiB, 0, share, 2 * GiB, 10 * GiB},
      {"ours are not foreign", host_mem(T, 54 * GiB), 0.9, 2 * GiB, 6 * GiB, share, 2 * GiB, 4 * GiB},
      {"foreign never negative", host_mem(T, 60 * GiB), 0.9, 2 * GiB, 8 * GiB, share, 2 * GiB, 0},
      {"whole RAM", host_mem(T, 60 * GiB), 1.0, 0, 0, T, 0, 4 * GiB},
      {"reserve capped at total", host_mem(4 * GiB, 4 * GiB), 0.5, 3 * GiB, 0, 2 * GiB, 2 * GiB, 0},
      // A cgroup limit below the share: the budget is the cgroup's, and its usage
      // (less ours) is what others hold.
      {"cgroup limit", host_mem(T, 60 * GiB, 16 * GiB, 5 * GiB), 0.9, 2 * GiB, 3 * GiB, 16 * GiB, 2 * GiB, 2 * GiB},
      // The host is tighter than the cgroup: its shortage shows as foreign.
      {"host tighter than cgroup", host_mem(T, 10 * GiB, 32 * GiB, 1 * GiB), 1.0, 0, 0, 32 * GiB, 0, 22 * GiB},
      // A limit above the share changes nothing but what is free in the cgroup.
      {"cgroup limit above share", host_mem(T, 54 * GiB, 63 * GiB, 2 * GiB), 0.9, 0, 0, share, 0, 10 * GiB},
      {"unreadable meminfo", host_mem(0, 0), 0.9, 2 * GiB, 0, 0, 0, 0},
  };
  for (const auto& c : cases) {
    Config cfg;
    cfg.host.ram_fraction = c.fraction;
    cfg.host.ram_reserve = c.ram_reserve;
    OurMemory ours;
    ours.host_bytes = c.ours;
    auto b = make_budgets({}, c.host, cfg, ours);
    const DeviceBudget* cpu = find(b, "cpu");
    ASSERT_NE(cpu, nullptr) << c.what;
    EXPECT_FALSE(cpu->gpu) << c.what;
    EXPECT_EQ(cpu->total_bytes, c.want_total) << c.what;
    EXPECT_EQ(cpu->reserve_bytes, c.want_reserve) << c.what;
    EXPECT_EQ(cpu->foreign_bytes, c.want_foreign) << c.what;
    EXPECT_EQ(cpu->per_worker_overhead, 0) << c.what;
  }
}

// ---- DeviceProbe ----

TEST(DeviceProbe, SimulateReturnsTheConfiguredGpus) {
  Config cfg = parse_config("[gpu]\nsimulate = [\"24GiB\", \"8GiB\"]\n", "sim.toml");
  DeviceProbe probe(cfg);
  EXPECT_EQ(probe.source(), "simulated");
  for (int round = 0; round < 2; ++round) {  // re-probing gives the same
    auto g = probe.gpus();
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(g[0].id, "cuda:0");
    EXPECT_EQ(g[1].id, "cuda:1");
    EXPECT_EQ(g[0].uuid, "SIM-0");
    EXPECT_EQ(g[1].uuid, "SIM-1");
    EXPECT_EQ(g[0].name, "simulated");
    EXPECT_EQ(g[0].total_bytes, 24 * GiB);
    EXPECT_EQ(g[0].free_bytes, 24 * GiB);
    EXPECT_EQ(g[0].used_bytes, 0);
    EXPECT_EQ(g[1].total_bytes, 8 * GiB);
    EXPECT_TRUE(g[0].simulated && g[1].simulated);
  }
  EXPECT_EQ(probe.source(), "simulated");
}

TEST(DeviceProbe, MissingLibraryGivesNoGpusAndSaysWhy) {
  Config cfg;
  DeviceProbe probe(cfg, "libreel-no-such-nvml.so.1");
  EXPECT_EQ(probe.source().rfind("none: libreel-no-such-nvml.so.1 not found", 0), 0u) << probe.source();
  EXPECT_TRUE(probe.gpus().empty());
  EXPECT_TRUE(probe.gpus().empty());  // retried on each call, still absent
  EXPECT_EQ(probe.source().rfind("none: libreel-no-such-nvml.so.1 not found", 0), 0u) << probe.source();
}

TEST(DeviceProbe, LibraryWithoutNvmlSymbolsIsRefused) {
  // A real shared library that is not NVML: loaded, then refused by name of the symbol.
  DeviceProbe probe(Config{}, "libm.so.6");
  EXPECT_EQ(probe.source(), "none: libm.so.6 has no nvmlInit_v2 (driver too old?)");
  EXPECT_TRUE(probe.gpus().empty());
}

TEST(DeviceProbe, RealNvmlOrAReasonWhyNot) {
  DeviceProbe probe{Config{}};
  auto gpus = probe.gpus();
  std::string source = probe.source();
  if (!nvml_present()) {
    // This machine: no NVIDIA driver.
    EXPECT_TRUE(gpus.empty());
    EXPECT_EQ(source.rfind("none: libnvidia-ml.so.1 not found", 0), 0u) << source;
    return;
  }
  // A GPU machine: NVML answers (or says why not), and what it reports is consistent.
  if (source.rfind("none: ", 0) == 0) {
    EXPECT_TRUE(gpus.empty()) << source;
    return;
  }
  EXPECT_EQ(source.rfind("nvml (driver ", 0), 0u) << source;
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    const auto& g = gpus[i];
    EXPECT_EQ(g.id, "cuda:" + std::to_string(i));
    EXPECT_FALSE(g.uuid.empty());
    EXPECT_FALSE(g.name.empty());
    EXPECT_GT(g.total_bytes, 0);
    EXPECT_GE(g.free_bytes, 0);
    EXPECT_LE(g.free_bytes, g.total_bytes);
    EXPECT_EQ(g.used_bytes, g.total_bytes - g.free_bytes);
    EXPECT_FALSE(g.simulated);
    std::cout << g.id << " " << g.uuid << " " << g.name << " total " << g.total_bytes << " free " << g.free_bytes
              << " [" << source << "]\n";
  }
}

TEST(DeviceProbe, HostMemoryOfThisMachineIsSane) {
  DeviceProbe probe{Config{}, "libreel-no-such-nvml.so.1"};
  HostMemory h = probe.host();
  EXPECT_GT(h.total_bytes, 64 * MiB);
  EXPECT_GT(h.available_bytes, 0);
  EXPECT_LE(h.available_bytes, h.total_bytes);
  EXPECT_GE(h.cgroup_limit_bytes, 0);
  EXPECT_GE(h.cgroup_used_bytes, 0);
  auto b = make_budgets({}, h, Config{});
  EXPECT_GT(b.back().total_bytes, 0);
  EXPECT_LE(b.back().total_bytes, h.total_bytes);
}

// ---- read_host_memory from files of our own ----

class HostFiles : public ::testing::Test {
 protected:
  TempDir d;
  HostMemorySources src{d.file("meminfo"), d.file("cgroup"), d.file("sys")};
  void SetUp() override {
    write_file(src.meminfo,
               "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    9000000 kB\n"
               "Buffers:          100000 kB\nCached:          2000000 kB\n");
  }
  void put(const std::string& rel, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(d.file("sys/" + rel)).parent_path());
    write_file(d.file("sys/" + rel), content);
  }
};

TEST_F(HostFiles, MeminfoWithoutCgroups) {
  HostMemory h = read_host_memory(src);
  EXPECT_EQ(h.total_bytes, 16000000 * KiB);
  EXPECT_EQ(h.available_bytes, 9000000 * KiB);
  EXPECT_EQ(h.cgroup_limit_bytes, 0);
}

TEST_F(HostFiles, OldKernelWithoutMemAvailable) {
  write_file(src.meminfo, "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n");
  HostMemory h = read_host_memory(src);
  EXPECT_EQ(h.total_bytes, 1000 * KiB);
  EXPECT_EQ(h.available_bytes, 420 * KiB);
}

TEST_F(HostFiles, UnreadableMeminfoGivesZeros) {
  src.meminfo = d.file("missing");
  HostMemory h = read_host_memory(src);
  EXPECT_EQ(h.total_bytes, 0);
  EXPECT_EQ(h.available_bytes, 0);
}

TEST_F(HostFiles, CgroupV2Limit) {
  write_file(src.self_cgroup, "0::/system.slice/reeld.service\n");
  put("cgroup.controllers", "cpu memory\n");
  put("system.slice/reeld.service/memory.max", "4294967296\n");
  put("system.slice/reeld.service/memory.current", "1073741824\n");
  put("system.slice/reeld.service/memory.stat", "anon 100\nfile 900\nactive_file 10\ninactive_file 268435456\n");
  put("system.slice/memory.max", "max\n");
  HostMemory h = read_host_memory(src);
  EXPECT_EQ(h.cgroup_limit_bytes, 4 * GiB);
  EXPECT_EQ(h.cgroup_used_bytes, 768 * MiB);  // inactive file cache is not counted
  EXPECT_EQ(h.total_bytes, 16000000 * KiB);   // the raw numbers stay
}

TEST_F(HostFiles, CgroupV2MaxMeansNoLimit) {
  write_file(src.self_cgroup, "0::/user.slice\n");
  put("cgroup.controllers", "memory\n");
  put("user.slice/memory.max", "max\n");
  put("user.slice/memory.current", "123\n");
  EXPECT_EQ(read_host_memory(src).cgroup_limit_bytes, 0);
}

TEST_F(HostFiles, CgroupV2TightestAncestorWins) {
  write_file(src.self_cgroup, "0::/a/b\n");
  put("cgroup.controllers", "memory\n");
  put("a/b/memory.max", "8589934592\n");
  put("a/b/memory.current", "0\n");
  put("a/memory.max", "2147483648\n");
  put("a/memory.current", "1073741824\n");  // a sibling of b uses 1 GiB of a's 2
  HostMemory h = read_host_memory(src);
  EXPECT_EQ(h.cgroup_limit_bytes, 2 * GiB);
  EXPECT_EQ(h.cgroup_used_bytes, 1 * GiB);
}

TEST_F(HostFiles, CgroupPathNotVisibleUsesTheMountRoot) {
  // In a container /proc/self/cgroup names the host's path; the mount is our cgroup.
  write_file(src.self_cgroup, "0::/kubepods/pod1/abc\n");
  put("cgroup.controllers", "memory\n");
  put("memory.max", "3221225472\n");
  put("memory.current", "0\n");
  EXPECT_EQ(read_host_memory(src).cgroup_limit_bytes, 3 * GiB);
}

TEST_F(HostFiles, CgroupV1Limit) {
  write_file(src.self_cgroup, "9:pids:/\n4:memory:/process_api/x\n0::/\n");
  put("memory/process_api/x/memory.limit_in_bytes", "6442450944\n");
  put("memory/process_api/x/memory.usage_in_bytes", "2147483648\n");
  put("memory/process_api/x/memory.stat", "cache 5\ninactive_file 1\ntotal_inactive_file 1073741824\n");
  put("memory/memory.limit_in_bytes", "9223372036854771712\n");  // v1's "no limit"
  HostMemory h = read_host_memory(src);
  EXPECT_EQ(h.cgroup_limit_bytes, 6 * GiB);
  EXPECT_EQ(h.cgroup_used_bytes, 1 * GiB);
}

TEST_F(HostFiles, CgroupV1Unlimited) {
  write_file(src.self_cgroup, "4:cpu,memory:/\n");
  put("memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(read_host_memory(src).cgroup_limit_bytes, 0);
}
