#include "rope.hpp"

#include <stdexcept>
#include <string>

namespace reel::hyavatar {

std::array<int64_t, 3> rope_grid_sizes(int64_t video_length, int64_t height, int64_t width,
                                       const std::array<int64_t, 3>& patch_size) {
  const std::array<int64_t, 3> latents{(video_length - 1) / 4 + 1, height / 8, width / 8};
  std::array<int64_t, 3> out{};
  for (int i = 0; i < 3; ++i) {
    if (latents[i] % patch_size[i] != 0)
      throw std::invalid_argument("rope_grid_sizes: latent size " + std::to_string(latents[i]) + " (axis " +
                                  std::to_string(i) + ") is not divisible by the patch size " +
                                  std::to_string(patch_size[i]));
    out[i] = latents[i] / patch_size[i];
  }
  return out;
}

RopeTables rope_tables(const std::array<int64_t, 3>& sizes, const std::vector<int64_t>& rope_dim_list, double theta,
                       int64_t ref_time_bias) {
  if (rope_dim_list.size() != 3) throw std::invalid_argument("rope_tables: rope_dim_list needs 3 entries");
  // Positions as the reference's linspace grid: 0..n-1 per axis, in float32, meshgrid "ij".
  std::vector<torch::Tensor> axes;
  for (int i = 0; i < 3; ++i) axes.push_back(torch::arange(sizes[i], torch::kFloat32));
  auto grid = torch::stack(torch::meshgrid(axes, "ij"), 0);  // [3, T, H, W]
  auto ref = grid.slice(1, 0, 1).clone();                    // frame 0's positions...
  ref[0].fill_(static_cast<double>(ref_time_bias));          // ...at time `bias`
  grid = torch::cat({ref, grid}, 1);                         // [3, T+1, H, W]

  std::vector<torch::Tensor> cos_parts, sin_parts;
  for (int i = 0; i < 3; ++i) {
    const int64_t d = rope_dim_list[i];
    if (d % 2) throw std::invalid_argument("rope_tables: rope_dim_list entries must be even");
    auto pos = grid[i].reshape(-1);
    auto exponent = torch::arange(0, d, 2, torch::kInt64).slice(0, 0, d / 2).to(torch::kFloat32) / d;
    auto freqs = 1.0 / torch::pow(theta, exponent);
    auto f = torch::outer(pos, freqs);  // [S, d/2]
    cos_parts.push_back(f.cos().repeat_interleave(2, 1));
    sin_parts.push_back(f.sin().repeat_interleave(2, 1));
  }
  return {torch::cat(cos_parts, 1), torch::cat(sin_parts, 1)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto xf = x.to(torch::kFloat32);
  auto pairs = xf.reshape({x.size(0), x.size(1), x.size(2), -1, 2});
  auto re = pairs.select(-1, 0), im = pairs.select(-1, 1);
  auto rotated = torch::stack({-im, re}, -1).flatten(3);
  auto c = cos.view({1, cos.size(0), 1, cos.size(1)}), s = sin.view({1, sin.size(0), 1, sin.size(1)});
  return (xf * c + rotated * s).to(x.scalar_type());
}

}  // namespace reel::hyavatar
