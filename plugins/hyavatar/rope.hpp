// The HunyuanVideo-Avatar DiT's 3-axis rotary position embedding: the tables the
// pipeline builds (HunyuanVideoSampler.get_rotary_pos_embed with concat_dict
// {"mode": "timecat", "bias": -1}) and their application to queries and keys.
//
// Tables: one row per image token in t-h-w order, the reference frame first at time
// position -1 (it shares the h/w positions of frame 0), then the video frames at 0..T-1.
// Each row concatenates the axes' parts (rope_dim_list, e.g. [16, 56, 56]); within an
// axis, frequency i = 1 / theta^(2i/d) is repeated twice (interleaved pairs), so
// cos/sin are [(T+1)*H*W, head_dim] in float32, computed in float32 as the reference.
// Application rotates consecutive pairs (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin).
// Pure functions; reentrant.
#pragma once

#include <array>
#include <vector>

#include <torch/torch.h>

namespace reel::hyavatar {

struct RopeTables {
  torch::Tensor cos, sin;  // [(T+1)*H*W, head_dim] float32
};

// Sizes of the token grid (in patches) the pipeline derives from pixel sizes: the 884 VAE
// gives latents [(video_length-1)/4+1, height/8, width/8], divided by the patch size.
// Throws std::invalid_argument when a latent size is not divisible by the patch size.
std::array<int64_t, 3> rope_grid_sizes(int64_t video_length, int64_t height, int64_t width,
                                       const std::array<int64_t, 3>& patch_size);

// The tables for a grid of `sizes` (T, H, W patches), with the reference frame prepended
// at time position `ref_time_bias` (-1 in the Avatar pipeline). sum(rope_dim_list) must be
// the head dim; each entry even.
RopeTables rope_tables(const std::array<int64_t, 3>& sizes, const std::vector<int64_t>& rope_dim_list, double theta,
                       int64_t ref_time_bias = -1);

// x [B, S, H, D] rotated by cos/sin [S, D] (pairs of the last dim), in float32.
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace reel::hyavatar
