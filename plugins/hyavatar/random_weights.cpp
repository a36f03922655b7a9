#include "random_weights.hpp"

#include <torch/torch.h>

namespace reel::hyavatar {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::vector<ExpectedTensor> keys_read_by(const std::function<void(const tensorio::Weights&)>& load) {
  KeyRecorder recorder;
  try {
    load(tensorio::Weights(tensorio::TensorMap{}, "(recording the keys a loader reads)"));
  } catch (const tensorio::WeightError&) {
    // Expected: every key is missing from the empty checkpoint.
  }
  return recorder.keys();
}

tensorio::Weights seeded_weights(const std::vector<ExpectedTensor>& keys, uint64_t seed, const std::string& source) {
  torch::NoGradGuard no_grad;
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(seed);
  tensorio::TensorMap tensors;
  for (const ExpectedTensor& k : keys) {
    const bool norm_scale = k.shape.size() == 1 && ends_with(k.name, ".weight") &&
                            k.name.find("norm") != std::string::npos;
    torch::Tensor t;
    if (ends_with(k.name, "bias"))
      t = torch::zeros(k.shape);
    else if (norm_scale)
      t = torch::ones(k.shape);
    else
      t = torch::randn(k.shape, gen) * 0.02;
    tensors.emplace(k.name, t);
  }
  return tensorio::Weights(std::move(tensors), source);
}

int64_t parameter_count(const std::vector<ExpectedTensor>& keys) {
  int64_t n = 0;
  for (const ExpectedTensor& k : keys) {
    int64_t e = 1;
    for (int64_t d : k.shape) e *= d;
    n += e;
  }
  return n;
}

}  // namespace reel::hyavatar
