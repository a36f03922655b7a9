// Helpers shared by the libFuzzer targets in this folder (docs/RELIABILITY.md).
//
// Each target feeds the fuzzer's bytes to one parser through its public API and turns
// every broken promise into a crash libFuzzer reports: an exception the API does not
// document escaping, a round trip that does not hold (`require`), or whatever ASan or
// UBSan catch. Not thread-safe; libFuzzer calls a target from one thread.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace reel::fuzz {

inline std::string_view text_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Aborts with `what` (and the input's size) when a property that must hold does not.
inline void require(bool ok, const char* what, const std::string& detail = "") {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %s\n%s\n", what, detail.c_str());
  std::abort();
}

// The bytes as a file that readers taking a path can open: a memfd, reached through
// /proc/self/fd, so fuzzing never touches the disk.
class MemFile {
 public:
  explicit MemFile(std::string_view bytes) {
    fd_ = ::memfd_create("reel-fuzz", MFD_CLOEXEC);
    require(fd_ >= 0, "memfd_create failed");
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      require(n > 0, "writing the memfd failed");
      done += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace reel::fuzz
