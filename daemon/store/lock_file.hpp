// LockFile: makes sure only one reeld uses a state directory at a time.
//
// Holds flock(LOCK_EX) on <state_dir>/reeld.lock for its lifetime and writes the
// holder's pid into the file, so a second daemon can say who is in the way. flock is
// released by the kernel when the process dies, so a crash never leaves a stale lock
// (the file itself stays; it is never unlinked, which would race with a new holder).
// flock belongs to the open file description: a second LockFile on the same path
// fails even within one process.
// Thread-safety: construct and destroy from one thread; no other operations.
#pragma once

#include <string>

namespace reel {

class LockFile {
 public:
  // Throws std::runtime_error("another reeld (pid N) is using <dir>: ...") when the
  // lock is held, or a runtime_error naming the path when the file cannot be opened.
  explicit LockFile(const std::string& path);
  ~LockFile();
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace reel
