// Measuring a model run's memory in a fresh process, for the memory-estimate test and the
// bench: this process's figures from /proc/self/status, and a fork that runs one
// measurement and sends its numbers back, so earlier allocations and the allocator's
// cached arenas do not count. Linux only. Not thread-safe (fork).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace reel::wan {

// A "VmRSS:"/"VmHWM:"-style field of /proc/self/status in KiB; -1 when absent.
int64_t proc_status_kib(const std::string& field);

// Runs `measure` in a forked child set up like a reeld worker (glibc's mmap threshold
// pinned, kWorkerMmapThreshold) with its peak RSS reset to its current RSS, and returns
// what it returns. Empty when the child failed (its exception is printed to stderr).
std::vector<double> measure_in_child(const std::function<std::vector<double>()>& measure);

}  // namespace reel::wan
