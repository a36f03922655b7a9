#include "audio_proj.hpp"

#include <sstream>
#include <stdexcept>

namespace reel::hyavatar {

AudioProj AudioProj::load(CheckpointReader& r, const AudioProjConfig& cfg, const std::string& prefix) {
  AudioProj p;
  p.cfg = cfg;
  p.proj1 = DitLinear::load(r, prefix + ".proj1", cfg.input_dim(), cfg.intermediate_dim);
  p.proj2 = DitLinear::load(r, prefix + ".proj2", cfg.intermediate_dim, cfg.intermediate_dim);
  p.proj3 = DitLinear::load(r, prefix + ".proj3", cfg.intermediate_dim, cfg.context_tokens * cfg.output_dim);
  p.norm_w = r.take(prefix + ".norm.weight", {cfg.output_dim});
  p.norm_b = r.take(prefix + ".norm.bias", {cfg.output_dim});
  return p;
}

torch::Tensor AudioProj::forward(const torch::Tensor& audio_prompts) const {
  const auto& a = audio_prompts;
  if (a.dim() != 5 || a.size(2) != cfg.seq_len || a.size(3) != cfg.blocks || a.size(4) != cfg.channels) {
    std::ostringstream o;
    o << "AudioProj: audio_prompts must be [B, frames, " << cfg.seq_len << ", " << cfg.blocks << ", " << cfg.channels
      << "], got " << a.sizes();
    throw std::invalid_argument(o.str());
  }
  const int64_t b = a.size(0), f = a.size(1);
  auto x = a.to(torch::kFloat32).reshape({b * f, cfg.input_dim()});
  x = torch::relu(proj1(x));
  x = torch::relu(proj2(x));
  auto tokens = proj3(x).reshape({b * f, cfg.context_tokens, cfg.output_dim});
  tokens = dit_layer_norm(tokens, norm_w, norm_b, 1e-5);
  return tokens.reshape({b, f, cfg.context_tokens, cfg.output_dim});
}

int64_t AudioProj::bytes() const {
  return proj1.bytes() + proj2.bytes() + proj3.bytes() + dit_tensor_bytes(norm_w) + dit_tensor_bytes(norm_b);
}

}  // namespace reel::hyavatar
