// A Wan 2.1 text-to-video or image-to-video model loaded and placed as a ladder rung says: the tokenizer,
// UMT5 (on the CPU or the device, weights kept in the checkpoint's bf16), the DiT behind a
// DiTRunner (resident, block-swapped or sequential; stored fp32/bf16/fp8), and the VAE (on
// the CPU or the device; tiled decode when the rung says so). Sequencing a job (prompts,
// checkpoints, files) is the plugin's (wan_plugin.cpp); this is what bench/ and the memory
// tests drive directly. An i2v model also holds the CLIP image encoder, placed with T5
// (fp32 on the CPU, bf16 storage on CUDA, computed in fp32), and the DiT takes clip_fea/y.
//
// Compute: float32 on the CPU; on CUDA the DiT runs under bf16 autocast with bf16 weights,
// as the reference does. Thread-safety: one job at a time.
#pragma once

#include <optional>
#include <string>

#include <torch/torch.h>

#include "clip_encoder.hpp"
#include "dit_runner.hpp"
#include "i2v.hpp"
#include "ladder.hpp"
#include "model_specs.hpp"
#include "pipeline.hpp"
#include "t5_encoder.hpp"
#include "tokenizer.hpp"
#include "vae.hpp"

namespace reel::wan {

class T2VModel {
 public:
  // device: "cpu" or "cuda[:N]" (ignored, CPU used, for a cpu_only rung). checkpoint_dir
  // is unused for random-weight models. Throws tensorio::WeightError (missing, mis-shaped,
  // truncated tensors, naming file and tensor), std::runtime_error (no CUDA, unreadable
  // tokenizer), c10::Error (out of memory).
  static T2VModel load(const ModelSpec& spec, const Rung& rung, const std::string& device,
                       const std::string& checkpoint_dir);

  // text -> [seq_len, text_dim] float32 on the CPU.
  torch::Tensor encode(const std::string& text) const;
  // i2v only: image [3, H, W] in [-1, 1] -> CLIP tokens [1, L, dim] float32 on the CPU.
  torch::Tensor encode_image(const torch::Tensor& image) const;
  // i2v only: the conditioning y (i2v.hpp) for a video of `frames` frames of `size`, on the CPU.
  torch::Tensor condition(const torch::Tensor& image, int64_t frames, const I2VSize& size) const;
  // The sampling loop on the DiT's device; the latent comes back on the CPU.
  torch::Tensor denoise(DenoiseRequest request, const StepHook& hook = {});
  // latent [z, F, H, W] -> video [3, T, H, W] in [-1, 1], float32 on the CPU.
  torch::Tensor decode(const torch::Tensor& latent) const;

  const ModelSpec& spec() const { return *spec_; }
  const Rung& rung() const { return rung_; }
  const torch::Device& device() const { return device_; }
  const WanVae& vae() const { return *vae_; }
  const DiTRunner& dit() const { return *dit_; }

 private:
  const ModelSpec* spec_ = nullptr;
  Rung rung_;
  torch::Device device_{torch::kCPU};
  std::optional<T5Tokenizer> tokenizer_;  // empty: the tiny model's byte tokens
  std::optional<T5Encoder> t5_;
  std::optional<ClipImageEncoder> clip_;  // i2v models only
  std::optional<DiTRunner> dit_;
  std::optional<WanVae> vae_;
};

}  // namespace reel::wan
