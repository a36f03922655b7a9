// reelctl's command line: parsing argv into a Command, and the --help texts.
//
// Pure (no I/O, no environment): the same argv always gives the same Command or the
// same UsageError (exit 2), so tests cover every command without a daemon.
// Global options are accepted before or after the command name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/job.hpp"

namespace reel::ctl {

struct GlobalOptions {
  std::optional<std::string> socket;   // nullopt: default_socket_path() (honours $REEL_SOCKET)
  bool json = false;
  bool quiet = false;
  bool no_color = false;
  double timeout_s = 60;               // per request; for follow/--wait, how long to keep reconnecting
};

enum class CommandKind {
  help, version,
  submit, ls, show, cancel, retry, prio, pause, resume, drain, status, follow, prune, models, plugins, watch,
};

struct SubmitArgs {
  std::string model;                                        // may be empty with --file
  std::vector<std::pair<std::string, Json>> params;         // in command-line order; later wins
  std::vector<std::pair<std::string, std::string>> inputs;  // role -> path as typed
  std::optional<std::string> file;
  std::optional<int> priority;
  std::optional<int> max_attempts;
  std::optional<std::string> idempotency_key;
  bool wait = false;
  // The job's policy (JobSpec::policy, docs/SCHEDULER.md); each given flag overrides
  // the same key of a job file's [policy], --floor key by key.
  std::optional<std::string> rung;                          // --rung: policy.rung
  bool allow_degrade = false;                               // --allow-degrade: quality_fallback true
  bool no_quality_loss = false;                             // --no-quality-loss
  bool degrade_now = false;                                 // --degrade-now
  std::optional<double> max_slowdown;                       // --max-slowdown (> 0)
  std::vector<std::pair<std::string, Json>> floor;          // --floor K=V, in order; later wins
};

struct ListArgs {
  std::optional<std::string> state, model, source;
  std::optional<int> limit;
};

// Only the fields of `kind` are meaningful.
struct Command {
  CommandKind kind = CommandKind::help;
  GlobalOptions global;
  std::string help_topic;          // help: a command name, or empty for the overview
  std::vector<std::string> ids;    // show, cancel (1+), retry, prio, follow
  SubmitArgs submit;
  ListArgs list;
  int priority = 0;                // prio
  int64_t from_seq = 0;            // follow --from
  std::optional<int64_t> older_than_s;   // prune --older-than (required)
  std::optional<std::string> model_name;   // models [NAME]
};

// `args` excludes argv[0]. Throws UsageError naming the offending argument.
Command parse_args(const std::vector<std::string>& args);

// Help texts (stdout for --help). command_usage returns "" for an unknown name.
std::string global_usage();
std::string command_usage(const std::string& name);

// The canonical name for a command or alias ("list" -> "ls"); "" when unknown.
std::string canonical_command_name(const std::string& name);

}  // namespace reel::ctl
