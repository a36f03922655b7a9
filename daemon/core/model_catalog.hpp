// ModelCatalog: what models the daemon can run and what parameters each accepts.
//
// Filled from built-in models (the diagnostic `sleep`) and, with plugins, from each
// plugin's description. Submissions are validated here before they are queued, so a
// malformed job is refused with a message naming the parameter instead of failing
// later in a worker. Not thread-safe for mutation; the daemon replaces it wholesale.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/job.hpp"

namespace reel {

struct ParamSpec {
  std::string name;
  enum class Type { integer, number, boolean, string } type = Type::string;
  std::optional<double> min, max;          // numbers: inclusive range
  std::vector<std::string> choices;        // strings: allowed values (empty: any)
  Json default_value;                      // null: required
  std::string help;
};
const char* to_string(ParamSpec::Type t);

struct InputSpec {
  std::string role;       // "image", "audio", ...
  bool required = false;
  std::string help;
};

// A model that runs on a remote service instead of local memory: it needs a slot in
// `pool` (shared by every model naming that pool) and its starts are limited per minute.
struct RemoteBudget {
  std::string pool;             // e.g. "dashscope"
  int max_concurrent = 1;       // running jobs of the pool at once
  int requests_per_minute = 0;  // job starts of the pool per minute; 0 = no limit
};

struct ModelInfo {
  std::string name;
  std::string description;
  std::string provider;   // "builtin" or the plugin's name
  std::vector<ParamSpec> params;
  std::vector<InputSpec> inputs;
  // The plugin's ladder, best first, placement rungs before quality rungs: each
  // {"name", "kind": "placement"|"quality", "help", "settings": {...}} (docs/PLUGINS.md).
  std::vector<Json> ladder;
  std::vector<std::string> outputs;  // media types of the outputs, e.g. "video/mp4"
  // What a user should know before submitting: length limits, cost units (plain lines).
  std::vector<std::string> limits;
  std::optional<RemoteBudget> remote;  // set: scheduled by its pool, not by memory
  Json to_json() const;
};

struct ParamValidationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ModelCatalog {
 public:
  // Throws std::invalid_argument for a second model of the same name, a parameter
  // listed twice, or a default that its own spec would refuse.
  void add(ModelInfo m);
  const ModelInfo* find(const std::string& name) const;
  const std::vector<ModelInfo>& models() const { return models_; }

  // Checks a spec against its model: unknown model, unknown parameter, wrong type
  // (an integer parameter refuses 2.0), out of range (inclusive), not one of the
  // choices, missing required parameter, unknown input role, missing required input.
  // Returns the params with defaults filled in. Throws ParamValidationError naming
  // the model and parameter, with a did-you-mean and the valid names, e.g.
  //   model 'sleep' has no parameter 'secs' (did you mean 'seconds'?); parameters: seconds, steps, fail_at_step
  Json validate(const JobSpec& spec) const;

 private:
  std::vector<ModelInfo> models_;
};

// The built-in diagnostic model: sleeps `seconds` in `steps` steps, failing at
// `fail_at_step` when set, so the whole job path runs without any real model.
ModelInfo sleep_model_info();

}  // namespace reel
