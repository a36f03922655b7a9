#include "server/watch_files.hpp"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <fstream>

namespace reel {

namespace fs = std::filesystem;

bool read_input(const std::string& dir, const std::string& name, int64_t max_bytes, std::size_t keep_text_bytes,
                InputRead& out, std::string& why) {
  std::string path = dir + "/" + name;
  // O_NONBLOCK: a FIFO dropped into the folder must not block the daemon on open.
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    why = errno == ELOOP ? "it is a symbolic link; links are refused (copy the file itself into the folder)"
                         : std::strerror(errno);
    return false;
  }
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0;
  if (!ok) why = std::strerror(errno);
  else if (!S_ISREG(st.st_mode)) why = "it is not a regular file", ok = false;
  else if (st.st_size > max_bytes)
    why = "it is " + std::to_string(st.st_size) + " bytes, over the watch's max_file_bytes of " +
          std::to_string(max_bytes), ok = false;
  if (ok) {
    out.file.name = name;
    out.file.size = st.st_size;
    out.file.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    out.file.content_hash = kFnv1a64Offset;
    out.text.clear();
    bool keep = static_cast<std::size_t>(st.st_size) <= keep_text_bytes;
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        why = std::strerror(errno);
        ok = false;
        break;
      }
      if (n == 0) break;
      out.file.content_hash = fnv1a64(buf, static_cast<std::size_t>(n), out.file.content_hash);
      if (keep) out.text.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return ok;
}

bool move_no_replace(const std::string& from, const std::string& to, bool& exists, std::string& why) {
  exists = false;
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return true;
  if (errno == EINVAL || errno == ENOSYS) {   // the filesystem cannot do NOREPLACE (some network ones)
    struct stat st {};
    if (::lstat(to.c_str(), &st) == 0) errno = EEXIST;
    else if (::rename(from.c_str(), to.c_str()) == 0) return true;
  }
  exists = errno == EEXIST;
  why = std::strerror(errno);
  return false;
}

std::string free_name(const std::string& dir, const std::string& name, const std::string& tag) {
  auto taken = [&](const std::string& n) {
    struct stat st {};
    return ::lstat((dir + "/" + n).c_str(), &st) == 0;
  };
  if (!taken(name)) return name;
  auto dot = name.rfind('.');
  std::string stem = dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
  std::string ext = dot == std::string::npos || dot == 0 ? "" : name.substr(dot);
  std::string candidate = stem + "." + tag + ext;
  for (int i = 2; taken(candidate); ++i) candidate = stem + "." + tag + "-" + std::to_string(i) + ext;
  return candidate;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool link_or_copy(const std::string& from, const std::string& to, std::string& why) {
  if (::link(from.c_str(), to.c_str()) == 0) return true;
  std::error_code ec;
  if (fs::copy_file(from, to, fs::copy_options::none, ec)) return true;
  why = ec.message();
  return false;
}

bool write_json_file(const std::string& path, const Json& j, std::string& why) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << j.dump(2) << "\n";
    if (!f.flush()) {
      why = std::string("cannot write ") + tmp + ": " + std::strerror(errno);
      return false;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    why = std::string("cannot rename ") + tmp + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

std::string canonical_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

std::vector<std::string> sorted_names(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string folder_problem(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::string("cannot open it: ") + std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return "it is not a folder";
  if (::access(path.c_str(), R_OK | W_OK | X_OK) != 0)
    return std::string("this user (uid ") + std::to_string(::getuid()) + ") cannot read and write it: " +
           std::strerror(errno);
  return {};
}

}  // namespace reel
