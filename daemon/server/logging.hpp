// reeld's logging: spdlog to stderr in a form journald keeps, plus an optional
// rotating file.
//
// Under systemd ($JOURNAL_STREAM set) each line starts with the sd-daemon priority
// prefix ("<6>") and carries no timestamp of its own, so `journalctl -p warning`
// filters correctly; elsewhere lines carry a timestamp and a level name.
// Call setup_logging once at start-up; apply_log_level on reload. Not thread-safe
// against concurrent setup calls (spdlog itself is).
#pragma once

#include "core/config.hpp"

namespace reel {

void setup_logging(const Config::Log& log);
// Returns false (and changes nothing) for an unknown level name.
bool apply_log_level(const std::string& level);

}  // namespace reel
