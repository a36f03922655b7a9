#include "commands.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>

#include "client.hpp"
#include "core/paths.hpp"
#include "exit_codes.hpp"
#include "follow.hpp"
#include "progress_view.hpp"
#include "submit_spec.hpp"
#include "views.hpp"

namespace reel::ctl {

namespace {

// What every command needs: options, streams, styles, and a lazily opened connection.
class Context {
 public:
  Context(const Command& cmd, std::ostream& out, std::ostream& err, const Terminal& term)
      : cmd(cmd), g(cmd.global), out(out), err(err), term(term) {
    bool colors_ok = !g.no_color && !term.no_color_env;
    out_style.color = colors_ok && term.out_tty;
    err_style.color = colors_ok && term.err_tty;
  }

  const std::string& socket_path() {
    if (socket_.empty()) socket_ = g.socket ? *g.socket : default_socket_path();
    return socket_;
  }
  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(static_cast<int64_t>(g.timeout_s * 1000));
  }
  Client& client() {
    if (!client_) client_ = std::make_unique<Client>(socket_path(), timeout());
    return *client_;
  }
  std::unique_ptr<Client> take_client() { return std::move(client_); }

  // The single path for "ask the daemon": failures surface as CtlError (exit code
  // included) and are reported once, by run_reelctl.
  Json call(const std::string& method, const Json& params = Json::object()) {
    return client().call(method, params);
  }

  void print_json(const Json& j) { out << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n"; }
  void note(const std::string& text) {
    if (!g.quiet) err << text << "\n";
  }

  const Command& cmd;
  const GlobalOptions& g;
  std::ostream& out;
  std::ostream& err;
  Terminal term;
  Style out_style, err_style;

 private:
  std::string socket_;
  std::unique_ptr<Client> client_;
};

class SilentObserver : public FollowObserver {
 public:
  void on_event(const Json&) override {}
};

int64_t wall_now() { return now_ms(); }

std::string job_id_of(const Json& result) { return json_str(result.value("job", Json::object()), "id", "?"); }

// Shared by one-job commands: JSON, the id (-q), or `human`.
void print_job_result(Context& c, const Json& result, const std::string& human) {
  if (c.g.json) c.print_json(result);
  else if (c.g.quiet) c.out << job_id_of(result) << "\n";
  else c.out << human << "\n";
}

// Ctrl-C while a progress bar is drawn would leave the shell prompt glued to the bar.
// The job itself keeps running in reeld; only this client goes away.
extern "C" void on_interrupt(int) {
  static const char msg[] = "\r\033[K^C (the job keeps running; `reelctl follow ID` resumes watching)\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  _exit(130);
}

// follow until the job is final; the outcome decides the exit code.
int follow_to_end(Context& c, std::unique_ptr<Client> client, const std::string& id, int64_t after_seq) {
  if (c.term.err_tty && !c.g.quiet) std::signal(SIGINT, on_interrupt);
  std::unique_ptr<FollowObserver> observer;
  ProgressView* view = nullptr;
  if (c.g.quiet) {
    observer = std::make_unique<SilentObserver>();
  } else {
    auto v = std::make_unique<ProgressView>(c.err, id, c.term.err_tty, c.err_style);
    view = v.get();
    observer = std::move(v);
  }
  Json result;
  try {
    result = follow_job(std::move(client), c.socket_path(), c.timeout(), id, after_seq, *observer);
  } catch (...) {
    if (view) view->finish();
    throw;
  }
  if (view) view->finish();

  Json job = result.value("job", Json::object());
  std::string state = json_str(job, "state", "?");
  if (c.g.json) c.print_json(result);
  else if (c.g.quiet) c.out << json_str(job, "id", id) << "\n";
  else c.out << render_final(job, c.out_style);
  c.out.flush();

  if (state == "succeeded") return kExitOk;
  std::string error = json_str(job, "error");
  if (state == "failed") throw CtlError(kExitFailed, "job " + id + " failed" + (error.empty() ? "" : ": " + error));
  if (state == "cancelled")
    throw CtlError(kExitFailed, "job " + id + " was cancelled" + (error.empty() ? "" : ": " + error));
  throw CtlError(kExitFailed, "follow of job " + id + " ended in state '" + state + "'");
}

int cmd_submit(Context& c) {
  JobSpec spec = build_submit_spec(c.cmd.submit, std::filesystem::current_path().string());
  Json result = c.call("submit", Json{{"job", submit_job_json(spec)}});
  std::string id = job_id_of(result);
  if (json_bool(result, "existed")) c.note("(already existed)");
  if (!c.cmd.submit.wait) {
    if (c.g.json) c.print_json(result);
    else c.out << id << "\n";
    return kExitOk;
  }
  return follow_to_end(c, c.take_client(), id, 0);
}

int cmd_ls(Context& c) {
  const ListArgs& l = c.cmd.list;
  Json params = Json::object();
  if (l.state) params["state"] = *l.state;
  if (l.model) params["model"] = *l.model;
  if (l.source) params["source"] = *l.source;
  if (l.limit) params["limit"] = *l.limit;
  Json result = c.call("list", params);
  if (c.g.json) {
    c.print_json(result);
  } else if (c.g.quiet) {
    for (const auto& j : result.value("jobs", Json::array())) c.out << json_str(j, "id", "?") << "\n";
  } else {
    c.out << render_job_table(result.value("jobs", Json::array()), wall_now(), c.out_style);
  }
  return kExitOk;
}

int cmd_show(Context& c) {
  Json result = c.call("show", Json{{"id", c.cmd.ids[0]}});
  print_job_result(c, result, render_show(result, wall_now(), c.out_style));
  return kExitOk;
}

// Several ids: each is tried; the first failure's exit code wins, but an unreachable
// daemon stops at once (every further id would fail the same way).
int cmd_cancel(Context& c) {
  int rc = kExitOk;
  for (const auto& id : c.cmd.ids) {
    try {
      Json result = c.call("cancel", Json{{"id", id}});
      Json job = result.value("job", Json::object());
      std::string what = json_str(job, "state") == "cancelled" ? "cancelled"
                         : json_bool(job, "cancel_requested") ? "cancel requested (the running job is being stopped)"
                                                              : json_str(job, "state", "?");
      print_job_result(c, result, id + " " + what);
    } catch (const RemoteError& e) {
      c.err << "reelctl: " << e.what() << "\n";
      if (rc == kExitOk) rc = e.exit_code;
    }
  }
  return rc;
}

int cmd_retry(Context& c) {
  Json result = c.call("retry", Json{{"id", c.cmd.ids[0]}});
  print_job_result(c, result, job_id_of(result) + " " + json_str(result.value("job", Json::object()), "state", "queued"));
  return kExitOk;
}

int cmd_prio(Context& c) {
  Json result = c.call("priority", Json{{"id", c.cmd.ids[0]}, {"priority", c.cmd.priority}});
  print_job_result(c, result,
                   job_id_of(result) + " priority " +
                       std::to_string(json_int(result.value("job", Json::object()), "priority", c.cmd.priority)));
  return kExitOk;
}

// pause, resume, drain: no ids to print, so -q prints nothing.
int cmd_simple(Context& c, const char* method, const std::string& human) {
  Json result = c.call(method);
  if (c.g.json) c.print_json(result);
  else if (!c.g.quiet) c.out << human << "\n";
  return kExitOk;
}

int cmd_status(Context& c) {
  Json result = c.call("status");
  if (c.g.json) c.print_json(result);
  else if (!c.g.quiet) c.out << render_status(result, wall_now(), c.out_style);
  return kExitOk;
}

int cmd_follow(Context& c) { return follow_to_end(c, nullptr, c.cmd.ids[0], c.cmd.from_seq); }

int cmd_prune(Context& c) {
  Json result = c.call("prune", Json{{"older_than_s", *c.cmd.older_than_s}});
  int64_t n = json_int(result, "deleted");
  if (c.g.json) c.print_json(result);
  else if (!c.g.quiet) c.out << "pruned " << n << " finished job" << (n == 1 ? "" : "s") << "\n";
  return kExitOk;
}

int cmd_models(Context& c) {
  Json params = Json::object();
  if (c.cmd.model_name) params["name"] = *c.cmd.model_name;
  Json result = c.call("models", params);
  Json models = result.value("models", Json::array());
  if (c.g.json) {
    c.print_json(result);
  } else if (c.g.quiet) {
    for (const auto& m : models) c.out << json_str(m, "name", "?") << "\n";
  } else if (c.cmd.model_name) {
    // The daemon answers unknown_model for a missing name; an empty list means the same.
    if (!models.is_array() || models.empty())
      throw CtlError(kExitUsage, "no model '" + *c.cmd.model_name + "'");
    for (const auto& m : models) c.out << render_model_details(m, c.out_style);
  } else {
    c.out << render_model_list(models, c.out_style);
  }
  return kExitOk;
}

// A method answering {"<list>": [...]}: the result as JSON, each item's `id_key` (-q),
// or the human table.
template <class Render>
int print_listing(Context& c, const std::string& method, const char* id_key, Render render) {
  Json result = c.call(method);
  Json items = result.value(method, Json::array());
  if (c.g.json) {
    c.print_json(result);
  } else if (c.g.quiet) {
    for (const auto& item : items) c.out << json_str(item, id_key, "?") << "\n";
  } else {
    c.out << render(items);
  }
  return kExitOk;
}

int cmd_plugins(Context& c) {
  return print_listing(c, "plugins", "source", [&](const Json& plugins) { return render_plugins(plugins, c.out_style); });
}

int cmd_watch(Context& c) {
  return print_listing(c, "watches", "path",
                       [&](const Json& watches) { return render_watches(watches, wall_now(), c.out_style); });
}

}  // namespace

int execute(const Command& cmd, std::ostream& out, std::ostream& err, const Terminal& term) {
  Context c(cmd, out, err, term);
  switch (cmd.kind) {
    case CommandKind::help:
      out << (cmd.help_topic.empty() ? global_usage() : command_usage(cmd.help_topic));
      return kExitOk;
    case CommandKind::version:
      out << "reelctl " << REEL_VERSION << "\n";
      return kExitOk;
    case CommandKind::submit: return cmd_submit(c);
    case CommandKind::ls: return cmd_ls(c);
    case CommandKind::show: return cmd_show(c);
    case CommandKind::cancel: return cmd_cancel(c);
    case CommandKind::retry: return cmd_retry(c);
    case CommandKind::prio: return cmd_prio(c);
    case CommandKind::pause: return cmd_simple(c, "pause", "paused: no new job starts; running jobs continue");
    case CommandKind::resume: return cmd_simple(c, "resume", "resumed");
    case CommandKind::drain:
      return cmd_simple(c, "drain", "draining: running jobs finish, nothing new starts, then reeld exits");
    case CommandKind::status: return cmd_status(c);
    case CommandKind::follow: return cmd_follow(c);
    case CommandKind::prune: return cmd_prune(c);
    case CommandKind::models: return cmd_models(c);
    case CommandKind::plugins: return cmd_plugins(c);
    case CommandKind::watch: return cmd_watch(c);
  }
  return kExitUsage;
}

int run_reelctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, const Terminal& term) {
  try {
    return execute(parse_args(args), out, err, term);
  } catch (const UsageError& e) {
    out.flush();
    err << "reelctl: " << e.what() << "\n"
        << "Try 'reelctl " << (e.command.empty() ? "" : e.command + " ") << "--help'.\n";
    return e.exit_code;
  } catch (const CtlError& e) {
    out.flush();
    err << "reelctl: " << e.what() << "\n";
    return e.exit_code;
  } catch (const std::exception& e) {
    out.flush();
    err << "reelctl: " << e.what() << "\n";
    return kExitFailed;
  }
}

int reelctl_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  Terminal term;
  term.out_tty = isatty(STDOUT_FILENO) == 1;
  term.err_tty = isatty(STDERR_FILENO) == 1;
  const char* no_color = std::getenv("NO_COLOR");
  term.no_color_env = no_color && *no_color;
  int rc = run_reelctl(args, std::cout, std::cerr, term);
  std::cout.flush();
  return rc;
}

}  // namespace reel::ctl
