#include "views.hpp"

#include <sstream>

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

}  // namespace

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

std::string render_job_details(const Json& job, const Json& events, int64_t now_ms, const Style& style) {
  KeyValues kv;
  std::string state = display_state(job);
  kv.add("id", json_str(job, "id", "?"), Color::bold);
  kv.add("state", state, state_color(state));
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
  if (!json_str(job, "rung").empty()) kv.add("rung", json_str(job, "rung"));
  if (Json policy = field(job, "policy"); policy.is_object() && !policy.empty()) kv.add("policy", compact(policy));
  if (json_bool(job, "cancel_requested")) kv.add("cancel", "requested", Color::yellow);
  for (const auto& o : array_or_empty(field(job, "outputs")))
    kv.add("output", o.is_string() ? o.get<std::string>() : compact(o));
  if (!json_str(job, "error").empty()) kv.add("error", json_str(job, "error"), Color::red);

  std::string out = kv.render(style);
  Json evs = array_or_empty(events);
  if (!evs.empty()) {
    Table t({"SEQ", "TIME", "KIND", "DETAILS"});
    for (const auto& e : evs)
      t.add_row({{std::to_string(json_int(e, "seq"))},
                 {format_timestamp(json_int(e, "at"))},
                 {json_str(e, "kind", "?")},
                 {describe_event(e)}});
    out += "\nevents:\n" + t.render(style);
  }
  return out;
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
  kv.add("socket", or_dash(json_str(status, "socket")));
  kv.add("state dir", or_dash(json_str(status, "state_dir")));
  std::string out = kv.render(style);
  Json running = array_or_empty(field(status, "running"));
  if (!running.empty()) out += "\nrunning:\n" + render_job_table(running, now_ms, style);
  return out;
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
  std::string out = kv.render(style);
  Json params = array_or_empty(field(model, "params"));
  if (!params.empty()) {
    Table t({"PARAM", "TYPE", "DEFAULT", "RANGE", "HELP"});
    for (const auto& p : params) {
      Json def = field(p, "default");
      std::string range;
      Json min = field(p, "min"), max = field(p, "max");
      if (!min.is_null() || !max.is_null())
        range = (min.is_null() ? "" : compact(min)) + ".." + (max.is_null() ? "" : compact(max));
      for (const auto& c : array_or_empty(field(p, "choices")))
        range += (range.empty() ? "" : "|") + (c.is_string() ? c.get<std::string>() : compact(c));
      t.add_row({{json_str(p, "name", "?")}, {json_str(p, "type", "?")},
                 {def.is_null() ? "(required)" : compact(def)}, {or_dash(range)}, {json_str(p, "help")}});
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
