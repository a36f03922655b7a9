// The loader is driven by one table, kKeys: each entry binds a dotted TOML key to a
// Config member plus the constraints on its value, so adding a key is one line and
// the strict walk, the error messages and to_toml() all follow from that table.
// Keys that are not scalars (sizes such as gpu.reserve, arrays such as gpu.simulate, a
// future [[watch]] array of tables) get a Key with their own bind/emit functions; the
// walk only needs the dotted name.
#include "core/config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>

#include <toml++/toml.h>

#include "core/budget_scheduler.hpp"
#include "core/memory_size.hpp"
#include "core/messages.hpp"
#include "core/paths.hpp"
#include "core/text_file.hpp"

namespace reel {
namespace {

constexpr std::size_t kMaxConfigBytes = 1 << 20;
constexpr double kUnbounded = std::numeric_limits<double>::infinity();

// Problems found while walking one file; all are reported at once, sorted by line.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}
  void add(const toml::source_region& where, const std::string& what) {
    list_.push_back({where.begin.line, file_ + ":" + std::to_string(where.begin.line) + ": " + what});
  }
  void throw_if_any() {
    if (list_.empty()) return;
    std::stable_sort(list_.begin(), list_.end(), [](auto& a, auto& b) { return a.first < b.first; });
    std::string all;
    for (auto& [line, text] : list_) all += (all.empty() ? "" : "\n") + text;
    throw ConfigError(all);
  }

 private:
  std::string file_;
  std::vector<std::pair<toml::source_index, std::string>> list_;
};

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

// How a member type is read from TOML. Integers are read as int64_t and narrowed
// only after the range check, so "max_clients = 5000000000" is out of range, not wrapped.
template <class T> struct TomlType;
template <> struct TomlType<bool> {
  using Raw = bool;
  static constexpr const char* expected = "a boolean";
  static std::optional<bool> read(const toml::node& n) { return n.value_exact<bool>(); }
};
template <> struct TomlType<std::string> {
  using Raw = std::string;
  static constexpr const char* expected = "a string";
  static std::optional<std::string> read(const toml::node& n) { return n.value_exact<std::string>(); }
};
template <> struct TomlType<int64_t> {
  using Raw = int64_t;
  static constexpr const char* expected = "an integer";
  static std::optional<int64_t> read(const toml::node& n) { return n.value_exact<int64_t>(); }
};
template <> struct TomlType<int> : TomlType<int64_t> {};
template <> struct TomlType<double> {
  using Raw = double;
  static constexpr const char* expected = "a number";
  static std::optional<double> read(const toml::node& n) {  // "grace = 5" means 5.0
    if (auto i = n.as_integer()) return static_cast<double>(i->get());
    return n.value_exact<double>();
  }
};

std::string shown(int64_t v) { return std::to_string(v); }
std::string shown(double v) { return format_number(v); }
std::string shown(const std::string& v) { return "'" + v + "'"; }

// ---- Constraints: each returns "" when the value is fine, else why it is not. ----

struct AnyValue {
  template <class V> std::string operator()(const V&) const { return {}; }
};

struct Between {
  double lo, hi = kUnbounded;
  template <class V> std::string operator()(V v) const {
    double d = static_cast<double>(v);
    return std::isfinite(d) && d >= lo && d <= hi ? "" : out_of_range(lo, hi, shown(v));
  }
};
Between AtLeast(double lo) { return Between{lo, kUnbounded}; }

struct OneOf {
  std::vector<std::string> choices;
  std::string operator()(const std::string& v) const {
    return std::find(choices.begin(), choices.end(), v) != choices.end() ? "" : not_one_of(choices, v);
  }
};

// Empty keeps the built-in default; anything else must be absolute, since reeld's
// working directory (/ under systemd) is not something a config should depend on.
struct AbsolutePathOrEmpty {
  std::size_t max_bytes = PATH_MAX - 1;
  std::string operator()(const std::string& v) const {
    if (v.empty()) return {};
    if (v[0] != '/') return "must be an absolute path (or \"\" for the default), got " + shown(v);
    if (v.size() > max_bytes)
      return "must be at most " + std::to_string(max_bytes) + " bytes long, got " + std::to_string(v.size());
    return {};
  }
};
// sockaddr_un::sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxSocketPathBytes = 107;

struct OctalMode {
  std::string operator()(const std::string& v) const {
    bool octal = !v.empty() && v.size() <= 4 && v.find_first_not_of("01234567") == std::string::npos;
    if (octal && std::stoul(v, nullptr, 8) <= 0777) return {};
    return "must be an octal permission string between \"0000\" and \"0777\" (e.g. \"0660\"), got " + shown(v);
  }
};

// ---- The key table. ----

struct Key {
  std::string name;  // dotted: "daemon.max_clients"
  // Reads the node into cfg, or returns why it cannot ("" on success).
  std::function<std::string(Config&, const toml::node&)> bind;
  // Writes the current value into the root table at `name`.
  std::function<void(const Config&, toml::table&)> emit;
};

toml::table& table_at(toml::table& root, const std::string& dotted_parent) {
  toml::table* t = &root;
  std::size_t start = 0;
  while (start < dotted_parent.size()) {
    std::size_t dot = dotted_parent.find('.', start);
    std::string seg = dotted_parent.substr(start, dot - start);
    t = t->emplace<toml::table>(seg).first->second.as_table();
    start = dot == std::string::npos ? dotted_parent.size() : dot + 1;
  }
  return *t;
}

template <class Section, class T, class... Checks>
Key key(std::string name, Section Config::*section, T Section::*member, Checks... checks) {
  using Type = TomlType<T>;
  Key k;
  k.name = name;
  k.bind = [=](Config& cfg, const toml::node& node) -> std::string {
    auto raw = Type::read(node);
    if (!raw) return std::string("expected ") + Type::expected + ", got " + type_name(node);
    std::string why;
    (void)((why = checks(*raw), !why.empty()) || ...);  // the first failing check wins
    if constexpr (std::is_same_v<T, int>)
      if (why.empty()) why = Between{INT_MIN, INT_MAX}(*raw);
    if (!why.empty()) return why;
    cfg.*section.*member = static_cast<T>(*raw);
    return {};
  };
  k.emit = [=](const Config& cfg, toml::table& root) {
    std::size_t dot = name.rfind('.');
    std::string parent = dot == std::string::npos ? "" : name.substr(0, dot);
    const T& v = cfg.*section.*member;
    table_at(root, parent).insert_or_assign(name.substr(dot + 1), static_cast<typename Type::Raw>(v));
  };
  return k;
}

// ---- Sizes and lists (non-scalar members get their own bind/emit). ----

constexpr const char* kSizeExample = "e.g. \"400MiB\", \"24GiB\" or \"0.5GB\"";

// A size: a string parsed by memory_size.hpp ("24GiB"), or an integer number of bytes.
std::string read_size(const toml::node& n, int64_t min_bytes, int64_t& out) {
  if (auto i = n.as_integer()) {
    out = i->get();
    if (out < 0) return "must not be negative, got " + std::to_string(out);
  } else if (auto s = n.as_string()) {
    std::string why;
    auto v = parse_memory_size(s->get(), why);
    if (!v) return "not a size: " + shown(s->get()) + " (" + why + "); write a number and a unit, " + kSizeExample;
    out = *v;
  } else {
    return std::string("expected a size (a string, ") + kSizeExample + "; or an integer number of bytes), got " +
           type_name(n);
  }
  if (out < min_bytes) return "must be at least " + memory_size_string(min_bytes) + ", got " + memory_size_string(out);
  return {};
}

std::pair<toml::table*, std::string> parent_and_leaf(toml::table& root, const std::string& name) {
  std::size_t dot = name.rfind('.');
  return {&table_at(root, dot == std::string::npos ? "" : name.substr(0, dot)), name.substr(dot + 1)};
}

template <class Section>
Key size_key(std::string name, Section Config::*section, int64_t Section::*member, int64_t min_bytes) {
  Key k;
  k.name = name;
  k.bind = [=](Config& cfg, const toml::node& node) -> std::string {
    int64_t v = 0;
    if (std::string why = read_size(node, min_bytes, v); !why.empty()) return why;
    cfg.*section.*member = v;
    return {};
  };
  k.emit = [=](const Config& cfg, toml::table& root) {
    auto [table, leaf] = parent_and_leaf(root, name);
    table->insert_or_assign(leaf, memory_size_string(cfg.*section.*member));
  };
  return k;
}

// An array read element by element; `read_one` returns why an element is wrong, and
// the message names it as "key[i]".
template <class Section, class T, class ReadOne, class Show>
Key list_key(std::string name, Section Config::*section, std::vector<T> Section::*member, std::size_t max_items,
             ReadOne read_one, Show show_one) {
  Key k;
  k.name = name;
  k.bind = [=](Config& cfg, const toml::node& node) -> std::string {
    auto arr = node.as_array();
    if (!arr) return "expected an array, got " + type_name(node);
    if (arr->size() > max_items)
      return "must have at most " + std::to_string(max_items) + " entries, got " + std::to_string(arr->size());
    std::vector<T> out;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      T v{};
      if (std::string why = read_one(*arr->get(i), v); !why.empty()) return "[" + std::to_string(i) + "]: " + why;
      out.push_back(std::move(v));
    }
    cfg.*section.*member = std::move(out);
    return {};
  };
  k.emit = [=](const Config& cfg, toml::table& root) {
    toml::array arr;
    for (const T& v : cfg.*section.*member) arr.push_back(show_one(v));
    auto [table, leaf] = parent_and_leaf(root, name);
    table->insert_or_assign(leaf, std::move(arr));
  };
  return k;
}

Key size_list_key(std::string name, std::vector<int64_t> Config::Gpu::*member, int64_t min_bytes,
                  std::size_t max_items) {
  return list_key(
      std::move(name), &Config::gpu, member, max_items,
      [=](const toml::node& n, int64_t& v) { return read_size(n, min_bytes, v); },
      [](int64_t v) { return memory_size_string(v); });
}

// GPU selectors: a UUID ("GPU-8f6c...") or an NVML index ("0", or the integer 0).
// Duplicates are refused: they would be a typo for another GPU.
Key gpu_devices_key(std::string name, std::vector<std::string> Config::Gpu::*member) {
  Key k = list_key(
      name, &Config::gpu, member, 64,
      [](const toml::node& n, std::string& v) -> std::string {
        if (auto i = n.as_integer()) {
          if (i->get() < 0) return "a GPU index must not be negative, got " + std::to_string(i->get());
          v = std::to_string(i->get());
        } else if (auto s = n.as_string()) {
          v = s->get();
          if (v.empty()) return "expected a GPU UUID (\"GPU-...\") or index (\"0\"), got ''";
        } else {
          return "expected a GPU UUID (\"GPU-...\") or index (\"0\"), got " + type_name(n);
        }
        return {};
      },
      [](const std::string& v) { return v; });
  auto bind = k.bind;
  k.bind = [=](Config& cfg, const toml::node& node) -> std::string {
    if (std::string why = bind(cfg, node); !why.empty()) return why;
    const auto& list = cfg.*(&Config::gpu).*member;
    for (std::size_t i = 0; i < list.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (list[j] == list[i]) return "[" + std::to_string(i) + "]: " + shown(list[i]) + " is listed twice";
    return {};
  };
  return k;
}

// Folders: absolute paths, so the meaning does not depend on reeld's working directory.
template <class Section>
Key folder_list_key(std::string name, Section Config::*section, std::vector<std::string> Section::*member) {
  return list_key(
      std::move(name), section, member, 64,
      [](const toml::node& n, std::string& v) -> std::string {
        auto s = n.as_string();
        if (!s) return "expected an absolute folder path, got " + type_name(n);
        v = s->get();
        if (v.empty() || v[0] != '/') return "expected an absolute folder path, got " + shown(v);
        return {};
      },
      [](const std::string& v) { return v; });
}

// ---- [[watch]]: an array of tables, each walked with its own strict key list. ----

// TOML to JSON for watch params and policy (the job spec's shape; dates refused).
std::string toml_value_to_json(const toml::node& n, nlohmann::json& out) {
  if (auto t = n.as_table()) {
    out = nlohmann::json::object();
    for (auto&& [k, v] : *t)
      if (std::string why = toml_value_to_json(v, out[std::string(k.str())]); !why.empty())
        return "." + std::string(k.str()) + why;
  } else if (auto a = n.as_array()) {
    out = nlohmann::json::array();
    for (std::size_t i = 0; i < a->size(); ++i)
      if (std::string why = toml_value_to_json((*a)[i], out.emplace_back()); !why.empty())
        return "[" + std::to_string(i) + "]" + why;
  } else if (auto s = n.as_string()) out = s->get();
  else if (auto i = n.as_integer()) out = i->get();
  else if (auto b = n.as_boolean()) out = b->get();
  else if (auto f = n.as_floating_point(); f && std::isfinite(f->get())) out = f->get();
  else return ": " + type_name(n) + " cannot be a job parameter (use a string or a finite number)";
  return {};
}

void json_to_toml(const nlohmann::json& j, toml::table& into, const std::string& key);
toml::array json_array_to_toml(const nlohmann::json& j) {
  toml::array arr;
  for (const auto& v : j) {
    toml::table holder;
    json_to_toml(v, holder, "v");
    arr.push_back(*holder.get("v"));
  }
  return arr;
}
void json_to_toml(const nlohmann::json& j, toml::table& into, const std::string& key) {
  if (j.is_object()) {
    toml::table t;
    for (auto& [k, v] : j.items()) json_to_toml(v, t, k);
    into.insert_or_assign(key, std::move(t));
  } else if (j.is_array()) into.insert_or_assign(key, json_array_to_toml(j));
  else if (j.is_string()) into.insert_or_assign(key, j.get<std::string>());
  else if (j.is_boolean()) into.insert_or_assign(key, j.get<bool>());
  else if (j.is_number_integer()) into.insert_or_assign(key, j.get<int64_t>());
  else if (j.is_number()) into.insert_or_assign(key, j.get<double>());
}

struct WatchKey {
  const char* name;
  std::string (*bind)(Config::Watch&, const toml::node&);
  void (*emit)(const Config::Watch&, toml::table&);
};

template <class T, class Check>
std::string read_checked(const toml::node& n, T& out, Check check) {
  auto raw = TomlType<T>::read(n);
  if (!raw) return std::string("expected ") + TomlType<T>::expected + ", got " + type_name(n);
  if (std::string why = check(*raw); !why.empty()) return why;
  out = static_cast<T>(*raw);
  return {};
}

std::string read_table(const toml::node& n, nlohmann::json& out) {
  if (!n.is_table()) return "expected a table, got " + type_name(n);
  std::string why = toml_value_to_json(n, out);
  return why.empty() ? why : why.substr(why[0] == ':' ? 2 : 0);
}

#define REEL_WATCH_SCALAR(member, ...)                                                                   \
  WatchKey {                                                                                              \
    #member, [](Config::Watch& w, const toml::node& n) { return read_checked(n, w.member, __VA_ARGS__); }, \
        [](const Config::Watch& w, toml::table& t) {                                                      \
          t.insert_or_assign(#member, static_cast<typename TomlType<decltype(w.member)>::Raw>(w.member));  \
        }                                                                                                 \
  }

const std::vector<WatchKey>& watch_keys() {
  static const std::vector<WatchKey> k = {
      REEL_WATCH_SCALAR(path, AbsolutePathOrEmpty{}),
      REEL_WATCH_SCALAR(kind, OneOf{{"auto", "job_file", "prompt_file", "media_set"}}),
      REEL_WATCH_SCALAR(model, AnyValue{}),
      {"params", [](Config::Watch& w, const toml::node& n) { return read_table(n, w.params); },
       [](const Config::Watch& w, toml::table& t) { json_to_toml(w.params, t, "params"); }},
      {"policy",
       [](Config::Watch& w, const toml::node& n) -> std::string {
         if (std::string why = read_table(n, w.policy); !why.empty()) return why;
         try {
           parse_job_policy(w.policy, false);
         } catch (const std::invalid_argument& e) {
           return e.what();
         }
         return {};
       },
       [](const Config::Watch& w, toml::table& t) { json_to_toml(w.policy, t, "policy"); }},
      REEL_WATCH_SCALAR(output_dir, AbsolutePathOrEmpty{}),
      REEL_WATCH_SCALAR(priority, Between{-1000, 1000}),
      REEL_WATCH_SCALAR(prompt_per_line, AnyValue{}),
      REEL_WATCH_SCALAR(settle_seconds, Between{0, 3600}),
      {"poll",
       [](Config::Watch& w, const toml::node& n) -> std::string {
         if (auto b = n.value_exact<bool>()) w.poll = *b ? "true" : "false";
         else if (auto s = n.value_exact<std::string>(); s && *s == "auto") w.poll = *s;
         else return "expected true, false or \"auto\", got " + (n.is_string() ? shown(*n.value<std::string>()) : type_name(n));
         return {};
       },
       [](const Config::Watch& w, toml::table& t) {
         if (w.poll == "auto") t.insert_or_assign("poll", "auto");
         else t.insert_or_assign("poll", w.poll == "true");
       }},
      REEL_WATCH_SCALAR(poll_interval_seconds, Between{0.05, 3600}),
      {"max_file_bytes",
       [](Config::Watch& w, const toml::node& n) { return read_size(n, 1, w.max_file_bytes); },
       [](const Config::Watch& w, toml::table& t) { t.insert_or_assign("max_file_bytes", memory_size_string(w.max_file_bytes)); }},
  };
  return k;
}
#undef REEL_WATCH_SCALAR

// One [[watch]] table; every problem is "[i].key: why" (config.hpp: "watch[2].model: ...").
std::string read_watch(const toml::node& node, std::size_t i, Config::Watch& w) {
  std::string at = "[" + std::to_string(i) + "]";
  auto table = node.as_table();
  if (!table) return at + ": expected a table ([[watch]]), got " + type_name(node);
  std::vector<std::string> names;
  for (const auto& k : watch_keys()) names.emplace_back(k.name);
  for (auto&& [k, v] : *table) {
    std::string leaf(k.str());
    auto it = std::find_if(watch_keys().begin(), watch_keys().end(), [&](const WatchKey& wk) { return leaf == wk.name; });
    if (it == watch_keys().end())
      return at + ": unknown key '" + leaf + "'" + did_you_mean(leaf, names) + "; keys: " + join(names);
    if (std::string why = it->bind(w, v); !why.empty())
      return at + "." + leaf + (why[0] == '.' || why[0] == '[' ? "" : ": ") + why;
  }
  if (w.path.empty()) return at + ".path: required: the absolute path of the folder to watch";
  if (w.model.empty() && w.kind != "job_file")
    return at + ".model: required unless kind = \"job_file\" (job files name their own model)";
  namespace fs = std::filesystem;
  auto norm = [](const std::string& p) { return fs::path(p).lexically_normal().string(); };
  if (!w.output_dir.empty() && norm(w.output_dir + "/") == norm(w.path + "/"))
    return at + ".output_dir: must not be the watched folder itself (outputs would be taken as new inputs); "
                "leave it empty for <path>/out";
  return {};
}

Key watch_list_key() {
  Key k;
  k.name = "watch";
  k.bind = [](Config& cfg, const toml::node& node) -> std::string {
    auto arr = node.as_array();
    if (!arr) return "expected an array of tables ([[watch]]), got " + type_name(node);
    std::vector<Config::Watch> out;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      Config::Watch w;
      if (std::string why = read_watch(*arr->get(i), i, w); !why.empty()) return why;
      namespace fs = std::filesystem;
      for (std::size_t j = 0; j < out.size(); ++j)
        if (fs::path(out[j].path + "/").lexically_normal() == fs::path(w.path + "/").lexically_normal())
          return "[" + std::to_string(i) + "].path: " + shown(w.path) + " is already watched by watch[" +
                 std::to_string(j) + "]; one [[watch]] per folder";
      out.push_back(std::move(w));
    }
    cfg.watches = std::move(out);
    return {};
  };
  k.emit = [](const Config& cfg, toml::table& root) {
    if (cfg.watches.empty()) return;   // no [[watch]]: nothing to write (an empty array reads back the same)
    toml::array arr;
    for (const auto& w : cfg.watches) {
      toml::table t;
      for (const auto& wk : watch_keys()) wk.emit(w, t);
      arr.push_back(std::move(t));
    }
    root.insert_or_assign("watch", std::move(arr));
  };
  return k;
}

// The TOML key is spelled exactly like the member, so the two cannot drift apart.
#define REEL_KEY(table, member, ...) \
  key(#table "." #member, &Config::table, &decltype(Config::table)::member, __VA_ARGS__)
#define REEL_SIZE_KEY(table, member, min_bytes) \
  size_key(#table "." #member, &Config::table, &decltype(Config::table)::member, min_bytes)

const std::vector<Key>& keys() {
  static const std::vector<Key> k = {
      REEL_KEY(daemon, state_dir, AbsolutePathOrEmpty{}),
      REEL_KEY(daemon, socket_path, AbsolutePathOrEmpty{kMaxSocketPathBytes}),
      REEL_KEY(daemon, socket_mode, OctalMode{}),
      REEL_KEY(daemon, socket_group, AnyValue{}),
      REEL_KEY(daemon, max_concurrent_jobs, Between{1, 1024}),
      REEL_KEY(daemon, max_clients, Between{1, 65536}),
      REEL_KEY(daemon, max_request_bytes, Between{1024, 64 << 20}),
      REEL_KEY(daemon, max_queued_jobs, Between{1, 100000000}),
      REEL_KEY(daemon, stop_grace_seconds, AtLeast(0)),
      REEL_KEY(daemon, drain_on_stop, AnyValue{}),
      REEL_KEY(daemon, cancel_grace_seconds, AtLeast(0)),
      REEL_KEY(daemon, status_interval_seconds, Between{0.1, 86400}),
      REEL_KEY(jobs, max_attempts, Between{1, 100}),
      REEL_KEY(jobs, max_crashes, Between{1, 100}),
      REEL_KEY(jobs, aging_seconds, AtLeast(1)),
      REEL_KEY(jobs, output_dir, AbsolutePathOrEmpty{}),
      folder_list_key("jobs.input_roots", &Config::jobs, &Config::Jobs::input_roots),
      REEL_KEY(jobs, max_params_bytes, Between{1024, 64 << 20}),
      REEL_KEY(log, level, OneOf{{"trace", "debug", "info", "warn", "error"}}),
      REEL_KEY(log, file, AbsolutePathOrEmpty{}),
      REEL_KEY(log, file_max_bytes, Between{1024, double(int64_t{1} << 40)}),
      REEL_KEY(log, file_count, Between{1, 100}),
      REEL_KEY(storage, journal_mode, OneOf{{"auto", "wal", "delete"}}),
      REEL_KEY(storage, busy_timeout_ms, Between{0, 600000}),
      REEL_KEY(storage, synchronous, OneOf{{"full", "normal"}}),
      size_list_key("gpu.simulate", &Config::Gpu::simulate, int64_t{1} << 20, 64),
      REEL_SIZE_KEY(gpu, reserve, 0),
      REEL_KEY(gpu, reserve_fraction, Between{0, 0.9}),
      REEL_SIZE_KEY(gpu, inference_margin, 0),
      REEL_SIZE_KEY(gpu, worker_overhead, 0),
      gpu_devices_key("gpu.devices", &Config::Gpu::devices),
      REEL_KEY(gpu, probe_interval_seconds, Between{0.1, 86400}),
      REEL_SIZE_KEY(host, ram_reserve, 0),
      REEL_KEY(host, ram_fraction, Between{0.1, 1.0}),
      REEL_KEY(scheduler, quality_fallback, AnyValue{}),
      REEL_KEY(scheduler, degrade_now, AnyValue{}),
      REEL_KEY(scheduler, keep_alive_seconds, Between{0, 1e9}),
      REEL_KEY(scheduler, max_resident_models, Between{1, 1024}),
      folder_list_key("plugins.dirs", &Config::plugins, &Config::Plugins::dirs),
      REEL_KEY(plugins, load_timeout_seconds, Between{1, 3600}),
      watch_list_key(),
  };
  return k;
}
#undef REEL_KEY
#undef REEL_SIZE_KEY

const Key* find_key(const std::string& dotted) {
  for (const auto& k : keys())
    if (k.name == dotted) return &k;
  return nullptr;
}

// The names directly under `prefix` ("" or "daemon."): keys and sub-tables alike.
std::vector<std::string> children(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& k : keys()) {
    if (k.name.compare(0, prefix.size(), prefix) != 0) continue;
    std::string child = k.name.substr(prefix.size(), k.name.find('.', prefix.size()) - prefix.size());
    if (std::find(out.begin(), out.end(), child) == out.end()) out.push_back(child);
  }
  return out;
}

std::string unknown(const std::string& prefix, const std::string& leaf, bool is_table) {
  std::string what = std::string(is_table ? "unknown table '" : "unknown key '") + prefix + leaf + "'";
  if (std::string m = closest_match(leaf, children(prefix)); !m.empty())
    return what + " (did you mean '" + prefix + m + "'?)";
  if (!is_table)  // the right key in the wrong table: [daemon] max_attempts
    for (const auto& k : keys())
      if (k.name.substr(k.name.rfind('.') + 1) == leaf) return what + " (did you mean '" + k.name + "'?)";
  return what;
}

void walk(const toml::table& table, const std::string& prefix, Config& cfg, Problems& problems) {
  for (auto&& [k, node] : table) {
    std::string leaf(k.str());
    std::string dotted = prefix + leaf;
    // Implicit tables ([a.b] without [a]) have no source of their own; the key does.
    const toml::source_region& where = node.source().begin.line ? node.source() : k.source();
    // A quoted key holding a dot ("daemon.x" = 1) must not pass for the real key.
    const Key* known = leaf.find('.') == std::string::npos ? find_key(dotted) : nullptr;
    if (known) {
      // A why starting with "[i]: " names an element of an array: "gpu.simulate[1]: ...".
      if (std::string why = known->bind(cfg, node); !why.empty())
        problems.add(where, dotted + (why[0] == '[' ? "" : ": ") + why);
    } else if (leaf.find('.') == std::string::npos && !children(dotted + ".").empty()) {
      if (auto sub = node.as_table()) walk(*sub, dotted + ".", cfg, problems);
      else problems.add(where, dotted + ": expected a table, got " + type_name(node));
    } else {
      problems.add(where, unknown(prefix, leaf, node.is_table()));
    }
  }
}

[[noreturn]] void no_file(const std::string& path, const char* via, const std::string& why) {
  throw ConfigError("config file '" + path + "' (" + via + "): " + why);
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Config parse_config(const std::string& text, const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(name + ":" + std::to_string(e.source().begin.line) + ":" +
                      std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
  Config cfg;
  cfg.source_path = name;
  Problems problems(name);
  walk(root, "", cfg, problems);
  problems.throw_if_any();
  return cfg;
}

Config load_config_file(const std::string& path) {
  std::string why;
  auto text = read_text_file(path, kMaxConfigBytes, why);
  if (!text) throw ConfigError("cannot read config file '" + path + "': " + why);
  return parse_config(*text, path);
}

std::string to_toml(const Config& cfg) {
  toml::table root;
  for (const auto& k : keys()) k.emit(cfg, root);
  std::ostringstream out;
  out << root;
  return out.str();
}

std::optional<std::string> find_config_file(const std::string& explicit_path, const std::string& system_path) {
  auto must_exist = [](const std::string& path, const char* via) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) no_file(path, via, std::strerror(errno));
    return path;
  };
  if (!explicit_path.empty()) return must_exist(explicit_path, "from --config");
  if (const char* env = std::getenv("REEL_CONFIG"); env && *env) return must_exist(env, "from $REEL_CONFIG");
  if (!system_path.empty() && file_exists(system_path)) return system_path;
  if (std::string dir = user_config_dir(); !dir.empty() && file_exists(dir + "/reel/reeld.toml"))
    return dir + "/reel/reeld.toml";
  return std::nullopt;
}

Config load_config(const std::string& explicit_path, const std::string& system_path) {
  if (auto path = find_config_file(explicit_path, system_path)) return load_config_file(*path);
  return Config{};
}

}  // namespace reel
