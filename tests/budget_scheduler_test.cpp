// Table tests for the VRAM-budget scheduler (core/budget_scheduler.hpp, docs/SCHEDULER.md).
//
// Each row is a named situation: devices, what runs and is resident, the queue; the
// expectation is the decisions in order plus the waiting jobs, written compactly:
//   "evict <model>/<rung>@<device>", "start <job>@<device>:<rung>", "fail <job>", "wait <job>"
// and, per job, a substring its fail message or waiting reason must contain.
#include <gtest/gtest.h>

#include <stdexcept>

#include "core/budget_scheduler.hpp"

namespace reel {
namespace {

constexpr int64_t KiB = 1024;
constexpr int64_t MiB = 1024 * KiB;
constexpr int64_t GiB = 1024 * MiB;
constexpr int64_t t0 = 10'000'000;

// ---- builders ----

RungEstimate placement(std::string name, double dev_gib, double host_gib, double rel = 1.0) {
  RungEstimate r;
  r.rung = std::move(name);
  r.device_bytes = int64_t(dev_gib * GiB);
  r.host_bytes = int64_t(host_gib * GiB);
  r.resident_device_bytes = r.device_bytes;
  r.resident_host_bytes = r.host_bytes;
  r.relative_time = rel;
  return r;
}

RungEstimate cpu_rung(std::string name, double host_gib, double rel) {
  RungEstimate r = placement(std::move(name), 0, host_gib, rel);
  r.cpu_only = true;
  return r;
}

RungEstimate quality(std::string name, double dev_gib, double host_gib, Json effective, double rel = 1.0) {
  RungEstimate r = placement(std::move(name), dev_gib, host_gib, rel);
  r.quality = true;
  r.effective = std::move(effective);
  return r;
}

// "wan": the video model of most rows. Placement rungs first, then quality rungs.
std::vector<RungEstimate> wan_ladder() {
  return {placement("resident", 20, 4),
          placement("offload", 12, 16, 2),
          cpu_rung("cpu", 40, 20),
          quality("fp8", 8, 4, Json{{"steps", 50}, {"frames", 81}, {"width", 1280}, {"height", 720}, {"precision", "fp8"}}),
          quality("480p", 6, 4, Json{{"steps", 50}, {"frames", 81}, {"width", 832}, {"height", 480}, {"precision", "bf16"}}),
          quality("steps-20", 6, 4, Json{{"steps", 20}, {"width", 832}, {"height", 480}})};
}

// The same without the cpu rung, for rows about GPU limits.
std::vector<RungEstimate> big_ladder() {
  auto l = wan_ladder();
  l.erase(l.begin() + 2);
  return l;
}

PlannedJob job(std::string id, std::string model, std::vector<RungEstimate> plan, int priority = 0,
               int64_t created_at = t0) {
  PlannedJob p;
  p.job.id = std::move(id);
  p.job.model = std::move(model);
  p.job.priority = priority;
  p.job.created_at = created_at;
  p.plan = std::move(plan);
  return p;
}
PlannedJob wan(std::string id, int priority = 0, int64_t created_at = t0) {
  return job(std::move(id), "wan", wan_ladder(), priority, created_at);
}
PlannedJob big(std::string id, int priority = 0) { return job(std::move(id), "big", big_ladder(), priority); }
PlannedJob tiny(std::string id, double gib = 2, int priority = 0) {
  return job(std::move(id), "tiny", {placement("gpu", gib, 1)}, priority);
}
PlannedJob with_policy(PlannedJob p, const Json& policy) {
  p.policy = parse_job_policy(policy, false);
  return p;
}
PlannedJob with_min_rung(PlannedJob p, int r) {
  p.min_rung = r;
  return p;
}

DeviceBudget gpu(std::string id, double gib, double reserve_gib = 0, double overhead_gib = 0) {
  return DeviceBudget{std::move(id), true, int64_t(gib * GiB), int64_t(reserve_gib * GiB), 0, int64_t(overhead_gib * GiB)};
}
DeviceBudget host(double gib, double overhead_gib = 0) {
  return DeviceBudget{"cpu", false, int64_t(gib * GiB), 0, 0, int64_t(overhead_gib * GiB)};
}

RunningJob run(std::string id, std::string model, std::string device, double dev_gib, double host_gib = 0,
               std::string rung = "gpu") {
  return RunningJob{std::move(id), std::move(model), std::move(device), std::move(rung), int64_t(dev_gib * GiB),
                    int64_t(host_gib * GiB)};
}
ResidentModel idle(std::string model, std::string device, std::string rung, double dev_gib, int64_t last_used,
                   double host_gib = 0) {
  return ResidentModel{std::move(model), std::move(device), std::move(rung), int64_t(dev_gib * GiB),
                       int64_t(host_gib * GiB), false, last_used};
}
ResidentModel busy(ResidentModel r) {
  r.busy = true;
  return r;
}

SchedulerInput input(std::vector<DeviceBudget> devices, std::vector<PlannedJob> queued, int max_jobs = 4) {
  SchedulerInput in;
  in.devices = std::move(devices);
  in.queued = std::move(queued);
  in.policy.max_concurrent_jobs = max_jobs;
  in.now = t0;
  return in;
}
SchedulerInput with_running(SchedulerInput in, std::vector<RunningJob> r) {
  in.running = std::move(r);
  return in;
}
SchedulerInput with_resident(SchedulerInput in, std::vector<ResidentModel> r) {
  in.resident = std::move(r);
  return in;
}

// ---- summary ----

std::vector<std::string> summarize(const SchedulerOutput& out) {
  std::vector<std::string> s;
  for (const auto& d : out.decisions) {
    switch (d.kind) {
      case Decision::Kind::evict: s.push_back("evict " + d.model + "/" + d.rung + "@" + d.device); break;
      case Decision::Kind::start: s.push_back("start " + d.job_id + "@" + d.device + ":" + d.rung); break;
      case Decision::Kind::fail: s.push_back("fail " + d.job_id); break;
    }
  }
  for (const auto& w : out.waiting) s.push_back("wait " + w.job_id);
  return s;
}

// The fail message or waiting reason of a job ("" when it has neither).
std::string text_of(const SchedulerOutput& out, const std::string& id) {
  for (const auto& d : out.decisions)
    if (d.kind == Decision::Kind::fail && d.job_id == id) return d.message;
  for (const auto& w : out.waiting)
    if (w.job_id == id) return w.reason;
  return "";
}

const Decision* find_decision(const SchedulerOutput& out, Decision::Kind kind, const std::string& job_or_model) {
  for (const auto& d : out.decisions)
    if (d.kind == kind && (d.job_id == job_or_model || (kind == Decision::Kind::evict && d.model == job_or_model)))
      return &d;
  return nullptr;
}

struct Case {
  const char* name;
  SchedulerInput in;
  std::vector<std::string> expected;
  std::vector<std::pair<std::string, std::string>> texts;  // job id -> substring of its message/reason
};

void run_table(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    SchedulerOutput out = schedule_jobs(c.in);
    EXPECT_EQ(summarize(out), c.expected) << c.name;
    for (const auto& [id, text] : c.texts)
      EXPECT_NE(text_of(out, id).find(text), std::string::npos)
          << c.name << ": job '" << id << "' text is: " << text_of(out, id) << "\nexpected to contain: " << text;
  }
}

// ---- tables ----

TEST(BudgetScheduler, FitWaitDegradeAndReservation) {
  auto one_gpu = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 24), host(64)}; };
  auto two_gpus = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 24), gpu("cuda:1", 24), host(64)}; };
  run_table({
      {"fits an empty GPU at the best rung", input(one_gpu(), {wan("a")}), {"start a@cuda:0:resident"}, {}},
      {"target does not fit now: waits for it rather than degrading",
       with_running(input(one_gpu(), {wan("a")}), {run("x", "other", "cuda:0", 10)}),
       {"wait a"},
       {{"a", "waiting for cuda:0: needs 20.0 GiB at 'resident', 14.0 GiB free"}}},
      {"degrade_now: the best allowed rung that fits now",
       with_running(input(one_gpu(), {with_policy(wan("a"), {{"degrade_now", true}})}), {run("x", "other", "cuda:0", 10)}),
       {"start a@cuda:0:offload"},
       {}},
      {"degrade_now with nothing fitting now still waits",
       with_running(input(one_gpu(), {with_policy(wan("a"), {{"degrade_now", true}, {"max_slowdown", 5}})}),
                    {run("x", "other", "cuda:0", 20)}),
       {"wait a"},
       {{"a", "no allowed rung fits now either"}}},
      {"a waiting job holds its device against lower-priority work",
       with_running(input(one_gpu(), {wan("a", 5), tiny("b")}), {run("x", "other", "cuda:0", 10)}),
       {"wait a", "wait b"},
       {{"b", "held for higher-priority job 'a'"}}},
      {"without the waiting job the small one starts (control for the row above)",
       with_running(input(one_gpu(), {tiny("b")}), {run("x", "other", "cuda:0", 10)}),
       {"start b@cuda:0:gpu"},
       {}},
      // cuda:0 has more free memory (14 vs 12), so b would go there, but a holds it.
      {"the hold is per device: lower-priority work starts on another GPU",
       with_running(input(two_gpus(), {wan("a", 5), tiny("b")}),
                    {run("x", "other", "cuda:0", 10), run("y", "other", "cuda:1", 12)}),
       {"start b@cuda:1:gpu", "wait a"},
       {{"a", "waiting for cuda:0"}}},
      {"higher priority is not held back by a lower-priority waiter",
       with_running(input(one_gpu(), {wan("a", 0), tiny("b", 2, 5)}), {run("x", "other", "cuda:0", 10)}),
       {"start b@cuda:0:gpu", "wait a"},
       {}},
      {"two jobs on two GPUs in one round", input(two_gpus(), {wan("a"), wan("b")}),
       {"start a@cuda:0:resident", "start b@cuda:1:resident"}, {}},
      {"placement prefers the GPU with the most free memory",
       with_running(input(two_gpus(), {tiny("a")}), {run("x", "other", "cuda:0", 10), run("y", "other", "cuda:1", 4)}),
       {"start a@cuda:1:gpu"},
       {}},
      {"several jobs in one round share a GPU while they fit",
       input(one_gpu(), {tiny("a", 10), tiny("b", 10), tiny("c", 10)}),
       {"start a@cuda:0:gpu", "start b@cuda:0:gpu", "wait c"},
       {{"c", "needs 10.0 GiB at 'gpu', 4.0 GiB free"}}},
  });
}

TEST(BudgetScheduler, RungsFloorsPinsAndFailures) {
  // 8 GiB with 1 GiB reserved: 7 GiB for us. fp8 needs 8, 480p and steps-20 need 6.
  auto small_gpu = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 8, 1), host(64)}; };
  auto big_gpu = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 24), host(64)}; };
  run_table({
      {"quality rungs are excluded without opt-in", input(small_gpu(), {big("a")}), {"fail a"},
       {{"a", "cannot fit on any device even when idle: needs 12.0 GiB GPU memory at rung 'offload' (its floor), "
              "the largest device offers 7.0 GiB; lower the floor, allow quality fallback, or use a bigger GPU"}}},
      {"quality fallback allows the quality rungs", input(small_gpu(), {with_policy(big("a"), {{"quality_fallback", true}})}),
       {"start a@cuda:0:480p"}, {}},
      {"config default for quality fallback applies", [&] {
         auto p = big("a");
         p.policy = parse_job_policy(Json::object(), true);
         return input(small_gpu(), {p});
       }(),
       {"start a@cuda:0:480p"}, {}},
      {"no_quality_loss overrides the config default", [&] {
         auto p = big("a");
         p.policy = parse_job_policy(Json{{"no_quality_loss", true}}, true);
         return input(small_gpu(), {p});
       }(),
       {"fail a"}, {{"a", "at rung 'offload' (its floor)"}}},
      {"quality fallback stops at the size floor",
       input(small_gpu(), {with_policy(big("a"), {{"quality_fallback", true}, {"floor", {{"size", 720}}}})}),
       {"fail a"},
       {{"a", "needs 8.0 GiB GPU memory at rung 'fp8' (its floor), the largest device offers 7.0 GiB"}}},
      {"a precision floor skips fp8 but keeps a bf16 rung",
       input(big_gpu(), {with_policy(job("a", "m", {quality("fp8", 8, 1, {{"precision", "fp8"}}),
                                                     quality("bf16", 9, 1, {{"precision", "bf16"}})}),
                                     {{"quality_fallback", true}, {"floor", {{"precision", "fp16"}}}})}),
       {"start a@cuda:0:bf16"}, {}},
      {"a steps floor skips a rung with too few steps",
       input(small_gpu(), {with_policy(job("a", "m", {quality("steps-20", 6, 1, {{"steps", 20}}),
                                                     quality("steps-40", 7, 1, {{"steps", 40}})}),
                                       {{"quality_fallback", true}, {"floor", {{"steps", 30}}}})}),
       {"start a@cuda:0:steps-40"}, {}},
      {"without the steps floor the better-fitting rung wins (control)",
       input(small_gpu(), {with_policy(job("a", "m", {quality("steps-20", 6, 1, {{"steps", 20}}),
                                                     quality("steps-40", 7, 1, {{"steps", 40}})}),
                                       {{"quality_fallback", true}})}),
       {"start a@cuda:0:steps-20"}, {}},
      {"frames floor with no frames given keeps steps-20",
       input(small_gpu(), {with_policy(big("a"), {{"quality_fallback", true}, {"floor", {{"frames", 100000}}}})}),
       {"start a@cuda:0:steps-20"}, {}},
      {"pin: only that rung, even when a better one fits",
       input(big_gpu(), {with_policy(wan("a"), {{"rung", "offload"}})}), {"start a@cuda:0:offload"}, {}},
      {"pin of a quality rung needs no quality opt-in",
       input(big_gpu(), {with_policy(wan("a"), {{"rung", "480p"}})}), {"start a@cuda:0:480p"}, {}},
      {"pin of an unknown rung fails listing the rungs",
       input(big_gpu(), {with_policy(wan("a"), {{"rung", "ofload"}})}), {"fail a"},
       {{"a", "has no rung 'ofload' (did you mean 'offload'?); rungs: resident, offload, cpu, fp8, 480p, steps-20"}}},
      {"pin that does not fit when idle fails at that rung",
       input(small_gpu(), {with_policy(big("a"), {{"rung", "resident"}})}), {"fail a"},
       {{"a", "needs 20.0 GiB GPU memory at rung 'resident' (its floor)"}}},
      {"min_rung skips the rungs that ran out of memory", input(big_gpu(), {with_min_rung(wan("a"), 1)}),
       {"start a@cuda:0:offload"}, {}},
      {"min_rung past every allowed rung fails", input(big_gpu(), {with_min_rung(wan("a"), 3)}), {"fail a"},
       {{"a", "no rung of model 'wan' is allowed for this job: 'resident' (before min_rung 3"}}},
      {"max_slowdown skips slow rungs", input({host(64)}, {with_policy(wan("a"), {{"max_slowdown", 5}})}), {"fail a"},
       {{"a", "needs 12.0 GiB GPU memory at rung 'offload' (its floor), there is no GPU"}}},
      {"without a GPU the cpu rung runs on host RAM", input({host(64)}, {wan("a")}), {"start a@cpu:cpu"}, {}},
      {"impossible jobs fail without blocking the rest",
       input(small_gpu(), {big("a", 5), tiny("b")}), {"fail a", "start b@cuda:0:gpu"}, {}},
  });
}

TEST(BudgetScheduler, ResidentsEvictionAndReuse) {
  auto one_gpu = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 24), host(64)}; };
  auto two_gpus = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 24), gpu("cuda:1", 24), host(64)}; };
  // 24 GiB: m1 8 (used at 100), m2 8 (used at 50), busy m3 6 running z. 2 GiB free.
  auto crowded = [&](std::vector<PlannedJob> q) {
    return with_running(with_resident(input(one_gpu(), std::move(q)),
                                      {idle("m1", "cuda:0", "gpu", 8, 100), idle("m2", "cuda:0", "gpu", 8, 50),
                                       busy(idle("m3", "cuda:0", "gpu", 6, 10))}),
                        {run("z", "m3", "cuda:0", 6)});
  };
  run_table({
      {"evicts the least recently used idle model, only as much as needed", crowded({tiny("a", 10)}),
       {"evict m2/gpu@cuda:0", "start a@cuda:0:gpu"}, {}},
      {"evicts more idle models when one is not enough", crowded({tiny("a", 17)}),
       {"evict m2/gpu@cuda:0", "evict m1/gpu@cuda:0", "start a@cuda:0:gpu"}, {}},
      {"busy residents are never evicted: waits instead", crowded({tiny("a", 19)}), {"wait a"},
       {{"a", "needs 19.0 GiB at 'gpu', 2.0 GiB free"}}},
      {"reuses an idle worker of the model at the same rung, no eviction",
       with_resident(input(one_gpu(), {wan("a")}), {idle("wan", "cuda:0", "resident", 20, 5)}),
       {"start a@cuda:0:resident"}, {}},
      {"a resident at another rung is evicted like any idle model",
       with_resident(input(one_gpu(), {wan("a")}), {idle("wan", "cuda:0", "offload", 12, 5)}),
       {"evict wan/offload@cuda:0", "start a@cuda:0:resident"}, {}},
      {"prefers the GPU where the model is resident over the one with more free memory",
       with_resident(input(two_gpus(), {wan("a")}), {idle("wan", "cuda:1", "resident", 20, 5)}),
       {"start a@cuda:1:resident"}, {}},
      {"one job per worker: a busy resident sends the second job elsewhere",
       with_running(with_resident(input(two_gpus(), {wan("a")}), {busy(idle("wan", "cuda:0", "resident", 20, 5))}),
                    {run("z", "wan", "cuda:0", 20, 4, "resident")}),
       {"start a@cuda:1:resident"}, {}},
      {"one resident worker serves one job per round",
       with_resident(input({gpu("cuda:0", 10), host(64)}, {tiny("a", 6), tiny("b", 6)}),
                     {idle("tiny", "cuda:0", "gpu", 6, 5)}),
       // a reuses the worker (no new bytes); b needs its own 6 GiB but only 4 are free.
       {"start a@cuda:0:gpu", "wait b"}, {{"b", "needs 6.0 GiB at 'gpu', 4.0 GiB free"}}},
      {"a running job on its resident worker counts max(peak, resident), not both",
       with_running(with_resident(input(one_gpu(), {tiny("a", 2)}), {busy(idle("wan", "cuda:0", "resident", 20, 5))}),
                    {run("z", "wan", "cuda:0", 22, 4, "resident")}),
       {"start a@cuda:0:gpu"}, {}},
      {"a running job without a resident worker counts its own peak",
       with_running(input(one_gpu(), {tiny("a", 3)}), {run("z", "wan", "cuda:0", 22)}), {"wait a"},
       {{"a", "needs 3.0 GiB at 'gpu', 2.0 GiB free"}}},
      {"a waiting job's device is not emptied for lower-priority work",
       with_running(with_resident(input(one_gpu(), {wan("a", 5), tiny("b", 4)}), {idle("m1", "cuda:0", "gpu", 8, 1)}),
                    {run("x", "other", "cuda:0", 10)}),
       {"wait a", "wait b"}, {{"a", "waiting for cuda:0"}, {"b", "held for higher-priority job 'a'"}}},
  });
}

TEST(BudgetScheduler, HostRamOverheadCapAndOrder) {
  auto one_gpu = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 24), host(64)}; };
  run_table({
      {"cpu_only rung takes host RAM only and runs on cpu",
       input({gpu("cuda:0", 24), host(64)}, {with_policy(wan("a"), {{"rung", "cpu"}}), tiny("b", 24)}),
       {"start a@cpu:cpu", "start b@cuda:0:gpu"}, {}},
      {"cpu_only rung waits for host RAM",
       with_running(input({host(64)}, {wan("a")}), {run("x", "other", "cpu", 0, 30, "cpu")}), {"wait a"},
       {{"a", "waiting for host RAM: needs 40.0 GiB at 'cpu', 34.0 GiB free"}}},
      {"host RAM exhausted: a GPU job waits though its GPU is free",
       with_running(input({gpu("cuda:0", 24), gpu("cuda:1", 24), host(16)}, {wan("a")}),
                    {run("x", "other", "cuda:1", 2, 14)}),
       {"wait a"}, {{"a", "waiting for host RAM (for cuda:0): needs 4.0 GiB at 'resident', 2.0 GiB free"}}},
      {"host RAM too small even when idle fails naming host RAM",
       input({gpu("cuda:0", 24), host(8)}, {with_policy(wan("a"), {{"rung", "offload"}})}), {"fail a"},
       {{"a", "needs 16.0 GiB host RAM at rung 'offload' (its floor), the host offers 8.0 GiB"}}},
      {"host RAM shortage evicts an idle model on another GPU",
       with_resident(input({gpu("cuda:0", 24), gpu("cuda:1", 24), host(10)}, {wan("a")}),
                     {idle("m1", "cuda:1", "gpu", 2, 1, 8)}),
       {"evict m1/gpu@cuda:1", "start a@cuda:0:resident"}, {}},
      {"empty plan: one cpu rung 'default' with no memory, fits a full host",
       with_running(input({gpu("cuda:0", 24), host(8, 1)}, {job("s", "sleep", {})}), {run("x", "other", "cpu", 0, 8, "cpu")}),
       {"start s@cpu:default"}, {}},
      {"empty plan: not held back by a job waiting for host RAM",
       with_running(input({host(64)}, {with_policy(wan("a", 5), {{"rung", "cpu"}}), job("s", "sleep", {})}),
                    {run("x", "other", "cpu", 0, 30, "cpu")}),
       {"start s@cpu:default", "wait a"}, {}},
      {"empty plan: still limited by max_concurrent_jobs",
       with_running(input({host(8)}, {job("s", "sleep", {})}, 1), {run("x", "other", "cpu", 0, 0, "cpu")}),
       {"wait s"}, {{"s", "waiting for a free slot: 1 of 1 jobs running"}}},
      // cuda:0 24 GiB, 1 GiB per worker: resident needs 20 + 1.
      {"per-worker overhead: fits with one other worker",
       with_running(input({gpu("cuda:0", 24, 0, 1), host(64)}, {wan("a")}), {run("x", "other", "cuda:0", 2)}),
       {"start a@cuda:0:resident"}, {}},
      {"per-worker overhead: each worker costs one, so two others are too many",
       with_running(input({gpu("cuda:0", 24, 0, 1), host(64)}, {wan("a")}),
                    {run("x", "other", "cuda:0", 1), run("y", "other", "cuda:0", 1)}),
       {"wait a"}, {{"a", "needs 21.0 GiB at 'resident', 20.0 GiB free"}}},
      {"per-worker overhead counts when idle: the best rung never fits",
       input({gpu("cuda:0", 20.5, 0, 1), host(64)}, {wan("a")}), {"start a@cuda:0:offload"}, {}},
      {"per-worker overhead: reusing a worker needs no new one",
       with_resident(input({gpu("cuda:0", 21, 0, 1), host(64)}, {wan("a"), tiny("b", 0.5)}),
                     {idle("wan", "cuda:0", "resident", 20, 5)}),
       // wan reuses (needs 0 more); tiny needs 0.5 + 1 but only 0 is left.
       {"start a@cuda:0:resident", "wait b"}, {}},
      {"host per-worker overhead applies to GPU workers too",
       input({gpu("cuda:0", 24), host(5, 1.5)}, {with_policy(wan("a"), {{"rung", "resident"}})}), {"fail a"},
       {{"a", "needs 4.0 GiB host RAM at rung 'resident' (its floor), the host offers 3.5 GiB"}}},
      // Host 10 GiB, 1 GiB per worker: x holds 5 + 1, so 4 are free; a new worker for 'resident' needs 4 + 1.
      {"host per-worker overhead: a new worker needs host RAM for it too",
       with_running(input({gpu("cuda:0", 24), gpu("cuda:1", 24), host(10, 1)}, {with_policy(wan("a"), {{"rung", "resident"}})}),
                    {run("x", "other", "cuda:1", 2, 5)}),
       {"wait a"}, {{"a", "waiting for host RAM (for cuda:0): needs 5.0 GiB at 'resident', 4.0 GiB free"}}},
      {"concurrency cap: stops starting at max_concurrent_jobs", input(one_gpu(), {tiny("a", 1, 1), tiny("b", 1)}, 1),
       {"start a@cuda:0:gpu", "wait b"}, {{"b", "waiting for a free slot: 1 of 1 jobs running"}}},
      {"concurrency cap counts running jobs",
       with_running(input(one_gpu(), {tiny("a", 1)}, 2), {run("x", "o", "cuda:0", 1), run("y", "o", "cuda:0", 1)}),
       {"wait a"}, {{"a", "2 of 2 jobs running"}}},
      {"the cap does not stop an impossible job from failing",
       input({gpu("cuda:0", 8, 1), host(64)}, {tiny("a", 1, 1), big("b")}, 1), {"start a@cuda:0:gpu", "fail b"}, {}},
  });
}

TEST(BudgetScheduler, OrderAgingPausedDraining) {
  auto one_gpu = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 24), host(64)}; };
  const int64_t later = t0 + 3'000'000;  // 3000 s: ten aging periods of 300 s
  auto aged = [&](double aging) {
    SchedulerInput in = input(one_gpu(), {wan("new", 5, later), wan("old", 0, t0)});
    in.now = later;
    in.policy.aging_seconds = aging;
    return in;
  };
  auto halted = [&](bool paused) {
    SchedulerInput in = input({gpu("cuda:0", 8, 1), host(64)}, {tiny("a"), big("b")});
    (paused ? in.policy.paused : in.policy.draining) = true;
    return in;
  };
  run_table({
      {"higher priority first", input(one_gpu(), {wan("a", 0), wan("b", 3)}), {"start b@cuda:0:resident", "wait a"}, {}},
      {"same priority: older first", input(one_gpu(), {wan("a", 0, t0 + 5), wan("b", 0, t0)}),
       {"start b@cuda:0:resident", "wait a"}, {}},
      {"aging: a long-waiting job outranks a fresh higher-priority one", aged(300),
       {"start old@cuda:0:resident", "wait new"}, {}},
      {"aging disabled: strict priority", aged(0), {"start new@cuda:0:resident", "wait old"}, {}},
      {"paused: nothing starts, impossible jobs still fail", halted(true), {"fail b", "wait a"},
       {{"a", "scheduler is paused"}}},
      {"draining: nothing starts", halted(false), {"fail b", "wait a"}, {{"a", "draining"}}},
      {"paused: no evictions either", [&] {
         auto in = with_resident(input(one_gpu(), {wan("a")}), {idle("m1", "cuda:0", "gpu", 20, 1)});
         in.policy.paused = true;
         return in;
       }(),
       {"wait a"}, {}},
      {"jobs that are not queued are ignored", [&] {
         auto in = input(one_gpu(), {wan("a"), wan("r", 9)});
         in.queued[1].job.state = JobState::running;
         return in;
       }(),
       {"start a@cuda:0:resident"}, {}},
  });
}

TEST(BudgetScheduler, DeepQueueAfterTheCapIsNotEvaluated) {
  // One slot, taken. "a" (oldest) and "b" are within the explained window; "huge" is
  // past it: it cannot fit even on an idle device, but is only failed once it moves up.
  auto devices = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 8), host(64)}; };
  auto queue = [] {
    return std::vector<PlannedJob>{tiny("a", 2, 0), tiny("b", 2, 0),
                                   job("huge", "big", {placement("gpu", 40, 1)}, 0, t0 + 1)};
  };
  auto limited = [&](int explained) {
    auto in = with_running(input(devices(), queue(), 1), {run("r", "tiny", "cuda:0", 2)});
    in.queued[0].job.created_at = t0 - 2;
    in.queued[1].job.created_at = t0 - 1;
    in.policy.explained_waiting_jobs = explained;
    return in;
  };
  run_table({
      {"all explained: the job that can never fit fails now", limited(100), {"fail huge", "wait a", "wait b"},
       {{"huge", "cannot fit on any device even when idle"}, {"a", "waiting for a free slot: 1 of 1 jobs running"}}},
      {"past the window: a short reason, evaluated later", limited(2), {"wait a", "wait b", "wait huge"},
       {{"huge", "waiting for a free slot: 1 of 1 jobs running"}}},
  });
  // The window counts from the moment the cap is reached, also when a start in this
  // round reaches it: "a" takes the free slot, "b" is explained, "huge" is past the window.
  auto free_slot = limited(1);
  free_slot.running.clear();
  EXPECT_EQ(summarize(schedule_jobs(free_slot)), (std::vector<std::string>{"start a@cuda:0:gpu", "wait b", "wait huge"}));
  free_slot.policy.explained_waiting_jobs = 2;
  EXPECT_EQ(summarize(schedule_jobs(free_slot)), (std::vector<std::string>{"start a@cuda:0:gpu", "fail huge", "wait b"}));
}

TEST(BudgetScheduler, RemotePools) {
  auto remote = [](std::string id, int priority = 0) {
    PlannedJob p = job(std::move(id), "wan2.5", {cpu_rung("remote", 0.0625, 1)}, priority);
    p.remote_pool = "dashscope";
    return p;
  };
  auto pools = [](SchedulerInput in, int max_concurrent, int rpm, std::vector<int64_t> starts = {}) {
    in.pools.push_back(RemotePoolBudget{"dashscope", max_concurrent, rpm, std::move(starts)});
    return in;
  };
  auto full_gpu = [] { return std::vector<DeviceBudget>{gpu("cuda:0", 24), host(64)}; };
  run_table({
      {"a remote job starts on its pool's pseudo-device", pools(input(full_gpu(), {remote("a")}), 2, 0),
       {"start a@remote:dashscope:remote"}, {}},
      {"two slots: two start, the third waits", pools(input(full_gpu(), {remote("a"), remote("b"), remote("c")}), 2, 0),
       {"start a@remote:dashscope:remote", "start b@remote:dashscope:remote", "wait c"},
       {{"c", "waiting for a slot in remote pool 'dashscope': 2 of 2 tasks running"}}},
      {"running remote jobs take the slots",
       pools(with_running(input(full_gpu(), {remote("a")}), {run("x", "wan2.5", "remote:dashscope", 0, 0.0625, "remote")}), 1, 0),
       {"wait a"}, {{"a", "1 of 1 tasks running"}}},
      {"a pool not listed has one slot", input(full_gpu(), {remote("a"), remote("b")}),
       {"start a@remote:dashscope:remote", "wait b"}, {}},
      {"requests per minute: starts in the last minute count, older ones do not",
       pools(input(full_gpu(), {remote("a"), remote("b")}), 10, 3, {t0 - 70'000, t0 - 50'000, t0 - 10'000}),
       {"start a@remote:dashscope:remote", "wait b"},
       {{"b", "3 jobs started in the last minute, 3 allowed"}}},
      {"remote jobs need no GPU memory, evict nothing and do not count against max_concurrent_jobs",
       pools(with_resident(with_running(input(full_gpu(), {remote("a"), tiny("b", 2)}, /*max_jobs=*/1),
                                        {run("x", "other", "cuda:0", 24)}),
                           {idle("m1", "cuda:0", "gpu", 0, 1)}),
             2, 0),
       {"start a@remote:dashscope:remote", "wait b"},
       {{"b", "1 of 1 jobs running"}}},
      {"a waiting remote job holds nothing back", pools(input(full_gpu(), {remote("a", 9), tiny("b")}), 2, 1, {t0 - 1000}),
       {"start b@cuda:0:gpu", "wait a"}, {{"a", "rate limit"}}},
      {"a local job's slot is not taken by running remote jobs",
       pools(with_running(input(full_gpu(), {tiny("b")}, /*max_jobs=*/1),
                          {run("x", "wan2.5", "remote:dashscope", 0, 0.0625, "remote")}), 2, 0),
       {"start b@cuda:0:gpu"}, {}},
      {"paused: remote jobs wait too", [&] {
         auto in = pools(input(full_gpu(), {remote("a")}), 2, 0);
         in.policy.paused = true;
         return in;
       }(),
       {"wait a"}, {{"a", "paused"}}},
  });
}

// ---- explainability ----

TEST(BudgetScheduler, StartExplainsTheNumbers) {
  auto in = with_running(input({gpu("cuda:0", 24), host(64)}, {with_policy(wan("a"), {{"degrade_now", true}})}),
                         {run("x", "other", "cuda:0", 10, 8)});
  auto out = schedule_jobs(in);
  const Decision* d = find_decision(out, Decision::Kind::start, "a");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->rung, "offload");
  EXPECT_EQ(d->rung_index, 1);
  const Json& e = d->explain;
  EXPECT_EQ(e["needed_device_bytes"], 12 * GiB);
  EXPECT_EQ(e["available_device_bytes"], 14 * GiB);
  EXPECT_EQ(e["needed_host_bytes"], 16 * GiB);
  EXPECT_EQ(e["available_host_bytes"], 56 * GiB);
  EXPECT_EQ(e["target_rung"], "resident");
  EXPECT_EQ(e["degraded"], true);
  EXPECT_EQ(e["reuses_worker"], false);
  // considered: 'resident' on cuda:0 now (does not fit), then 'offload' (fits).
  ASSERT_EQ(e["considered"].size(), 2u) << e.dump(2);
  EXPECT_EQ(e["considered"][0]["rung"], "resident");
  EXPECT_EQ(e["considered"][0]["device"], "cuda:0");
  EXPECT_EQ(e["considered"][0]["fits"], false);
  EXPECT_EQ(e["considered"][0]["why"], "needs 20.0 GiB GPU memory, 14.0 GiB free");
  EXPECT_EQ(e["considered"][1]["rung"], "offload");
  EXPECT_EQ(e["considered"][1]["fits"], true);
  // The quality rungs were not allowed, and say why.
  ASSERT_EQ(e["excluded"].size(), 3u) << e.dump(2);
  EXPECT_EQ(e["excluded"][0]["rung"], "fp8");
  EXPECT_EQ(e["excluded"][0]["why"], "quality rung; quality fallback not allowed");
  EXPECT_NE(d->message.find("degraded from 'resident'"), std::string::npos) << d->message;
}

TEST(BudgetScheduler, BetterRungsThatNeverFitAreListedAsIdle) {
  auto out = schedule_jobs(input({gpu("cuda:0", 16), host(64)}, {wan("a")}));
  const Decision* d = find_decision(out, Decision::Kind::start, "a");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->rung, "offload");
  EXPECT_EQ(d->explain["degraded"], false) << "the target itself is offload: resident never fits 16 GiB";
  const Json& c = d->explain["considered"][0];
  EXPECT_EQ(c["rung"], "resident");
  EXPECT_EQ(c["phase"], "idle");
  EXPECT_EQ(c["why"], "needs 20.0 GiB GPU memory, cuda:0 offers 16.0 GiB even when idle");
}

TEST(BudgetScheduler, FailExplainsTheNumbers) {
  auto out = schedule_jobs(input({gpu("cuda:0", 8, 1), gpu("cuda:1", 6), host(64)}, {big("a")}));
  const Decision* d = find_decision(out, Decision::Kind::fail, "a");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->explain["rung"], "offload");
  EXPECT_EQ(d->explain["needed_device_bytes"], 12 * GiB);
  EXPECT_EQ(d->explain["available_device_bytes"], 7 * GiB) << "the largest offer, after reserve";
  // Both allowed rungs on both devices.
  EXPECT_EQ(d->explain["considered"].size(), 4u) << d->explain.dump(2);
}

TEST(BudgetScheduler, EvictionSaysWhoItMakesRoomFor) {
  auto in = with_resident(input({gpu("cuda:0", 24), host(64)}, {tiny("a", 10)}),
                          {idle("m1", "cuda:0", "gpu", 20, 7, 3)});
  auto out = schedule_jobs(in);
  const Decision* ev = find_decision(out, Decision::Kind::evict, "m1");
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(ev->explain["for_job"], "a");
  EXPECT_EQ(ev->explain["freed_device_bytes"], 20 * GiB);
  EXPECT_EQ(ev->explain["freed_host_bytes"], 3 * GiB);
  EXPECT_EQ(ev->explain["last_used"], 7);
  EXPECT_NE(ev->message.find("to make room for job 'a'"), std::string::npos) << ev->message;
  const Decision* st = find_decision(out, Decision::Kind::start, "a");
  ASSERT_NE(st, nullptr);
  ASSERT_EQ(st->explain["evicted"].size(), 1u);
  EXPECT_EQ(st->explain["evicted"][0]["model"], "m1");
}

TEST(BudgetScheduler, WaitingExplainsAndReservesTheDevice) {
  auto in = with_running(input({gpu("cuda:0", 24), host(64)}, {wan("a")}), {run("x", "o", "cuda:0", 10)});
  auto out = schedule_jobs(in);
  ASSERT_EQ(out.waiting.size(), 1u);
  EXPECT_EQ(out.waiting[0].explain["reserved_device"], "cuda:0");
  EXPECT_EQ(out.waiting[0].explain["needed_device_bytes"], 20 * GiB);
  EXPECT_EQ(out.waiting[0].explain["available_device_bytes"], 14 * GiB);
}

TEST(BudgetScheduler, ReuseExplains) {
  auto in = with_resident(input({gpu("cuda:0", 24), host(64)}, {wan("a")}), {idle("wan", "cuda:0", "resident", 18, 5)});
  auto out = schedule_jobs(in);
  const Decision* st = find_decision(out, Decision::Kind::start, "a");
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->explain["reuses_worker"], true);
  EXPECT_EQ(st->explain["needed_device_bytes"], 2 * GiB) << "the peak (20) replaces the resident bytes (18)";
}

TEST(BudgetScheduler, RungAllowedMatchesTheScheduler) {
  PlannedJob p = with_policy(wan("a"), {{"quality_fallback", true}, {"floor", {{"size", 720}}}, {"max_slowdown", 10}});
  std::string why;
  EXPECT_TRUE(rung_allowed(p, 0, &why));
  EXPECT_EQ(why, "");
  EXPECT_FALSE(rung_allowed(p, 2, &why));
  EXPECT_EQ(why, "relative time 20 exceeds max_slowdown 10");
  EXPECT_TRUE(rung_allowed(p, 3, nullptr));
  EXPECT_FALSE(rung_allowed(p, 4, &why));
  EXPECT_EQ(why, "size 480 is below the floor 720");
  EXPECT_FALSE(rung_allowed(p, 6, &why));
  EXPECT_EQ(why, "no rung at index 6");
  p.job.min_rung = 1;  // either min_rung counts
  EXPECT_FALSE(rung_allowed(p, 0, &why));
  EXPECT_NE(why.find("before min_rung 1"), std::string::npos) << why;
}

// ---- format_bytes ----

TEST(BudgetScheduler, FormatBytes) {
  struct Row {
    const char* name;
    int64_t bytes;
    const char* expected;
  };
  const Row rows[] = {
      {"zero", 0, "0 B"},
      {"bytes stay whole", 512, "512 B"},
      {"just below a KiB", 1023, "1023 B"},
      {"one KiB", 1024, "1.0 KiB"},
      {"one decimal", 1536, "1.5 KiB"},
      {"GiB", int64_t(9.1 * double(GiB)), "9.1 GiB"},
      {"rounds up into the next unit", 1024 * KiB - 1, "1.0 MiB"},
      {"TiB", 3 * 1024 * GiB, "3.0 TiB"},
      {"negative", -1536, "-1.5 KiB"},
  };
  for (const auto& r : rows) EXPECT_EQ(format_bytes(r.bytes), r.expected) << r.name;
}

// ---- parse_job_policy ----

TEST(BudgetScheduler, ParseJobPolicyAccepts) {
  JobPolicy p = parse_job_policy(Json{{"rung", "t5-cpu"},
                                      {"quality_fallback", true},
                                      {"degrade_now", true},
                                      {"max_slowdown", 8},
                                      {"floor", {{"steps", 20}, {"frames", 33}, {"size", 480}, {"precision", "bf16"}}}},
                                 false);
  EXPECT_EQ(p.pin_rung, "t5-cpu");
  EXPECT_TRUE(p.quality_fallback);
  EXPECT_TRUE(p.degrade_now);
  EXPECT_DOUBLE_EQ(p.max_slowdown, 8);
  EXPECT_EQ(p.min_steps, 20);
  EXPECT_EQ(p.min_frames, 33);
  EXPECT_EQ(p.min_size, 480);
  EXPECT_EQ(p.min_precision, "bf16");

  struct Row {
    const char* name;
    Json policy;
    bool default_fallback;
    bool expected_fallback;
  };
  const Row rows[] = {
      {"empty takes the default (off)", Json::object(), false, false},
      {"empty takes the default (on)", Json::object(), true, true},
      {"null is empty", Json(), true, true},
      {"explicit false beats the default", Json{{"quality_fallback", false}}, true, false},
      {"no_quality_loss forces it off", Json{{"quality_fallback", true}, {"no_quality_loss", true}}, true, false},
      {"no_quality_loss false changes nothing", Json{{"no_quality_loss", false}}, true, true},
  };
  for (const auto& r : rows)
    EXPECT_EQ(parse_job_policy(r.policy, r.default_fallback).quality_fallback, r.expected_fallback) << r.name;
  EXPECT_DOUBLE_EQ(parse_job_policy(Json{{"max_slowdown", 2.5}}, false).max_slowdown, 2.5);
}

TEST(BudgetScheduler, ParseJobPolicyRejects) {
  struct Row {
    const char* name;
    Json policy;
    const char* message;
  };
  const Row rows[] = {
      {"unknown key with a suggestion", Json{{"flor", Json::object()}}, "policy.flor: unknown key (did you mean 'floor'?)"},
      {"unknown key without one", Json{{"zzz", 1}},
       "policy.zzz: unknown key; keys: rung, quality_fallback, no_quality_loss, degrade_now, max_slowdown, floor"},
      {"unknown floor key", Json{{"floor", {{"stpes", 20}}}}, "policy.floor.stpes: unknown key (did you mean 'steps'?)"},
      {"not an object", Json::array(), "policy: expected an object, got an array"},
      {"rung not a string", Json{{"rung", 3}}, "policy.rung: expected a string, got an integer (3)"},
      {"rung empty", Json{{"rung", ""}}, "policy.rung: must not be empty"},
      {"bool field not a bool", Json{{"degrade_now", "yes"}}, "policy.degrade_now: expected a boolean, got a string (\"yes\")"},
      {"quality_fallback not a bool", Json{{"quality_fallback", 1}}, "policy.quality_fallback: expected a boolean"},
      {"no_quality_loss not a bool", Json{{"no_quality_loss", "true"}}, "policy.no_quality_loss: expected a boolean"},
      {"max_slowdown zero", Json{{"max_slowdown", 0}}, "policy.max_slowdown: must be greater than 0, got 0"},
      {"max_slowdown negative", Json{{"max_slowdown", -2.5}}, "policy.max_slowdown: must be greater than 0, got -2.5"},
      {"max_slowdown not a number", Json{{"max_slowdown", "8"}}, "policy.max_slowdown: expected a number"},
      {"floor not an object", Json{{"floor", 20}}, "policy.floor: expected an object, got an integer (20)"},
      {"floor steps zero", Json{{"floor", {{"steps", 0}}}}, "policy.floor.steps: must be at least 1, got 0"},
      {"floor frames float", Json{{"floor", {{"frames", 33.5}}}}, "policy.floor.frames: expected an integer, got a float"},
      {"floor size negative", Json{{"floor", {{"size", -480}}}}, "policy.floor.size: must be at least 1, got -480"},
      {"floor precision unknown", Json{{"floor", {{"precision", "fp61"}}}},
       "policy.floor.precision: must be one of fp32, bf16, fp16, fp8, int8; got 'fp61'"},
      {"floor precision typo", Json{{"floor", {{"precision", "bf61"}}}}, "(did you mean 'bf16'?)"},
  };
  for (const auto& r : rows) {
    try {
      parse_job_policy(r.policy, false);
      ADD_FAILURE() << r.name << ": accepted " << r.policy.dump();
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(r.message), std::string::npos)
          << r.name << ": got '" << e.what() << "', expected to contain '" << r.message << "'";
    }
  }
}

}  // namespace
}  // namespace reel
