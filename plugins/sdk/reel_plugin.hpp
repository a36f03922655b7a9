// reel plugin SDK, plugin side: write a model plugin as one C++ class and one macro.
//
//   class MyPlugin : public reel::sdk::Plugin {
//     nlohmann::json describe() override;                         // {"models": [...]}
//     nlohmann::json estimate(const json& job, const json& rung) override;
//     std::unique_ptr<reel::sdk::Model> load(const std::string& model, const json& rung,
//                                            const std::string& device) override;
//   };
//   REEL_PLUGIN(MyPlugin, "my-plugin", "0.1.0")
//
// The macro exports `reel_plugin_entry` (reel_plugin.h, the C ABI) with a table whose
// functions call the class. No exception ever crosses the ABI: reel::sdk::Error (and
// its subclasses) become their status, std::bad_alloc becomes REEL_ERR_OOM, anything
// else REEL_ERR_INTERNAL, each with {"message": what()} as the call's JSON out.
// REEL_PLUGIN_BUILTIN does the same for a model compiled into reeld itself, defining a
// named C++ function instead of the exported symbol.
//
// Lifetime: the class is constructed (default constructor) on the first entry call
// with a matching ABI version and deleted when the host calls `destroy` as often as it
// called the entry. A Model returned by load() lives until the host unloads it.
// Threads: the host calls a plugin from one thread at a time (reel_plugin.h); a Host
// may be used from any one thread of run(), and only during run().
// Depends only on reel_plugin.h and nlohmann/json; header-only. Schemas: docs/PLUGINS.md.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "reel_plugin.h"

namespace reel::sdk {

using json = nlohmann::json;

// A failure with a status the host understands (reel_plugin.h: what the host does with
// each is in docs/PLUGINS.md). REEL_OK is not an error and is reported as internal.
class Error : public std::runtime_error {
 public:
  Error(reel_status status, const std::string& message)
      : std::runtime_error(message), status_(status == REEL_OK ? REEL_ERR_INTERNAL : status) {}
  reel_status status() const noexcept { return status_; }

 private:
  reel_status status_;
};

// Out of GPU or host memory: the host retries the job one rung lower.
struct OomError : Error {
  explicit OomError(const std::string& message) : Error(REEL_ERR_OOM, message) {}
};
// The job itself is wrong (params, inputs): never retried.
struct BadInputError : Error {
  explicit BadInputError(const std::string& message) : Error(REEL_ERR_BAD_INPUT, message) {}
};
// Weights absent or corrupt: never retried.
struct MissingWeightsError : Error {
  explicit MissingWeightsError(const std::string& message) : Error(REEL_ERR_MISSING_WEIGHTS, message) {}
};
// Anything else: retried while the job has attempts left (a plain std::exception too).
struct InternalError : Error {
  explicit InternalError(const std::string& message) : Error(REEL_ERR_INTERNAL, message) {}
};
// The host asked to cancel (Host::cancelled()) and the model stopped.
struct CancelledError : Error {
  explicit CancelledError(const std::string& message = "cancelled") : Error(REEL_ERR_CANCELLED, message) {}
};

// Where a run keeps its files. work_dir persists across attempts of the same job
// (stage checkpoints go there); outputs go to output_dir. Both exist.
struct RunDirs {
  std::string work_dir;
  std::string output_dir;
};

// The host's callbacks during run(). Every method is a no-op (cancelled(): false) when
// the host left the callback out.
class Host {
 public:
  explicit Host(const reel_host_api* api) : api_(api) {}

  // Progress within a stage ("encode", "denoise", "decode", ...).
  void progress(int64_t step, int64_t total, const std::string& stage) {
    if (api_ && api_->progress) api_->progress(api_->ctx, step, total, stage.c_str());
  }
  // True once the job should stop: poll between steps, then throw CancelledError.
  bool cancelled() { return api_ && api_->cancelled && api_->cancelled(api_->ctx) != 0; }
  // Throws CancelledError("cancelled <where>") when cancelled() is true.
  void check_cancelled(const std::string& where = {}) {
    if (cancelled()) throw CancelledError(where.empty() ? "cancelled" : "cancelled " + where);
  }
  void log(int level, const std::string& message) {
    if (api_ && api_->log) api_->log(api_->ctx, level, message.c_str());
  }
  void debug(const std::string& message) { log(REEL_LOG_DEBUG, message); }
  void info(const std::string& message) { log(REEL_LOG_INFO, message); }
  void warn(const std::string& message) { log(REEL_LOG_WARN, message); }
  void error(const std::string& message) { log(REEL_LOG_ERROR, message); }
  // Peak memory observed so far, in bytes (0 = unknown).
  void memory_sample(uint64_t device_bytes, uint64_t host_bytes) {
    if (api_ && api_->memory_sample) api_->memory_sample(api_->ctx, device_bytes, host_bytes);
  }
  // A structured event for the job's log, e.g. event("checkpoint", {{"stage", "denoise"}}).
  void event(const std::string& kind, const json& data = json::object()) {
    if (api_ && api_->event)
      api_->event(api_->ctx, kind.c_str(), data.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  }

 private:
  const reel_host_api* api_;
};

// One loaded model. The destructor releases it (weights, GPU memory).
class Model {
 public:
  virtual ~Model() = default;
  // Runs one job: `job` is {"id", "model", "params" (validated, defaults filled),
  // "inputs": {role: path}, "fallbacks": [earlier fallback events' data]}, `rung` one
  // entry of the model's ladder. Returns
  // {"outputs": ["/abs/path", ...], "info": {...}}. Throws Error (or any exception).
  virtual json run(const json& job, const json& rung, const RunDirs& dirs, Host& host) = 0;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  // {"models": [...]} (docs/PLUGINS.md).
  virtual json describe() = 0;
  // Cheap, no GPU: {"device_bytes", "host_bytes", "resident_device_bytes",
  // "resident_host_bytes", "relative_time", "cpu_only", "effective": {...}}.
  virtual json estimate(const json& job, const json& rung) = 0;
  // Loads `model` with the placement of `rung` on `device` ("cpu", "cuda:0", ...).
  virtual std::unique_ptr<Model> load(const std::string& model, const json& rung, const std::string& device) = 0;
};

// A job parameter with a fallback, e.g. param<int64_t>(job, "steps", 4). The host
// fills in defaults, so the fallback matters only for jobs built by hand (tests).
template <class T>
T param(const json& job, const std::string& name, T fallback) {
  auto params = job.find("params");
  if (params == job.end() || !params->is_object()) return fallback;
  auto it = params->find(name);
  if (it == params->end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw BadInputError("parameter '" + name + "' has the wrong type: " + it->dump());
  }
}

namespace detail {

// malloc'd copy (the plugin's allocator; released by the table's free_string); null on failure.
inline char* dup_string(const std::string& s) noexcept {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

inline std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

inline void set_message(char** out, const char* message) noexcept {
  if (!out) return;
  try {
    *out = dup_string(dump(json{{"message", message ? message : ""}}));
  } catch (...) {
    *out = nullptr;  // out of memory while reporting: the host reports "(no message)"
  }
}

inline json parse_arg(const char* text, const char* what) {
  if (!text || !*text) return json::object();
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw InternalError(std::string("the host passed invalid ") + what + " JSON: " + e.what());
  }
}

// Runs `f` (returning the JSON out), converting every exception into a status.
template <class F>
reel_status guard(char** out, F&& f) noexcept {
  if (out) *out = nullptr;
  try {
    std::string text = f();
    if (out) {
      *out = dup_string(text);
      if (!*out) throw std::bad_alloc();
    }
    return REEL_OK;
  } catch (const Error& e) {
    set_message(out, e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    set_message(out, "out of host memory (std::bad_alloc)");
    return REEL_ERR_OOM;
  } catch (const std::exception& e) {
    set_message(out, e.what());
    return REEL_ERR_INTERNAL;
  } catch (...) {
    set_message(out, "unknown exception (not derived from std::exception)");
    return REEL_ERR_INTERNAL;
  }
}

// The C table for plugin class P. One instance of P is shared by every holder of the
// table; it is created by the first entry call and deleted by the matching last destroy.
template <class P>
struct Glue {
  static_assert(std::is_base_of<Plugin, P>::value, "REEL_PLUGIN: the class must derive from reel::sdk::Plugin");

  struct State {
    std::mutex mu;
    reel_plugin table{};
    P* instance = nullptr;
    uint32_t refs = 0;
  };
  static State& state() {
    static State s;
    return s;
  }

  static P& self(void* s) { return *static_cast<P*>(s); }

  static reel_status describe(void* s, char** out) noexcept {
    return guard(out, [&] { return dump(self(s).describe()); });
  }
  static reel_status estimate(void* s, const char* job, const char* rung, char** out) noexcept {
    return guard(out, [&] { return dump(self(s).estimate(parse_arg(job, "job"), parse_arg(rung, "rung"))); });
  }
  static reel_status load(void* s, const char* model, const char* rung, const char* device, void** handle,
                          char** out) noexcept {
    if (handle) *handle = nullptr;
    return guard(out, [&] {
      std::unique_ptr<Model> m = self(s).load(model ? model : "", parse_arg(rung, "rung"), device ? device : "");
      if (!m) throw InternalError("load returned no model");
      if (!handle) throw InternalError("the host passed no model handle to fill");
      *handle = m.release();
      return std::string("{}");
    });
  }
  static reel_status run(void* s, void* handle, const char* job, const char* rung, const char* work_dir,
                         const char* output_dir, const reel_host_api* api, char** out) noexcept {
    return guard(out, [&] {
      if (!handle) throw InternalError("run called without a loaded model");
      Host host(api);
      RunDirs dirs{work_dir ? work_dir : "", output_dir ? output_dir : ""};
      return dump(static_cast<Model*>(handle)->run(parse_arg(job, "job"), parse_arg(rung, "rung"), dirs, host));
    });
  }
  static void unload(void*, void* handle) noexcept {
    try {
      delete static_cast<Model*>(handle);
    } catch (...) {
    }
  }
  static void free_string(void*, char* str) noexcept { std::free(str); }
  static void destroy(void*) noexcept {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.refs == 0 || --st.refs > 0) return;
    try {
      delete st.instance;
    } catch (...) {
    }
    st.instance = nullptr;
    st.table.self = nullptr;
  }

  static const reel_plugin* entry(uint32_t host_abi_version, const char* name, const char* version) noexcept {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.mu);
    reel_plugin& t = st.table;
    t.abi_version = REEL_PLUGIN_ABI_VERSION;
    t.name = name;
    t.version = version;
    t.describe = &Glue::describe;
    t.estimate = &Glue::estimate;
    t.load = &Glue::load;
    t.run = &Glue::run;
    t.unload = &Glue::unload;
    t.free_string = &Glue::free_string;
    t.destroy = &Glue::destroy;
    // Another ABI: the host will refuse the table (and never call destroy), so
    // construct nothing; the table only says which version this plugin speaks.
    if (host_abi_version != REEL_PLUGIN_ABI_VERSION) return &t;
    if (st.refs == 0) {
      try {
        st.instance = new P();
      } catch (...) {
        return nullptr;  // the host refuses a null table
      }
    }
    ++st.refs;
    t.self = st.instance;
    return &t;
  }
};

}  // namespace detail
}  // namespace reel::sdk

// Exports the plugin entry point for ClassName (default-constructible, derived from
// reel::sdk::Plugin). Use once per shared library, at namespace scope.
#define REEL_PLUGIN(ClassName, plugin_name, plugin_version)                                       \
  extern "C" __attribute__((visibility("default"))) const reel_plugin* reel_plugin_entry(          \
      uint32_t host_abi_version) {                                                                 \
    return ::reel::sdk::detail::Glue<ClassName>::entry(host_abi_version, plugin_name, plugin_version); \
  }

// For models compiled into reeld: defines `const reel_plugin* function_name(uint32_t
// host_abi_version)` (C++ linkage, not exported) returning the same table; the host
// wraps it with PluginLibrary::from_table(function_name(REEL_PLUGIN_ABI_VERSION), ...).
#define REEL_PLUGIN_BUILTIN(ClassName, plugin_name, plugin_version, function_name)                 \
  const reel_plugin* function_name(uint32_t host_abi_version) {                                    \
    return ::reel::sdk::detail::Glue<ClassName>::entry(host_abi_version, plugin_name, plugin_version); \
  }
