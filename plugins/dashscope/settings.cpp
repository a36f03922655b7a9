// Settings (settings.hpp): the environment, checked.
#include "dashscope/settings.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "sdk/reel_plugin.hpp"

namespace reel::dashscope {
namespace {

namespace sdk = reel::sdk;

std::string env(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

int64_t env_int(const char* name, int64_t fallback, int64_t min, int64_t max) {
  std::string v = env(name);
  if (v.empty()) return fallback;
  try {
    std::size_t used = 0;
    int64_t x = std::stoll(v, &used);
    if (used == v.size() && x >= min && x <= max) return x;
  } catch (const std::exception&) {
  }
  throw sdk::BadInputError(std::string(name) + "='" + v + "' is not an integer in " + std::to_string(min) + ".." +
                           std::to_string(max) + "; fix reeld's environment");
}

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

Settings Settings::from_env() {
  Settings s;
  try {
    s.endpoint = resolve_endpoint(env("REEL_DASHSCOPE_ENDPOINT", "intl"));
  } catch (const std::invalid_argument& e) {
    throw sdk::BadInputError(std::string("REEL_DASHSCOPE_ENDPOINT: ") + e.what());
  }
  if (std::string file = env("REEL_DASHSCOPE_API_KEY_FILE"); !file.empty()) {
    std::ifstream in(file);
    std::string line;
    if (!in || !std::getline(in, line) || trim(line).empty())
      throw sdk::MissingWeightsError("cannot read a DashScope API key from " + file +
                                     " (REEL_DASHSCOPE_API_KEY_FILE); put the key on its first line, readable by reeld");
    s.api_key = trim(line);
  } else {
    s.api_key = trim(env("DASHSCOPE_API_KEY"));
  }
  if (s.api_key.empty())
    throw sdk::MissingWeightsError("no DashScope API key: set REEL_DASHSCOPE_API_KEY_FILE (a file holding the key) or "
                                   "DASHSCOPE_API_KEY in reeld's environment (docs/DASHSCOPE.md)");
  s.poll.initial_ms = env_int("REEL_DASHSCOPE_POLL_MS", 5000, 1, 600000);
  s.poll.max_ms = env_int("REEL_DASHSCOPE_POLL_MAX_MS", std::max<int64_t>(30000, s.poll.initial_ms), s.poll.initial_ms, 3600000);
  s.retry.base_ms = env_int("REEL_DASHSCOPE_RETRY_MS", 1000, 1, 60000);
  s.retry.max_attempts = int(env_int("REEL_DASHSCOPE_RETRIES", 5, 1, 100));
  return s;
}

json budget_from_env() {
  return {{"kind", "remote"},
          {"pool", "dashscope"},
          {"max_concurrent", env_int("REEL_DASHSCOPE_MAX_CONCURRENT", 2, 1, 1000)},
          {"requests_per_minute", env_int("REEL_DASHSCOPE_REQUESTS_PER_MINUTE", 10, 1, 100000)}};
}

}  // namespace reel::dashscope
