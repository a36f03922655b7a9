// abi_mismatch: a deliberately broken plugin whose table claims ABI version 999.
// The host must refuse it without calling anything else in the table.
#include "sdk/reel_plugin.h"

extern "C" __attribute__((visibility("default"))) const reel_plugin* reel_plugin_entry(uint32_t) {
  static reel_plugin table{};
  table.abi_version = 999;
  table.name = "abi_mismatch";
  table.version = "0.0.0";
  return &table;
}
