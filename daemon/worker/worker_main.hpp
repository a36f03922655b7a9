// The worker process's side of the IPC channel (`reeld --worker-fd N`).
//
// Reads one `run` request from the daemon, runs the job's model with a RunContext
// that turns progress and logs into events on the channel, watches for `cancel`
// on a second thread, and answers with a result or an error reply before exiting.
#pragma once

namespace reel {

// Returns the process exit code.
int worker_main(int channel_fd);

}  // namespace reel
