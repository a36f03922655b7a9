// Internal to tensorio: a whole file mapped private and writable (copy-on-write), so
// tensors can alias its pages without a copy and an in-place write to one gets its
// own page instead of a SIGSEGV or a change to the file. Shared by the tensors that
// alias it (through shared_ptr captured in from_blob deleters).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "tensorio/weights.hpp"

namespace reel::tensorio::detail {

struct FileMapping {
  char* data = nullptr;
  size_t size = 0;
  FileMapping() = default;
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  ~FileMapping() {
    if (data) ::munmap(data, size);
  }

  // Throws WeightError naming `path` if it cannot be opened or mapped. An empty file
  // gives an empty (unmapped) FileMapping.
  static std::shared_ptr<FileMapping> open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw WeightError(path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      throw WeightError(path + ": cannot stat: " + std::strerror(e));
    }
    auto m = std::make_shared<FileMapping>();
    m->size = static_cast<size_t>(st.st_size);
    if (m->size > 0) {
      void* p = ::mmap(nullptr, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        throw WeightError(path + ": cannot mmap: " + std::strerror(e));
      }
      m->data = static_cast<char*>(p);
    }
    ::close(fd);  // the mapping keeps the file alive
    return m;
  }
};

}  // namespace reel::tensorio::detail
