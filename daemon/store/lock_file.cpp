#include "store/lock_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace reel {

namespace {

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// The pid the holder wrote, or "unknown" (it may be between open and write).
std::string read_holder_pid(int fd) {
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "unknown";
  std::string s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return "unknown";
  return s;
}

}  // namespace

LockFile::LockFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    int err = errno;
    throw std::runtime_error("cannot open lock file " + path + ": " + std::strerror(err) +
                             ": check that daemon.state_dir exists and is writable by reeld's user");
  }
  int rc;
  do rc = ::flock(fd_, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    std::string pid = read_holder_pid(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw std::runtime_error("another reeld (pid " + pid + ") is using " + parent_dir(path) +
                               ": stop it, or give this one another daemon.state_dir");
    throw std::runtime_error("cannot lock " + path + ": " + std::strerror(err));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("cannot write pid to lock file " + path + ": " + std::strerror(err));
  }
}

LockFile::~LockFile() {
  if (fd_ < 0) return;
  // Empty the file first so nobody later reports our (by then dead) pid.
  if (::ftruncate(fd_, 0) != 0) { /* best effort */ }
  ::close(fd_);   // releases the flock
}

}  // namespace reel
