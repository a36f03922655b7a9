// DiTRunner: evaluates a WanDiT with its blocks placed as a ladder rung says: all on the
// compute device (resident), or some streamed from host memory one block at a time
// (block swap; sequential offload streams them all). A streamed block is copied (pinned
// host memory, non-blocking on CUDA) and materialized in the compute dtype while the block
// before it computes, on a helper thread; stored fp8/bf16 blocks are upcast the same way.
//
// forward_pair() runs the conditional and unconditional passes of one sampling step
// block by block, so each streamed block crosses to the device once per step, not twice.
// Results equal two WanDiT::forward() calls: the same operations run per pass.
//
// Invariants: the embeddings and head live on the device; resident blocks on the device
// in their stored dtype; streamed blocks on the host. Not thread-safe: one forward at a time.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "dit.hpp"

namespace reel::wan {

class DiTRunner {
 public:
  // `dit` as loaded (blocks on the host). resident_blocks: how many of the first blocks
  // stay on `device` (clamped to [0, num_blocks]); the rest stream. fp8_blocks stores every
  // block's linear weights as float8 e4m3 (DiTBlock::quantized_fp8), resident or streamed.
  DiTRunner(WanDiT dit, const torch::Device& device, int64_t resident_blocks, bool fp8_blocks = false);

  // x [C, F, H, W], t [1], contexts [L, text_dim] -> (cond, uncond) [out_dim, F, H, W].
  // i2v: clip_fea and y as WanDiT::forward takes them, the same for both passes (undefined
  // for t2v).
  std::pair<torch::Tensor, torch::Tensor> forward_pair(const torch::Tensor& x, const torch::Tensor& t,
                                                       const torch::Tensor& context, const torch::Tensor& negative,
                                                       int64_t seq_len, const torch::Tensor& clip_fea = {},
                                                       const torch::Tensor& y = {});
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context,
                        int64_t seq_len, const torch::Tensor& clip_fea = {}, const torch::Tensor& y = {});

  const DiTConfig& config() const { return dit_.config(); }
  const torch::Device& device() const { return device_; }
  int64_t resident_blocks() const { return static_cast<int64_t>(resident_.size()); }
  int64_t streamed_blocks() const { return static_cast<int64_t>(streamed_.size()); }
  int64_t device_block_bytes() const;  // resident blocks as stored
  int64_t host_block_bytes() const;    // streamed blocks as stored

 private:
  void run_blocks(std::vector<DiTState*> states);
  torch::Tensor on_device(const torch::Tensor& t) const;  // undefined stays undefined

  WanDiT dit_;                      // embeddings and head, on the device
  torch::Device device_;
  std::vector<DiTBlock> resident_;  // blocks [0, R) on the device
  std::vector<DiTBlock> streamed_;  // blocks [R, N) on the host (pinned with CUDA)
};

}  // namespace reel::wan
