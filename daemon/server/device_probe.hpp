// What memory there is: the GPUs' (through NVML) and the host's (/proc, cgroups), and
// how that becomes the scheduler's DeviceBudgets.
//
// The queue-owning daemon must never create a CUDA context, so GPUs are read only
// through NVML, loaded with dlopen("libnvidia-ml.so.1") at run time: no link-time
// dependency, no CUDA or NVML headers (the few NVML declarations needed are in
// device_probe.cpp). Without the library, or when nvmlInit fails (no driver loaded),
// there are simply no GPUs and source() says why; nothing is logged here — the caller
// logs source() once, and again when it changes.
//
// GPU ids are "cuda:<NVML index>". NVML orders GPUs by PCI bus id, which the CUDA
// runtime does only with CUDA_DEVICE_ORDER=PCI_BUS_ID, so a worker must be pinned to
// its GPU by UUID (CUDA_VISIBLE_DEVICES=<uuid>), never by index.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/budget_scheduler.hpp"
#include "core/config.hpp"

namespace reel {

struct GpuInfo {
  std::string id;            // "cuda:N", N = NVML index (or position in gpu.simulate)
  std::string uuid;          // "GPU-8f6c..." ("SIM-N" when simulated)
  std::string name;          // "NVIDIA GeForce RTX 4090" ("simulated")
  int64_t total_bytes = 0;
  int64_t free_bytes = 0;
  int64_t used_bytes = 0;    // total - free: every process's memory plus the driver's reservation
  bool simulated = false;
};

// Raw numbers; make_budgets() turns them into the "cpu" budget. All 0 when
// /proc/meminfo cannot be read.
struct HostMemory {
  int64_t total_bytes = 0;         // MemTotal
  int64_t available_bytes = 0;     // MemAvailable (MemFree + Buffers + Cached on kernels without it)
  // The tightest cgroup memory limit of this process and its ancestors (v2 memory.max,
  // v1 memory.limit_in_bytes; 0 = no limit), and that cgroup's working set: its usage
  // less inactive file cache (memory.stat), as the kernel reclaims that first.
  int64_t cgroup_limit_bytes = 0;
  int64_t cgroup_used_bytes = 0;
};

// Where host memory is read from; tests point these at files of their own.
struct HostMemorySources {
  std::string meminfo = "/proc/meminfo";
  std::string self_cgroup = "/proc/self/cgroup";
  std::string cgroup_root = "/sys/fs/cgroup";
};
HostMemory read_host_memory(const HostMemorySources& sources = {});

inline constexpr const char* kNvmlLibrary = "libnvidia-ml.so.1";

// Not thread-safe: one thread (the daemon's probe timer) calls it.
class DeviceProbe {
 public:
  // With cfg.gpu.simulate non-empty NVML is never loaded. `nvml_library` is the name
  // given to dlopen; tests pass one that does not exist.
  explicit DeviceProbe(const Config& cfg, std::string nvml_library = kNvmlLibrary,
                       HostMemorySources host_sources = {});
  ~DeviceProbe();
  DeviceProbe(const DeviceProbe&) = delete;
  DeviceProbe& operator=(const DeviceProbe&) = delete;

  // Every GPU, read anew on each call (free/used change). NVML that is not available
  // yet (the driver loads after reeld starts) is tried again on each call. A GPU that
  // cannot be read is left out and source() says why. All GPUs, not only
  // gpu.devices: make_budgets() applies that selection.
  std::vector<GpuInfo> gpus();
  HostMemory host();
  // "nvml (driver 550.54.14)", "simulated", or "none: <why>", e.g.
  // "none: libnvidia-ml.so.1 not found (libnvidia-ml.so.1: cannot open shared object
  // file: No such file or directory)" or "none: nvmlInit_v2 failed: Driver Not Loaded".
  std::string source() const;

 private:
  struct Nvml;
  bool load_nvml();  // dlopen + dlsym + nvmlInit; sets source_ on failure

  std::vector<int64_t> simulate_;
  std::string library_;
  HostMemorySources host_sources_;
  std::unique_ptr<Nvml> nvml_;  // loaded and initialised, or null
  std::string source_;
};

// What OUR workers hold at probe time, so the rest of the used memory is counted as
// foreign (other processes') and the scheduler does not count ours twice.
struct OurMemory {
  std::map<std::string, int64_t> device_bytes;  // by GpuInfo::id ("cuda:0"); absent = 0
  int64_t host_bytes = 0;                       // our workers' RAM (the daemon's own counts as foreign)
};

// Whether a GPU is selected by cfg.gpu.devices (empty: every GPU). An entry matches the
// UUID (case-insensitively) or the NVML index ("1" selects "cuda:1").
bool device_selected(const GpuInfo& gpu, const Config& cfg);
// The gpu.devices entries that match none of `gpus`, for a warning.
std::vector<std::string> unmatched_devices(const std::vector<GpuInfo>& gpus, const Config& cfg);

// The scheduler's budgets: one per selected GPU, in the given order, then "cpu".
//
// GPU (gpu = true):
//   total_bytes         = total
//   reserve_bytes       = max(gpu.reserve, gpu.reserve_fraction * total) + gpu.inference_margin
//   foreign_bytes       = max(0, used - ours[id])      used = total - free
//   per_worker_overhead = gpu.worker_overhead
// cpu (gpu = false; per_worker_overhead = 0):
//   total_bytes   = min(MemTotal * host.ram_fraction, cgroup limit if any)
//   reserve_bytes = host.ram_reserve
//   foreign_bytes = max(0, total_bytes - ours.host_bytes - free_now), where
//     free_now = min(MemTotal * ram_fraction - (MemTotal - MemAvailable),
//                    cgroup limit - cgroup usage            [only with a limit])
//   Without a cgroup limit this is max(0, (MemTotal - MemAvailable) - ours.host_bytes);
//   with one, what the cgroup (or, if tighter, the whole host) has left is what the
//   scheduler sees as free: total - reserve - foreign - ours.
// reserve_bytes and foreign_bytes are each capped at total_bytes.
std::vector<DeviceBudget> make_budgets(const std::vector<GpuInfo>& gpus, const HostMemory& host,
                                       const Config& cfg, const OurMemory& ours = {});

}  // namespace reel
