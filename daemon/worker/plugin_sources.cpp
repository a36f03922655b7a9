#include "worker/plugin_sources.hpp"

#include "builtin/builtin_plugins.hpp"

namespace reel {

std::vector<std::string> builtin_plugin_names() { return {std::string(kBuiltinPrefix) + "sleep"}; }

std::unique_ptr<PluginLibrary> open_plugin(const std::string& name_or_path) {
  if (name_or_path == std::string(kBuiltinPrefix) + "sleep")
    return PluginLibrary::from_table(reel_builtin_sleep_entry(REEL_PLUGIN_ABI_VERSION), name_or_path);
  return PluginLibrary::open(name_or_path);
}

}  // namespace reel
