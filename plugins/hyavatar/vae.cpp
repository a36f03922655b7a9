// HyVae: config.json, checkpoint loading (the official loader's key handling, strict
// key check), the tiling dispatch of encode/_decode, the posterior and device moves.
#include "vae.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "vae_blocks.hpp"

namespace reel::hyavatar {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- config ------------------------------------------------------------------------------

VaeConfig VaeConfig::from_json_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot read the VAE config (expected <model>/vae/config.json)");
  json j;
  try {
    j = json::parse(f);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  VaeConfig c;
  try {
    auto get = [&](const char* key, auto& field) {
      if (j.contains(key) && !j[key].is_null()) field = j[key].get<std::decay_t<decltype(field)>>();
    };
    get("in_channels", c.in_channels);
    get("out_channels", c.out_channels);
    get("down_block_types", c.down_block_types);
    get("up_block_types", c.up_block_types);
    get("block_out_channels", c.block_out_channels);
    get("layers_per_block", c.layers_per_block);
    get("act_fn", c.act_fn);
    get("latent_channels", c.latent_channels);
    get("norm_num_groups", c.norm_num_groups);
    // sample_size may be a list; the reference tiles with its first entry.
    if (j.contains("sample_size"))
      c.sample_size = j["sample_size"].is_array() ? j["sample_size"][0].get<int64_t>()
                                                  : j["sample_size"].get<int64_t>();
    get("sample_tsize", c.sample_tsize);
    get("scaling_factor", c.scaling_factor);
    get("spatial_compression_ratio", c.spatial_compression_ratio);
    get("time_compression_ratio", c.time_compression_ratio);
    get("disable_causal_conv", c.disable_causal_conv);
    get("mid_block_add_attention", c.mid_block_add_attention);
    get("mid_block_causal_attn", c.mid_block_causal_attn);
  } catch (const json::exception& e) {
    throw std::invalid_argument(path + ": a key has the wrong type: " + e.what());
  }
  auto bad = [&](const std::string& why) { throw std::invalid_argument(path + ": " + why); };
  if (c.block_out_channels.empty()) bad("block_out_channels is missing or empty");
  if (c.down_block_types.size() != c.block_out_channels.size() ||
      c.up_block_types.size() != c.block_out_channels.size())
    bad("down_block_types and up_block_types need one entry per block_out_channels entry");
  for (const auto& t : c.down_block_types)
    if (t != "DownEncoderBlockCausal3D" && t != "UNetResDownEncoderBlockCausal3D")
      bad("unknown down block type " + t + " (only DownEncoderBlockCausal3D exists)");
  for (const auto& t : c.up_block_types)
    if (t != "UpDecoderBlockCausal3D" && t != "UNetResUpDecoderBlockCausal3D")
      bad("unknown up block type " + t + " (only UpDecoderBlockCausal3D exists)");
  if (c.act_fn != "silu" && c.act_fn != "swish") bad("act_fn " + c.act_fn + " is not supported (silu only)");
  if (c.time_compression_ratio != 4 && c.time_compression_ratio != 8)
    bad("time_compression_ratio must be 4 or 8, as in the reference");
  if (c.layers_per_block < 1 || c.latent_channels < 1 || c.norm_num_groups < 1) bad("sizes must be positive");
  for (int64_t ch : c.block_out_channels)
    if (ch < 1 || ch % c.norm_num_groups != 0) bad("block_out_channels must be multiples of norm_num_groups");
  return c;
}

// ---- tiling ------------------------------------------------------------------------------

VaeTiling VaeTiling::none(const VaeConfig& c) {
  VaeTiling t;
  t.tile_sample_min_size = c.sample_size;
  // int(sample_size / 2 ** (len(block_out_channels) - 1)), as the constructor computes it.
  t.tile_latent_min_size =
      static_cast<int64_t>(static_cast<double>(c.sample_size) / double(int64_t{1} << (c.block_out_channels.size() - 1)));
  t.tile_sample_min_tsize = c.sample_tsize;
  t.tile_latent_min_tsize = c.sample_tsize / c.time_compression_ratio;
  t.tile_overlap_factor = 0.25;
  return t;
}

VaeTiling VaeTiling::reference(const VaeConfig& c) {
  VaeTiling t = none(c);
  t.spatial = t.temporal = true;
  return t;
}

void VaeTiling::validate() const {
  auto bad = [](const std::string& why) { throw std::invalid_argument("VaeTiling: " + why); };
  if (tile_overlap_factor < 0 || tile_overlap_factor >= 1) bad("tile_overlap_factor must be in [0, 1)");
  auto check = [&](int64_t sample, int64_t latent, const char* what) {
    if (sample < 1 || latent < 1) bad(std::string(what) + " tile sizes must be positive");
    if (static_cast<int64_t>(sample * (1 - tile_overlap_factor)) < 1 ||
        static_cast<int64_t>(latent * (1 - tile_overlap_factor)) < 1)
      bad(std::string(what) + " tiles too small for the overlap: the stride would be 0");
    if (sample - static_cast<int64_t>(sample * tile_overlap_factor) < 1 ||
        latent - static_cast<int64_t>(latent * tile_overlap_factor) < 1)
      bad(std::string(what) + " tiles too small for the overlap: nothing left after the crop");
  };
  if (spatial) check(tile_sample_min_size, tile_latent_min_size, "spatial");
  if (temporal) check(tile_sample_min_tsize, tile_latent_min_tsize, "temporal");
}

// ---- posterior ---------------------------------------------------------------------------

VaePosterior VaePosterior::from_moments(const torch::Tensor& moments) {
  if (moments.dim() != 5 || moments.size(1) % 2 != 0)
    throw std::invalid_argument("VaePosterior: moments must be [B, 2*latent, T, H, W]");
  auto parts = moments.chunk(2, 1);
  return {parts[0].contiguous(), torch::clamp(parts[1], -30.0, 20.0)};
}

torch::Tensor VaePosterior::std() const { return torch::exp(0.5 * logvar); }

torch::Tensor VaePosterior::sample(const torch::Tensor& noise) const {
  if (noise.sizes() != mean.sizes()) {
    std::ostringstream o;
    o << "VaePosterior::sample: noise has shape " << noise.sizes() << ", the latent " << mean.sizes();
    throw std::invalid_argument(o.str());
  }
  return mean + std() * noise.to(mean.options());
}

// ---- loading -----------------------------------------------------------------------------

tensorio::Weights vae_checkpoint_weights(tensorio::TensorMap raw, const std::string& source) {
  // torch.load(...); if "state_dict" in ckpt: ckpt = ckpt["state_dict"] — load_pth flattens
  // nested dicts, so the wrapped tensors arrive as "state_dict.<key>".
  const std::string wrap = "state_dict.";
  bool wrapped = false;
  for (const auto& [k, v] : raw)
    if (k.rfind(wrap, 0) == 0) wrapped = true;
  tensorio::TensorMap out;
  for (auto& [k, v] : raw) {
    if (wrapped && k.rfind(wrap, 0) != 0) continue;  // the reference keeps only the state_dict
    std::string key = wrapped ? k.substr(wrap.size()) : k;
    // {k.replace("vae.", ""): v}: every occurrence, as the reference does.
    for (size_t at; (at = key.find("vae.")) != std::string::npos;) key.erase(at, 4);
    if (out.count(key)) throw tensorio::WeightError(source + ": two tensors map to key " + key);
    out.emplace(std::move(key), v);
  }
  return tensorio::Weights(std::move(out), source);
}

HyVae HyVae::load(const std::string& root) {
  fs::path dir = fs::path(root) / "vae";
  if (!fs::exists(dir / "config.json") && fs::exists(fs::path(root) / "config.json")) dir = root;
  const auto config_path = (dir / "config.json").string();
  const auto weights_path = (dir / "pytorch_model.pt").string();
  if (!fs::exists(config_path))
    throw std::runtime_error(root + ": no vae/config.json (expected the official layout <root>/vae/config.json "
                                    "and <root>/vae/pytorch_model.pt)");
  if (!fs::exists(weights_path))
    throw tensorio::WeightError(weights_path + ": missing (the VAE weights belong beside " + config_path + ")");
  auto config = VaeConfig::from_json_file(config_path);
  return load(vae_checkpoint_weights(tensorio::load_pth(weights_path), weights_path), config);
}

HyVae HyVae::load(const tensorio::Weights& w, const VaeConfig& config) {
  auto impl = std::make_shared<Impl>();
  impl->config = config;
  CheckpointReader k(w, "AutoencoderKLCausal3D (vae/config.json)");
  impl->encoder = vae::load_encoder(k, config);
  impl->decoder = vae::load_decoder(k, config);
  const int64_t L = config.latent_channels;
  impl->quant_conv = vae::load_conv(k, "quant_conv", 2 * L, 2 * L, 1, {1, 1, 1}, false, true);
  impl->post_quant_conv = vae::load_conv(k, "post_quant_conv", L, L, 1, {1, 1, 1}, false, true);
  k.finish();
  HyVae v;
  v.impl_ = std::move(impl);
  return v;
}

// ---- evaluation --------------------------------------------------------------------------

namespace {

torch::Tensor prepare(const torch::Tensor& x, const torch::Device& device, int64_t channels, const char* what) {
  if (x.dim() != 5 || x.size(1) != channels) {
    std::ostringstream o;
    o << "HyVae: " << what << " must be [B, " << channels << ", T, H, W], got " << x.sizes();
    throw std::invalid_argument(o.str());
  }
  return x.to(device, torch::kFloat32);
}

}  // namespace

torch::Tensor HyVae::encode_moments(const torch::Tensor& video, const VaeTiling& t) const {
  t.validate();
  torch::NoGradGuard no_grad;
  const auto& c = impl_->config;
  if (t.temporal && c.disable_causal_conv)
    throw std::invalid_argument("HyVae: temporal tiling needs causal convolutions (disable_causal_conv is set)");
  auto x = prepare(video, device(), c.in_channels, "video");
  if (t.temporal && x.size(2) > t.tile_sample_min_tsize) return impl_->temporal_tiled_encode(x, t);
  if (t.spatial && (x.size(4) > t.tile_sample_min_size || x.size(3) > t.tile_sample_min_size))
    return impl_->spatial_tiled_encode(x, t);
  return impl_->encode_untiled(x);
}

VaePosterior HyVae::encode(const torch::Tensor& video, const VaeTiling& t) const {
  torch::NoGradGuard no_grad;
  return VaePosterior::from_moments(encode_moments(video, t));
}

VaePosterior HyVae::encode(const torch::Tensor& video) const { return encode(video, VaeTiling::none(config())); }

torch::Tensor HyVae::decode(const torch::Tensor& latent, const VaeTiling& t) const {
  t.validate();
  torch::NoGradGuard no_grad;
  const auto& c = impl_->config;
  if (t.temporal && c.disable_causal_conv)
    throw std::invalid_argument("HyVae: temporal tiling needs causal convolutions (disable_causal_conv is set)");
  auto z = prepare(latent, device(), c.latent_channels, "latent");
  if (t.temporal && z.size(2) > t.tile_latent_min_tsize) return impl_->temporal_tiled_decode(z, t);
  if (t.spatial && (z.size(4) > t.tile_latent_min_size || z.size(3) > t.tile_latent_min_size))
    return impl_->spatial_tiled_decode(z, t);
  return impl_->decode_untiled(z);
}

torch::Tensor HyVae::decode(const torch::Tensor& latent) const { return decode(latent, VaeTiling::none(config())); }

// ---- placement ---------------------------------------------------------------------------

namespace {

// Calls fn(tensor&) on every weight of `impl` (const or not), in one fixed order.
template <typename ImplT, typename Fn>
void for_each_weight(ImplT& impl, Fn fn) {
  auto conv = [&](auto& c) { fn(c.weight), fn(c.bias); };
  auto norm = [&](auto& n) { fn(n.weight), fn(n.bias); };
  auto resnet = [&](auto& r) {
    norm(r.norm1), conv(r.conv1), norm(r.norm2), conv(r.conv2);
    if (r.has_shortcut) conv(r.shortcut);
  };
  auto mid = [&](auto& m) {
    for (auto& r : m.resnets) resnet(r);
    for (auto& a : m.attentions) {
      norm(a.group_norm);
      fn(a.q_w), fn(a.q_b), fn(a.k_w), fn(a.k_b), fn(a.v_w), fn(a.v_b), fn(a.out_w), fn(a.out_b);
    }
  };
  auto stage = [&](auto& s) {
    for (auto& r : s.resnets) resnet(r);
    if (s.has_resample) conv(s.resample);
  };
  conv(impl.encoder.conv_in);
  for (auto& s : impl.encoder.down_blocks) stage(s);
  mid(impl.encoder.mid), norm(impl.encoder.norm_out), conv(impl.encoder.conv_out);
  conv(impl.decoder.conv_in), mid(impl.decoder.mid);
  for (auto& s : impl.decoder.up_blocks) stage(s);
  norm(impl.decoder.norm_out), conv(impl.decoder.conv_out);
  conv(impl.quant_conv), conv(impl.post_quant_conv);
}

}  // namespace

std::vector<torch::Tensor> HyVae::Impl::parameters() const {
  std::vector<torch::Tensor> p;
  for_each_weight(*this, [&](const torch::Tensor& t) { p.push_back(t); });
  return p;
}

HyVae HyVae::to(const torch::Device& device) const {
  auto impl = std::make_shared<Impl>(*impl_);
  for_each_weight(*impl, [&](torch::Tensor& t) { t = t.to(device); });
  HyVae v;
  v.impl_ = std::move(impl);
  return v;
}

torch::Device HyVae::device() const { return impl_->quant_conv.weight.device(); }

int64_t HyVae::bytes() const {
  int64_t n = 0;
  for (const auto& t : impl_->parameters()) n += t.numel() * static_cast<int64_t>(t.element_size());
  return n;
}

const VaeConfig& HyVae::config() const { return impl_->config; }

}  // namespace reel::hyavatar
