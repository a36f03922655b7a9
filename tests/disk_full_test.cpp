// The state directory runs out of space, or is read-only, under the real reeld
// (docs/RELIABILITY.md): submissions are refused with disk_full / read_only and a
// message saying what to do, nothing already queued is lost, and reeld recovers by
// itself once space returns. The "disk" is a real tmpfs of a few MiB (mounting needs
// root and mount privilege; the tests skip with the reason when they have neither).
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace reel::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// A tmpfs mounted on `path` for the object's lifetime (lazily unmounted after).
class Tmpfs {
 public:
  Tmpfs(std::string path, const std::string& options) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) != 0) error_ = std::strerror(errno);
  }
  ~Tmpfs() {
    if (error_.empty()) ::umount2(path_.c_str(), MNT_DETACH);
  }
  // Empty when mounted; else why not.
  const std::string& error() const { return error_; }
  bool remount(const std::string& options, unsigned long flags = 0) {
    return ::mount("tmpfs", path_.c_str(), "tmpfs", MS_REMOUNT | flags, options.c_str()) == 0;
  }

 private:
  std::string path_, error_;
};

const std::string kPlugins = "[plugins]\ndirs = [\"" + std::string(REEL_BINARY_DIR) + "/lib/reel/plugins\"]\n";

Json submit(RawClient& c, int i) {
  // ~20 KiB of params per job (memtest's free-form output_name) fills a 2 MiB
  // filesystem within a hundred submissions.
  return c.call("submit", {{"job", {{"model", "memtest"}, {"params", {{"output_name", std::string(20000, 'a' + i % 26)}}}}}});
}

std::map<std::string, int> stored_ids(RawClient& c) {
  std::map<std::string, int> seen;
  Json r = c.call("list", {{"limit", 10000}});
  EXPECT_TRUE(r.value("ok", false)) << r.dump();
  for (const auto& j : r["result"]["jobs"]) seen[j["id"].get<std::string>()]++;
  return seen;
}

TEST(DiskFull, SubmissionsAreRefusedNothingIsLostAndReeldRecovers) {
  TempDir dir;
  Tmpfs fs(dir.file("state"), "size=2m,mode=0755");
  if (!fs.error().empty()) GTEST_SKIP() << "cannot mount a tmpfs here (" << fs.error() << "): needs root with mount privilege";
  Daemon d(dir.path(), kPlugins);
  d.start();
  RawClient c(d.socket());
  c.hello();
  ASSERT_TRUE(c.call("pause")["ok"].get<bool>());   // keep every job queued: nothing else writes

  std::vector<std::string> acknowledged;
  Json refused;
  for (int i = 0; i < 500 && refused.is_null(); ++i) {
    Json r = submit(c, i);
    if (r["ok"].get<bool>()) acknowledged.push_back(r["result"]["job"]["id"]);
    else refused = r;
  }
  ASSERT_FALSE(refused.is_null()) << "2 MiB never filled up";
  ASSERT_GT(acknowledged.size(), 5u) << refused.dump();
  EXPECT_EQ(refused["error"]["code"], "disk_full") << refused.dump();
  const std::string msg = refused["error"]["message"];
  EXPECT_NE(msg.find("database is full (disk full?)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("free space"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nothing already queued was lost"), std::string::npos) << msg;
  // Still full: still refused, reads still served, nothing half-stored.
  EXPECT_EQ(submit(c, 1)["error"]["code"], "disk_full");
  auto seen = stored_ids(c);
  EXPECT_EQ(seen.size(), acknowledged.size());
  for (const auto& id : acknowledged) EXPECT_EQ(seen[id], 1) << id;
  // reelctl reports it as a refusal (exit 1) with the message.
  auto r = d.ctl({"submit", "memtest", "--param", "output_name=" + std::string(20000, 'z')});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("database is full"), std::string::npos) << r.err;
  EXPECT_NE(read_file(d.log_path()).find("database is full"), std::string::npos) << "the operator is told too";

  // Space returns: the same daemon, no restart, takes work again.
  ASSERT_TRUE(fs.remount("size=32m"));
  Json later = submit(c, 2);
  ASSERT_TRUE(later["ok"].get<bool>()) << later.dump();
  acknowledged.push_back(later["result"]["job"]["id"]);

  // And everything acknowledged survives a SIGKILL.
  d.kill9();
  d.start();
  RawClient again(d.socket());
  again.hello();
  seen = stored_ids(again);
  EXPECT_EQ(seen.size(), acknowledged.size());
  for (const auto& id : acknowledged) EXPECT_EQ(seen[id], 1) << id;
}

TEST(DiskFull, ReadOnlyStateDirIsRefusedAtStartAndNothingIsLost) {
  TempDir dir;
  Tmpfs fs(dir.file("state"), "size=8m,mode=0755");
  if (!fs.error().empty()) GTEST_SKIP() << "cannot mount a tmpfs here (" << fs.error() << "): needs root with mount privilege";
  Daemon d(dir.path(), kPlugins);
  d.start();
  std::vector<std::string> acknowledged;
  {
    RawClient c(d.socket());
    c.hello();
    ASSERT_TRUE(c.call("pause")["ok"].get<bool>());
    for (int i = 0; i < 3; ++i) acknowledged.push_back(submit(c, i)["result"]["job"]["id"]);
  }
  // Linux refuses to make a mount read-only while a file on it is open for writing, so
  // reeld is stopped first (as an operator's remount would require too).
  ASSERT_EQ(d.terminate(), 0);
  ASSERT_TRUE(fs.remount("", MS_RDONLY)) << std::strerror(errno);

  // reeld refuses to run on a state dir it cannot write, saying why and what to do,
  // rather than accept jobs it could not keep.
  d.start(/*wait_for_socket=*/false);
  ASSERT_TRUE(wait_until([&] { return !d.running(); }, 20s)) << "reeld kept running on a read-only state dir";
  const std::string log = read_file(d.log_path());
  const std::string last_start = log.substr(log.rfind("starting (pid"));
  EXPECT_NE(last_start.find("is on a read-only filesystem; remount it read-write"), std::string::npos) << last_start;

  // Writable again: everything acknowledged is still there.
  ASSERT_TRUE(fs.remount("", 0)) << std::strerror(errno);
  d.start();
  RawClient c(d.socket());
  c.hello();
  auto seen = stored_ids(c);
  EXPECT_EQ(seen.size(), acknowledged.size());
  for (const auto& id : acknowledged) EXPECT_EQ(seen[id], 1) << id;
  EXPECT_TRUE(c.call("submit", {{"job", {{"model", "sleep"}}}})["ok"].get<bool>());
}

}  // namespace
}  // namespace reel::test
