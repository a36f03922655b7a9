// reel plugin SDK, host side: load a model plugin and call it through C++.
//
// PluginLibrary wraps one plugin table (reel_plugin.h): a shared library opened with
// dlopen, or a built-in table compiled into reeld. Its calls take and return JSON
// (schemas in docs/PLUGINS.md); a non-OK status throws PluginCallError carrying the
// status and the plugin's message. Strings the plugin returns are released with its
// free_string; the table is destroyed and the library closed when the PluginLibrary
// and every LoadedModel from it are gone (a LoadedModel keeps its library open).
// models_from_description() turns a describe() result into catalog entries, refusing a
// malformed one with a PluginLoadError naming the plugin and the field.
//
// Threads: the ABI allows one call into a plugin at a time. PluginLibrary and
// LoadedModel do not lock; call them from one thread (a worker's) or serialise.
// RunHooks methods are called on the plugin's thread during run(); an exception from a
// hook never enters the plugin: cancelled() then answers true, and run() rethrows the
// hook's exception once the plugin has returned.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/budget_scheduler.hpp"
#include "core/model_catalog.hpp"
#include "sdk/reel_plugin.h"

namespace reel {

// The plugin cannot be used: missing file, dlopen failure, no entry symbol, ABI
// mismatch, a malformed table or description. what() names the file and the reason.
struct PluginLoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A plugin call returned a status other than REEL_OK (or broke the protocol: invalid
// JSON out, missing fields — then status() is REEL_ERR_INTERNAL).
class PluginCallError : public std::runtime_error {
 public:
  PluginCallError(reel_status status, const std::string& plugin, const std::string& call, const std::string& message);
  reel_status status() const noexcept { return status_; }
  // The plugin's own message, e.g. "broken on purpose"; what() adds plugin, call, status.
  const std::string& message() const noexcept { return message_; }
  // The status as the daemon's error kind: "oom", "bad_input", "missing_weights",
  // "internal", "cancelled" (the kinds of worker/run_context.hpp ModelError).
  const char* kind() const noexcept;

 private:
  reel_status status_;
  std::string message_;
};

// "ok", "oom", "bad_input", "missing_weights", "internal", "cancelled"; "unknown" else.
const char* status_kind(reel_status status) noexcept;

// What a running model may call back: the worker implements it over its IPC channel.
struct RunHooks {
  virtual ~RunHooks() = default;
  virtual void progress(int64_t step, int64_t total, const std::string& stage) = 0;
  virtual bool cancelled() = 0;
  virtual void log(int level, const std::string& message) = 0;  // REEL_LOG_DEBUG..REEL_LOG_ERROR
  virtual void memory_sample(uint64_t device_bytes, uint64_t host_bytes) = 0;
  // data is the plugin's JSON; a plugin sending invalid JSON gives {"invalid_json": text}.
  virtual void event(const std::string& kind, const nlohmann::json& data) = 0;
};

namespace detail {
struct PluginState;
}

// One loaded model. Unloads in its destructor. Keeps its library open.
class LoadedModel {
 public:
  ~LoadedModel();
  LoadedModel(const LoadedModel&) = delete;
  LoadedModel& operator=(const LoadedModel&) = delete;

  // Runs one job (job: {"id", "model", "params", "inputs"}; rung: a ladder entry).
  // Returns {"outputs": [path, ...], "info": {...}} ("info" defaults to {}); throws
  // PluginCallError on a non-OK status or a result without an "outputs" list of strings.
  nlohmann::json run(const nlohmann::json& job, const nlohmann::json& rung, const std::string& work_dir,
                     const std::string& output_dir, RunHooks& hooks);

  const std::string& model() const noexcept { return model_; }
  const std::string& device() const noexcept { return device_; }
  const std::string& rung() const noexcept { return rung_; }

 private:
  friend class PluginLibrary;
  LoadedModel(std::shared_ptr<detail::PluginState> lib, void* handle, std::string model, std::string rung,
              std::string device);
  std::shared_ptr<detail::PluginState> lib_;
  void* handle_;
  std::string model_, rung_, device_;
};

class PluginLibrary {
 public:
  // dlopen(RTLD_NOW | RTLD_LOCAL), find reel_plugin_entry, call it with
  // REEL_PLUGIN_ABI_VERSION. Throws PluginLoadError, e.g.
  //   "/x/libfoo.so: plugin ABI version 999, this reel speaks 1; rebuild the plugin against this reel's plugins/sdk"
  //   "/x/libfoo.so: dlopen failed: <dlerror>"
  //   "/x/libfoo.so: no symbol reel_plugin_entry: not a reel plugin"
  static std::unique_ptr<PluginLibrary> open(const std::string& path);
  // A table compiled into this binary (REEL_PLUGIN_BUILTIN); `origin` stands in for
  // the path in messages, e.g. "builtin:sleep". Same checks as open(). Pass the result
  // of one entry call per PluginLibrary: its destroy is called once, when it is gone.
  static std::unique_ptr<PluginLibrary> from_table(const reel_plugin* table, std::string origin);

  ~PluginLibrary();
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;

  const std::string& name() const noexcept;
  const std::string& version() const noexcept;
  const std::string& path() const noexcept;  // the file, or the origin of a built-in

  // {"models": [...]} as the plugin returned it (validate with models_from_description).
  nlohmann::json describe();
  // The plugin's estimate JSON, unchecked (check with rung_estimate_from_json).
  nlohmann::json estimate(const nlohmann::json& job, const nlohmann::json& rung);
  std::unique_ptr<LoadedModel> load(const std::string& model, const nlohmann::json& rung, const std::string& device);

 private:
  explicit PluginLibrary(std::shared_ptr<detail::PluginState> state);
  std::shared_ptr<detail::PluginState> state_;
};

// Maps and validates a describe() result (docs/PLUGINS.md) onto catalog entries with
// `provider` as their provider. Throws PluginLoadError naming the plugin and the field:
//   "plugin 'memtest': models[0].params[1].type: expected one of integer, number, boolean, string, got \"int\""
// Checks: types of every field, unknown fields (keys starting with "x-" are ignored),
// defaults against their own spec, duplicate names, a non-empty ladder whose first
// rung is placement and no placement rung after a quality rung.
std::vector<ModelInfo> models_from_description(const nlohmann::json& describe_result, const std::string& provider);

// Checks an estimate() result and maps it onto the scheduler's RungEstimate for
// `rung` (a ladder entry: its name and kind). Missing resident_* default to 0,
// relative_time to 1, cpu_only to false, effective to {}. Throws PluginCallError
// (REEL_ERR_INTERNAL) naming the field on a wrong type or a negative size.
RungEstimate rung_estimate_from_json(const nlohmann::json& estimate, const nlohmann::json& rung,
                                     const std::string& plugin);

}  // namespace reel
