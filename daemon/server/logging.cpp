#include "server/logging.hpp"

#include <cstdlib>
#include <memory>
#include <vector>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace reel {

namespace {

// "%*" -> "<N>", the syslog priority journald reads from the start of a line.
class JournalPriorityFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static const char* prefixes[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", "<6>"};
    const char* p = prefixes[static_cast<int>(msg.level) % 7];
    dest.append(p, p + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JournalPriorityFlag>(); }
};

std::unique_ptr<spdlog::formatter> make_formatter(bool journal) {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  if (journal) f->add_flag<JournalPriorityFlag>('*').set_pattern("%*%v");
  else f->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
  return f;
}

}  // namespace

bool apply_log_level(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  spdlog::set_level(lvl);
  return true;
}

void setup_logging(const Config::Log& log) {
  std::vector<spdlog::sink_ptr> sinks;
  auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  err->set_formatter(make_formatter(std::getenv("JOURNAL_STREAM") != nullptr));
  sinks.push_back(err);
  if (!log.file.empty()) {
    try {
      auto file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          log.file, static_cast<size_t>(log.file_max_bytes), static_cast<size_t>(log.file_count));
      file->set_formatter(make_formatter(false));
      sinks.push_back(file);
    } catch (const spdlog::spdlog_ex& e) {
      // Logging to stderr still works; say so there rather than refusing to start.
      err->log(spdlog::details::log_msg("reeld", spdlog::level::warn,
                                        std::string("cannot open log.file: ") + e.what() +
                                            "; logging to stderr only, fix log.file and reload"));
    }
  }
  auto logger = std::make_shared<spdlog::logger>("reeld", sinks.begin(), sinks.end());
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  apply_log_level(log.level);
}

}  // namespace reel
