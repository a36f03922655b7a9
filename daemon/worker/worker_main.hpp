// The worker process (`reeld --worker-fd N`): where plugin code runs, never in the
// daemon that owns the queue.
//
// One worker serves one plugin. Used as a *planner* it only describes the plugin's
// models and estimates jobs (no model loaded, no GPU touched). Used as a *model
// worker* it loads one model at one rung on one device and runs jobs one after
// another, so the model stays resident between jobs; ending the process is how the
// daemon evicts it, which frees its VRAM for certain.
// Requests (framing and envelope of protocol.hpp; docs/ARCHITECTURE.md lists them):
//   open {plugin}  plan {job}  load {model, rung, device}  run {job, rung, work_dir,
//   output_dir}  cancel {}  unload {}
// A run executes on its own thread so `cancel` is read while it works.
#pragma once

namespace reel {

// glibc's M_MMAP_THRESHOLD in every worker (see worker_main.cpp): allocations from this
// size up are mmapped and go back to the system when freed. plugins/wan/process_memory.cpp
// measures model runs under the same value.
constexpr int kWorkerMmapThreshold = 128 * 1024;

// Returns the process exit code.
int worker_main(int channel_fd);

}  // namespace reel
