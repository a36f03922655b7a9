#include "dit_runner.hpp"

#include <utility>

namespace reel::hyavatar {

namespace {

bool starts_with(const std::string& s, const std::string& head) { return s.compare(0, head.size(), head) == 0; }
bool is_block_key(const std::string& k) { return starts_with(k, "double_blocks.") || starts_with(k, "single_blocks."); }
std::string block_prefix(bool double_stream, int64_t i) {
  return (double_stream ? "double_blocks." : "single_blocks.") + std::to_string(i) + ".";
}
int64_t tensor_bytes(const torch::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

// One block's tensors from `source`, copied to `device` (asynchronously from pinned memory).
tensorio::Weights block_weights(const tensorio::Weights& source, const std::string& prefix, const torch::Device& device) {
  tensorio::TensorMap out;
  for (auto it = source.all().lower_bound(prefix); it != source.all().end() && starts_with(it->first, prefix); ++it)
    out.emplace(it->first, it->second.to(device, /*non_blocking=*/true));
  return tensorio::Weights(std::move(out), source.source());
}

torch::Tensor half(const torch::Tensor& t, int64_t i) { return t.defined() ? t.slice(0, i, i + 1) : t; }

}  // namespace

DitRunner::DitRunner(const tensorio::Weights& w, const HYAvatarDiTConfig& cfg, const torch::Device& device,
                     const DitPlacement& placement, const std::map<std::string, double>& fp8_scales)
    : device_(device), placement_(placement), fp8_scales_(fp8_scales) {
  torch::NoGradGuard no_grad;
  // Everything but the blocks goes to the device; the DiT checks every key (blocks included).
  tensorio::TensorMap shell, blocks;
  for (const auto& [name, t] : w.all()) (is_block_key(name) ? blocks : shell).emplace(name, is_block_key(name) ? t : t.to(device));
  {
    tensorio::TensorMap all = shell;
    all.insert(blocks.begin(), blocks.end());
    dit_ = HYAvatarDiT::load(tensorio::Weights(std::move(all), w.source()), cfg, /*load_blocks=*/false, fp8_scales);
  }
  const tensorio::Weights block_weights_host(blocks, w.source());
  const int64_t D = cfg.depth_double_blocks, S = cfg.depth_single_blocks;
  const int64_t kept = placement.blocks == DitPlacement::Blocks::resident ? D + S
                       : placement.blocks == DitPlacement::Blocks::streamed ? std::min(placement.resident_blocks, D + S)
                                                                             : 0;
  tensorio::TensorMap streamed;
  for (int64_t i = 0; i < D + S; ++i) {
    const bool dbl = i < D;
    const int64_t index = dbl ? i : i - D;
    if (i < kept) {
      auto bw = block_weights(block_weights_host, block_prefix(dbl, index), device);
      if (dbl)
        double_blocks_.push_back(HYAvatarDiT::load_double_block(bw, cfg, index, fp8_scales));
      else
        single_blocks_.push_back(HYAvatarDiT::load_single_block(bw, cfg, index, fp8_scales));
      continue;
    }
    // Kept as a source for streaming: pinned host memory, or float8 bytes on the device.
    const std::string prefix = block_prefix(dbl, index);
    for (auto it = blocks.lower_bound(prefix); it != blocks.end() && starts_with(it->first, prefix); ++it) {
      torch::Tensor t = it->second;
      if (placement.blocks == DitPlacement::Blocks::fp8) {
        const bool linear_weight = t.dim() == 2 && t.scalar_type() != torch::kUInt8 &&
                                   it->first.size() > 7 && it->first.compare(it->first.size() - 7, 7, ".weight") == 0;
        if (linear_weight) {
          tensorio::Fp8Tensor q = tensorio::quantize_fp8_e4m3(t.to(torch::kFloat32));
          fp8_scales_[it->first] = q.scale;
          t = q.bytes;
        }
        t = t.to(device);
      } else if (device.is_cuda()) {
        t = t.contiguous().pin_memory();
      }
      streamed.emplace(it->first, t);
    }
  }
  block_source_ = tensorio::Weights(std::move(streamed), w.source());
  for (const auto& [name, t] : block_source_.all()) source_bytes_ += tensor_bytes(t);
}

DoubleStreamBlock DitRunner::double_block(int64_t i) const {
  return HYAvatarDiT::load_double_block(block_weights(block_source_, block_prefix(true, i), device_), dit_.config(), i,
                                        fp8_scales_);
}

SingleStreamBlock DitRunner::single_block(int64_t i) const {
  return HYAvatarDiT::load_single_block(block_weights(block_source_, block_prefix(false, i), device_), dit_.config(), i,
                                        fp8_scales_);
}

DitResult DitRunner::run(const DitCall& call, const RopeTables& rope) const {
  auto on = [&](const torch::Tensor& t) { return t.defined() ? t.to(device_) : t; };
  HYAvatarDiTInputs in;
  in.x = on(call.x);
  in.t = on(call.t);
  in.ref_latents = on(call.ref_latents);
  in.text_states = on(call.text_states);
  in.text_mask = on(call.text_mask);
  in.text_states_2 = on(call.text_states_2);
  in.freqs_cos = on(rope.cos);
  in.freqs_sin = on(rope.sin);
  in.motion_exp = on(call.motion_exp);
  in.motion_pose = on(call.motion_pose);
  in.fps = on(call.fps);
  in.audio_prompts = on(call.audio_prompts);
  in.face_mask = on(call.face_mask);
  const auto& cfg = dit_.config();
  const int64_t D = cfg.depth_double_blocks, S = cfg.depth_single_blocks;
  const auto resident_double = static_cast<int64_t>(double_blocks_.size());
  const auto resident_single = static_cast<int64_t>(single_blocks_.size());
  auto single = [&](int64_t i) -> SingleStreamBlock {
    return i < resident_single ? single_blocks_[static_cast<size_t>(i)] : single_block(i);
  };
  DitResult r;
  if (call.cache_in.defined()) {
    r.x = dit_.forward_cached(in, on(call.cache_in), single(S - 1));
    return r;
  }
  HYAvatarDiTState s = dit_.embed(in);
  for (int64_t i = 0; i < D; ++i) {
    if (i < resident_double)
      dit_.run_double_block(double_blocks_[static_cast<size_t>(i)], s);
    else
      dit_.run_double_block(double_block(i), s);
  }
  dit_.merge(s);
  for (int64_t i = 0; i < S; ++i) {
    if (i + 1 == S) r.cache_out = s.x;
    dit_.run_single_block(single(i), s);
  }
  r.x = dit_.head(s);
  return r;
}

DitResult DitRunner::call(const DitCall& call, const RopeTables& rope) const {
  torch::NoGradGuard no_grad;
  if (!placement_.cfg_split) return run(call, rope);
  // One CFG half at a time: every input is batched [uncond, cond] on dim 0.
  DitResult halves[2];
  for (int64_t h = 0; h < 2; ++h) {
    DitCall c;
    c.x = half(call.x, h);
    c.t = half(call.t, h);
    c.ref_latents = half(call.ref_latents, h);
    c.text_states = half(call.text_states, h);
    c.text_mask = half(call.text_mask, h);
    c.text_states_2 = half(call.text_states_2, h);
    c.audio_prompts = half(call.audio_prompts, h);
    c.face_mask = half(call.face_mask, h);
    c.motion_exp = half(call.motion_exp, h);
    c.motion_pose = half(call.motion_pose, h);
    c.fps = half(call.fps, h);
    c.cache_in = half(call.cache_in, h);
    halves[h] = run(c, rope);
  }
  DitResult r;
  r.x = torch::cat({halves[0].x, halves[1].x}, 0);
  if (halves[0].cache_out.defined()) r.cache_out = torch::cat({halves[0].cache_out, halves[1].cache_out}, 0);
  return r;
}

int64_t DitRunner::device_bytes() const {
  int64_t n = dit_.bytes();
  for (const auto& b : double_blocks_) n += b.bytes();
  for (const auto& b : single_blocks_) n += b.bytes();
  return n + (placement_.blocks == DitPlacement::Blocks::fp8 ? source_bytes_ : 0);
}

int64_t DitRunner::host_bytes() const { return placement_.blocks == DitPlacement::Blocks::fp8 ? 0 : source_bytes_; }

}  // namespace reel::hyavatar
