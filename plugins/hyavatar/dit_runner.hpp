// DitRunner: the Avatar DiT placed on a device as a ladder rung asks, behind the sampling
// loop's DitFn (denoise_loop.hpp). Three placements of the blocks (the embeddings, audio
// projection, adapters and final layer are always on the device):
//   - resident: every block on the device, computed in float32;
//   - streamed: the first `resident_blocks` blocks on the device, the others kept in host
//     memory and copied to the device one at a time as they run (block swap);
//   - fp8: every block kept on the device as float8 e4m3 bytes with a per-tensor scale
//     (the official _fp8.pt, or quantised at load) and upcast one block at a time.
// With `cfg_split` the two CFG halves run one after the other (half the activations).
// The runner owns its weights; call() may be used from one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "denoise_loop.hpp"
#include "dit.hpp"
#include "tensorio/weights.hpp"

namespace reel::hyavatar {

struct DitPlacement {
  enum class Blocks { resident, streamed, fp8 } blocks = Blocks::resident;
  int64_t resident_blocks = 0;  // streamed: blocks kept on the device (double blocks first)
  bool cfg_split = false;
};

class DitRunner {
 public:
  // `w`: the checkpoint (CPU tensors; bf16/f32, or uint8 with `fp8_scales` for the official
  // fp8 file). Throws tensorio::WeightError naming every missing or misshapen key.
  DitRunner(const tensorio::Weights& w, const HYAvatarDiTConfig& cfg, const torch::Device& device,
            const DitPlacement& placement, const std::map<std::string, double>& fp8_scales = {});

  // The prediction for one CFG-batched call, with the rope tables for the window.
  DitResult call(const DitCall& call, const RopeTables& rope) const;

  const HYAvatarDiTConfig& config() const { return dit_.config(); }
  const torch::Device& device() const { return device_; }
  // Bytes held on the device between calls (weights), and in host memory for streaming.
  int64_t device_bytes() const;
  int64_t host_bytes() const;

 private:
  DitResult run(const DitCall& call, const RopeTables& rope) const;
  DoubleStreamBlock double_block(int64_t i) const;
  SingleStreamBlock single_block(int64_t i) const;

  torch::Device device_;
  DitPlacement placement_;
  HYAvatarDiT dit_;
  std::vector<DoubleStreamBlock> double_blocks_;   // on the device: all, the first R, or none
  std::vector<SingleStreamBlock> single_blocks_;
  tensorio::Weights block_source_;                 // the other blocks' tensors (host or fp8 on device)
  std::map<std::string, double> fp8_scales_;
  int64_t source_bytes_ = 0;
};

}  // namespace reel::hyavatar
