// reeld.toml (config.hpp). Properties: only ConfigError escapes parse_config, and an
// accepted config round-trips: to_toml() parses again to the same TOML (config.hpp
// promises `reeld --check-config` could print it as the effective config).
#include "core/config.hpp"
#include "fuzz_support.hpp"

using namespace reel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Config cfg;
  try {
    cfg = parse_config(std::string(fuzz::text_of(data, size)), "reeld.toml");
  } catch (const ConfigError&) {
    return 0;
  }
  const std::string once = to_toml(cfg);
  std::string twice;
  try {
    twice = to_toml(parse_config(once, "effective.toml"));
  } catch (const ConfigError& e) {
    fuzz::require(false, "to_toml() of an accepted config is refused", std::string(e.what()) + "\n" + once);
  }
  fuzz::require(once == twice, "to_toml() does not round-trip", once + "\n----\n" + twice);
  return 0;
}
