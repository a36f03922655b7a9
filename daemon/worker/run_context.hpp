// RunContext: what a model sees of the host while it runs one job in a worker.
//
// The worker implements it over the IPC channel; a model calls progress() per step,
// polls cancelled() between steps, and throws ModelError (with an error kind the
// daemon understands) when it fails. This is the shape the plugin ABI's host
// callbacks take; models never talk to the daemon any other way.
// Thread-safety: progress/log/cancelled may be called from any one model thread.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace reel {

struct ModelError : std::runtime_error {
  // kind: "oom", "bad_input", "missing_weights", "internal", "cancelled"
  ModelError(std::string kind_, const std::string& message) : std::runtime_error(message), kind(std::move(kind_)) {}
  std::string kind;
};

class RunContext {
 public:
  virtual ~RunContext() = default;
  virtual void progress(int64_t step, int64_t total, const std::string& stage) = 0;
  virtual bool cancelled() const = 0;
  virtual void log(const std::string& level, const std::string& message) = 0;
  virtual const std::string& work_dir() const = 0;     // scratch space for this job, kept across attempts
  virtual const std::string& output_dir() const = 0;   // where outputs go; created by the daemon
};

}  // namespace reel
