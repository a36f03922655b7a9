// T2VModel; see t2v_model.hpp.
#include "t2v_model.hpp"

#include <fstream>

#include <ATen/autocast_mode.h>

namespace reel::wan {

namespace {

// The float dtype a checkpoint stores a tensor in (what "keep as stored" means).
torch::Dtype stored_float_dtype(const tensorio::Weights& w, const std::string& name) {
  if (!w.has(name)) return torch::kFloat32;
  const auto t = w.all().at(name).scalar_type();
  return t == torch::kBFloat16 || t == torch::kHalf ? t : torch::kFloat32;
}

DiTConfig tiny_dit_config(const ModelSpec& m) {
  DiTConfig cfg;
  cfg.model_type = m.dit.img_dim > 0 ? "i2v" : "t2v";
  cfg.dim = m.dit.dim, cfg.ffn_dim = m.dit.ffn_dim, cfg.freq_dim = m.dit.freq_dim;
  cfg.in_dim = m.dit.in_dim, cfg.out_dim = m.dit.out_dim, cfg.num_heads = m.dit.num_heads;
  cfg.num_layers = m.dit.num_layers, cfg.text_len = m.dit.text_len, cfg.eps = 1e-6;
  return cfg;
}

// Enables bf16 autocast on CUDA for the scope (the reference's amp.autocast(dtype=bf16)).
class CudaAutocast {
 public:
  explicit CudaAutocast(bool on) : on_(on), was_(at::autocast::is_enabled()) {
    if (!on_) return;
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  }
  ~CudaAutocast() {
    if (!on_) return;
    at::autocast::set_enabled(was_);
    at::autocast::clear_cache();
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool on_, was_;
};

}  // namespace

T2VModel T2VModel::load(const ModelSpec& spec, const Rung& rung, const std::string& device,
                        const std::string& dir) {
  T2VModel m;
  m.spec_ = &spec;
  m.rung_ = rung;
  if (device.rfind("cuda", 0) == 0 && !rung.cpu_only) {
    if (!torch::cuda::is_available())
      throw std::runtime_error("device " + device + " was assigned but this LibTorch build sees no CUDA device");
    m.device_ = torch::Device(device);
  }
  const bool cuda = m.device_.is_cuda();
  const torch::Device t5_device = cuda && !rung.t5_cpu ? m.device_ : torch::Device(torch::kCPU);
  const torch::Device vae_device = cuda && !rung.vae_cpu ? m.device_ : torch::Device(torch::kCPU);

  // Each component's weights are dropped (their mapping unmapped) before the next loads.
  WanDiT dit;
  if (spec.random_weights) {
    // Fixed seeds per component: the same weights in every process.
    tensorio::Weights t5w(random_weights(t5_shapes(spec.t5), 0x7e57ULL), spec.name + ":t5(random)");
    m.t5_ = T5Encoder::load(t5w, spec.t5.num_heads).to(t5_device);
    tensorio::Weights ditw(random_weights(dit_shapes(spec.dit, spec.t5.dim), 0xd17ULL), spec.name + ":dit(random)");
    dit = WanDiT::load(ditw, tiny_dit_config(spec), true, cuda ? torch::kBFloat16 : torch::kFloat32);
    tensorio::Weights vaew(random_weights(vae_shapes(spec.vae), 0x7aeULL), spec.name + ":vae(random)");
    m.vae_ = WanVae::load(vaew, kVaeMean, kVaeStd).to(vae_device);
    if (spec.i2v) {
      tensorio::Weights clipw(random_weights(clip_shapes(spec.clip), 0xc11bULL), spec.name + ":clip(random)");
      m.clip_ = ClipImageEncoder::load(clipw, spec.clip.num_heads).to(t5_device);
    }
  } else {
    m.tokenizer_.emplace(dir + "/google/umt5-xxl/spiece.model", spec.dit.text_len);
    {
      const std::string path = dir + "/models_t5_umt5-xxl-enc-bf16.pth";
      tensorio::Weights w(tensorio::load_pth(path), path);
      m.t5_ = T5Encoder::load(w, spec.t5.num_heads, stored_float_dtype(w, "blocks.0.attn.q.weight")).to(t5_device);
    }
    {
      std::string path = dir + "/diffusion_pytorch_model.safetensors";
      if (!std::ifstream(path) && std::ifstream(path + ".index.json")) path += ".index.json";
      tensorio::Weights w = load_dit_weights(path);
      // CUDA holds bf16 (the compute dtype); the CPU keeps what the file stores and upcasts per block.
      const torch::Dtype blocks = cuda ? torch::kBFloat16 : stored_float_dtype(w, "blocks.0.ffn.0.weight");
      dit = WanDiT::load(w, read_dit_config(dir + "/config.json"), true, blocks);
    }
    m.vae_ = WanVae::load_file(dir + "/Wan2.1_VAE.pth", kVaeMean, kVaeStd).to(vae_device);
    if (spec.i2v) {
      const std::string path = dir + "/" + kClipCheckpoint;
      tensorio::Weights w(tensorio::load_pth(path), path);
      const bool on_cuda = t5_device.is_cuda();
      m.clip_ = ClipImageEncoder::load(w, spec.clip.num_heads, on_cuda ? torch::kBFloat16 : torch::kFloat32).to(t5_device);
    }
  }
  if (cuda) dit.set_compute_dtype(torch::kBFloat16);
  const int64_t resident = rung.cpu_only ? dit.num_blocks() : rung.resident_blocks(dit.num_blocks());
  m.dit_.emplace(std::move(dit), m.device_, resident, rung.fp8);
  return m;
}

torch::Tensor T2VModel::encode(const std::string& text) const {
  torch::NoGradGuard no_grad;
  Tokens tok = tokenizer_ ? tokenizer_->encode(text) : byte_tokens(text, spec_->t5.vocab, spec_->dit.text_len);
  auto [ids, mask] = to_tensors(tok);
  return t5_->forward(ids, mask)[0].slice(0, 0, tok.seq_len).to(torch::kCPU);
}

torch::Tensor T2VModel::encode_image(const torch::Tensor& image) const {
  if (!clip_) throw std::logic_error(spec_->name + " is not an image-to-video model");
  return clip_->encode(image).to(torch::kCPU);
}

torch::Tensor T2VModel::condition(const torch::Tensor& image, int64_t frames, const I2VSize& size) const {
  if (!clip_) throw std::logic_error(spec_->name + " is not an image-to-video model");
  return i2v_condition(*vae_, image, frames, size).to(torch::kCPU);
}

torch::Tensor T2VModel::denoise(DenoiseRequest request, const StepHook& hook) {
  CudaAutocast autocast(device_.is_cuda());
  return wan::denoise(*dit_, request, hook).to(torch::kCPU).contiguous();
}

torch::Tensor T2VModel::decode(const torch::Tensor& latent) const {
  torch::NoGradGuard no_grad;
  torch::Tensor video =
      rung_.vae_tiled ? vae_->decode_tiled(latent, kVaeTile, kVaeTileOverlap) : vae_->decode(latent);
  return video.to(torch::kCPU);
}

}  // namespace reel::wan
