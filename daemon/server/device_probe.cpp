#include "server/device_probe.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

namespace reel {

// ---- NVML, declared here: only what we call, as in nvml.h (ABI-stable C API). ----
namespace {

using nvmlReturn_t = int;                  // enum; 0 = NVML_SUCCESS
using nvmlDevice_t = struct nvmlDevice_st*;

struct nvmlMemory_t {                      // nvmlDeviceGetMemoryInfo (v1)
  unsigned long long total, free, used;
};
struct nvmlMemory_v2_t {                   // nvmlDeviceGetMemoryInfo_v2
  unsigned int version;
  unsigned long long total, reserved, free, used;
};
constexpr unsigned int kNvmlMemoryV2Version = static_cast<unsigned int>(sizeof(nvmlMemory_v2_t) | (2u << 24));

constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr unsigned int kNvmlBufferSize = 96;          // NVML_DEVICE_{UUID,NAME}_V2_BUFFER_SIZE
constexpr unsigned int kNvmlDriverVersionSize = 80;   // NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE

}  // namespace

struct DeviceProbe::Nvml {
  void* lib = nullptr;
  bool initialised = false;
  std::string driver;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  nvmlReturn_t (*count)(unsigned int*) = nullptr;
  nvmlReturn_t (*handle_by_index)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*memory_v2)(nvmlDevice_t, nvmlMemory_v2_t*) = nullptr;  // optional
  nvmlReturn_t (*memory_v1)(nvmlDevice_t, nvmlMemory_t*) = nullptr;     // optional; one of the two
  nvmlReturn_t (*driver_version)(char*, unsigned int) = nullptr;        // optional
  const char* (*error_string)(nvmlReturn_t) = nullptr;                  // optional

  ~Nvml() {
    if (initialised && shutdown) shutdown();
    if (lib) dlclose(lib);
  }

  template <class F>
  bool sym(F& fn, const char* symbol) {
    fn = reinterpret_cast<F>(dlsym(lib, symbol));
    return fn != nullptr;
  }

  std::string error(const char* call, nvmlReturn_t rc) const {
    const char* text = error_string ? error_string(rc) : nullptr;
    return std::string(call) + " failed: " + (text && *text ? text : "error " + std::to_string(rc));
  }
};

DeviceProbe::DeviceProbe(const Config& cfg, std::string nvml_library, HostMemorySources host_sources)
    : simulate_(cfg.gpu.simulate), library_(std::move(nvml_library)), host_sources_(std::move(host_sources)) {
  if (!simulate_.empty()) source_ = "simulated";
  else load_nvml();
}

DeviceProbe::~DeviceProbe() = default;

bool DeviceProbe::load_nvml() {
  auto n = std::make_unique<Nvml>();
  dlerror();
  n->lib = dlopen(library_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!n->lib) {
    const char* e = dlerror();
    std::string why = e ? e : "";
    source_ = "none: " + library_ +
              (why.find("No such file") != std::string::npos || why.empty() ? " not found" : " cannot be loaded") +
              (why.empty() ? "" : " (" + why + ")");
    return false;
  }
  const char* missing = nullptr;
  if (!n->sym(n->init, "nvmlInit_v2")) missing = "nvmlInit_v2";
  else if (!n->sym(n->shutdown, "nvmlShutdown")) missing = "nvmlShutdown";
  else if (!n->sym(n->count, "nvmlDeviceGetCount_v2")) missing = "nvmlDeviceGetCount_v2";
  else if (!n->sym(n->handle_by_index, "nvmlDeviceGetHandleByIndex_v2")) missing = "nvmlDeviceGetHandleByIndex_v2";
  else if (!n->sym(n->uuid, "nvmlDeviceGetUUID")) missing = "nvmlDeviceGetUUID";
  else if (!n->sym(n->name, "nvmlDeviceGetName")) missing = "nvmlDeviceGetName";
  n->sym(n->memory_v2, "nvmlDeviceGetMemoryInfo_v2");
  n->sym(n->memory_v1, "nvmlDeviceGetMemoryInfo");
  if (!missing && !n->memory_v2 && !n->memory_v1) missing = "nvmlDeviceGetMemoryInfo";
  n->sym(n->driver_version, "nvmlSystemGetDriverVersion");
  n->sym(n->error_string, "nvmlErrorString");
  if (missing) {
    source_ = "none: " + library_ + " has no " + missing + " (driver too old?)";
    return false;
  }
  if (nvmlReturn_t rc = n->init(); rc != kNvmlSuccess) {
    source_ = "none: " + n->error("nvmlInit_v2", rc);
    return false;
  }
  n->initialised = true;
  char version[kNvmlDriverVersionSize] = {};
  if (n->driver_version && n->driver_version(version, sizeof version) == kNvmlSuccess) n->driver = version;
  else n->driver = "unknown";
  nvml_ = std::move(n);
  source_ = "nvml (driver " + nvml_->driver + ")";
  return true;
}

std::vector<GpuInfo> DeviceProbe::gpus() {
  std::vector<GpuInfo> out;
  if (!simulate_.empty()) {
    for (std::size_t i = 0; i < simulate_.size(); ++i) {
      GpuInfo g;
      g.id = "cuda:" + std::to_string(i);
      g.uuid = "SIM-" + std::to_string(i);
      g.name = "simulated";
      g.total_bytes = g.free_bytes = simulate_[i];
      g.simulated = true;
      out.push_back(std::move(g));
    }
    return out;
  }
  if (!nvml_ && !load_nvml()) return out;

  Nvml& n = *nvml_;
  std::string healthy = "nvml (driver " + n.driver + ")";
  unsigned int count = 0;
  if (nvmlReturn_t rc = n.count(&count); rc != kNvmlSuccess) {
    source_ = "none: " + n.error("nvmlDeviceGetCount_v2", rc);
    return out;
  }
  std::vector<std::string> problems;
  for (unsigned int i = 0; i < count; ++i) {
    std::string id = "cuda:" + std::to_string(i);
    nvmlDevice_t dev = nullptr;
    if (nvmlReturn_t rc = n.handle_by_index(i, &dev); rc != kNvmlSuccess) {
      problems.push_back(id + ": " + n.error("nvmlDeviceGetHandleByIndex_v2", rc));
      continue;
    }
    GpuInfo g;
    g.id = id;
    unsigned long long total = 0, free_bytes = 0;
    nvmlReturn_t rc = -1;
    if (n.memory_v2) {
      nvmlMemory_v2_t m{};
      m.version = kNvmlMemoryV2Version;
      rc = n.memory_v2(dev, &m);
      total = m.total, free_bytes = m.free;
    }
    if (rc != kNvmlSuccess && n.memory_v1) {  // no _v2, or an old driver that refuses it
      nvmlMemory_t m{};
      rc = n.memory_v1(dev, &m);
      total = m.total, free_bytes = m.free;
    }
    if (rc != kNvmlSuccess) {
      problems.push_back(id + ": " + n.error("nvmlDeviceGetMemoryInfo", rc));
      continue;
    }
    constexpr auto kMax = static_cast<unsigned long long>(std::numeric_limits<int64_t>::max());
    g.total_bytes = static_cast<int64_t>(std::min(total, kMax));
    g.free_bytes = static_cast<int64_t>(std::min(free_bytes, std::min(total, kMax)));
    g.used_bytes = g.total_bytes - g.free_bytes;
    char buf[kNvmlBufferSize] = {};
    if (n.uuid(dev, buf, sizeof buf) == kNvmlSuccess) g.uuid = buf;
    char name[kNvmlBufferSize] = {};
    if (n.name(dev, name, sizeof name) == kNvmlSuccess) g.name = name;
    out.push_back(std::move(g));
  }
  source_ = healthy;
  if (!problems.empty()) {
    source_ += "; not read: ";
    for (std::size_t i = 0; i < problems.size(); ++i) source_ += (i ? "; " : "") + problems[i];
  }
  return out;
}

std::string DeviceProbe::source() const { return source_; }

HostMemory DeviceProbe::host() { return read_host_memory(host_sources_); }

// ---- host memory ----
namespace {

bool read_small_file(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// "  123 \n" -> 123; anything else (e.g. "max") -> nullopt.
std::optional<int64_t> parse_int(const std::string& text) {
  std::size_t a = text.find_first_not_of(" \t\n"), b = text.find_last_not_of(" \t\n");
  if (a == std::string::npos) return std::nullopt;
  std::string t = text.substr(a, b - a + 1);
  if (t.empty() || t.size() > 19 || t.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  try {
    return static_cast<int64_t>(std::stoll(t));
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<int64_t> read_int(const std::string& path) {
  std::string text;
  if (!read_small_file(path, text)) return std::nullopt;
  return parse_int(text);
}

// A value from a "key value" file (memory.stat).
std::optional<int64_t> stat_value(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  long long v = 0;
  while (in >> k >> v)
    if (k == key) return static_cast<int64_t>(v);
  return std::nullopt;
}

struct CgroupFiles {
  std::string root, limit, usage;
  std::vector<std::string> inactive_file;  // memory.stat keys, first found wins
};

// Walks `path` and its ancestors under `files.root`; keeps the limit leaving the least
// headroom. Directories that do not exist are skipped: inside a container the
// cgroup's path as /proc/self/cgroup shows it is often not visible, its root is.
void tightest_limit(const CgroupFiles& files, std::string path, HostMemory& mem, int64_t& best_headroom) {
  // v1 reports "no limit" as a huge page-aligned number (PAGE_COUNTER_MAX pages).
  constexpr int64_t kUnlimited = int64_t{1} << 62;
  while (true) {
    std::string dir = files.root + (path == "/" ? "" : path);
    if (is_dir(dir)) {
      auto limit = read_int(dir + "/" + files.limit);  // "max" (v2) -> nullopt
      if (limit && *limit > 0 && *limit < kUnlimited) {
        int64_t used = read_int(dir + "/" + files.usage).value_or(0);
        for (const auto& key : files.inactive_file)
          if (auto inactive = stat_value(dir + "/memory.stat", key)) {
            used = std::max<int64_t>(0, used - *inactive);
            break;
          }
        int64_t headroom = *limit - used;
        if (headroom < best_headroom) {
          best_headroom = headroom;
          mem.cgroup_limit_bytes = *limit;
          mem.cgroup_used_bytes = used;
        }
      }
    }
    if (path.empty() || path == "/") break;
    std::size_t slash = path.rfind('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
}

}  // namespace

HostMemory read_host_memory(const HostMemorySources& src) {
  HostMemory mem;
  std::ifstream in(src.meminfo);
  std::optional<int64_t> total, available, mem_free, buffers, cached;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    long long kb = 0;
    if (!(fields >> key >> kb) || kb < 0) continue;
    int64_t bytes = static_cast<int64_t>(kb) * 1024;
    if (key == "MemTotal:") total = bytes;
    else if (key == "MemAvailable:") available = bytes;
    else if (key == "MemFree:") mem_free = bytes;
    else if (key == "Buffers:") buffers = bytes;
    else if (key == "Cached:") cached = bytes;
  }
  if (!total) return mem;
  mem.total_bytes = *total;
  if (!available) available = mem_free.value_or(0) + buffers.value_or(0) + cached.value_or(0);  // before Linux 3.14
  mem.available_bytes = std::clamp<int64_t>(*available, 0, *total);

  // /proc/self/cgroup: "0::/path" (v2) and/or "N:controller,...:/path" (v1).
  std::ifstream cg(src.self_cgroup);
  int64_t best_headroom = std::numeric_limits<int64_t>::max();
  for (std::string line; std::getline(cg, line);) {
    std::size_t c1 = line.find(':'), c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::string id = line.substr(0, c1), controllers = line.substr(c1 + 1, c2 - c1 - 1), path = line.substr(c2 + 1);
    if (path.empty() || path[0] != '/') continue;
    if (id == "0" && controllers.empty()) {
      // Unified hierarchy: mounted at the root, or at <root>/unified on hybrid systems.
      std::string root = src.cgroup_root;
      if (!std::ifstream(root + "/cgroup.controllers") && is_dir(root + "/unified")) root += "/unified";
      tightest_limit({root, "memory.max", "memory.current", {"inactive_file"}}, path, mem, best_headroom);
    } else {
      std::istringstream list(controllers);
      for (std::string c; std::getline(list, c, ',');)
        if (c == "memory")
          tightest_limit({src.cgroup_root + "/memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
                          {"total_inactive_file", "inactive_file"}},
                         path, mem, best_headroom);
    }
  }
  return mem;
}

// ---- budgets ----

bool device_selected(const GpuInfo& gpu, const Config& cfg) {
  const auto& wanted = cfg.gpu.devices;
  if (wanted.empty()) return true;
  std::string index = gpu.id.rfind("cuda:", 0) == 0 ? gpu.id.substr(5) : "";
  auto same_uuid = [&](const std::string& w) {
    return !gpu.uuid.empty() && w.size() == gpu.uuid.size() &&
           std::equal(w.begin(), w.end(), gpu.uuid.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
           });
  };
  return std::any_of(wanted.begin(), wanted.end(),
                     [&](const std::string& w) { return (!index.empty() && w == index) || same_uuid(w); });
}

std::vector<std::string> unmatched_devices(const std::vector<GpuInfo>& gpus, const Config& cfg) {
  std::vector<std::string> out;
  for (const auto& w : cfg.gpu.devices) {
    Config one = cfg;
    one.gpu.devices = {w};
    if (std::none_of(gpus.begin(), gpus.end(), [&](const GpuInfo& g) { return device_selected(g, one); }))
      out.push_back(w);
  }
  return out;
}

namespace {

int64_t fraction_of(int64_t bytes, double fraction) {
  double v = static_cast<double>(bytes) * fraction;
  if (!(v > 0)) return 0;
  if (v >= 9.2e18) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(v);
}

int64_t sat_add(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

}  // namespace

std::vector<DeviceBudget> make_budgets(const std::vector<GpuInfo>& gpus, const HostMemory& host, const Config& cfg,
                                       const OurMemory& ours) {
  std::vector<DeviceBudget> out;
  for (const GpuInfo& g : gpus) {
    if (!device_selected(g, cfg)) continue;
    DeviceBudget b;
    b.id = g.id;
    b.gpu = true;
    b.total_bytes = std::max<int64_t>(0, g.total_bytes);
    int64_t reserve = std::max(cfg.gpu.reserve, fraction_of(b.total_bytes, cfg.gpu.reserve_fraction));
    b.reserve_bytes = std::min(sat_add(reserve, cfg.gpu.inference_margin), b.total_bytes);
    auto it = ours.device_bytes.find(g.id);
    int64_t our_bytes = it == ours.device_bytes.end() ? 0 : it->second;
    b.foreign_bytes = std::clamp<int64_t>(g.used_bytes - our_bytes, 0, b.total_bytes);
    b.per_worker_overhead = cfg.gpu.worker_overhead;
    out.push_back(std::move(b));
  }

  DeviceBudget cpu;
  cpu.id = "cpu";
  cpu.gpu = false;
  int64_t share = fraction_of(host.total_bytes, cfg.host.ram_fraction);
  int64_t free_now = share - (host.total_bytes - host.available_bytes);
  cpu.total_bytes = share;
  if (host.cgroup_limit_bytes > 0) {
    cpu.total_bytes = std::min(share, host.cgroup_limit_bytes);
    free_now = std::min(free_now, host.cgroup_limit_bytes - host.cgroup_used_bytes);
  }
  cpu.total_bytes = std::max<int64_t>(0, cpu.total_bytes);
  cpu.reserve_bytes = std::min(cfg.host.ram_reserve, cpu.total_bytes);
  cpu.foreign_bytes = std::clamp<int64_t>(cpu.total_bytes - ours.host_bytes - free_now, 0, cpu.total_bytes);
  cpu.per_worker_overhead = 0;
  out.push_back(std::move(cpu));
  return out;
}

}  // namespace reel
