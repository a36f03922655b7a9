#include "exit_codes.hpp"

#include "core/protocol.hpp"

namespace reel::ctl {

int exit_code_for_error(std::string_view code) {
  if (code == err::not_found) return kExitNotFound;
  // The request itself was wrong: fixing the command line (or reelctl) is the remedy.
  for (const char* c : {err::parse_error, err::bad_request, err::too_large, err::unknown_method,
                        err::hello_required, err::protocol_mismatch, err::unknown_model,
                        err::invalid_params, err::input_not_allowed})
    if (code == c) return kExitUsage;
  // conflict, invalid_state, queue_full, storage, draining, internal and anything newer.
  return kExitFailed;
}

}  // namespace reel::ctl
