// PluginRegistry: which plugins are installed, what models they offer, and the
// planner process per plugin that estimates jobs.
//
// Each plugin (a shared library, or a built-in such as "builtin:sleep") is opened in
// its own planner worker, never in the daemon: a plugin that fails to open, speaks
// another ABI version or crashes while describing itself is recorded as failed with
// the reason (and logged once, naming the file) while the daemon serves on. Loaded
// plugins' models form the ModelCatalog used to validate submissions; plan() asks the
// model's planner for the job's estimate at every rung of its ladder.
// Thread-safety: one io_context thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "core/model_catalog.hpp"
#include "server/worker_process.hpp"

namespace reel {

struct PluginStatus {
  std::string source;     // file path or "builtin:<name>"
  std::string name, version;
  bool loaded = false;
  std::string error;      // why it was refused
  std::vector<std::string> models;
  Json to_json() const;
};

class PluginRegistry {
 public:
  PluginRegistry(boost::asio::io_context& io, std::string worker_exe);

  // Opens every source (plugin files and built-ins) in planner workers and waits up
  // to `timeout` for them to describe themselves, running the io_context meanwhile.
  // Call before io_context::run().
  void load(const std::vector<std::string>& sources, std::chrono::milliseconds timeout);

  const ModelCatalog& catalog() const { return catalog_; }
  const std::vector<PluginStatus>& plugins() const { return plugins_; }
  // The plugin source serving `model`, or "" if none.
  std::string source_of(const std::string& model) const;
  // The ladder entry named `rung` of `model` (null when unknown).
  Json ladder_rung(const std::string& model, const std::string& rung) const;

  using PlanFn = std::function<void(bool ok, const Json& plan_or_error)>;
  // Asks the model's planner for the plan of `job` ({model, params, inputs, policy}).
  // A planner that died is restarted once for this request.
  void plan(const Json& job, PlanFn done);

 private:
  struct Planner;
  void start_planner(const std::shared_ptr<Planner>& p, std::function<void()> opened);
  void rebuild_catalog();

  boost::asio::io_context& io_;
  std::string worker_exe_;
  std::vector<PluginStatus> plugins_;
  std::map<std::string, std::shared_ptr<Planner>> planners_;   // by source
  std::map<std::string, std::string> model_source_;             // model -> source
  std::map<std::string, Json> model_ladders_;                   // model -> ladder array
  std::map<std::string, std::vector<ModelInfo>> infos_;         // source -> its models, as described
  ModelCatalog catalog_;
};

// Plugin sources to load: the built-ins, then every *.so in each directory (sorted).
std::vector<std::string> discover_plugins(const std::vector<std::string>& dirs);

}  // namespace reel
