// TOML documents are converted to JSON first (refusing what JSON cannot carry), so
// one validator, driven by the kFields table, serves TOML files, JSON files and the
// wire. TOML keeps its line numbers through a locator that maps a field back to its node.
#include "core/job_spec.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>

#include <toml++/toml.h>

#include "core/budget_scheduler.hpp"
#include "core/messages.hpp"
#include "core/text_file.hpp"

namespace reel {
namespace {

constexpr std::size_t kMaxJobFileBytes = 1 << 20;
constexpr std::size_t kMaxIdempotencyKey = 200;

struct Ctx {
  std::string name;       // file name (or "submit") for messages
  bool toml = false;      // say "table" rather than "object"
  std::string base_dir;   // resolves relative input paths; "" leaves them
  // "<name>:<line>" for TOML when the field (and optionally its sub-key) has a node; else "<name>".
  std::function<std::string(const std::string& field, const std::string& sub)> where;
};

[[noreturn]] void fail(const Ctx& c, const std::string& field, const std::string& sub, const std::string& why) {
  throw JobSpecError(c.where(field, sub) + ": " + field + (sub.empty() ? "" : "." + sub) + ": " + why);
}

int64_t integer_in(const Ctx& c, const std::string& field, const Json& v, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) fail(c, field, "", "expected an integer, got " + describe_value(v, c.toml));
  bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi);
  int64_t x = too_big ? hi : v.get<int64_t>();
  if (too_big || x < lo || x > hi)
    fail(c, field, "", out_of_range(double(lo), double(hi), v.dump()));
  return x;
}

const std::string& string_field(const Ctx& c, const std::string& field, const Json& v) {
  if (!v.is_string()) fail(c, field, "", "expected a string, got " + describe_value(v, c.toml));
  return v.get_ref<const std::string&>();
}

const Json& object_field(const Ctx& c, const std::string& field, const Json& v) {
  if (!v.is_object())
    fail(c, field, "", std::string("expected ") + (c.toml ? "a table" : "an object") + ", got " +
                           describe_value(v, c.toml));
  return v;
}

std::string resolve(const std::string& path, const std::string& base_dir) {
  namespace fs = std::filesystem;
  // URLs ("https://...") and absolute paths are taken as given.
  if (base_dir.empty() || path.find("://") != std::string::npos || fs::path(path).is_absolute()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

void set_inputs(JobSpec& s, const Json& v, const Ctx& c) {
  for (auto& [role, path] : object_field(c, "inputs", v).items()) {
    if (role.empty()) fail(c, "inputs", "", "an input role cannot be empty");
    if (!path.is_string())
      fail(c, "inputs", role, "expected a file path string, got " + describe_value(path, c.toml));
    if (path.get_ref<const std::string&>().empty()) fail(c, "inputs", role, "the path is empty");
    s.inputs[role] = resolve(path.get<std::string>(), c.base_dir);
  }
}

struct Field {
  const char* name;
  void (*set)(JobSpec&, const Json&, const Ctx&);
};

const Field kFields[] = {
    {"model",
     [](JobSpec& s, const Json& v, const Ctx& c) {
       s.model = string_field(c, "model", v);
       if (s.model.empty()) fail(c, "model", "", "must not be empty");
     }},
    {"priority", [](JobSpec& s, const Json& v, const Ctx& c) { s.priority = int(integer_in(c, "priority", v, -1000, 1000)); }},
    {"max_attempts",
     [](JobSpec& s, const Json& v, const Ctx& c) { s.max_attempts = int(integer_in(c, "max_attempts", v, 1, 100)); }},
    {"idempotency_key",
     [](JobSpec& s, const Json& v, const Ctx& c) {
       s.idempotency_key = string_field(c, "idempotency_key", v);
       if (s.idempotency_key.size() > kMaxIdempotencyKey)
         fail(c, "idempotency_key", "",
              "must be at most " + std::to_string(kMaxIdempotencyKey) + " characters, got " +
                  std::to_string(s.idempotency_key.size()));
     }},
    {"source", [](JobSpec& s, const Json& v, const Ctx& c) { s.source = string_field(c, "source", v); }},
    {"params", [](JobSpec& s, const Json& v, const Ctx& c) { s.params = object_field(c, "params", v); }},
    {"inputs", set_inputs},
    {"policy",
     [](JobSpec& s, const Json& v, const Ctx& c) {
       s.policy = object_field(c, "policy", v);
       try {
         parse_job_policy(s.policy, false);   // only to validate here; the daemon applies its defaults
       } catch (const std::invalid_argument& e) {
         fail(c, "policy", "", e.what());
       }
     }},
};

JobSpec from_object(const Json& doc, const Ctx& c) {
  if (!doc.is_object())
    throw JobSpecError(c.name + ": a job spec must be " + (c.toml ? "a table" : "an object") + ", got " +
                       describe_type(doc, c.toml));
  std::vector<std::string> names;
  for (const auto& f : kFields) names.emplace_back(f.name);
  for (auto& [k, v] : doc.items())
    if (std::find(names.begin(), names.end(), k) == names.end())
      throw JobSpecError(c.where(k, "") + ": unknown field '" + k + "'" + did_you_mean(k, names) +
                         "; fields: " + join(names));
  JobSpec s;
  for (const auto& f : kFields)
    if (auto it = doc.find(f.name); it != doc.end()) f.set(s, *it, c);
  if (s.model.empty()) throw JobSpecError(c.name + ": missing required field 'model'");
  return s;
}

// ---- TOML ----

std::string line_of(const Ctx& c, const toml::node& n) {
  return c.name + ":" + std::to_string(n.source().begin.line);
}

Json to_json(const toml::node& n, const std::string& path, const Ctx& c) {
  if (auto t = n.as_table()) {
    Json o = Json::object();
    for (auto&& [k, v] : *t) o[std::string(k.str())] = to_json(v, path + "." + std::string(k.str()), c);
    return o;
  }
  if (auto a = n.as_array()) {
    Json arr = Json::array();
    for (std::size_t i = 0; i < a->size(); ++i) arr.push_back(to_json((*a)[i], path + "[" + std::to_string(i) + "]", c));
    return arr;
  }
  if (auto s = n.as_string()) return s->get();
  if (auto i = n.as_integer()) return i->get();
  if (auto b = n.as_boolean()) return b->get();
  if (auto f = n.as_floating_point()) {
    if (!std::isfinite(f->get())) throw JobSpecError(line_of(c, n) + ": " + path + ": nan and inf are not supported");
    return f->get();
  }
  throw JobSpecError(line_of(c, n) + ": " + path + ": dates and times are not supported (use a string)");
}

JobSpec parse_toml(const std::string& text, Ctx c) {
  toml::table root;
  try {
    root = toml::parse(text, c.name);
  } catch (const toml::parse_error& e) {
    throw JobSpecError(c.name + ":" + std::to_string(e.source().begin.line) + ":" +
                       std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
  Json doc = Json::object();
  for (auto&& [k, v] : root) doc[std::string(k.str())] = to_json(v, std::string(k.str()), c);
  c.toml = true;
  c.where = [&root, name = c.name](const std::string& field, const std::string& sub) {
    const toml::node* n = root.get(field);
    if (n && !sub.empty() && n->is_table())
      if (const toml::node* inner = n->as_table()->get(sub)) n = inner;
    return n ? name + ":" + std::to_string(n->source().begin.line) : name;
  };
  return from_object(doc, c);
}

// ---- JSON ----

// "[json.exception.parse_error.101] parse error at line 1, ..." -> "parse error at line 1, ..."
std::string without_tag(const Json::exception& e) {
  std::string what = e.what();
  if (auto end = what.find("] "); what.rfind("[json.exception", 0) == 0 && end != std::string::npos)
    what = what.substr(end + 2);
  return what;
}

JobSpec parse_json(const std::string& text, Ctx c) {
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw JobSpecError(c.name + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + without_tag(e));
  } catch (const Json::exception& e) {
    // Not a parse_error: a number too large for a double ("1e999") is out_of_range.
    throw JobSpecError(c.name + ": invalid JSON: " + without_tag(e));
  }
  return from_object(doc, c);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Ctx plain_ctx(const std::string& name, const std::string& base_dir) {
  return Ctx{name, false, base_dir, [name](const std::string&, const std::string&) { return name; }};
}

}  // namespace

JobSpec parse_job_spec(const std::string& text, const std::string& name, const std::string& base_dir) {
  bool json = ends_with(name, ".json");
  if (!json && !ends_with(name, ".toml")) {
    auto first = text.find_first_not_of(" \t\r\n");
    json = first != std::string::npos && text[first] == '{';
  }
  Ctx c = plain_ctx(name, base_dir);
  return json ? parse_json(text, c) : parse_toml(text, c);
}

JobSpec load_job_spec_file(const std::string& path) {
  std::string why;
  auto text = read_text_file(path, kMaxJobFileBytes, why);
  if (!text) throw JobSpecError("cannot read job file '" + path + "': " + why);
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return parse_job_spec(*text, path, ec ? "" : abs.parent_path().string());
}

JobSpec job_spec_from_json(const Json& j, const std::string& name) {
  return from_object(j, plain_ctx(name, ""));
}

std::pair<std::string, Json> parse_param_assignment(const std::string& kv) {
  auto eq = kv.find('=');
  if (eq == std::string::npos)
    throw JobSpecError("parameter '" + kv + "' must be key=value (e.g. seconds=2)");
  std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
  if (key.empty()) throw JobSpecError("parameter '" + kv + "' has an empty name before '='");
  // Anything JSON can read (2, 2.5, true, null, "2", [1,2], {"a":1}) is taken as such;
  // everything else is a plain string, so name=hello world needs no quoting.
  Json parsed = Json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return {key, value};
  return {key, parsed};
}

}  // namespace reel
