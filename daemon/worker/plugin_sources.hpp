// Plugins compiled into reeld itself (the diagnostic `sleep`), opened by name
// ("builtin:sleep") through the same PluginLibrary interface as shared libraries,
// so the daemon and workers treat them exactly like any other plugin.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sdk/plugin_host.hpp"

namespace reel {

inline constexpr const char* kBuiltinPrefix = "builtin:";

// Names of the built-in plugins, e.g. {"builtin:sleep"}.
std::vector<std::string> builtin_plugin_names();
// Opens "builtin:<name>" from the table compiled in, anything else with dlopen.
// Throws PluginLoadError.
std::unique_ptr<PluginLibrary> open_plugin(const std::string& name_or_path);

}  // namespace reel
