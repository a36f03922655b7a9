#include "core/model_catalog.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/messages.hpp"

namespace reel {
namespace {

// Whole numbers read better as 0 and 86400 than 0.0 and 86400.0 in listings.
Json number_json(double v) {
  if (std::nearbyint(v) == v && std::fabs(v) < 9007199254740992.0) return static_cast<int64_t>(v);
  return v;
}

// "" when `v` is acceptable for `p`, else why not (no model/parameter prefix).
std::string check_value(const ParamSpec& p, const Json& v) {
  using T = ParamSpec::Type;
  bool type_ok = p.type == T::integer   ? v.is_number_integer()
                 : p.type == T::number  ? v.is_number() && std::isfinite(v.get<double>())
                 : p.type == T::boolean ? v.is_boolean()
                                        : v.is_string();
  if (!type_ok) {
    std::string article = p.type == T::integer ? "an " : "a ";
    return "expected " + article + to_string(p.type) + ", got " + describe_value(v);
  }
  if (v.is_number()) {
    double x = v.get<double>();
    double lo = p.min.value_or(-std::numeric_limits<double>::infinity());
    double hi = p.max.value_or(std::numeric_limits<double>::infinity());
    if (x < lo || x > hi) {
      if (!p.min) return "must be at most " + format_number(hi) + ", got " + v.dump();
      return out_of_range(lo, hi, v.dump());
    }
  }
  if (v.is_string() && !p.choices.empty() &&
      std::find(p.choices.begin(), p.choices.end(), v.get<std::string>()) == p.choices.end())
    return not_one_of(p.choices, v.get<std::string>());
  return {};
}

std::string prefix(const ModelInfo& m, const std::string& param) {
  return "model '" + m.name + "', parameter '" + param + "': ";
}

std::vector<std::string> param_names(const ModelInfo& m) {
  std::vector<std::string> out;
  for (const auto& p : m.params) out.push_back(p.name);
  return out;
}

std::vector<std::string> input_roles(const ModelInfo& m) {
  std::vector<std::string> out;
  for (const auto& in : m.inputs) out.push_back(in.role);
  return out;
}

const ParamSpec* find_param(const ModelInfo& m, const std::string& name) {
  for (const auto& p : m.params)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace

const char* to_string(ParamSpec::Type t) {
  switch (t) {
    case ParamSpec::Type::integer: return "integer";
    case ParamSpec::Type::number: return "number";
    case ParamSpec::Type::boolean: return "boolean";
    case ParamSpec::Type::string: return "string";
  }
  return "unknown";
}

Json ModelInfo::to_json() const {
  Json ps = Json::array();
  for (const auto& p : params)
    ps.push_back({{"name", p.name},
                  {"type", to_string(p.type)},
                  {"min", p.min ? number_json(*p.min) : Json()},
                  {"max", p.max ? number_json(*p.max) : Json()},
                  {"choices", p.choices},
                  {"default", p.default_value},
                  {"help", p.help}});
  Json ins = Json::array();
  for (const auto& in : inputs) ins.push_back({{"role", in.role}, {"required", in.required}, {"help", in.help}});
  Json budget = "memory";
  if (remote)
    budget = {{"kind", "remote"}, {"pool", remote->pool}, {"max_concurrent", remote->max_concurrent},
              {"requests_per_minute", remote->requests_per_minute}};
  return {{"name", name},   {"description", description}, {"provider", provider}, {"params", ps},
          {"inputs", ins}, {"outputs", outputs},         {"ladder", ladder}, {"budget", budget},
          {"limits", limits}};
}

void ModelCatalog::add(ModelInfo m) {
  // A plugin's description is input too: refuse one that could never validate cleanly.
  if (m.name.empty()) throw std::invalid_argument("a model needs a name");
  if (const ModelInfo* old = find(m.name))
    throw std::invalid_argument("model '" + m.name + "' from '" + m.provider + "' is already provided by '" +
                                old->provider + "'");
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    const ParamSpec& p = m.params[i];
    if (find_param(m, p.name) != &p)
      throw std::invalid_argument("model '" + m.name + "' lists parameter '" + p.name + "' twice");
    if (!p.default_value.is_null())
      if (std::string why = check_value(p, p.default_value); !why.empty())
        throw std::invalid_argument(prefix(m, p.name) + "default: " + why);
  }
  models_.push_back(std::move(m));
}

const ModelInfo* ModelCatalog::find(const std::string& name) const {
  for (const auto& m : models_)
    if (m.name == name) return &m;
  return nullptr;
}

Json ModelCatalog::validate(const JobSpec& spec) const {
  const ModelInfo* m = find(spec.model);
  if (!m) {
    std::vector<std::string> names;
    for (const auto& model : models_) names.push_back(model.name);
    throw ParamValidationError("unknown model '" + spec.model + "'" + did_you_mean(spec.model, names) +
                               "; available: " + join(names));
  }
  if (!spec.params.is_object())
    throw ParamValidationError("model '" + m->name + "': params must be an object, got " +
                               describe_type(spec.params));
  Json out = Json::object();
  for (auto& [name, value] : spec.params.items()) {
    const ParamSpec* p = find_param(*m, name);
    if (!p)
      throw ParamValidationError("model '" + m->name + "' has no parameter '" + name + "'" +
                                 did_you_mean(name, param_names(*m)) + "; parameters: " + join(param_names(*m)));
    if (std::string why = check_value(*p, value); !why.empty()) throw ParamValidationError(prefix(*m, name) + why);
    out[name] = value;
  }
  for (const auto& p : m->params) {
    if (out.contains(p.name)) continue;
    if (p.default_value.is_null())
      throw ParamValidationError("model '" + m->name + "' requires parameter '" + p.name + "'" +
                                 (p.help.empty() ? "" : " (" + p.help + ")"));
    out[p.name] = p.default_value;
  }
  const std::vector<std::string> roles = input_roles(*m);
  for (const auto& [role, path] : spec.inputs)
    if (std::find(roles.begin(), roles.end(), role) == roles.end())
      throw ParamValidationError("model '" + m->name + "' has no input '" + role + "'" + did_you_mean(role, roles) +
                                 "; inputs: " + join(roles));
  for (const auto& in : m->inputs)
    if (in.required && !spec.inputs.count(in.role))
      throw ParamValidationError("model '" + m->name + "' requires input '" + in.role + "'" +
                                 (in.help.empty() ? "" : " (" + in.help + ")"));
  return out;
}

ModelInfo sleep_model_info() {
  using T = ParamSpec::Type;
  ModelInfo m;
  m.name = "sleep";
  m.provider = "builtin";
  m.description = "Diagnostic model: sleeps in steps, reporting progress; for testing the job path";
  m.params = {
      {"seconds", T::number, 0, 86400, {}, 1, "total time to sleep, in seconds"},
      {"steps", T::integer, 1, 100000, {}, 10, "progress steps the sleep is divided into"},
      {"fail_at_step", T::integer, 0, 100000, {}, 0,
       "fail the job when this step is reached (1-based), to exercise failure and retry; 0 never fails"},
  };
  return m;
}

}  // namespace reel
