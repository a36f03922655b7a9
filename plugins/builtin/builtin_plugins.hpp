// Plugins compiled into reeld (library reel_builtin_plugins), written with the same SDK
// as external ones (sdk/reel_plugin.hpp, REEL_PLUGIN_BUILTIN). Each function returns
// its plugin table, taking one reference on the plugin: hand it to
// reel::PluginLibrary::from_table(entry(REEL_PLUGIN_ABI_VERSION), "builtin:<name>"),
// which releases it (destroy) when done. Thread-safe; call once per PluginLibrary.
#pragma once

#include <cstdint>

#include "sdk/reel_plugin.h"

// The diagnostic model `sleep`: waits `seconds` in `steps` steps, reporting progress,
// failing (internal) at `fail_at_step`; writes result.json. Plugin name "builtin".
const reel_plugin* reel_builtin_sleep_entry(uint32_t host_abi_version);
