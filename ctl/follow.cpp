#include "follow.hpp"

#include <algorithm>
#include <thread>

#include "exit_codes.hpp"
#include "render.hpp"

namespace reel::ctl {

namespace {

// Opens a new connection, retrying until `timeout` has passed since the loss.
std::unique_ptr<Client> reconnect(const std::string& socket_path, std::chrono::milliseconds timeout,
                                  const std::string& first_error) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + timeout;
  std::chrono::milliseconds backoff(50);
  std::string last_error = first_error;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    std::this_thread::sleep_for(std::min(backoff, left));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    try {
      return std::make_unique<Client>(socket_path, timeout);
    } catch (const UnreachableError& e) {
      last_error = e.what();   // a restarting daemon: no socket, refused, slow hello
    }
  }
  throw UnreachableError(last_error + " (gave up reconnecting after " + std::to_string(timeout.count() / 1000) +
                             " s; see --timeout)",
                         false);
}

}  // namespace

Json follow_job(std::unique_ptr<Client> client, const std::string& socket_path, std::chrono::milliseconds timeout,
                const std::string& job_id, int64_t after_seq, FollowObserver& observer) {
  if (!client) client = std::make_unique<Client>(socket_path, timeout);
  int64_t last_seq = after_seq;
  auto on_event = [&](const Json& event) {
    int64_t seq = json_int(event, "seq", -1);
    if (seq >= 0 && seq <= last_seq) return;   // already shown before a reconnect
    if (seq > last_seq) last_seq = seq;
    observer.on_event(event);
  };
  for (;;) {
    try {
      return client->stream("follow", Json{{"id", job_id}, {"after_seq", last_seq}}, on_event);
    } catch (const UnreachableError& e) {
      if (!e.transient) throw;
      client.reset();
      observer.on_connection_lost(e.what(), timeout);
      client = reconnect(socket_path, timeout, e.what());
      observer.on_reconnected();
    }
  }
}

}  // namespace reel::ctl
