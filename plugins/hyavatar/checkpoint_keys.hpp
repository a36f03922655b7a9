// Strict checkpoint key checking for the HunyuanVideo-Avatar encoders: a loader lists
// every tensor name (and shape) it will read; check_checkpoint_keys then reports, in ONE
// error, every expected key the checkpoint lacks, every key with another shape, and every
// key nobody reads -- except keys under prefixes the caller declares as belonging to
// other parts of the same file (e.g. the vision tower of a full CLIPModel when only its
// text tower runs). Loading a half-matching checkpoint silently is the failure this
// prevents.
// Pure functions; reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensorio/weights.hpp"

namespace reel::hyavatar {

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};

// Throws tensorio::WeightError naming w.source(), `what` (the model being loaded), all
// missing keys, all shape mismatches and all unexpected keys. A key is unexpected when it
// is not in `expected` and starts with none of `other_parts` (an entry without a trailing
// '.' also matches the exact key, e.g. "logit_scale").
void check_checkpoint_keys(const tensorio::Weights& w, const std::vector<ExpectedTensor>& expected,
                           const std::vector<std::string>& other_parts, const std::string& what);

// "[a, b, c]" for messages.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace reel::hyavatar
