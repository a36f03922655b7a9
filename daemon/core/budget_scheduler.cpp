// The VRAM-budget scheduler (budget_scheduler.hpp); docs/SCHEDULER.md states the rules.
//
// One pass over the queue in effective-priority order against a ledger of what every
// device has left. The ledger starts from what is running and resident and is updated
// after each decision (start, evict), so later jobs in the same round see earlier ones.
#include "core/budget_scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>

#include "core/messages.hpp"
#include "core/priority.hpp"

namespace reel {

namespace {
constexpr const char* kRemotePrefix = "remote:";
}  // namespace

// ---- format_bytes ----

std::string format_bytes(int64_t bytes) {
  const bool neg = bytes < 0;
  const uint64_t mag = neg ? uint64_t(0) - uint64_t(bytes) : uint64_t(bytes);
  const std::string sign = neg ? "-" : "";
  if (mag < 1024) return sign + std::to_string(mag) + " B";
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = double(mag) / 1024.0;
  std::size_t u = 0;
  // Move up while the rounded figure would read 1024.0 or more ("1024.0 KiB" -> "1.0 MiB").
  while (u + 1 < std::size(kUnits) && std::round(v * 10) / 10 >= 1024.0) v /= 1024.0, ++u;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return sign + buf;
}

// ---- parse_job_policy ----

namespace {

const std::vector<std::string> kPolicyKeys = {"rung",        "quality_fallback", "no_quality_loss",
                                              "degrade_now", "max_slowdown",     "floor"};
const std::vector<std::string> kFloorKeys = {"steps", "frames", "size", "precision"};
const std::vector<std::string> kPrecisions = {"fp32", "bf16", "fp16", "fp8", "int8"};

[[noreturn]] void bad_policy(const std::string& field, const std::string& why) {
  throw std::invalid_argument("policy." + field + ": " + why);
}

void check_keys(const Json& obj, const std::string& prefix, const std::vector<std::string>& keys) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(keys.begin(), keys.end(), it.key()) != keys.end()) continue;
    std::string hint = did_you_mean(it.key(), keys);
    bad_policy(prefix + it.key(), "unknown key" + (hint.empty() ? "; keys: " + join(keys) : hint));
  }
}

bool policy_bool(const std::string& field, const Json& v) {
  if (!v.is_boolean()) bad_policy(field, "expected a boolean, got " + describe_value(v));
  return v.get<bool>();
}

int64_t policy_positive_int(const std::string& field, const Json& v) {
  if (!v.is_number_integer()) bad_policy(field, "expected an integer, got " + describe_value(v));
  const double inf = std::numeric_limits<double>::infinity();
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    bad_policy(field, out_of_range(1, inf, v.dump()));
  int64_t x = v.get<int64_t>();
  if (x < 1) bad_policy(field, out_of_range(1, inf, v.dump()));
  return x;
}

}  // namespace

JobPolicy parse_job_policy(const Json& policy, bool default_quality_fallback) {
  JobPolicy p;
  p.quality_fallback = default_quality_fallback;
  if (policy.is_null()) return p;
  if (!policy.is_object())
    throw std::invalid_argument("policy: expected an object, got " + describe_value(policy));
  check_keys(policy, "", kPolicyKeys);
  if (auto it = policy.find("rung"); it != policy.end()) {
    if (!it->is_string()) bad_policy("rung", "expected a string, got " + describe_value(*it));
    p.pin_rung = it->get<std::string>();
    if (p.pin_rung.empty()) bad_policy("rung", "must not be empty");
  }
  if (auto it = policy.find("quality_fallback"); it != policy.end())
    p.quality_fallback = policy_bool("quality_fallback", *it);
  if (auto it = policy.find("no_quality_loss"); it != policy.end())
    if (policy_bool("no_quality_loss", *it)) p.quality_fallback = false;
  if (auto it = policy.find("degrade_now"); it != policy.end()) p.degrade_now = policy_bool("degrade_now", *it);
  if (auto it = policy.find("max_slowdown"); it != policy.end()) {
    if (!it->is_number()) bad_policy("max_slowdown", "expected a number, got " + describe_value(*it));
    double x = it->get<double>();
    if (!std::isfinite(x) || x <= 0) bad_policy("max_slowdown", "must be greater than 0, got " + it->dump());
    p.max_slowdown = x;
  }
  if (auto it = policy.find("floor"); it != policy.end()) {
    const Json& f = *it;
    if (!f.is_object()) bad_policy("floor", "expected an object, got " + describe_value(f));
    check_keys(f, "floor.", kFloorKeys);
    if (auto s = f.find("steps"); s != f.end()) p.min_steps = policy_positive_int("floor.steps", *s);
    if (auto s = f.find("frames"); s != f.end()) p.min_frames = policy_positive_int("floor.frames", *s);
    if (auto s = f.find("size"); s != f.end()) p.min_size = policy_positive_int("floor.size", *s);
    if (auto s = f.find("precision"); s != f.end()) {
      if (!s->is_string()) bad_policy("floor.precision", "expected a string, got " + describe_value(*s));
      std::string prec = s->get<std::string>();
      if (std::find(kPrecisions.begin(), kPrecisions.end(), prec) == kPrecisions.end())
        bad_policy("floor.precision", not_one_of(kPrecisions, prec));
      p.min_precision = prec;
    }
  }
  return p;
}

// ---- schedule_jobs ----

namespace {

// fp32 > bf16 = fp16 > fp8 = int8; anything else ranks below every floor.
int precision_rank(const std::string& p) {
  if (p == "fp32") return 3;
  if (p == "bf16" || p == "fp16") return 2;
  if (p == "fp8" || p == "int8") return 1;
  return 0;
}

std::optional<int64_t> effective_int(const Json& eff, const char* key) {
  if (!eff.is_object()) return std::nullopt;
  auto it = eff.find(key);
  if (it == eff.end() || !it->is_number()) return std::nullopt;
  return it->get<int64_t>();
}

// Why a quality rung is below the job's floor, or "" when it is not.
std::string below_floor(const RungEstimate& r, const JobPolicy& p) {
  const Json& eff = r.effective;
  auto check = [](const char* what, std::optional<int64_t> have, std::optional<int64_t> floor) -> std::string {
    if (!have || !floor || *have >= *floor) return "";
    return std::string(what) + " " + std::to_string(*have) + " is below the floor " + std::to_string(*floor);
  };
  if (auto w = check("steps", effective_int(eff, "steps"), p.min_steps); !w.empty()) return w;
  if (auto w = check("frames", effective_int(eff, "frames"), p.min_frames); !w.empty()) return w;
  auto width = effective_int(eff, "width"), height = effective_int(eff, "height");
  std::optional<int64_t> size = width && height ? std::min(*width, *height) : width ? width : height;
  if (auto w = check("size", size, p.min_size); !w.empty()) return w;
  if (!p.min_precision.empty() && eff.is_object()) {
    auto it = eff.find("precision");
    if (it != eff.end() && it->is_string()) {
      std::string prec = it->get<std::string>();
      if (precision_rank(prec) < precision_rank(p.min_precision))
        return "precision " + prec + " is below the floor " + p.min_precision;
    }
  }
  return "";
}

// The rule behind rung_allowed(), over an explicit plan (schedule_jobs gives an
// unplanned job a one-rung plan of its own).
std::string rung_excluded(const std::vector<RungEstimate>& plan, int i, const JobPolicy& policy, int min_rung) {
  if (i < 0 || i >= int(plan.size())) return "no rung at index " + std::to_string(i);
  const RungEstimate& r = plan[i];
  const bool pinned = !policy.pin_rung.empty();
  if (pinned && r.rung != policy.pin_rung) return "not the pinned rung '" + policy.pin_rung + "'";
  if (i < min_rung) return "before min_rung " + std::to_string(min_rung) + " (a better rung ran out of memory)";
  if (r.quality && !policy.quality_fallback && !pinned) return "quality rung; quality fallback not allowed";
  if (policy.max_slowdown > 0 && r.relative_time > policy.max_slowdown)
    return "relative time " + format_number(r.relative_time) + " exceeds max_slowdown " +
           format_number(policy.max_slowdown);
  if (r.quality) return below_floor(r, policy);
  return "";
}

struct DevState {
  explicit DevState(DeviceBudget budget) : b(std::move(budget)) {}
  DeviceBudget b;
  int64_t used = 0;          // ours: running jobs, resident models, worker overheads
  std::string reserved_by;   // a higher-priority job waiting for this device, this round
  int64_t capacity() const { return b.total_bytes - b.reserve_bytes - b.foreign_bytes; }
  int64_t free() const { return capacity() - used; }
  // What one new worker could use if none of our work were here.
  int64_t idle_offer() const { return capacity() - b.per_worker_overhead; }
};

struct Res {
  ResidentModel r;
  bool busy = false;
  bool gone = false;      // evicted this round
  bool claimed = false;   // reused by a job started this round
  bool available() const { return !busy && !gone && !claimed; }
};

struct Fit {
  int dev = -1;
  bool fits = false;
  int reuse = -1;                 // index into residents
  std::vector<int> evict;         // indices into residents, in eviction order
  int64_t need_dev = 0, free_dev = 0, need_host = 0, free_host = 0;
  int64_t short_dev = 0, short_host = 0;  // shortfall even after evicting every idle model
  bool reserved = false;
  std::string why;
};

class Round {
 public:
  explicit Round(const SchedulerInput& in) : in_(in) {
    for (const auto& d : in.devices) devs_.emplace_back(d);
    std::stable_sort(devs_.begin(), devs_.end(), [](const DevState& a, const DevState& b) {
      return a.b.id < b.b.id;
    });
    for (std::size_t i = 0; i < devs_.size(); ++i)
      if (!devs_[i].b.gpu && host_ < 0) host_ = int(i);
    if (host_ < 0) {  // no host budget given: host RAM is not limited
      DeviceBudget unlimited;
      unlimited.id = "cpu";
      unlimited.gpu = false;
      unlimited.total_bytes = std::numeric_limits<int64_t>::max() / 4;
      devs_.emplace_back(unlimited);
      host_ = int(devs_.size()) - 1;
    }
    account_current();
  }

  SchedulerOutput run();

 private:
  int find_dev(const std::string& id) const {
    for (std::size_t i = 0; i < devs_.size(); ++i)
      if (devs_[i].b.id == id) return int(i);
    return -1;
  }
  int64_t gpu_overhead(int d) const { return d >= 0 && devs_[d].b.gpu ? devs_[d].b.per_worker_overhead : 0; }
  int64_t host_overhead() const { return devs_[host_].b.per_worker_overhead; }

  // A worker process on `device` holding these bytes: its GPU bytes and that GPU's
  // per-worker overhead (GPU devices only), its host bytes and the host's overhead.
  void charge(const std::string& device, int64_t dev_bytes, int64_t host_bytes, int sign) {
    int d = find_dev(device);
    if (d >= 0 && devs_[d].b.gpu) devs_[d].used += sign * (dev_bytes + gpu_overhead(d));
    devs_[host_].used += sign * (host_bytes + host_overhead());
  }

  void account_current() {
    for (const auto& r : in_.resident) res_.push_back({r, r.busy});
    std::vector<bool> matched(res_.size(), false);
    for (const auto& rj : in_.running) {
      // The worker running it: a busy resident of its model on its device (same rung preferred).
      int best = -1;
      for (std::size_t i = 0; i < res_.size(); ++i) {
        const auto& r = res_[i].r;
        if (!res_[i].busy || matched[i] || r.model != rj.model || r.device != rj.device) continue;
        if (best < 0 || (r.rung == rj.rung && res_[best].r.rung != rj.rung)) best = int(i);
      }
      if (best >= 0) {
        matched[best] = true;
        const auto& r = res_[best].r;
        charge(rj.device, std::max(rj.device_bytes, r.device_bytes), std::max(rj.host_bytes, r.host_bytes), +1);
      } else {
        charge(rj.device, rj.device_bytes, rj.host_bytes, +1);
      }
    }
    for (std::size_t i = 0; i < res_.size(); ++i)
      if (!matched[i]) charge(res_[i].r.device, res_[i].r.device_bytes, res_[i].r.host_bytes, +1);
  }

  // Devices a rung can run on: the host for cpu_only rungs, else every GPU.
  std::vector<int> devices_for(const RungEstimate& e) const {
    std::vector<int> out;
    for (std::size_t i = 0; i < devs_.size(); ++i)
      if (e.cpu_only ? int(i) == host_ : devs_[i].b.gpu) out.push_back(int(i));
    return out;
  }

  Fit fit_idle(const RungEstimate& e, int d) const;
  Fit fit_now(const PlannedJob& pj, const RungEstimate& e, int d) const;
  std::vector<int> idle_lru(const std::string& device, int except) const;

  const SchedulerInput& in_;
  std::vector<DevState> devs_;
  int host_ = -1;
  std::vector<Res> res_;
};

std::vector<int> Round::idle_lru(const std::string& device, int except) const {
  std::vector<int> out;
  for (std::size_t i = 0; i < res_.size(); ++i)
    if (res_[i].available() && int(i) != except && (device.empty() || res_[i].r.device == device))
      out.push_back(int(i));
  std::stable_sort(out.begin(), out.end(), [&](int a, int b) {
    if (res_[a].r.last_used != res_[b].r.last_used) return res_[a].r.last_used < res_[b].r.last_used;
    if (res_[a].r.device != res_[b].r.device) return res_[a].r.device < res_[b].r.device;
    return res_[a].r.model < res_[b].r.model;
  });
  return out;
}

// Does the rung fit device d if none of our work were on it (nor on the host)?
Fit Round::fit_idle(const RungEstimate& e, int d) const {
  Fit f;
  f.dev = d;
  const DevState& h = devs_[host_];
  f.need_host = e.host_bytes;
  f.free_host = h.idle_offer();
  if (!e.cpu_only) {
    f.need_dev = e.device_bytes;
    f.free_dev = devs_[d].idle_offer();
    if (f.need_dev > f.free_dev) {
      f.why = "needs " + format_bytes(f.need_dev) + " GPU memory, " + devs_[d].b.id + " offers " +
              format_bytes(f.free_dev) + " even when idle";
      return f;
    }
  }
  if (f.need_host > f.free_host) {
    f.why = "needs " + format_bytes(f.need_host) + " host RAM, the host offers " + format_bytes(f.free_host) +
            " even when idle";
    return f;
  }
  f.fits = true;
  f.why = "fits when idle";
  return f;
}

// Does the rung fit device d now, evicting idle resident models (LRU first) if needed?
Fit Round::fit_now(const PlannedJob& pj, const RungEstimate& e, int d) const {
  Fit f;
  f.dev = d;
  const DevState& dev = devs_[d];
  const bool gpu = !e.cpu_only;
  // Reuse an idle worker of this model at this rung on this device (most recently used).
  for (std::size_t i = 0; i < res_.size(); ++i) {
    const auto& r = res_[i].r;
    if (!res_[i].available() || r.model != pj.job.model || r.device != dev.b.id || r.rung != e.rung) continue;
    if (f.reuse < 0 || r.last_used > res_[f.reuse].r.last_used) f.reuse = int(i);
  }
  if (f.reuse >= 0) {
    const auto& r = res_[f.reuse].r;
    f.need_dev = gpu ? std::max<int64_t>(0, e.device_bytes - r.device_bytes) : 0;
    f.need_host = std::max<int64_t>(0, e.host_bytes - r.host_bytes);
  } else {
    f.need_dev = gpu ? e.device_bytes + gpu_overhead(d) : 0;
    f.need_host = e.host_bytes + host_overhead();
  }
  f.free_dev = gpu ? dev.free() : 0;
  f.free_host = devs_[host_].free();
  if (!dev.reserved_by.empty()) {
    f.reserved = true;
    f.why = dev.b.id + " is held for higher-priority job '" + dev.reserved_by + "'";
    return f;
  }
  int64_t fd = f.free_dev, fh = f.free_host;
  std::vector<bool> taken(res_.size(), false);
  auto evict = [&](int i) {
    const auto& r = res_[i].r;
    int rd = find_dev(r.device);
    if (rd == d) fd += r.device_bytes + gpu_overhead(rd);
    fh += r.host_bytes + host_overhead();
    taken[i] = true;
    f.evict.push_back(i);
  };
  if (gpu && fd < f.need_dev) {
    for (int i : idle_lru(dev.b.id, f.reuse)) {
      if (fd >= f.need_dev) break;
      evict(i);
    }
    if (fd < f.need_dev) {
      f.short_dev = f.need_dev - fd;
      f.why = "needs " + format_bytes(f.need_dev) + " GPU memory, " + format_bytes(f.free_dev) + " free" +
              (fd != f.free_dev ? " (" + format_bytes(fd) + " with idle models evicted)" : "");
      f.evict.clear();
      return f;
    }
  }
  if (fh < f.need_host) {
    for (int i : idle_lru("", f.reuse)) {
      if (fh >= f.need_host) break;
      if (!taken[i]) evict(i);
    }
    if (fh < f.need_host) {
      f.short_host = f.need_host - fh;
      f.why = "needs " + format_bytes(f.need_host) + " host RAM, " + format_bytes(f.free_host) + " free" +
              (fh != f.free_host ? " (" + format_bytes(fh) + " with idle models evicted)" : "");
      f.evict.clear();
      return f;
    }
  }
  f.fits = true;
  if (gpu)
    f.why = "fits: needs " + format_bytes(f.need_dev) + " GPU memory, " + format_bytes(f.free_dev) + " free";
  else
    f.why = "fits: needs " + format_bytes(f.need_host) + " host RAM, " + format_bytes(f.free_host) + " free";
  if (f.reuse >= 0) f.why += "; reuses the idle worker";
  if (!f.evict.empty()) {
    std::vector<std::string> names;
    for (int i : f.evict) names.push_back("'" + res_[i].r.model + "'");
    f.why += "; after evicting " + join(names);
  }
  return f;
}

Json considered_entry(const RungEstimate& e, const std::string& device, const char* phase, const Fit& f) {
  return Json{{"rung", e.rung}, {"device", device}, {"phase", phase}, {"fits", f.fits}, {"why", f.why}};
}

SchedulerOutput Round::run() {
  SchedulerOutput out;
  const SchedulerPolicy& pol = in_.policy;
  std::map<std::string, int> pool_running, pool_started;   // started: this round
  for (const auto& r : in_.running)
    if (is_remote_device(r.device)) ++pool_running[r.device.substr(std::strlen(kRemotePrefix))];

  std::vector<const PlannedJob*> order;
  for (const auto& pj : in_.queued)
    if (pj.job.state == JobState::queued) order.push_back(&pj);
  auto prio = [&](const PlannedJob* p) { return effective_priority(p->job, in_.now, pol.aging_seconds); };
  std::stable_sort(order.begin(), order.end(), [&](const PlannedJob* a, const PlannedJob* b) {
    double pa = prio(a), pb = prio(b);
    if (pa != pb) return pa > pb;
    if (a->job.created_at != b->job.created_at) return a->job.created_at < b->job.created_at;
    return a->job.id < b->job.id;
  });

  int running = 0;   // local jobs only: remote ones have their pools
  for (const auto& r : in_.running) running += !is_remote_device(r.device);
  const bool halted = pol.paused || pol.draining;
  auto slot_reason = [&] {
    return "waiting for a free slot: " + std::to_string(running) + " of " + std::to_string(pol.max_concurrent_jobs) +
           " jobs running";
  };
  int past_cap = 0;          // local jobs seen since the cap was reached
  std::string past_window;   // their reason: `running` no longer changes once the cap is reached

  for (const PlannedJob* pj : order) {
    const Job& job = pj->job;
    if (!halted && pj->remote_pool.empty() && running >= pol.max_concurrent_jobs &&
        ++past_cap > pol.explained_waiting_jobs) {
      if (past_window.empty()) past_window = slot_reason();
      out.waiting.push_back({job.id, past_window, Json::object()});
      continue;
    }
    const bool unplanned = pj->plan.empty();
    std::vector<RungEstimate> plan = pj->plan;
    if (unplanned) {
      RungEstimate def;
      def.rung = "default";
      def.cpu_only = true;
      plan.push_back(def);
    }
    const JobPolicy& policy = pj->policy;
    const int min_rung = std::max(pj->min_rung, job.min_rung);
    Json explain = Json::object();
    Json considered = Json::array();
    Json excluded = Json::array();

    auto fail = [&](const std::string& message) {
      Decision d;
      d.kind = Decision::Kind::fail;
      d.job_id = job.id;
      d.model = job.model;
      explain["considered"] = considered;
      explain["excluded"] = excluded;
      d.explain = explain;
      d.message = message;
      out.decisions.push_back(std::move(d));
    };
    auto wait = [&](const std::string& reason) {
      explain["considered"] = considered;
      explain["excluded"] = excluded;
      out.waiting.push_back({job.id, reason, explain});
    };

    // 1. Allowed rungs.
    std::vector<std::string> names;
    for (const auto& r : plan) names.push_back(r.rung);
    if (!policy.pin_rung.empty() && std::find(names.begin(), names.end(), policy.pin_rung) == names.end()) {
      fail("policy.rung: model '" + job.model + "' has no rung '" + policy.pin_rung + "'" +
           did_you_mean(policy.pin_rung, names) + "; rungs: " + join(names));
      continue;
    }
    std::vector<int> allowed;
    std::vector<std::string> not_allowed;  // "'rung' (why)", for the no-rung message
    const bool pinned = !policy.pin_rung.empty();
    for (int i = 0; i < int(plan.size()); ++i) {
      const RungEstimate& r = plan[i];
      std::string why = rung_excluded(plan, i, policy, min_rung);
      if (why.empty()) {
        allowed.push_back(i);
      } else {
        excluded.push_back(Json{{"rung", r.rung}, {"why", why}});
        if (!pinned || r.rung == policy.pin_rung) not_allowed.push_back("'" + r.rung + "' (" + why + ")");
      }
    }
    if (allowed.empty()) {
      fail("no rung of model '" + job.model + "' is allowed for this job: " + join(not_allowed, "the plan is empty"));
      continue;
    }

    // A remote model: a slot in its pool, no memory.
    if (!pj->remote_pool.empty()) {
      const std::string& name = pj->remote_pool;
      RemotePoolBudget pool;
      pool.name = name;
      for (const auto& p : in_.pools)
        if (p.name == name) pool = p;
      int starts = pool_started[name];
      for (int64_t t : pool.recent_starts) starts += t > in_.now - 60000 && t <= in_.now;
      const int busy = pool_running[name] + pool_started[name];
      explain["pool"] = name;
      explain["running"] = busy;
      explain["max_concurrent"] = pool.max_concurrent;
      explain["starts_last_minute"] = starts;
      explain["requests_per_minute"] = pool.requests_per_minute;
      if (halted) {
        wait(pol.paused ? "scheduler is paused" : "daemon is draining: no new jobs start");
        continue;
      }
      if (busy >= pool.max_concurrent) {
        wait("waiting for a slot in remote pool '" + name + "': " + std::to_string(busy) + " of " +
             std::to_string(pool.max_concurrent) + " tasks running");
        continue;
      }
      if (pool.requests_per_minute > 0 && starts >= pool.requests_per_minute) {
        wait("waiting for remote pool '" + name + "'s rate limit: " + std::to_string(starts) +
             " jobs started in the last minute, " + std::to_string(pool.requests_per_minute) + " allowed");
        continue;
      }
      ++pool_started[name];
      const RungEstimate& e = plan[allowed.front()];
      Decision st;
      st.kind = Decision::Kind::start;
      st.job_id = job.id;
      st.model = job.model;
      st.device = remote_device(name);
      st.rung = e.rung;
      st.rung_index = allowed.front();
      explain["rung"] = e.rung;
      explain["excluded"] = excluded;
      st.explain = explain;
      st.message = "start on remote pool '" + name + "' (" + std::to_string(busy + 1) + " of " +
                   std::to_string(pool.max_concurrent) + " slots)";
      out.decisions.push_back(std::move(st));
      continue;
    }

    // 2. Target: the best allowed rung that fits some device when idle.
    int target = -1;
    for (int i : allowed) {
      if (unplanned) {
        target = i;
        break;
      }
      const RungEstimate& e = plan[i];
      bool any = false;
      Json entries = Json::array();
      for (int d : devices_for(e)) {
        Fit f = fit_idle(e, d);
        any = any || f.fits;
        entries.push_back(considered_entry(e, devs_[d].b.id, "idle", f));
      }
      if (devices_for(e).empty())
        entries.push_back(Json{{"rung", e.rung}, {"device", ""}, {"phase", "idle"}, {"fits", false},
                               {"why", "needs a GPU; there is none"}});
      if (any) {
        target = i;
        break;
      }
      for (auto& x : entries) considered.push_back(x);
    }
    if (target < 0) {
      const RungEstimate& floor = plan[allowed.back()];
      // Name the resource that stops the floor rung: the GPU unless some GPU could hold it.
      int64_t largest = 0;
      bool any_gpu = false;
      for (const auto& d : devs_) {
        if (!d.b.gpu) continue;
        largest = any_gpu ? std::max(largest, d.idle_offer()) : d.idle_offer();
        any_gpu = true;
      }
      const int64_t host_offer = devs_[host_].idle_offer();
      explain["rung"] = floor.rung;
      explain["needed_device_bytes"] = floor.cpu_only ? 0 : floor.device_bytes;
      explain["available_device_bytes"] = largest;
      explain["needed_host_bytes"] = floor.host_bytes;
      explain["available_host_bytes"] = host_offer;
      std::string head = "cannot fit on any device even when idle: needs ";
      if (!floor.cpu_only && (!any_gpu || floor.device_bytes > largest)) {
        fail(head + format_bytes(floor.device_bytes) + " GPU memory at rung '" + floor.rung + "' (its floor), " +
             (any_gpu ? "the largest device offers " + format_bytes(largest) : std::string("there is no GPU")) +
             "; lower the floor, allow quality fallback, or use a bigger GPU");
      } else {
        fail(head + format_bytes(floor.host_bytes) + " host RAM at rung '" + floor.rung + "' (its floor), the host offers " +
             format_bytes(host_offer) + "; lower the floor, allow quality fallback, or use a machine with more RAM");
      }
      continue;
    }
    explain["target_rung"] = plan[target].rung;

    // 3. Nothing starts while paused or draining, nor past the concurrency cap.
    if (halted) {
      wait(pol.paused ? "scheduler is paused" : "daemon is draining: no new jobs start");
      continue;
    }
    if (running >= pol.max_concurrent_jobs) {
      wait(slot_reason());
      continue;
    }

    // 4. Place the target now, or (degrade_now) the best allowed rung that fits now.
    auto place = [&](int i, Fit* best_out, std::vector<Fit>* all) -> bool {
      const RungEstimate& e = plan[i];
      bool found = false;
      for (int d : devices_for(e)) {
        Fit f;
        if (unplanned) {  // no estimate: not budgeted, not held back by reservations
          f.dev = d;
          f.fits = true;
          f.why = "fits: no memory estimate (unplanned model)";
        } else {
          f = fit_now(*pj, e, d);
        }
        considered.push_back(considered_entry(e, devs_[d].b.id, "now", f));
        if (all) all->push_back(f);
        if (!f.fits) continue;
        // Prefer reusing a worker, then the most free memory, then device id (devs_ is sorted).
        auto key_free = [&](const Fit& x) { return e.cpu_only ? x.free_host : x.free_dev; };
        if (!found || (f.reuse >= 0) > (best_out->reuse >= 0) ||
            ((f.reuse >= 0) == (best_out->reuse >= 0) && key_free(f) > key_free(*best_out))) {
          *best_out = f;
          found = true;
        }
      }
      return found;
    };

    Fit chosen;
    std::vector<Fit> target_fits;
    int rung_index = -1;
    if (place(target, &chosen, &target_fits)) {
      rung_index = target;
    } else if (policy.degrade_now) {
      for (int i : allowed) {
        if (i <= target) continue;
        if (place(i, &chosen, nullptr)) {
          rung_index = i;
          break;
        }
      }
    }

    if (rung_index < 0) {
      // Wait for the device the target would use, and hold it against lower-priority work.
      const RungEstimate& e = plan[target];
      int pick = -1;
      int64_t pick_short = 0;
      bool pick_reserved = true;
      for (const Fit& f : target_fits) {
        if (!fit_idle(e, f.dev).fits) continue;
        int64_t s = std::max(f.short_dev, f.short_host);
        if (pick < 0 || (pick_reserved && !f.reserved) || (pick_reserved == f.reserved && s < pick_short)) {
          pick = f.dev;
          pick_short = s;
          pick_reserved = f.reserved;
        }
      }
      const Fit* pf = nullptr;
      for (const Fit& f : target_fits)
        if (f.dev == pick) pf = &f;
      std::string id = devs_[pick].b.id;
      std::string reason;
      if (pf->reserved) {
        reason = "waiting for " + id + ", held for higher-priority job '" + devs_[pick].reserved_by + "': needs " +
                 format_bytes(e.cpu_only ? e.host_bytes : e.device_bytes) + " at '" + e.rung + "'";
      } else {
        devs_[pick].reserved_by = job.id;
        if (pf->short_dev > 0)
          reason = "waiting for " + id + ": needs " + format_bytes(pf->need_dev) + " at '" + e.rung + "', " +
                   format_bytes(pf->free_dev) + " free";
        else
          reason = "waiting for host RAM" + (e.cpu_only ? std::string() : " (for " + id + ")") + ": needs " +
                   format_bytes(pf->need_host) + " at '" + e.rung + "', " + format_bytes(pf->free_host) + " free";
        explain["reserved_device"] = id;
      }
      if (policy.degrade_now) reason += "; no allowed rung fits now either";
      explain["device"] = id;
      explain["needed_device_bytes"] = pf->need_dev;
      explain["available_device_bytes"] = pf->free_dev;
      explain["needed_host_bytes"] = pf->need_host;
      explain["available_host_bytes"] = pf->free_host;
      wait(reason);
      continue;
    }

    // 5. Start: evictions first, then the job; update the ledger for the jobs after it.
    const RungEstimate& e = plan[rung_index];
    DevState& dev = devs_[chosen.dev];
    Json evicted = Json::array();
    for (int i : chosen.evict) {
      Res& r = res_[i];
      const int rd = find_dev(r.r.device);
      int64_t freed_dev = rd >= 0 && devs_[rd].b.gpu ? r.r.device_bytes + gpu_overhead(rd) : 0;
      int64_t freed_host = r.r.host_bytes + host_overhead();
      charge(r.r.device, r.r.device_bytes, r.r.host_bytes, -1);
      r.gone = true;
      Decision ev;
      ev.kind = Decision::Kind::evict;
      ev.model = r.r.model;
      ev.device = r.r.device;
      ev.rung = r.r.rung;
      ev.message = "evicting idle model '" + r.r.model + "' (rung '" + r.r.rung + "') from " + r.r.device +
                   " to make room for job '" + job.id + "': frees " + format_bytes(freed_dev) + " GPU memory, " +
                   format_bytes(freed_host) + " host RAM";
      ev.explain = Json{{"for_job", job.id},
                        {"freed_device_bytes", freed_dev},
                        {"freed_host_bytes", freed_host},
                        {"last_used", r.r.last_used}};
      out.decisions.push_back(std::move(ev));
      evicted.push_back(Json{{"model", r.r.model}, {"device", r.r.device}, {"rung", r.r.rung}});
    }
    if (!unplanned) {
      if (chosen.reuse >= 0) res_[chosen.reuse].claimed = true;
      if (!e.cpu_only) dev.used += chosen.need_dev;
      devs_[host_].used += chosen.need_host;
    }
    ++running;

    Decision st;
    st.kind = Decision::Kind::start;
    st.job_id = job.id;
    st.model = job.model;
    st.device = dev.b.id;
    st.rung = e.rung;
    st.rung_index = rung_index;
    explain["rung"] = e.rung;
    explain["degraded"] = rung_index != target;
    explain["reuses_worker"] = chosen.reuse >= 0;
    explain["needed_device_bytes"] = chosen.need_dev;
    explain["available_device_bytes"] = chosen.free_dev;
    explain["needed_host_bytes"] = chosen.need_host;
    explain["available_host_bytes"] = chosen.free_host;
    explain["evicted"] = evicted;
    explain["considered"] = considered;
    explain["excluded"] = excluded;
    st.explain = explain;
    st.message = "start on " + dev.b.id + " at rung '" + e.rung + "'" +
                 (rung_index != target ? " (degraded from '" + plan[target].rung + "', which does not fit now)" : "");
    out.decisions.push_back(std::move(st));
  }
  return out;
}

}  // namespace

SchedulerOutput schedule_jobs(const SchedulerInput& in) { return Round(in).run(); }

std::string remote_device(const std::string& pool) { return kRemotePrefix + pool; }
bool is_remote_device(const std::string& device) { return device.rfind(kRemotePrefix, 0) == 0; }

bool rung_allowed(const PlannedJob& job, int index, std::string* why) {
  std::string w = rung_excluded(job.plan, index, job.policy, std::max(job.min_rung, job.job.min_rung));
  if (why) *why = w;
  return w.empty();
}

}  // namespace reel
