// Seeded random checkpoints for `hunyuan-avatar-tiny`, the smoke-test model, and the
// parameter counts the ladder's estimates start from.
//
// The tensors a component needs are not written down twice: keys_read_by() runs the
// component's own loader once against an empty checkpoint under a KeyRecorder
// (checkpoint_keys.hpp) and returns every key and shape it asked for. seeded_weights()
// fills those keys the way the reference's modules initialise (biases 0, norm scales 1,
// everything else normal * 0.02), so activations stay finite through every layer.
// Reentrant; the result depends only on the keys and the seed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint_keys.hpp"
#include "tensorio/weights.hpp"

namespace reel::hyavatar {

// The keys `load` reads (it is given an empty checkpoint and may throw
// tensorio::WeightError for the keys it misses; anything else is rethrown).
std::vector<ExpectedTensor> keys_read_by(const std::function<void(const tensorio::Weights&)>& load);

// A checkpoint holding `keys` (float32) drawn from `seed`; `source` names it in errors.
tensorio::Weights seeded_weights(const std::vector<ExpectedTensor>& keys, uint64_t seed, const std::string& source);

// Sum of the keys' element counts.
int64_t parameter_count(const std::vector<ExpectedTensor>& keys);

}  // namespace reel::hyavatar
