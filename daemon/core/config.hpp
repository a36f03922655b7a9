// Config: reeld's settings, loaded from TOML (toml++) with every default built in.
//
// The file is optional; every key documented in config/reeld.toml has the default
// given here. Loading is strict: an unknown key or a value of the wrong type is a
// ConfigError whose message names the file, line and dotted key, so a typo is never
// silently ignored. Paths left empty are resolved by resolve_paths() (paths.hpp)
// from the environment (systemd's $STATE_DIRECTORY, XDG variables).
// Every key also has a range or set of allowed values (the key table in config.cpp,
// documented in config/reeld.toml); a value outside it is a ConfigError too.
// A Config is a plain value: the daemon swaps in a new one on SIGHUP only after it
// loaded and validated completely. The functions are thread-safe (they read the
// environment; don't setenv() concurrently).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace reel {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Config {
  std::string source_path;   // file it came from; empty: embedded defaults

  struct Daemon {
    std::string state_dir;             // "" -> $STATE_DIRECTORY, else $XDG_STATE_HOME/reel
    std::string socket_path;           // "" -> $RUNTIME_DIRECTORY/reeld.sock, else $XDG_RUNTIME_DIR/reel/reeld.sock
    std::string socket_mode = "0660";  // octal string
    std::string socket_group;          // "" -> the daemon's primary group
    int max_concurrent_jobs = 1;       // jobs running at once (issue 3's budget scheduler refines this)
    int max_clients = 64;              // concurrent control connections
    int64_t max_request_bytes = 1 << 20;
    int max_queued_jobs = 100000;      // submissions beyond this are refused
    double stop_grace_seconds = 30;    // SIGTERM: wait this long for running jobs to finish
    bool drain_on_stop = true;         // SIGTERM: let running jobs finish (within the grace) or requeue them at once
    double cancel_grace_seconds = 10;  // cooperative cancel, then the job's worker is killed
    double status_interval_seconds = 5;
  } daemon;

  struct Jobs {
    int max_attempts = 2;              // default per job: runs that fail with a retryable error
    int max_crashes = 3;               // runs that crashed the daemon or worker before the job is poison
    double aging_seconds = 300;        // a queued job gains one priority point per this much waiting
    std::string output_dir;            // "" -> <state_dir>/outputs
    // Folders whose files jobs may name as inputs (input_roots.hpp); watched folders
    // count too. Empty: no local file inputs over the socket (http(s) URLs only).
    std::vector<std::string> input_roots;
    int64_t max_params_bytes = 64 << 10;  // a submission's params, as compact JSON
  } jobs;

  struct Log {
    std::string level = "info";        // trace, debug, info, warn, error
    std::string file;                  // "" -> stderr only
    int64_t file_max_bytes = 10 << 20;
    int file_count = 5;
  } log;

  struct Storage {
    std::string journal_mode = "auto"; // auto: WAL, or DELETE with a warning on a network filesystem; "wal"; "delete"
    int busy_timeout_ms = 5000;
    std::string synchronous = "full";  // full or normal (see docs/DURABILITY.md)
  } storage;

  // Sizes are bytes here; in the file they are size strings ("400MiB", memory_size.hpp).
  // How they become DeviceBudgets: make_budgets() in server/device_probe.hpp.
  struct Gpu {
    std::vector<int64_t> simulate;     // non-empty: these GPUs (bytes each) instead of NVML
    int64_t reserve = int64_t{400} << 20;           // kept free on each GPU: driver, desktop
    double reserve_fraction = 0.0;                  // of each GPU's total; the larger of the two is kept
    int64_t inference_margin = int64_t{800} << 20;  // kept free on top: estimate error, fragmentation
    int64_t worker_overhead = int64_t{500} << 20;   // CUDA context of each worker process
    std::vector<std::string> devices;  // empty: all; else GPU UUIDs or NVML indices ("0")
    double probe_interval_seconds = 10;
  } gpu;

  struct Host {
    int64_t ram_reserve = int64_t{2} << 30;  // host RAM kept free for everything else
    double ram_fraction = 0.9;               // of MemTotal, the most jobs may use
  } host;

  struct Scheduler {
    bool quality_fallback = false;     // default for jobs: may use quality rungs (lower output quality)
    bool degrade_now = false;          // default for jobs: a worse rung now rather than waiting
    double keep_alive_seconds = 300;   // an idle resident model is evicted after this; 0: never kept
    int max_resident_models = 4;       // models kept loaded (idle or busy) at once
  } scheduler;

  struct Plugins {
    // Folders searched for plugin *.so files. Empty: $REEL_PLUGIN_PATH (colon-separated),
    // then <reeld's folder>/../lib/reel/plugins (install and build trees alike).
    std::vector<std::string> dirs;
    double load_timeout_seconds = 60;  // a plugin that has not described itself by then is refused
  } plugins;

  // One watched input folder ([[watch]] tables; docs/WATCH.md). Validated at load:
  // paths absolute, no folder watched twice, the output folder not the folder itself.
  // Whether the model exists is checked when the watch starts (the plugins decide).
  struct Watch {
    std::string path;                    // the folder files are dropped into (required)
    std::string kind = "auto";           // auto, job_file, prompt_file, media_set
    std::string model;                   // required unless kind = "job_file"
    nlohmann::json params = nlohmann::json::object();   // defaults; a job file's own params win
    nlohmann::json policy = nlohmann::json::object();   // JobSpec::policy for the jobs made here
    std::string output_dir;              // "" -> <path>/out
    int priority = 0;                    // prompt files and media sets (job files carry their own)
    bool prompt_per_line = false;        // a prompt file makes one job per non-empty line
    double settle_seconds = 5;           // a media set waits this long after its last member
    std::string poll = "auto";           // "auto" (network filesystems), "true", "false"
    double poll_interval_seconds = 2;
    int64_t max_file_bytes = int64_t{1} << 30;
  };
  std::vector<Watch> watches;
};

inline constexpr const char* kSystemConfigPath = "/etc/reel/reeld.toml";

// Loads and validates one TOML file (at most 1 MiB). Throws ConfigError
// ("<file>:<line>: <key>: <why>"; several problems: one per line, sorted by line;
// a missing or unreadable file: its path and the errno text).
Config load_config_file(const std::string& path);
// Parses TOML text as if read from `name` (for tests and for --check).
Config parse_config(const std::string& text, const std::string& name);

// Every key with its value, as TOML (tables and keys sorted). parse_config() of the
// result gives the same Config; `reeld --check-config` could print it as the effective config.
std::string to_toml(const Config& cfg);

// The search order: --config (explicit), $REEL_CONFIG, `system_path`
// (/etc/reel/reeld.toml; tests pass their own), $XDG_CONFIG_HOME/reel/reeld.toml
// (default ~/.config). Returns the first that exists, or nullopt (embedded
// defaults). An explicit or $REEL_CONFIG path that does not exist is a ConfigError,
// not a fallback.
std::optional<std::string> find_config_file(const std::string& explicit_path,
                                            const std::string& system_path = kSystemConfigPath);

// Loads from find_config_file(), or the defaults.
Config load_config(const std::string& explicit_path, const std::string& system_path = kSystemConfigPath);

}  // namespace reel
