// Shared helpers for golden tests: where a fixture is, its golden.json, and a
// tensor comparison that reports where and by how much two tensors differ.
// Every size and hyper-parameter a test uses comes from the fixture's own files.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace reel::golden {

// $<env_var>, else ../shared/fixtures/<name> beside the source tree.
inline std::string fixture_dir(const char* env_var, const std::string& name) {
  if (const char* v = std::getenv(env_var); v && *v) return v;
  return std::string(REEL_SOURCE_DIR) + "/../shared/fixtures/" + name;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  return nlohmann::json::parse(f);
}

// Passes when |a - b| <= atol + rtol * |b| everywhere; otherwise says how far off.
inline ::testing::AssertionResult close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol,
                                        double atol) {
  if (actual.sizes() != expected.sizes()) {
    std::ostringstream s;
    s << "shape " << actual.sizes() << " != expected " << expected.sizes();
    return ::testing::AssertionFailure() << s.str();
  }
  auto a = actual.to(torch::kFloat64), b = expected.to(torch::kFloat64);
  auto diff = (a - b).abs();
  auto bad = diff > (atol + rtol * b.abs());
  if (!bad.any().item<bool>())
    return ::testing::AssertionSuccess() << "max abs diff " << diff.max().item<double>();
  int64_t idx = diff.flatten().argmax().item<int64_t>();
  return ::testing::AssertionFailure() << bad.sum().item<int64_t>() << " of " << b.numel()
                                       << " elements differ; max abs diff " << diff.max().item<double>()
                                       << " at flat index " << idx << " (actual "
                                       << a.flatten()[idx].item<double>() << ", expected "
                                       << b.flatten()[idx].item<double>() << ")";
}

inline std::vector<float> floats(const nlohmann::json& a) { return a.get<std::vector<float>>(); }

// DiT placements a pipeline golden test runs under: placement must not change the numbers.
// Every block resident, one streamed (block swap), all streamed (sequential offload), and
// blocks stored in bf16 with per-block upcast (compared at bf16's precision instead).
struct Placement {
  const char* name;
  int64_t resident_blocks;  // -1: all
  bool bf16_blocks;
  double rtol() const { return bf16_blocks ? 5e-2 : 1e-3; }
  double atol() const { return bf16_blocks ? 5e-2 : 1e-4; }
};
inline auto placements() {
  return ::testing::Values(Placement{"resident", -1, false}, Placement{"block_swap", 1, false},
                           Placement{"sequential", 0, false}, Placement{"bf16_blocks", -1, true});
}
inline std::string placement_name(const ::testing::TestParamInfo<Placement>& i) { return i.param.name; }

}  // namespace reel::golden
