// The durability promise end to end: the real reeld driven by the real reelctl is
// SIGKILLed with 20 jobs queued and one running, restarted, and every acknowledged
// job is found exactly once, the interrupted one re-queued and marked as a crash.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "support/test_support.hpp"

namespace reel::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

Json ctl_json(const Daemon& d, std::vector<std::string> args) {
  args.insert(args.begin(), "--json");
  auto r = d.ctl(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return Json::parse(r.out);
}

TEST(Kill9, EveryAcknowledgedJobSurvivesExactlyOnce) {
  TempDir dir;
  Daemon d(dir.path());
  d.start();

  std::vector<std::string> acknowledged;
  for (int i = 0; i < 21; ++i) {
    auto r = d.ctl({"-q", "submit", "sleep", "--param", "seconds=60", "--param", "steps=600"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    ASSERT_EQ(id.size(), 6u) << r.out;
    acknowledged.push_back(id);
  }
  std::string running;
  ASSERT_TRUE(wait_until([&] {
    auto r = d.ctl({"-q", "ls", "--state", "running"});
    running = r.out.substr(0, r.out.find('\n'));
    return !running.empty();
  }));
  EXPECT_EQ(ctl_json(d, {"status"})["counts"]["queued"], 20);

  d.kill9();
  d.start();

  Json jobs = ctl_json(d, {"ls", "--limit", "1000"})["jobs"];
  std::map<std::string, int> seen;
  for (const auto& j : jobs) seen[j["id"].get<std::string>()]++;
  EXPECT_EQ(seen.size(), acknowledged.size());
  for (const auto& id : acknowledged) EXPECT_EQ(seen[id], 1) << id;

  Json interrupted = ctl_json(d, {"show", running});
  EXPECT_EQ(interrupted["job"]["crash_count"], 1);
  EXPECT_TRUE(interrupted["job"]["state"] == "queued" || interrupted["job"]["state"] == "running");
  bool explained = false;
  for (const auto& e : interrupted["events"])
    if (e["kind"] == "state" && e["data"]["to"] == "queued" && e["data"]["from"] == "running") explained = true;
  EXPECT_TRUE(explained) << "the re-queue is recorded as an event: " << interrupted["events"].dump();

  for (const auto& id : acknowledged) {
    if (id != running) {
      EXPECT_EQ(ctl_json(d, {"show", id})["job"]["crash_count"], 0) << id;
    }
  }
}

}  // namespace
}  // namespace reel::test
