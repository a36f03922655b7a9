// The dashscope plugin's settings, read from the environment reeld (and so each of its
// workers) runs with: endpoint, API key, poll and retry timing, and the pool budget the
// plugin describes. docs/DASHSCOPE.md lists the variables. The key is held only here
// and in the Authorization header; nothing logs or stores it. Plain values; no I/O
// after from_env().
#pragma once

#include <string>

#include "dashscope/dashscope_api.hpp"

namespace reel::dashscope {

struct Settings {
  std::string endpoint;
  std::string api_key;
  PollPolicy poll;
  RetryPolicy retry;

  // Throws sdk::BadInputError for a malformed variable and sdk::MissingWeightsError when
  // no key can be read, each naming the variable to fix.
  static Settings from_env();
};

// {"kind": "remote", "pool": "dashscope", "max_concurrent", "requests_per_minute"} from
// REEL_DASHSCOPE_MAX_CONCURRENT (default 2) and REEL_DASHSCOPE_REQUESTS_PER_MINUTE (10).
json budget_from_env();

}  // namespace reel::dashscope
