#include "args.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/job_spec.hpp"
#include "duration.hpp"
#include "exit_codes.hpp"

namespace reel::ctl {

namespace {

struct CommandSpec {
  const char* name;
  CommandKind kind;
  const char* synopsis;   // after "reelctl NAME"
  const char* summary;
  const char* details;    // options and notes, already indented
  int min_pos, max_pos;   // positional arguments (-1: unbounded)
};

const CommandSpec kCommands[] = {
    {"submit", CommandKind::submit,
     "[MODEL] [--param K=V]... [--input ROLE=PATH]... [--file JOB] [--priority N] [--max-attempts N] "
     "[--idempotency-key K] [--rung NAME] [--allow-degrade | --no-quality-loss] [--degrade-now] "
     "[--max-slowdown X] [--floor K=V]... [--wait]",
     "queue a job and print its id",
     "  -p, --param K=V           model parameter; V is a JSON scalar (2, 0.5, true, \"s\") or a string\n"
     "  -i, --input ROLE=PATH     input file; relative paths are made absolute against the cwd\n"
     "  -f, --file JOB            job file (.toml or .json); MODEL and the flags override its fields\n"
     "      --priority N          -1000..1000, higher runs first (default 0)\n"
     "      --max-attempts N      1..100 (default: the daemon's jobs.max_attempts)\n"
     "      --idempotency-key K   resubmitting with the same key returns the existing job\n"
     "  -w, --wait                follow the job to its end; exit 0 if it succeeded, 1 if not\n"
     "\n"
     "  When the job does not fit in memory (the job's policy; `reelctl models NAME` lists the rungs):\n"
     "      --rung NAME           run only at this rung of the model's ladder (a quality rung included)\n"
     "      --allow-degrade       may fall back to lower-quality rungs (policy.quality_fallback)\n"
     "      --no-quality-loss     never lower quality, whatever the daemon's default\n"
     "      --degrade-now         take a worse rung that fits now rather than wait for running work\n"
     "      --max-slowdown X      skip rungs more than X times slower than the best (X > 0)\n"
     "      --floor K=V           lowest quality allowed: steps=N, frames=N, size=N (shorter side, px),\n"
     "                            precision=fp32|bf16|fp16|fp8|int8; repeatable\n",
     0, 1},
    {"ls", CommandKind::ls, "[--state S] [--model M] [--source S] [--limit N]",
     "list jobs, newest first",
     "      --state S     queued, running, succeeded, failed or cancelled\n"
     "      --model M     only jobs of this model\n"
     "      --source S    only jobs from this source (ctl, watch:<folder>, api)\n"
     "  -n, --limit N     at most N jobs, 1..10000 (default 100)\n",
     0, 0},
    {"show", CommandKind::show, "ID",
     "show a job: its plan and rung history (fallbacks), why it waits, measured peaks, events", "", 1, 1},
    {"cancel", CommandKind::cancel, "ID...",
     "cancel jobs (queued: at once; running: the worker is asked to stop)", "", 1, -1},
    {"retry", CommandKind::retry, "ID", "queue a failed or cancelled job again", "", 1, 1},
    {"prio", CommandKind::prio, "ID N", "set a queued job's priority (-1000..1000)", "", 2, 2},
    {"pause", CommandKind::pause, "", "start no new jobs (running ones continue)", "", 0, 0},
    {"resume", CommandKind::resume, "", "start jobs again after pause", "", 0, 0},
    {"drain", CommandKind::drain, "", "let running jobs finish, start nothing new, then stop reeld", "", 0, 0},
    {"status", CommandKind::status, "", "show the daemon's state, job counts, devices, workers, plugins and running jobs", "", 0, 0},
    {"follow", CommandKind::follow, "ID [--from SEQ]",
     "stream a job's events until it ends; exit 0 if it succeeded, 1 if not",
     "      --from SEQ    only events after this sequence number (default 0: all)\n"
     "  Reconnects when the daemon restarts, for up to --timeout seconds of unreachability.\n",
     1, 1},
    {"prune", CommandKind::prune, "--older-than DURATION",
     "delete finished jobs older than DURATION",
     "      --older-than D    e.g. 30d, 12h, 45m, 10s, 1h30m, 0 (all finished jobs)\n", 0, 0},
    {"models", CommandKind::models, "[NAME]", "list models, or describe one (params, inputs, outputs, ladder)", "",
     0, 1},
    {"plugins", CommandKind::plugins, "", "list model plugins: loaded ones and refused ones with the reason", "", 0,
     0},
    {"watch", CommandKind::watch, "ls",
     "list watched input folders: inputs pending, processing, done and failed, and each folder's last error",
     "  Folders are configured as [[watch]] tables in reeld.toml (docs/WATCH.md).\n", 1, 1},
    {"help", CommandKind::help, "[COMMAND]", "show help for reelctl or a command", "", 0, 1},
};

const char* kAliases[][2] = {{"list", "ls"}, {"priority", "prio"}};

const CommandSpec* find_command(const std::string& name) {
  std::string canon = canonical_command_name(name);
  for (const auto& c : kCommands)
    if (canon == c.name) return &c;
  return nullptr;
}

int parse_int(const std::string& text, long min, long max, const std::string& what, const std::string& cmd) {
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < min || v > max)
    throw UsageError(what + " must be an integer between " + std::to_string(min) + " and " + std::to_string(max) +
                         ", not '" + text + "'",
                     cmd);
  return static_cast<int>(v);
}

int64_t parse_int64(const std::string& text, const std::string& what, const std::string& cmd) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < 0)
    throw UsageError(what + " must be a non-negative integer, not '" + text + "'", cmd);
  return v;
}

std::pair<std::string, std::string> split_assignment(const std::string& kv, const std::string& flag,
                                                     const std::string& cmd) {
  auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError(flag + " expects NAME=VALUE, not '" + kv + "'", cmd);
  return {kv.substr(0, eq), kv.substr(eq + 1)};
}

// --floor KEY=VALUE -> (key, JSON value): steps, frames and size are integers >= 1,
// precision one of the names parse_job_policy accepts.
std::pair<std::string, Json> parse_floor(const std::string& kv, const std::string& cmd) {
  auto [key, v] = split_assignment(kv, "--floor", cmd);
  if (key == "precision") {
    for (const char* p : {"fp32", "bf16", "fp16", "fp8", "int8"})
      if (v == p) return {key, Json(v)};
    throw UsageError("--floor precision must be fp32, bf16, fp16, fp8 or int8, not '" + v + "'", cmd);
  }
  if (key == "steps" || key == "frames" || key == "size") {
    errno = 0;
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE || n < 1)
      throw UsageError("--floor " + key + " must be an integer of at least 1, not '" + v + "'", cmd);
    return {key, Json(static_cast<int64_t>(n))};
  }
  throw UsageError("--floor: unknown key '" + key + "'; keys: steps, frames, size, precision", cmd);
}

bool looks_like_negative_number(const std::string& a) {
  return a.size() > 1 && a[0] == '-' && std::isdigit(static_cast<unsigned char>(a[1]));
}

// Walks argv; options take their value as "--opt=V" or as the next argument.
class Cursor {
 public:
  explicit Cursor(const std::vector<std::string>& args) : args_(args) {}
  bool done() const { return i_ >= args_.size(); }
  const std::string& next() { return args_[i_++]; }
  // For an option already split into name (and maybe inline value).
  std::string value(const std::string& name, const std::optional<std::string>& inline_value,
                    const std::string& cmd) {
    if (inline_value) return *inline_value;
    if (done()) throw UsageError("option " + name + " needs a value", cmd);
    return next();
  }

 private:
  const std::vector<std::string>& args_;
  size_t i_ = 0;
};

// Returns true when `name` is a global option (and applies it).
bool apply_global(const std::string& name, const std::optional<std::string>& inline_value, Cursor& cur,
                  Command& cmd, const std::string& cmd_name, bool& want_help, bool& want_version) {
  auto flag_only = [&] {
    if (inline_value) throw UsageError("option " + name + " takes no value", cmd_name);
  };
  GlobalOptions& g = cmd.global;
  if (name == "--socket") {
    g.socket = cur.value(name, inline_value, cmd_name);
    if (g.socket->empty()) throw UsageError("--socket needs a path", cmd_name);
  } else if (name == "--json") {
    flag_only();
    g.json = true;
  } else if (name == "-q" || name == "--quiet") {
    flag_only();
    g.quiet = true;
  } else if (name == "--no-color" || name == "--no-colour") {
    flag_only();
    g.no_color = true;
  } else if (name == "--timeout") {
    std::string v = cur.value(name, inline_value, cmd_name);
    char* end = nullptr;
    double t = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(t) || t <= 0 || t > 86400 * 365)
      throw UsageError("--timeout must be a positive number of seconds, not '" + v + "'", cmd_name);
    g.timeout_s = t;
  } else if (name == "-h" || name == "--help") {
    flag_only();
    want_help = true;
  } else if (name == "--version" || name == "-V") {
    flag_only();
    want_version = true;
  } else {
    return false;
  }
  return true;
}

// Returns true when `name` is an option of the command (and applies it).
bool apply_command_option(const std::string& name, const std::optional<std::string>& inline_value, Cursor& cur,
                          Command& cmd, const std::string& cmd_name) {
  auto value = [&] { return cur.value(name, inline_value, cmd_name); };
  auto flag_only = [&] {
    if (inline_value) throw UsageError("option " + name + " takes no value", cmd_name);
  };
  switch (cmd.kind) {
    case CommandKind::submit: {
      SubmitArgs& s = cmd.submit;
      if (name == "--param" || name == "-p") {
        std::string kv = value();
        try {
          s.params.push_back(parse_param_assignment(kv));
        } catch (const std::exception& e) {
          throw UsageError(std::string("--param ") + kv + ": " + e.what(), cmd_name);
        }
      } else if (name == "--input" || name == "-i") {
        auto [role, path] = split_assignment(value(), "--input", cmd_name);
        if (path.empty()) throw UsageError("--input " + role + "= needs a path", cmd_name);
        s.inputs.emplace_back(role, path);
      } else if (name == "--file" || name == "-f") {
        s.file = value();
      } else if (name == "--priority") {
        s.priority = parse_int(value(), -1000, 1000, "--priority", cmd_name);
      } else if (name == "--max-attempts") {
        s.max_attempts = parse_int(value(), 1, 100, "--max-attempts", cmd_name);
      } else if (name == "--idempotency-key") {
        s.idempotency_key = value();
        if (s.idempotency_key->empty() || s.idempotency_key->size() > 200)
          throw UsageError("--idempotency-key must be 1..200 characters", cmd_name);
      } else if (name == "--wait" || name == "-w") {
        flag_only();
        s.wait = true;
      } else if (name == "--rung") {
        s.rung = value();
        if (s.rung->empty()) throw UsageError("--rung needs a rung name (`reelctl models MODEL` lists them)", cmd_name);
      } else if (name == "--allow-degrade") {
        flag_only();
        s.allow_degrade = true;
      } else if (name == "--no-quality-loss") {
        flag_only();
        s.no_quality_loss = true;
      } else if (name == "--degrade-now") {
        flag_only();
        s.degrade_now = true;
      } else if (name == "--max-slowdown") {
        std::string v = value();
        char* end = nullptr;
        double x = std::strtod(v.c_str(), &end);
        if (v.empty() || *end != '\0' || !std::isfinite(x) || x <= 0)
          throw UsageError("--max-slowdown must be a number greater than 0, not '" + v + "'", cmd_name);
        s.max_slowdown = x;
      } else if (name == "--floor") {
        s.floor.push_back(parse_floor(value(), cmd_name));
      } else {
        return false;
      }
      return true;
    }
    case CommandKind::ls: {
      ListArgs& l = cmd.list;
      if (name == "--state") {
        std::string v = value();
        if (!parse_job_state(v))
          throw UsageError("--state must be queued, running, succeeded, failed or cancelled, not '" + v + "'",
                           cmd_name);
        l.state = v;
      } else if (name == "--model") {
        l.model = value();
      } else if (name == "--source") {
        l.source = value();
      } else if (name == "--limit" || name == "-n") {
        l.limit = parse_int(value(), 1, 10000, "--limit", cmd_name);
      } else {
        return false;
      }
      return true;
    }
    case CommandKind::follow:
      if (name != "--from") return false;
      cmd.from_seq = parse_int64(value(), "--from", cmd_name);
      return true;
    case CommandKind::prune:
      if (name != "--older-than") return false;
      {
        std::string v = value();
        auto s = parse_duration_seconds(v);
        if (!s) throw UsageError("--older-than expects a duration like 30d, 12h, 45m, 10s or 0, not '" + v + "'",
                                 cmd_name);
        cmd.older_than_s = *s;
      }
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string canonical_command_name(const std::string& name) {
  for (const auto& a : kAliases)
    if (name == a[0]) return a[1];
  for (const auto& c : kCommands)
    if (name == c.name) return name;
  return "";
}

Command parse_args(const std::vector<std::string>& args) {
  Command cmd;
  Cursor cur(args);
  const CommandSpec* spec = nullptr;
  std::string cmd_name;
  std::vector<std::string> positional;
  bool want_help = false, want_version = false, only_positional = false;

  while (!cur.done()) {
    std::string a = cur.next();
    bool is_option = !only_positional && a.size() > 1 && a[0] == '-' && !looks_like_negative_number(a);
    if (is_option && a == "--") {
      only_positional = true;
      continue;
    }
    if (is_option) {
      std::string name = a;
      std::optional<std::string> inline_value;
      if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
        name = a.substr(0, eq);
        inline_value = a.substr(eq + 1);
      }
      if (apply_global(name, inline_value, cur, cmd, cmd_name, want_help, want_version)) continue;
      if (spec && apply_command_option(name, inline_value, cur, cmd, cmd_name)) continue;
      throw UsageError("unknown option '" + name + "'" + (cmd_name.empty() ? "" : " for " + cmd_name), cmd_name);
    }
    if (!spec) {
      spec = find_command(a);
      if (!spec) throw UsageError("unknown command '" + a + "'");
      cmd_name = spec->name;
      cmd.kind = spec->kind;
      continue;
    }
    positional.push_back(a);
  }

  if (want_version) {
    cmd.kind = CommandKind::version;
    return cmd;
  }
  if (want_help || !spec) {
    cmd.kind = CommandKind::help;
    cmd.help_topic = (spec && spec->kind != CommandKind::help) ? cmd_name : "";
    if (spec && spec->kind == CommandKind::help && !positional.empty()) cmd.help_topic = positional[0];
    if (!spec && !want_help) throw UsageError("no command given");
    return cmd;
  }

  int n = static_cast<int>(positional.size());
  if (n < spec->min_pos || (spec->max_pos >= 0 && n > spec->max_pos)) {
    if (n < spec->min_pos)
      throw UsageError(std::string("missing argument: reelctl ") + spec->name + " " + spec->synopsis, cmd_name);
    throw UsageError("unexpected argument '" + positional[static_cast<size_t>(spec->max_pos)] + "'", cmd_name);
  }

  switch (cmd.kind) {
    case CommandKind::help:
      if (n == 1) {
        if (!find_command(positional[0])) throw UsageError("unknown command '" + positional[0] + "'");
        cmd.help_topic = canonical_command_name(positional[0]);
      }
      break;
    case CommandKind::submit:
      if (n == 1) cmd.submit.model = positional[0];
      if (cmd.submit.model.empty() && !cmd.submit.file)
        throw UsageError("submit needs a MODEL or --file JOB", cmd_name);
      if (cmd.submit.allow_degrade && cmd.submit.no_quality_loss)
        throw UsageError("--allow-degrade and --no-quality-loss contradict each other; give one", cmd_name);
      break;
    case CommandKind::show:
    case CommandKind::cancel:
    case CommandKind::retry:
    case CommandKind::follow:
      cmd.ids = positional;
      break;
    case CommandKind::prio:
      cmd.ids = {positional[0]};
      cmd.priority = parse_int(positional[1], -1000, 1000, "priority", cmd_name);
      break;
    case CommandKind::prune:
      if (!cmd.older_than_s) throw UsageError("prune needs --older-than DURATION (e.g. 30d; 0 for all)", cmd_name);
      break;
    case CommandKind::models:
      if (n == 1) cmd.model_name = positional[0];
      break;
    case CommandKind::watch:
      if (positional[0] != "ls") throw UsageError("unknown watch command '" + positional[0] + "'; try: reelctl watch ls", cmd_name);
      break;
    default:
      break;
  }
  for (const auto& id : cmd.ids)
    if (id.empty()) throw UsageError("a job id cannot be empty", cmd_name);
  return cmd;
}

std::string global_usage() {
  std::ostringstream o;
  o << "usage: reelctl [OPTIONS] COMMAND [ARGS...]\n"
       "\n"
       "Control reeld, the durable video-generation job queue.\n"
       "\n"
       "Commands:\n";
  for (const auto& c : kCommands) {
    std::string name = c.name;
    o << "  " << name << std::string(name.size() < 9 ? 9 - name.size() : 1, ' ') << c.summary << "\n";
  }
  o << "\n"
       "Options (before or after the command):\n"
       "      --socket PATH     reeld's socket (default: $REEL_SOCKET, else $XDG_RUNTIME_DIR/reel/reeld.sock,\n"
       "                        else /tmp/reel-$UID/reeld.sock)\n"
       "      --json            print the result as JSON (one object per line)\n"
       "  -q, --quiet           print only job ids (submit, ls, ...) and no progress\n"
       "      --no-color        no colours (also: $NO_COLOR, or output not a terminal)\n"
       "      --timeout SECONDS wait this long for a reply; follow and --wait keep reconnecting this long\n"
       "                        while the daemon is unreachable (default 60)\n"
       "  -h, --help            this help; 'reelctl COMMAND --help' for a command\n"
       "      --version         print reelctl's version\n"
       "\n"
       "Exit codes:\n"
       "  0  success (for --wait and follow: the job succeeded)\n"
       "  1  the job failed or was cancelled, or reeld refused the operation\n"
       "     (conflict, invalid_state, queue_full, storage, draining, internal)\n"
       "  2  usage error: bad flags, unknown command, unknown model, invalid parameters\n"
       "  3  reeld unreachable (not running, wrong --socket, no permission)\n"
       "  4  no such job\n";
  return o.str();
}

std::string command_usage(const std::string& name) {
  const CommandSpec* c = find_command(name);
  if (!c) return "";
  std::ostringstream o;
  o << "usage: reelctl " << c->name << (*c->synopsis ? " " : "") << c->synopsis << "\n\n"
    << c->summary << "\n";
  if (*c->details) o << "\n" << c->details;
  o << "\nGlobal options (--socket, --json, -q, --no-color, --timeout) and exit codes: reelctl --help\n";
  return o.str();
}

}  // namespace reel::ctl
