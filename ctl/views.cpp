#include "views.hpp"

#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include "core/budget_scheduler.hpp"
#include "duration.hpp"

namespace reel::ctl {

namespace {

// "running" with a pending cancel reads "cancelling": that is what the user asked for.
std::string display_state(const Json& job) {
  std::string state = json_str(job, "state", "?");
  if (state == "running" && json_bool(job, "cancel_requested")) return "cancelling";
  return state;
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string compact(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string age_of(int64_t then_ms, int64_t now_ms) {
  return then_ms > 0 ? format_duration(now_ms - then_ms, 1) : "-";
}

// Key/value block with the keys padded to one width.
class KeyValues {
 public:
  void add(const std::string& key, const std::string& value, Color color = Color::none) {
    rows_.push_back({key, value, color});
  }
  std::string render(const Style& style) const {
    size_t w = 0;
    for (const auto& r : rows_) w = std::max(w, r.key.size() + 1);
    std::string out;
    for (const auto& r : rows_)
      out += r.key + ":" + std::string(w - r.key.size() - 1 + 2, ' ') + style.paint(r.value, r.color) + "\n";
    return out;
  }

 private:
  struct Row {
    std::string key, value;
    Color color;
  };
  std::vector<Row> rows_;
};

// The member `key` of `j`, or null when `j` is not an object or lacks it.
Json field(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? Json(nullptr) : *it;
}

Json array_or_empty(const Json& j) { return j.is_array() ? j : Json::array(); }

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// "2x", "0.5x", "1.33x": a ratio with at most three significant digits.
std::string times(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3gx", x);
  return buf;
}

bool has_number(const Json& j, const char* key) { return field(j, key).is_number(); }

double json_double(const Json& j, const char* key, double fallback) {
  Json v = field(j, key);
  return v.is_number() ? v.get<double>() : fallback;
}

// A plan rung's output, for the QUALITY column: "steps 2, 832x480, fp8".
std::string effective_summary(const Json& eff) {
  if (!eff.is_object() || eff.empty()) return "lower";
  std::vector<std::string> parts;
  auto scalar = [](const Json& v) { return v.is_string() ? v.get<std::string>() : compact(v); };
  for (const char* k : {"steps", "frames"})
    if (eff.contains(k)) parts.push_back(std::string(k) + " " + scalar(eff[k]));
  if (eff.contains("width") && eff.contains("height"))
    parts.push_back(scalar(eff["width"]) + "x" + scalar(eff["height"]));
  else
    for (const char* k : {"width", "height"})
      if (eff.contains(k)) parts.push_back(std::string(k) + " " + scalar(eff[k]));
  if (eff.contains("precision")) parts.push_back(scalar(eff["precision"]));
  for (auto it = eff.begin(); it != eff.end(); ++it) {
    const std::string& k = it.key();
    if (k != "steps" && k != "frames" && k != "width" && k != "height" && k != "precision")
      parts.push_back(k + " " + scalar(*it));
  }
  return join(parts, ", ");
}

// A plan estimate, with the original when measured peaks corrected it upwards.
std::string estimate_cell(const Json& rung, const char* key, const char* estimated_key) {
  std::string cell = bytes_cell(rung, key);
  if (has_number(rung, estimated_key)) cell += " (est. " + bytes_cell(rung, estimated_key) + ")";
  return cell;
}

bool is_final_state(const std::string& s) { return s == "succeeded" || s == "failed" || s == "cancelled"; }

// `plan:` the job's ladder with this job's estimates, best first.
std::string render_plan(const Json& job, const Style& style) {
  Json plan = array_or_empty(field(job, "plan"));
  if (plan.empty()) return "";
  const int64_t min_rung = json_int(job, "min_rung");
  const std::string state = json_str(job, "state");
  const std::string used = json_str(job, "rung");
  Table t({"RUNG", "KIND", "GPU", "HOST", "TIME", "QUALITY", "NOTE"});
  for (size_t i = 0; i < plan.size(); ++i) {
    const Json& r = plan[i];
    std::string name = json_str(r, "rung", "?");
    bool quality = json_bool(r, "quality"), cpu_only = json_bool(r, "cpu_only");
    std::vector<std::string> notes;
    Color color = Color::none;
    if (static_cast<int64_t>(i) < min_rung) {
      notes.push_back("ruled out (fallback)");
      color = Color::dim;
    } else if (!used.empty() && name == used) {
      notes.push_back(state == "running" ? "in use" : is_final_state(state) ? "used" : "last used");
      color = Color::green;
    }
    if (json_bool(r, "corrected")) notes.push_back("estimate corrected by measured peaks");
    t.add_row({{name, color == Color::green ? Color::bold : color},
               {std::string(quality ? "quality" : "placement") + (cpu_only ? " (cpu)" : "")},
               {cpu_only ? "-" : estimate_cell(r, "device_bytes", "estimated_device_bytes")},
               {estimate_cell(r, "host_bytes", "estimated_host_bytes")},
               {has_number(r, "relative_time") ? times(json_double(r, "relative_time", 1)) : "-"},
               {quality ? effective_summary(field(r, "effective")) : "full", quality ? Color::yellow : Color::none},
               {join(notes, "; "), color}});
  }
  return "\nplan:\n" + t.render(style);
}

// "GPU 64.0 MiB needed / 7.9 GiB available; host RAM 80.0 MiB needed / 30.2 GiB available"
std::string needed_vs_available(const Json& explain, const std::string& device) {
  std::vector<std::string> parts;
  if (device != "cpu" && has_number(explain, "needed_device_bytes"))
    parts.push_back("GPU " + bytes_cell(explain, "needed_device_bytes") + " needed / " +
                    bytes_cell(explain, "available_device_bytes") + " available");
  if (has_number(explain, "needed_host_bytes"))
    parts.push_back("host RAM " + bytes_cell(explain, "needed_host_bytes") + " needed / " +
                    bytes_cell(explain, "available_host_bytes") + " available");
  return join(parts, "; ");
}

// `rung history:` one row per "scheduled" (a start, with the numbers behind it) and
// "fallback" (an out-of-memory retry one rung lower) event, oldest first.
std::string render_rung_history(const Json& events, const Style& style) {
  Table t({"TIME", "EVENT", "RUNG", "DEVICE", "NEEDED / AVAILABLE"});
  for (const auto& e : array_or_empty(events)) {
    std::string kind = json_str(e, "kind");
    Json data = field(e, "data");
    std::string when = format_timestamp(json_int(e, "at"));
    if (kind == "scheduled") {
      Json explain = field(data, "explain");
      std::string device = json_str(data, "device", "-");
      std::string details = needed_vs_available(explain, device);
      auto add = [&](const std::string& s) { details += (details.empty() ? "" : "; ") + s; };
      if (json_bool(explain, "degraded"))
        add("degraded from '" + json_str(explain, "target_rung", "?") + "' (it did not fit then)");
      if (json_bool(explain, "reuses_worker")) add("reused an idle worker");
      if (size_t n = array_or_empty(field(explain, "evicted")).size(); n > 0)
        add("evicted " + std::to_string(n) + " idle model" + (n == 1 ? "" : "s"));
      t.add_row({{when}, {"scheduled"}, {json_str(data, "rung", "?")}, {device}, {or_dash(details)}});
    } else if (kind == "fallback") {
      bool quality = json_bool(data, "quality");
      std::string reason = json_str(data, "reason");
      if (quality) reason = "OUTPUT QUALITY LOWERED" + (reason.empty() ? "" : ": " + reason);
      t.add_row({{when},
                 {quality ? "QUALITY FALLBACK" : "fallback", quality ? Color::red : Color::yellow},
                 {json_str(data, "from", "?") + " -> " + json_str(data, "to", "?")},
                 {"-"},
                 {or_dash(reason), quality ? Color::red : Color::none}});
    }
  }
  if (t.rows() == 0) return "";
  return "\nrung history:\n" + t.render(style);
}

// `measured peaks:` what runs of this model at the plan's rungs really used, against the
// estimates; the daemon raises later estimates by the correction when it is above 1.
std::string render_peaks(const Json& job, const Json& peaks, const Style& style) {
  std::set<std::string> rungs;
  for (const auto& r : array_or_empty(field(job, "plan"))) rungs.insert(json_str(r, "rung"));
  auto correction = [](const Json& p, const char* measured, const char* estimate) -> std::string {
    int64_t est = json_int(p, estimate);
    if (est <= 0 || !has_number(p, measured)) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fx", static_cast<double>(json_int(p, measured)) / static_cast<double>(est));
    return std::string(buf);
  };
  Table t({"RUNG", "SHAPE", "RUNS", "GPU EST", "GPU PEAK", "GPU CORR", "HOST EST", "HOST PEAK", "HOST CORR"});
  for (const auto& p : array_or_empty(peaks)) {
    std::string rung = json_str(p, "rung", "?");
    if (!rungs.empty() && !rungs.count(rung)) continue;
    t.add_row({{rung}, {or_dash(json_str(p, "shape"))}, {std::to_string(json_int(p, "samples"))},
               {bytes_cell(p, "estimate_device_bytes")}, {bytes_cell(p, "measured_device_bytes")},
               {correction(p, "measured_device_bytes", "estimate_device_bytes")},
               {bytes_cell(p, "estimate_host_bytes")}, {bytes_cell(p, "measured_host_bytes")},
               {correction(p, "measured_host_bytes", "estimate_host_bytes")}});
  }
  if (t.rows() == 0) return "";
  return "\nmeasured peaks (model " + json_str(job, "model", "?") + ", correction = measured / estimate):\n" +
         t.render(style);
}

// The name a plugin goes by: its own, else its file's.
std::string plugin_label(const Json& p) {
  std::string name = json_str(p, "name");
  if (!name.empty()) return name;
  std::string source = json_str(p, "source", "?");
  return std::filesystem::path(source).filename().string();
}

}  // namespace

std::string bytes_cell(const Json& j, const char* key) {
  if (!has_number(j, key)) return "-";
  return format_bytes(json_int(j, key));
}

std::string job_progress_cell(const Json& job) {
  Json p = field(job, "progress");
  int64_t total = json_int(p, "total");
  if (total <= 0) return "-";
  return std::to_string(json_int(p, "step")) + "/" + std::to_string(total);
}

std::string render_job_table(const Json& jobs, int64_t now_ms, const Style& style) {
  Table t({"ID", "STATE", "MODEL", "PRIO", "PROGRESS", "AGE", "SOURCE"});
  for (const auto& job : array_or_empty(jobs)) {
    std::string state = display_state(job);
    t.add_row({{json_str(job, "id", "?")},
               {state, state_color(state)},
               {or_dash(json_str(job, "model"))},
               {std::to_string(json_int(job, "priority"))},
               {job_progress_cell(job)},
               {age_of(json_int(job, "created_at"), now_ms)},
               {or_dash(json_str(job, "source"))}});
  }
  return t.render(style);
}

std::string render_show(const Json& result, int64_t now_ms, const Style& style) {
  Json job = field(result, "job");
  if (!job.is_object()) job = Json::object();
  Json events = array_or_empty(field(result, "events"));

  // The last start says where the job ran and at which rung.
  std::string last_device, last_rung;
  bool quality_fallback = false;
  std::string quality_to;
  for (const auto& e : events) {
    std::string kind = json_str(e, "kind");
    if (kind == "scheduled") {
      last_device = json_str(field(e, "data"), "device");
      last_rung = json_str(field(e, "data"), "rung");
    } else if (kind == "fallback" && json_bool(field(e, "data"), "quality")) {
      quality_fallback = true;
      quality_to = json_str(field(e, "data"), "to", "?");
    }
  }

  KeyValues kv;
  std::string state = display_state(job);
  kv.add("id", json_str(job, "id", "?"), Color::bold);
  kv.add("state", state, state_color(state));
  if (std::string w = json_str(result, "waiting"); !w.empty() && json_str(job, "state") == "queued")
    kv.add("waiting", w, Color::yellow);
  kv.add("model", or_dash(json_str(job, "model")));
  if (Json params = field(job, "params"); !params.is_null()) kv.add("params", compact(params));
  if (Json in = field(job, "inputs"); in.is_object())
    for (auto it = in.begin(); it != in.end(); ++it)
      kv.add("input " + it.key(), it->is_string() ? it->get<std::string>() : compact(*it));
  kv.add("priority", std::to_string(json_int(job, "priority")));
  kv.add("attempts", std::to_string(json_int(job, "attempts")) + " of " + std::to_string(json_int(job, "max_attempts")) +
                         (json_int(job, "crash_count") > 0
                              ? " (" + std::to_string(json_int(job, "crash_count")) + " crashed)"
                              : ""));
  kv.add("source", or_dash(json_str(job, "source")));
  if (!json_str(job, "idempotency_key").empty()) kv.add("idempotency key", json_str(job, "idempotency_key"));
  for (const char* k : {"created_at", "started_at", "finished_at"}) {
    int64_t t = json_int(job, k);
    std::string name = std::string(k).substr(0, std::string(k).find('_'));
    kv.add(name, t > 0 ? format_timestamp(t) + " (" + format_duration(now_ms - t, 2) + " ago)" : "-");
  }
  Json p = field(job, "progress");
  if (json_int(p, "total") > 0 || !json_str(p, "stage").empty())
    kv.add("progress", progress_bar(json_int(p, "step"), json_int(p, "total"), json_str(p, "stage"), std::nullopt));
  if (std::string rung = json_str(job, "rung"); !rung.empty()) {
    std::string where = rung == last_rung && !last_device.empty() ? " on " + last_device : "";
    Json plan = array_or_empty(field(job, "plan"));
    for (size_t i = 0; i < plan.size(); ++i)
      if (json_str(plan[i], "rung") == rung)
        where += " (rung " + std::to_string(i + 1) + " of " + std::to_string(plan.size()) + ")";
    kv.add("rung", rung + where);
  }
  if (quality_fallback)
    kv.add("quality", "LOWERED: fell back to quality rung '" + quality_to + "' (see rung history)", Color::red);
  if (Json policy = field(job, "policy"); policy.is_object() && !policy.empty()) kv.add("policy", compact(policy));
  if (json_bool(job, "cancel_requested")) kv.add("cancel", "requested", Color::yellow);
  for (const auto& o : array_or_empty(field(job, "outputs")))
    kv.add("output", o.is_string() ? o.get<std::string>() : compact(o));
  if (!json_str(job, "error").empty()) kv.add("error", json_str(job, "error"), Color::red);

  std::string out = kv.render(style);
  out += render_plan(job, style);
  out += render_rung_history(events, style);
  out += render_peaks(job, field(result, "peaks"), style);
  if (!events.empty()) {
    Table t({"SEQ", "TIME", "KIND", "DETAILS"});
    for (const auto& e : events)
      t.add_row({{std::to_string(json_int(e, "seq"))},
                 {format_timestamp(json_int(e, "at"))},
                 {json_str(e, "kind", "?")},
                 {describe_event(e)}});
    out += "\nevents:\n" + t.render(style);
  }
  return out;
}

std::string render_job_details(const Json& job, const Json& events, int64_t now_ms, const Style& style) {
  return render_show(Json{{"job", job}, {"events", events}}, now_ms, style);
}

std::string render_status(const Json& status, int64_t now_ms, const Style& style) {
  KeyValues kv;
  kv.add("reeld", json_str(status, "version", "?") + ", pid " + std::to_string(json_int(status, "pid")) + ", up " +
                      format_duration(json_int(status, "uptime_s") * 1000, 2));
  std::string sched = json_bool(status, "draining") ? "draining" : json_bool(status, "paused") ? "paused" : "running";
  kv.add("scheduler", sched, sched == "running" ? Color::green : Color::yellow);
  Json counts = field(status, "counts");
  std::string c;
  for (const char* s : {"queued", "running", "succeeded", "failed", "cancelled"})
    c += (c.empty() ? "" : ", ") + std::to_string(json_int(counts, s)) + " " + s;
  kv.add("jobs", c);
  Json budgets = field(status, "budgets");
  if (budgets.contains("max_concurrent_jobs"))
    kv.add("concurrency", "at most " + std::to_string(json_int(budgets, "max_concurrent_jobs")) + " job(s) at once");
  std::string models;
  for (const auto& m : array_or_empty(field(status, "models")))
    models += (models.empty() ? "" : ", ") + json_str(m, "name", "?");
  kv.add("models", or_dash(models));
  if (Json plugins = field(status, "plugins"); plugins.is_array()) {
    std::vector<std::string> loaded, refused;
    for (const auto& p : plugins) (json_bool(p, "loaded") ? loaded : refused).push_back(plugin_label(p));
    std::string line = std::to_string(loaded.size()) + " loaded" + (loaded.empty() ? "" : " (" + join(loaded, ", ") + ")");
    if (!refused.empty())
      line += "; " + std::to_string(refused.size()) + " refused (" + join(refused, ", ") +
              "): `reelctl plugins` says why";
    kv.add("plugins", line, refused.empty() ? Color::none : Color::yellow);
  }
  if (status.contains("device_source")) kv.add("device probe", or_dash(json_str(status, "device_source")));
  kv.add("socket", or_dash(json_str(status, "socket")));
  kv.add("state dir", or_dash(json_str(status, "state_dir")));
  std::string out = kv.render(style);

  Json devices = array_or_empty(field(status, "devices"));
  if (!devices.empty()) {
    Table t({"DEVICE", "KIND", "TOTAL", "RESERVED", "OTHERS", "RUNNING", "IDLE-MODELS", "FREE"});
    for (const auto& d : devices) {
      std::string kind;
      if (!json_bool(d, "gpu", true)) {
        kind = "host RAM";
      } else {
        kind = json_str(d, "name");
        if (kind.empty()) kind = "GPU";
        if (json_bool(d, "simulated") && kind.find("simulated") == std::string::npos) kind += " (simulated)";
      }
      t.add_row({{json_str(d, "id", "?"), Color::bold}, {kind}, {bytes_cell(d, "total_bytes")},
                 {bytes_cell(d, "reserve_bytes")}, {bytes_cell(d, "foreign_bytes")}, {bytes_cell(d, "running_bytes")},
                 {bytes_cell(d, "idle_resident_bytes")}, {bytes_cell(d, "free_bytes"), Color::green}});
    }
    out += "\ndevices:\n" + t.render(style);
  }

  if (Json workers = field(status, "workers"); workers.is_array()) {
    if (workers.empty()) {
      out += "\nworkers: none\n";
    } else {
      Table t({"MODEL", "DEVICE", "RUNG", "STATE", "PID", "JOB", "KEEP-ALIVE"});
      for (const auto& w : workers) {
        std::string st = json_str(w, "state", "?");
        int64_t pid = json_int(w, "pid", -1);
        t.add_row({{json_str(w, "model", "?")}, {or_dash(json_str(w, "device"))}, {or_dash(json_str(w, "rung"))},
                   {st, st == "busy" ? Color::cyan : st == "idle" ? Color::none : Color::yellow},
                   {pid > 0 ? std::to_string(pid) : "-"}, {or_dash(json_str(w, "job"))},
                   {has_number(w, "keep_alive_left_s")
                        ? format_duration(json_int(w, "keep_alive_left_s") * 1000, 2) + " left"
                        : "-"}});
      }
      out += "\nworkers:\n" + t.render(style);
    }
  }

  Json running = array_or_empty(field(status, "running"));
  if (!running.empty()) out += "\nrunning:\n" + render_job_table(running, now_ms, style);
  return out;
}

std::string render_plugins(const Json& plugins, const Style& style) {
  Table t({"SOURCE", "NAME", "VERSION", "STATE", "MODELS/ERROR"});
  for (const auto& p : array_or_empty(plugins)) {
    bool loaded = json_bool(p, "loaded");
    std::vector<std::string> models;
    for (const auto& m : array_or_empty(field(p, "models"))) models.push_back(m.is_string() ? m.get<std::string>() : compact(m));
    t.add_row({{json_str(p, "source", "?")}, {or_dash(json_str(p, "name"))}, {or_dash(json_str(p, "version"))},
               {loaded ? "loaded" : "refused", loaded ? Color::green : Color::red},
               {loaded ? or_dash(join(models, ", ")) : or_dash(json_str(p, "error")),
                loaded ? Color::none : Color::red}});
  }
  return t.render(style);
}

std::string render_watches(const Json& watches, int64_t now_ms, const Style& style) {
  if (array_or_empty(watches).empty())
    return "no watched folders; add [[watch]] tables to reeld.toml (docs/WATCH.md) and reload reeld\n";
  Table t({"PATH", "MODE", "PENDING", "PROCESSING", "DONE", "FAILED", "LAST ERROR"});
  for (const auto& w : array_or_empty(watches)) {
    std::string mode = json_str(w, "mode", "?");
    std::string error = json_str(w, "last_error");
    if (!error.empty() && json_int(w, "last_error_at") > 0)
      error = age_of(json_int(w, "last_error_at"), now_ms) + " ago: " + error;
    int64_t failed = json_int(w, "failed");
    t.add_row({{json_str(w, "path", "?"), Color::bold},
               {mode, mode == "stopped" ? Color::red : Color::none},
               {std::to_string(json_int(w, "pending"))},
               {std::to_string(json_int(w, "processing"))},
               {std::to_string(json_int(w, "done"))},
               {std::to_string(failed), failed > 0 ? Color::yellow : Color::none},
               {or_dash(error), mode == "stopped" ? Color::red : Color::none}});
  }
  return t.render(style);
}

std::string render_model_list(const Json& models, const Style& style) {
  Table t({"NAME", "PROVIDER", "DESCRIPTION"});
  for (const auto& m : array_or_empty(models))
    t.add_row({{json_str(m, "name", "?"), Color::bold}, {or_dash(json_str(m, "provider"))},
               {json_str(m, "description")}});
  return t.render(style);
}

std::string render_model_details(const Json& model, const Style& style) {
  KeyValues kv;
  kv.add("model", json_str(model, "name", "?"), Color::bold);
  kv.add("provider", or_dash(json_str(model, "provider")));
  kv.add("description", or_dash(json_str(model, "description")));
  std::vector<std::string> outputs;
  for (const auto& o : array_or_empty(field(model, "outputs"))) outputs.push_back(o.is_string() ? o.get<std::string>() : compact(o));
  kv.add("outputs", or_dash(join(outputs, ", ")));
  std::string out = kv.render(style);
  Json limits = array_or_empty(field(model, "limits"));
  if (!limits.empty()) {
    out += "\nlimits:\n";
    for (const auto& l : limits) out += "  " + (l.is_string() ? l.get<std::string>() : compact(l)) + "\n";
  }
  Json params = array_or_empty(field(model, "params"));
  if (!params.empty()) {
    Table t({"PARAM", "TYPE", "RANGE", "DEFAULT", "HELP"});
    for (const auto& p : params) {
      Json def = field(p, "default");
      std::string range;
      Json min = field(p, "min"), max = field(p, "max");
      if (!min.is_null() || !max.is_null())
        range = (min.is_null() ? "" : compact(min)) + ".." + (max.is_null() ? "" : compact(max));
      for (const auto& c : array_or_empty(field(p, "choices")))
        range += (range.empty() ? "" : "|") + (c.is_string() ? c.get<std::string>() : compact(c));
      t.add_row({{json_str(p, "name", "?")}, {json_str(p, "type", "?")}, {or_dash(range)},
                 {def.is_null() ? "(required)" : compact(def)}, {json_str(p, "help")}});
    }
    out += "\nparams:\n" + t.render(style);
  }
  Json inputs = array_or_empty(field(model, "inputs"));
  if (!inputs.empty()) {
    Table t({"INPUT", "REQUIRED", "HELP"});
    for (const auto& i : inputs)
      t.add_row({{json_str(i, "role", "?")}, {json_bool(i, "required") ? "yes" : "no"}, {json_str(i, "help")}});
    out += "\ninputs:\n" + t.render(style);
  }
  Json ladder = array_or_empty(field(model, "ladder"));
  if (!ladder.empty()) {
    Table t({"RUNG", "KIND", "HELP"});
    for (const auto& r : ladder) {
      std::string kind = json_str(r, "kind", "placement");
      t.add_row({{json_str(r, "name", "?")}, {kind, kind == "quality" ? Color::yellow : Color::none},
                 {json_str(r, "help")}});
    }
    out += "\nladder (best first; placement rungs keep the output, quality rungs lower it):\n" + t.render(style);
  }
  return out;
}

std::string render_final(const Json& job, const Style& style) {
  std::string state = json_str(job, "state", "?");
  std::string out = json_str(job, "id", "?") + " " + style.paint(state, state_color(state)) + "\n";
  for (const auto& o : array_or_empty(field(job, "outputs")))
    out += "  " + (o.is_string() ? o.get<std::string>() : compact(o)) + "\n";
  return out;
}

}  // namespace reel::ctl
