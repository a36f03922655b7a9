// Small file and process helpers model plugins share in run(): atomic text writes for
// sidecars and stage checkpoints, the worker's peak RSS, elapsed seconds.
// Header-only, no LibTorch. Reentrant.
#pragma once

#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "sdk/reel_plugin.hpp"

namespace reel::sdk {

inline bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Writes `text` to path.tmp, then renames it over `path`: readers never see half a file.
inline void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc | std::ios::binary);
    f << text;
    if (!f.flush()) throw InternalError("cannot write " + tmp + " (disk full or not writable?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw InternalError("cannot rename " + tmp + " to " + path);
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline int64_t peak_rss_bytes() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace reel::sdk
