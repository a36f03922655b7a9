// The CLIP image encoder of Wan 2.1 image-to-video: the vision tower of XLMRobertaCLIP
// (wan/modules/clip.py, clip_xlm_roberta_vit_h_14) as CLIPModel.visual runs it. The image
// ([3, H, W] in [-1, 1]) is bicubic-resized (align_corners false) to the tower's square
// size, mapped to [0, 1] and normalised with the CLIP mean/std; then a patch convolution
// (no bias: the tower has a pre-norm), the class token in front, the position embedding,
// the pre-norm LayerNorm, and the transformer blocks (pre-norm attention and GELU MLP)
// up to the penultimate one (`use_31_block=True`: the last block, post-norm and head are
// never run).
//
// Weights keep the published key names of models_clip_open-clip-xlm-roberta-large-vit-
// huge-14.pth (visual.patch_embedding.weight, visual.cls_embedding, visual.pos_embedding,
// visual.pre_norm.*, visual.transformer.N.{norm1,attn.to_qkv,attn.proj,norm2,mlp.0,mlp.2}.*);
// the text tower in the same file is skipped. Sizes come from the shapes; the head count
// cannot be inferred and is a load() argument (16 for ViT-H/14).
//
// Invariants: computation in float32 (weights stored in bf16/fp16 are upcast one block at
// a time). Thread-safety: a loaded ClipImageEncoder is immutable; encode() may run
// concurrently.
#pragma once

#include <array>
#include <vector>

#include <torch/torch.h>

#include "tensorio/weights.hpp"

namespace reel::wan {

struct ClipVisionConfig {
  int64_t image_size = 0, patch_size = 0, dim = 0, mlp_dim = 0, num_heads = 0;
  int64_t num_layers = 0;  // blocks in the checkpoint; encode() runs num_layers - 1
  double eps = 1e-5;       // the reference's LayerNorm norm_eps
  // CLIP's normalisation (clip.py's _clip transforms).
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

class ClipImageEncoder {
 public:
  static constexpr int64_t kVitHugeHeads = 16;

  // Builds the vision tower from `w`; throws tensorio::WeightError naming the file and the
  // tensor when one is missing or has an unexpected shape.
  static ClipImageEncoder load(const tensorio::Weights& w, int64_t num_heads = kVitHugeHeads,
                               torch::Dtype weight_dtype = torch::kFloat32);
  ClipImageEncoder to(const torch::Device& device) const;  // weights keep their dtype
  int64_t bytes() const;                                   // stored weight bytes

  // image [3, H, W] in [-1, 1] (any size) -> the penultimate block's tokens
  // [1, 1 + patches, dim] float32, on the encoder's device.
  torch::Tensor encode(const torch::Tensor& image) const;
  // Preprocessing alone: [3, H, W] in [-1, 1] -> [1, 3, S, S] normalised.
  torch::Tensor preprocess(const torch::Tensor& image) const;

  const ClipVisionConfig& config() const { return cfg_; }

 private:
  struct Block {
    torch::Tensor norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
    Block to(const torch::Device& device, torch::Dtype dtype) const;
    std::vector<torch::Tensor*> tensors();
  };
  torch::Tensor run_block(const Block& b, const torch::Tensor& x) const;

  ClipVisionConfig cfg_;
  torch::Tensor patch_w_, cls_, pos_, pre_norm_w_, pre_norm_b_;
  std::vector<Block> blocks_;  // the first num_layers - 1 only
};

}  // namespace reel::wan
