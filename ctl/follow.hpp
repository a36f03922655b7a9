// Following a job to its end across daemon restarts.
//
// The follow method streams a job's events with seq > after_seq and then its final
// job object. Because seqs are gap-free and the log is durable, a client that lost
// its connection reconnects and asks again from the last seq it saw: it misses
// nothing and sees nothing twice. Reconnection is retried (with backoff) for up to
// `timeout` of continuous unreachability, then UnreachableError (exit 3) is thrown.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "client.hpp"
#include "core/job.hpp"

namespace reel::ctl {

class FollowObserver {
 public:
  virtual ~FollowObserver() = default;
  virtual void on_event(const Json& event) = 0;   // each seq once, in order
  virtual void on_connection_lost(const std::string& why, std::chrono::milliseconds retry_for) {}
  virtual void on_reconnected() {}
};

// Returns the follow result ({"job": {...}}, the job in a final state).
// `client` is an open connection to reuse (submit --wait), or null to open one; a
// failure to open the first connection is not retried (the daemon is simply not there).
Json follow_job(std::unique_ptr<Client> client, const std::string& socket_path, std::chrono::milliseconds timeout,
                const std::string& job_id, int64_t after_seq, FollowObserver& observer);

}  // namespace reel::ctl
