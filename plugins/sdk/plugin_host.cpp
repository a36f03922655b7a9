#include "sdk/plugin_host.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <exception>
#include <mutex>
#include <set>

namespace reel {

using Json = nlohmann::json;

namespace detail {

// One plugin table and, for a file, its dlopen handle. Destroyed (destroy + dlclose)
// when the PluginLibrary and all its LoadedModels are gone.
struct PluginState {
  void* dl = nullptr;
  const reel_plugin* table = nullptr;
  std::string path, name, version;

  ~PluginState() {
    if (table && table->destroy) table->destroy(table->self);
    if (dl) dlclose(dl);
  }

  // Takes ownership of a plugin string.
  std::string take(char* s) const {
    if (!s) return {};
    std::string out(s);
    table->free_string(table->self, s);
    return out;
  }
};

}  // namespace detail

namespace {

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// The message of a failed call's JSON out: {"message": ...}, or the raw text.
std::string message_of(const std::string& text) {
  if (text.empty()) return "(no message)";
  Json j = Json::parse(text, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  return text;
}

// Status, then the JSON out: throws PluginCallError unless REEL_OK with valid JSON.
Json finish_call(const detail::PluginState& st, const char* call, reel_status status, char* out) {
  std::string text = st.take(out);
  if (status != REEL_OK) throw PluginCallError(status, st.name, call, message_of(text));
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded())
    throw PluginCallError(REEL_ERR_INTERNAL, st.name, call,
                          "returned invalid JSON: " + (text.size() > 200 ? text.substr(0, 200) + "..." : text));
  return j;
}

std::string abi_message(uint32_t version) {
  return "plugin ABI version " + std::to_string(version) + ", this reel speaks " +
         std::to_string(REEL_PLUGIN_ABI_VERSION) + "; rebuild the plugin against this reel's plugins/sdk";
}

// Checks a table returned by an entry function; fills name/version. Throws PluginLoadError.
void accept_table(detail::PluginState& st, const reel_plugin* t) {
  if (!t) throw PluginLoadError(st.path + ": the entry function returned no plugin table (the plugin failed to start)");
  if (t->abi_version != REEL_PLUGIN_ABI_VERSION) throw PluginLoadError(st.path + ": " + abi_message(t->abi_version));
  const std::pair<const char*, bool> required[] = {
      {"describe", t->describe != nullptr}, {"estimate", t->estimate != nullptr},
      {"load", t->load != nullptr},         {"run", t->run != nullptr},
      {"unload", t->unload != nullptr},     {"free_string", t->free_string != nullptr},
      {"destroy", t->destroy != nullptr},
  };
  for (const auto& [field, present] : required)
    if (!present) throw PluginLoadError(st.path + ": the plugin table has no '" + field + "' function");
  if (!t->name || !*t->name) throw PluginLoadError(st.path + ": the plugin table has no name");
  st.table = t;  // from here on, ~PluginState calls destroy
  st.name = t->name;
  st.version = t->version ? t->version : "";
}

// reel_host_api over RunHooks. No exception leaves a callback: the first one is kept
// and rethrown after the plugin returns; cancelled() answers true from then on.
struct HookBridge {
  RunHooks* hooks;
  std::mutex mu;
  std::exception_ptr error;

  bool failed() {
    std::lock_guard<std::mutex> lock(mu);
    return error != nullptr;
  }
  template <class F>
  void guarded(F&& f) noexcept {
    if (failed()) return;
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
    }
  }
  static HookBridge& of(void* ctx) { return *static_cast<HookBridge*>(ctx); }

  static void progress(void* ctx, int64_t step, int64_t total, const char* stage) {
    HookBridge& b = of(ctx);
    b.guarded([&] { b.hooks->progress(step, total, stage ? stage : ""); });
  }
  static int cancelled(void* ctx) {
    HookBridge& b = of(ctx);
    bool yes = false;
    b.guarded([&] { yes = b.hooks->cancelled(); });
    return yes || b.failed() ? 1 : 0;
  }
  static void log(void* ctx, int level, const char* message) {
    HookBridge& b = of(ctx);
    b.guarded([&] { b.hooks->log(level, message ? message : ""); });
  }
  static void memory_sample(void* ctx, uint64_t device_bytes, uint64_t host_bytes) {
    HookBridge& b = of(ctx);
    b.guarded([&] { b.hooks->memory_sample(device_bytes, host_bytes); });
  }
  static void event(void* ctx, const char* kind, const char* data_json) {
    HookBridge& b = of(ctx);
    b.guarded([&] {
      std::string text = data_json ? data_json : "";
      Json data = text.empty() ? Json::object() : Json::parse(text, nullptr, false);
      if (data.is_discarded()) data = Json{{"invalid_json", text}};
      b.hooks->event(kind ? kind : "", data);
    });
  }
};

// ---- description validation ----

struct Checker {
  std::string plugin;

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw PluginLoadError("plugin '" + plugin + "': " + field + ": " + why);
  }
  static std::string type_of(const Json& v) {
    if (v.is_null()) return "null";
    if (v.is_boolean()) return "a boolean " + v.dump();
    if (v.is_number()) return "a number " + v.dump();
    if (v.is_string()) return "a string " + v.dump();
    if (v.is_array()) return "an array";
    return "an object";
  }
  const Json& object(const Json& v, const std::string& field) const {
    if (!v.is_object()) fail(field, "expected an object, got " + type_of(v));
    return v;
  }
  const Json& array(const Json& v, const std::string& field) const {
    if (!v.is_array()) fail(field, "expected an array, got " + type_of(v));
    return v;
  }
  std::string string(const Json& v, const std::string& field, bool non_empty = false) const {
    if (!v.is_string()) fail(field, "expected a string, got " + type_of(v));
    if (non_empty && v.get<std::string>().empty()) fail(field, "must not be empty");
    return v.get<std::string>();
  }
  bool boolean(const Json& v, const std::string& field) const {
    if (!v.is_boolean()) fail(field, "expected a boolean, got " + type_of(v));
    return v.get<bool>();
  }
  double number(const Json& v, const std::string& field) const {
    if (!v.is_number() || !std::isfinite(v.get<double>())) fail(field, "expected a number, got " + type_of(v));
    return v.get<double>();
  }
  // Refuses keys outside `known` (extensions "x-..." are ignored).
  void only(const Json& obj, const std::string& field, std::initializer_list<const char*> known) const {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      const std::string& key = it.key();
      if (key.rfind("x-", 0) == 0) continue;
      bool ok = false;
      for (const char* k : known) ok = ok || key == k;
      if (!ok) {
        std::string names;
        for (const char* k : known) names += (names.empty() ? "" : ", ") + std::string(k);
        fail(field, "unknown field '" + key + "' (known: " + names + ")");
      }
    }
  }
  // A name usable on the command line: letters, digits, '.', '_', '-'.
  std::string name(const Json& v, const std::string& field) const {
    std::string s = string(v, field, true);
    for (char c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
        fail(field, "\"" + s + "\" may hold only letters, digits, '.', '_' and '-'");
    return s;
  }

  int positive_int(const Json& v, const std::string& field, int max) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > max)
      fail(field, "expected an integer from 1 to " + std::to_string(max) + ", got " + v.dump());
    return int(v.get<int64_t>());
  }

  // "memory" (nullopt) or {"kind": "remote", "pool", "max_concurrent", "requests_per_minute"}.
  std::optional<RemoteBudget> budget(const Json& b, const std::string& f) const {
    if (b.is_string()) {
      if (b.get<std::string>() != "memory") fail(f, "expected \"memory\" or a remote budget object, got " + b.dump());
      return std::nullopt;
    }
    object(b, f);
    only(b, f, {"kind", "pool", "max_concurrent", "requests_per_minute"});
    if (!b.contains("kind") || b["kind"] != "remote") fail(f + ".kind", "expected \"remote\"");
    RemoteBudget r;
    if (!b.contains("pool")) fail(f, "missing 'pool'");
    r.pool = name(b["pool"], f + ".pool");
    if (!b.contains("max_concurrent")) fail(f, "missing 'max_concurrent'");
    r.max_concurrent = positive_int(b["max_concurrent"], f + ".max_concurrent", 100000);
    if (b.contains("requests_per_minute"))
      r.requests_per_minute = positive_int(b["requests_per_minute"], f + ".requests_per_minute", 1000000);
    return r;
  }

  ParamSpec param(const Json& p, const std::string& f) const {
    object(p, f);
    only(p, f, {"name", "type", "min", "max", "choices", "default", "help"});
    ParamSpec out;
    if (!p.contains("name")) fail(f, "missing 'name'");
    out.name = name(p["name"], f + ".name");
    if (!p.contains("type")) fail(f, "missing 'type'");
    std::string type = string(p["type"], f + ".type");
    using T = ParamSpec::Type;
    if (type == "integer") out.type = T::integer;
    else if (type == "number") out.type = T::number;
    else if (type == "boolean") out.type = T::boolean;
    else if (type == "string") out.type = T::string;
    else fail(f + ".type", "expected one of integer, number, boolean, string, got " + p["type"].dump());
    bool numeric = out.type == T::integer || out.type == T::number;
    auto bound = [&](const char* key, std::optional<double>& into) {
      if (!p.contains(key) || p[key].is_null()) return;
      if (!numeric) fail(f + "." + key, std::string("only integer and number parameters have a ") + key);
      into = number(p[key], f + "." + key);
    };
    bound("min", out.min);
    bound("max", out.max);
    if (out.min && out.max && *out.min > *out.max) fail(f, "min is above max");
    if (p.contains("choices") && !p["choices"].is_null()) {
      const Json& c = array(p["choices"], f + ".choices");
      if (!c.empty() && out.type != T::string) fail(f + ".choices", "only string parameters have choices");
      for (std::size_t i = 0; i < c.size(); ++i)
        out.choices.push_back(string(c[i], f + ".choices[" + std::to_string(i) + "]"));
    }
    if (p.contains("default")) out.default_value = p["default"];
    if (p.contains("help")) out.help = string(p["help"], f + ".help");
    return out;
  }

  InputSpec input(const Json& in, const std::string& f) const {
    object(in, f);
    only(in, f, {"role", "required", "help", "kinds"});
    InputSpec out;
    if (!in.contains("role")) fail(f, "missing 'role'");
    out.role = name(in["role"], f + ".role");
    if (in.contains("required")) out.required = boolean(in["required"], f + ".required");
    if (in.contains("help")) out.help = string(in["help"], f + ".help");
    if (in.contains("kinds")) {
      const Json& k = array(in["kinds"], f + ".kinds");
      for (std::size_t i = 0; i < k.size(); ++i) string(k[i], f + ".kinds[" + std::to_string(i) + "]", true);
    }
    return out;
  }

  Json rung(const Json& r, const std::string& f) const {
    object(r, f);
    only(r, f, {"name", "kind", "help", "settings"});
    if (!r.contains("name")) fail(f, "missing 'name'");
    std::string n = name(r["name"], f + ".name");
    if (!r.contains("kind")) fail(f, "missing 'kind'");
    std::string kind = string(r["kind"], f + ".kind");
    if (kind != "placement" && kind != "quality")
      fail(f + ".kind", "expected \"placement\" or \"quality\", got " + r["kind"].dump());
    std::string help = r.contains("help") ? string(r["help"], f + ".help") : "";
    Json settings = r.contains("settings") ? object(r["settings"], f + ".settings") : Json::object();
    return {{"name", n}, {"kind", kind}, {"help", help}, {"settings", settings}};
  }

  ModelInfo model(const Json& m, const std::string& f) const {
    object(m, f);
    only(m, f, {"name", "description", "params", "inputs", "outputs", "ladder", "budget", "limits"});
    ModelInfo out;
    out.provider = plugin;
    if (!m.contains("name")) fail(f, "missing 'name'");
    out.name = name(m["name"], f + ".name");
    if (m.contains("description")) out.description = string(m["description"], f + ".description");
    if (m.contains("params")) {
      const Json& ps = array(m["params"], f + ".params");
      std::set<std::string> seen;
      for (std::size_t i = 0; i < ps.size(); ++i) {
        std::string pf = f + ".params[" + std::to_string(i) + "]";
        out.params.push_back(param(ps[i], pf));
        if (!seen.insert(out.params.back().name).second)
          fail(pf + ".name", "parameter '" + out.params.back().name + "' is listed twice");
      }
    }
    if (m.contains("inputs")) {
      const Json& ins = array(m["inputs"], f + ".inputs");
      std::set<std::string> seen;
      for (std::size_t i = 0; i < ins.size(); ++i) {
        std::string inf = f + ".inputs[" + std::to_string(i) + "]";
        out.inputs.push_back(input(ins[i], inf));
        if (!seen.insert(out.inputs.back().role).second)
          fail(inf + ".role", "input '" + out.inputs.back().role + "' is listed twice");
      }
    }
    if (m.contains("outputs")) {
      const Json& os = array(m["outputs"], f + ".outputs");
      for (std::size_t i = 0; i < os.size(); ++i) {
        std::string of = f + ".outputs[" + std::to_string(i) + "]";
        std::string type = string(os[i], of, true);
        if (type.find('/') == std::string::npos) fail(of, "expected a media type such as \"video/mp4\", got \"" + type + "\"");
        out.outputs.push_back(type);
      }
    }
    if (m.contains("limits")) {
      const Json& ls = array(m["limits"], f + ".limits");
      for (std::size_t i = 0; i < ls.size(); ++i)
        out.limits.push_back(string(ls[i], f + ".limits[" + std::to_string(i) + "]", true));
    }
    if (m.contains("budget")) out.remote = budget(m["budget"], f + ".budget");
    if (!m.contains("ladder")) fail(f, "missing 'ladder' (at least one placement rung, best first)");
    const Json& ladder = array(m["ladder"], f + ".ladder");
    if (ladder.empty()) fail(f + ".ladder", "must hold at least one rung (the best placement)");
    std::set<std::string> seen;
    bool quality_seen = false;
    for (std::size_t i = 0; i < ladder.size(); ++i) {
      std::string rf = f + ".ladder[" + std::to_string(i) + "]";
      Json r = rung(ladder[i], rf);
      if (!seen.insert(r["name"].get<std::string>()).second)
        fail(rf + ".name", "rung '" + r["name"].get<std::string>() + "' is listed twice");
      bool quality = r["kind"] == "quality";
      if (i == 0 && quality) fail(rf + ".kind", "the first (best) rung must be a placement rung");
      if (!quality && quality_seen)
        fail(rf + ".kind", "placement rung '" + r["name"].get<std::string>() +
                               "' after a quality rung; order the ladder best first, placement rungs before quality rungs");
      quality_seen = quality_seen || quality;
      out.ladder.push_back(std::move(r));
    }
    return out;
  }
};

}  // namespace

// ---- errors ----

const char* status_kind(reel_status status) noexcept {
  switch (status) {
    case REEL_OK: return "ok";
    case REEL_ERR_OOM: return "oom";
    case REEL_ERR_BAD_INPUT: return "bad_input";
    case REEL_ERR_MISSING_WEIGHTS: return "missing_weights";
    case REEL_ERR_INTERNAL: return "internal";
    case REEL_ERR_CANCELLED: return "cancelled";
  }
  return "unknown";
}

namespace {
reel_status known_status(reel_status s) {
  switch (s) {
    case REEL_ERR_OOM:
    case REEL_ERR_BAD_INPUT:
    case REEL_ERR_MISSING_WEIGHTS:
    case REEL_ERR_INTERNAL:
    case REEL_ERR_CANCELLED: return s;
    default: return REEL_ERR_INTERNAL;
  }
}
std::string unknown_note(reel_status s) {
  return known_status(s) == s ? "" : " (unknown status " + std::to_string(static_cast<int>(s)) + ")";
}
}  // namespace

PluginCallError::PluginCallError(reel_status status, const std::string& plugin, const std::string& call,
                                 const std::string& message)
    : std::runtime_error("plugin '" + plugin + "' " + call + " failed (" + status_kind(known_status(status)) + "): " +
                         message + unknown_note(status)),
      status_(known_status(status)),
      message_(message + unknown_note(status)) {}

const char* PluginCallError::kind() const noexcept { return status_kind(status_); }

// ---- PluginLibrary ----

PluginLibrary::PluginLibrary(std::shared_ptr<detail::PluginState> state) : state_(std::move(state)) {}
PluginLibrary::~PluginLibrary() = default;

std::unique_ptr<PluginLibrary> PluginLibrary::open(const std::string& path) {
  auto st = std::make_shared<detail::PluginState>();
  st->path = path;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw PluginLoadError(path + ": no such file");
  if (S_ISDIR(info.st_mode)) throw PluginLoadError(path + ": is a folder, not a plugin library");
  // A bare name would make dlopen search the library path; a plugin is always a file.
  std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  dlerror();
  st->dl = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!st->dl) {
    const char* why = dlerror();
    throw PluginLoadError(path + ": dlopen failed: " + (why ? why : "unknown error"));
  }
  dlerror();
  void* sym = dlsym(st->dl, REEL_PLUGIN_ENTRY_SYMBOL);
  if (!sym) throw PluginLoadError(path + ": no symbol " REEL_PLUGIN_ENTRY_SYMBOL ": not a reel plugin");
  auto entry = reinterpret_cast<reel_plugin_entry_fn>(sym);
  accept_table(*st, entry(REEL_PLUGIN_ABI_VERSION));
  return std::unique_ptr<PluginLibrary>(new PluginLibrary(std::move(st)));
}

std::unique_ptr<PluginLibrary> PluginLibrary::from_table(const reel_plugin* table, std::string origin) {
  auto st = std::make_shared<detail::PluginState>();
  st->path = std::move(origin);
  accept_table(*st, table);
  return std::unique_ptr<PluginLibrary>(new PluginLibrary(std::move(st)));
}

const std::string& PluginLibrary::name() const noexcept { return state_->name; }
const std::string& PluginLibrary::version() const noexcept { return state_->version; }
const std::string& PluginLibrary::path() const noexcept { return state_->path; }

Json PluginLibrary::describe() {
  const reel_plugin* t = state_->table;
  char* out = nullptr;
  reel_status s = t->describe(t->self, &out);
  return finish_call(*state_, "describe", s, out);
}

Json PluginLibrary::estimate(const Json& job, const Json& rung) {
  const reel_plugin* t = state_->table;
  char* out = nullptr;
  std::string job_text = dump(job), rung_text = dump(rung);
  reel_status s = t->estimate(t->self, job_text.c_str(), rung_text.c_str(), &out);
  Json j = finish_call(*state_, "estimate", s, out);
  if (!j.is_object()) throw PluginCallError(REEL_ERR_INTERNAL, state_->name, "estimate", "returned " + dump(j) + ", not an object");
  return j;
}

std::unique_ptr<LoadedModel> PluginLibrary::load(const std::string& model, const Json& rung, const std::string& device) {
  const reel_plugin* t = state_->table;
  char* out = nullptr;
  void* handle = nullptr;
  std::string rung_text = dump(rung);
  reel_status s = t->load(t->self, model.c_str(), rung_text.c_str(), device.c_str(), &handle, &out);
  std::string call = "load of '" + model + "'";
  if (s != REEL_OK) {
    std::string text = state_->take(out);
    throw PluginCallError(s, state_->name, call, message_of(text));
  }
  state_->take(out);  // success carries nothing we need
  std::string rung_name = rung.is_object() ? rung.value("name", "") : "";
  return std::unique_ptr<LoadedModel>(new LoadedModel(state_, handle, model, rung_name, device));
}

// ---- LoadedModel ----

LoadedModel::LoadedModel(std::shared_ptr<detail::PluginState> lib, void* handle, std::string model, std::string rung,
                         std::string device)
    : lib_(std::move(lib)), handle_(handle), model_(std::move(model)), rung_(std::move(rung)), device_(std::move(device)) {}

LoadedModel::~LoadedModel() { lib_->table->unload(lib_->table->self, handle_); }

Json LoadedModel::run(const Json& job, const Json& rung, const std::string& work_dir, const std::string& output_dir,
                      RunHooks& hooks) {
  const reel_plugin* t = lib_->table;
  HookBridge bridge;
  bridge.hooks = &hooks;
  reel_host_api api{};
  api.ctx = &bridge;
  api.progress = &HookBridge::progress;
  api.cancelled = &HookBridge::cancelled;
  api.log = &HookBridge::log;
  api.memory_sample = &HookBridge::memory_sample;
  api.event = &HookBridge::event;

  std::string job_text = dump(job), rung_text = dump(rung);
  char* out = nullptr;
  reel_status s = t->run(t->self, handle_, job_text.c_str(), rung_text.c_str(), work_dir.c_str(), output_dir.c_str(),
                         &api, &out);
  std::string call = "run of '" + model_ + "'";
  if (bridge.error) {
    lib_->take(out);
    std::rethrow_exception(bridge.error);  // the host's own failure, not the plugin's
  }
  Json result = finish_call(*lib_, call.c_str(), s, out);
  auto bad = [&](const std::string& why) { return PluginCallError(REEL_ERR_INTERNAL, lib_->name, call, why); };
  if (!result.is_object() || !result.contains("outputs") || !result["outputs"].is_array())
    throw bad("returned " + dump(result) + ", expected {\"outputs\": [paths], \"info\": {...}}");
  for (const auto& o : result["outputs"])
    if (!o.is_string() || o.get<std::string>().empty()) throw bad("output " + dump(o) + " is not a path");
  if (!result.contains("info") || result["info"].is_null()) result["info"] = Json::object();
  return result;
}

// ---- JSON mapping ----

std::vector<ModelInfo> models_from_description(const Json& d, const std::string& provider) {
  Checker c{provider};
  c.object(d, "description");
  c.only(d, "description", {"models"});
  if (!d.contains("models")) c.fail("description", "missing 'models'");
  const Json& models = c.array(d["models"], "models");
  if (models.empty()) c.fail("models", "the plugin describes no models");
  std::vector<ModelInfo> out;
  ModelCatalog check;  // reuses the catalog's own rules: duplicate names, defaults vs spec
  for (std::size_t i = 0; i < models.size(); ++i) {
    std::string f = "models[" + std::to_string(i) + "]";
    ModelInfo m = c.model(models[i], f);
    try {
      check.add(m);
    } catch (const std::invalid_argument& e) {
      c.fail(f, e.what());
    }
    out.push_back(std::move(m));
  }
  return out;
}

RungEstimate rung_estimate_from_json(const Json& e, const Json& rung, const std::string& plugin) {
  auto bad = [&](const std::string& why) {
    return PluginCallError(REEL_ERR_INTERNAL, plugin, "estimate", why);
  };
  if (!e.is_object()) throw bad("returned " + dump(e) + ", not an object");
  RungEstimate r;
  if (rung.is_object()) {
    r.rung = rung.value("name", "");
    r.quality = rung.value("kind", "") == "quality";
  }
  auto bytes = [&](const char* field, bool required) -> int64_t {
    if (!e.contains(field)) {
      if (required) throw bad(std::string("missing '") + field + "'");
      return 0;
    }
    const Json& v = e[field];
    bool ok = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)
                                     : v.is_number_integer() && v.get<int64_t>() >= 0;
    if (!ok) throw bad(std::string("'") + field + "' must be a non-negative integer (bytes), got " + dump(v));
    return v.get<int64_t>();
  };
  r.device_bytes = bytes("device_bytes", true);
  r.host_bytes = bytes("host_bytes", true);
  r.resident_device_bytes = bytes("resident_device_bytes", false);
  r.resident_host_bytes = bytes("resident_host_bytes", false);
  if (e.contains("relative_time")) {
    const Json& v = e["relative_time"];
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0)
      throw bad("'relative_time' must be a positive number, got " + dump(v));
    r.relative_time = v.get<double>();
  }
  if (e.contains("cpu_only")) {
    if (!e["cpu_only"].is_boolean()) throw bad("'cpu_only' must be a boolean, got " + dump(e["cpu_only"]));
    r.cpu_only = e["cpu_only"].get<bool>();
  }
  if (e.contains("effective") && !e["effective"].is_null()) {
    if (!e["effective"].is_object()) throw bad("'effective' must be an object, got " + dump(e["effective"]));
    r.effective = e["effective"];
  }
  return r;
}

}  // namespace reel
