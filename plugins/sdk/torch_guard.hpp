// For LibTorch plugins: runs a stage, turning LibTorch's out-of-memory errors into
// sdk::OomError (the host then retries the job one rung lower) and its other errors into
// sdk::InternalError, each message prefixed with the plugin's name and the stage.
// Header-only; needs LibTorch (c10). Reentrant.
#pragma once

#include <new>
#include <string>

#include <c10/util/Exception.h>

#include "sdk/reel_plugin.hpp"

namespace reel::sdk {

template <class F>
auto oom_guard(const std::string& plugin, const std::string& stage, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    throw OomError(plugin + ": out of memory in " + stage + ": " + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw OomError(plugin + ": out of host memory in " + stage);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    if (msg.find("out of memory") != std::string::npos) throw OomError(plugin + ": out of memory in " + stage + ": " + msg);
    throw InternalError(plugin + ": " + stage + ": " + msg);
  }
}

}  // namespace reel::sdk
