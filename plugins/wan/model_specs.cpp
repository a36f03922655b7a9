// The model table and the weight key/shape tables; see model_specs.hpp.
#include "model_specs.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace reel::wan {

const char* const kDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

const char* const kClipCheckpoint = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth";

const std::vector<float> kVaeMean = {-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
                                     0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};
const std::vector<float> kVaeStd = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                    3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

ModelSpec medium_random_model() {
  ModelSpec m = *find_model("wan2.1-t2v-tiny");
  m.name = "random-512";
  m.description = "wan2.1-t2v-tiny widened to 512, random weights (tests and benches only)";
  m.dit = {512, 2048, 256, 8, 8, 64};
  m.t5 = {32000, 512, 512, 1024, 8, 4, 32};
  m.vae = {32, 16, {1, 2, 4, 4}, 2, {false, true, true}};
  return m;
}

const ModelSpec* find_model(const std::string& name) {
  for (const auto& s : models())
    if (s.name == name) return &s;
  return nullptr;
}

const std::vector<ModelSpec>& models() {
  static const std::vector<ModelSpec> m = [] {
    std::vector<ModelSpec> v;
    ModelSpec tiny;
    tiny.name = "wan2.1-t2v-tiny";
    tiny.description =
        "Wan 2.1 text-to-video architecture at tiny sizes, random weights, for smoke tests "
        "(byte-level tokenizer; the output is noise-like)";
    tiny.random_weights = true;
    tiny.dit_stored_bytes = 4, tiny.t5_stored_bytes = 4;
    tiny.dit = {64, 128, 32, 4, 2, 32};
    tiny.t5 = {256, 48, 48, 96, 4, 2, 32};
    tiny.vae = {8, 16, {1, 2, 4, 4}, 2, {false, true, true}};
    tiny.width = 64, tiny.height = 64, tiny.frames = 9, tiny.steps = 4;
    tiny.shift = 5.0, tiny.guide = 5.0, tiny.solver = "unipc";
    tiny.max_side = 1024, tiny.max_frames = 241;
    v.push_back(tiny);

    ModelSpec small;
    small.name = "wan2.1-t2v-1.3b";
    small.description = "Wan 2.1 text-to-video, 1.3B (official checkpoint from $REEL_WAN21_T2V_1_3B_DIR)";
    small.env_var = "REEL_WAN21_T2V_1_3B_DIR";
    small.repo = "Wan-AI/Wan2.1-T2V-1.3B";
    small.default_dir = "/var/lib/reel/models/Wan2.1-T2V-1.3B";
    small.dit = {1536, 8960, 256, 12, 30, 512};
    small.t5 = {256384, 4096, 4096, 10240, 64, 24, 32};
    small.vae = {96, 16, {1, 2, 4, 4}, 2, {false, true, true}};
    small.width = 832, small.height = 480, small.frames = 81, small.steps = 50;
    small.shift = 5.0, small.guide = 5.0, small.solver = "unipc";
    small.max_side = 1920, small.max_frames = 241;
    v.push_back(small);

    ModelSpec big = small;
    big.name = "wan2.1-t2v-14b";
    big.description = "Wan 2.1 text-to-video, 14B (official checkpoint from $REEL_WAN21_T2V_14B_DIR)";
    big.env_var = "REEL_WAN21_T2V_14B_DIR";
    big.repo = "Wan-AI/Wan2.1-T2V-14B";
    big.default_dir = "/var/lib/reel/models/Wan2.1-T2V-14B";
    big.dit = {5120, 13824, 256, 40, 40, 512};
    v.push_back(big);

    // Image-to-video (wan/configs/wan_i2v_14B.py; generate.py's defaults: 40 steps, shift
    // 3.0 at 480p and 5.0 otherwise, guide 5.0, 81 frames).
    ModelSpec tiny_i2v = tiny;
    tiny_i2v.name = "wan2.1-i2v-tiny";
    tiny_i2v.description =
        "Wan 2.1 image-to-video architecture at tiny sizes, random weights, for smoke tests "
        "(byte-level tokenizer; the output is noise-like, its size follows the image's aspect)";
    tiny_i2v.i2v = true;
    tiny_i2v.clip = {28, 14, 40, 160, 4, 3};
    tiny_i2v.dit.in_dim = 36, tiny_i2v.dit.img_dim = tiny_i2v.clip.dim;
    tiny_i2v.max_area = 64 * 64;
    v.push_back(tiny_i2v);

    ModelSpec i2v = big;
    i2v.name = "wan2.1-i2v-14b-480p";
    i2v.description = "Wan 2.1 image-to-video, 14B, 480p (official checkpoint from $REEL_WAN21_I2V_14B_480P_DIR)";
    i2v.env_var = "REEL_WAN21_I2V_14B_480P_DIR";
    i2v.repo = "Wan-AI/Wan2.1-I2V-14B-480P";
    i2v.default_dir = "/var/lib/reel/models/Wan2.1-I2V-14B-480P";
    i2v.i2v = true;
    i2v.clip = {224, 14, 1280, 5120, 16, 32};
    i2v.dit.in_dim = 36, i2v.dit.img_dim = i2v.clip.dim;
    i2v.steps = 40, i2v.shift = 3.0;
    i2v.max_area = 480 * 832;
    v.push_back(i2v);

    ModelSpec i2v_720 = i2v;
    i2v_720.name = "wan2.1-i2v-14b-720p";
    i2v_720.description = "Wan 2.1 image-to-video, 14B, 720p (official checkpoint from $REEL_WAN21_I2V_14B_720P_DIR)";
    i2v_720.env_var = "REEL_WAN21_I2V_14B_720P_DIR";
    i2v_720.repo = "Wan-AI/Wan2.1-I2V-14B-720P";
    i2v_720.default_dir = "/var/lib/reel/models/Wan2.1-I2V-14B-720P";
    i2v_720.width = 1280, i2v_720.height = 720, i2v_720.shift = 5.0;
    i2v_720.max_area = 720 * 1280;
    v.push_back(i2v_720);
    return v;
  }();
  return m;
}

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

Shapes dit_shapes(const DitDims& d, int64_t text_dim) {
  const int64_t D = d.dim, F = d.ffn_dim;
  Shapes s = {{"patch_embedding.weight", {D, d.in_dim, 1, 2, 2}}, {"patch_embedding.bias", {D}},
              {"text_embedding.0.weight", {D, text_dim}},       {"text_embedding.0.bias", {D}},
              {"text_embedding.2.weight", {D, D}},              {"text_embedding.2.bias", {D}},
              {"time_embedding.0.weight", {D, d.freq_dim}},     {"time_embedding.0.bias", {D}},
              {"time_embedding.2.weight", {D, D}},              {"time_embedding.2.bias", {D}},
              {"time_projection.1.weight", {6 * D, D}},         {"time_projection.1.bias", {6 * D}},
              {"head.head.weight", {d.out_dim * 4, D}},         {"head.head.bias", {d.out_dim * 4}},
              {"head.modulation", {1, 2, D}}};
  for (int64_t i = 0; i < d.num_layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    for (const char* a : {"self_attn.", "cross_attn."}) {
      for (const char* l : {"q", "k", "v", "o"}) {
        s.push_back({p + a + l + ".weight", {D, D}});
        s.push_back({p + a + l + ".bias", {D}});
      }
      s.push_back({p + a + "norm_q.weight", {D}});
      s.push_back({p + a + "norm_k.weight", {D}});
    }
    s.push_back({p + "modulation", {1, 6, D}});
    s.push_back({p + "norm3.weight", {D}});
    s.push_back({p + "norm3.bias", {D}});
    s.push_back({p + "ffn.0.weight", {F, D}});
    s.push_back({p + "ffn.0.bias", {F}});
    s.push_back({p + "ffn.2.weight", {D, F}});
    s.push_back({p + "ffn.2.bias", {D}});
    if (d.img_dim > 0) {
      for (const char* l : {"k_img", "v_img"}) {
        s.push_back({p + "cross_attn." + l + ".weight", {D, D}});
        s.push_back({p + "cross_attn." + l + ".bias", {D}});
      }
      s.push_back({p + "cross_attn.norm_k_img.weight", {D}});
    }
  }
  if (d.img_dim > 0) {  // MLPProj: LayerNorm, Linear, GELU, Linear, LayerNorm
    const int64_t I = d.img_dim;
    for (auto [l, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"0.weight", {I}}, {"0.bias", {I}}, {"1.weight", {I, I}}, {"1.bias", {I}},
             {"3.weight", {D, I}}, {"3.bias", {D}}, {"4.weight", {D}}, {"4.bias", {D}}})
      s.push_back({"img_emb.proj." + l, shape});
  }
  return s;
}

Shapes clip_shapes(const ClipDims& c) {
  const int64_t D = c.dim, M = c.mlp_dim, P = c.patch_size, grid = c.image_size / c.patch_size;
  Shapes s = {{"visual.patch_embedding.weight", {D, 3, P, P}},
              {"visual.cls_embedding", {1, 1, D}},
              {"visual.pos_embedding", {1, grid * grid + 1, D}},
              {"visual.pre_norm.weight", {D}},
              {"visual.pre_norm.bias", {D}}};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "visual.transformer." + std::to_string(i) + ".";
    for (auto [l, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"norm1.weight", {D}}, {"norm1.bias", {D}}, {"attn.to_qkv.weight", {3 * D, D}},
             {"attn.to_qkv.bias", {3 * D}}, {"attn.proj.weight", {D, D}}, {"attn.proj.bias", {D}},
             {"norm2.weight", {D}}, {"norm2.bias", {D}}, {"mlp.0.weight", {M, D}}, {"mlp.0.bias", {M}},
             {"mlp.2.weight", {D, M}}, {"mlp.2.bias", {D}}})
      s.push_back({p + l, shape});
  }
  return s;
}

Shapes t5_shapes(const T5Dims& t) {
  const int64_t D = t.dim, A = t.dim_attn, F = t.dim_ffn;
  Shapes s = {{"token_embedding.weight", {t.vocab, D}}};
  for (int64_t i = 0; i < t.num_layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    s.push_back({p + "norm1.weight", {D}});
    s.push_back({p + "attn.q.weight", {A, D}});
    s.push_back({p + "attn.k.weight", {A, D}});
    s.push_back({p + "attn.v.weight", {A, D}});
    s.push_back({p + "attn.o.weight", {D, A}});
    s.push_back({p + "norm2.weight", {D}});
    s.push_back({p + "ffn.gate.0.weight", {F, D}});
    s.push_back({p + "ffn.fc1.weight", {F, D}});
    s.push_back({p + "ffn.fc2.weight", {D, F}});
    s.push_back({p + "pos_embedding.embedding.weight", {t.num_buckets, t.num_heads}});
  }
  s.push_back({"norm.weight", {D}});
  return s;
}

Shapes vae_shapes(const VaeDims& v) {
  Shapes s;
  auto res = [&](const std::string& p, int64_t in, int64_t out) {
    s.push_back({p + "residual.0.gamma", {in, 1, 1, 1}});
    s.push_back({p + "residual.2.weight", {out, in, 3, 3, 3}});
    s.push_back({p + "residual.2.bias", {out}});
    s.push_back({p + "residual.3.gamma", {out, 1, 1, 1}});
    s.push_back({p + "residual.6.weight", {out, out, 3, 3, 3}});
    s.push_back({p + "residual.6.bias", {out}});
    if (in != out) {
      s.push_back({p + "shortcut.weight", {out, in, 1, 1, 1}});
      s.push_back({p + "shortcut.bias", {out}});
    }
  };
  auto attn = [&](const std::string& p, int64_t c) {
    s.push_back({p + "norm.gamma", {c, 1, 1}});
    s.push_back({p + "to_qkv.weight", {3 * c, c, 1, 1}});
    s.push_back({p + "to_qkv.bias", {3 * c}});
    s.push_back({p + "proj.weight", {c, c, 1, 1}});
    s.push_back({p + "proj.bias", {c}});
  };
  auto middle = [&](const std::string& p, int64_t c) {
    res(p + "middle.0.", c, c);
    attn(p + "middle.1.", c);
    res(p + "middle.2.", c, c);
  };
  const int64_t n = static_cast<int64_t>(v.dim_mult.size());
  // Encoder: dims = dim * [1] + dim_mult.
  std::vector<int64_t> dims = {v.dim};
  for (int64_t m : v.dim_mult) dims.push_back(v.dim * m);
  s.push_back({"encoder.conv1.weight", {dims[0], 3, 3, 3, 3}});
  s.push_back({"encoder.conv1.bias", {dims[0]}});
  int64_t idx = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t in = dims[i], out = dims[i + 1];
    for (int64_t r = 0; r < v.num_res_blocks; ++r, ++idx) {
      res("encoder.downsamples." + std::to_string(idx) + ".", in, out);
      in = out;
    }
    if (i != n - 1) {
      const std::string p = "encoder.downsamples." + std::to_string(idx++) + ".";
      s.push_back({p + "resample.1.weight", {out, out, 3, 3}});
      s.push_back({p + "resample.1.bias", {out}});
      if (v.temporal[i]) {
        s.push_back({p + "time_conv.weight", {out, out, 3, 1, 1}});
        s.push_back({p + "time_conv.bias", {out}});
      }
    }
  }
  const int64_t top = dims.back(), z2 = 2 * v.z_dim;
  middle("encoder.", top);
  s.push_back({"encoder.head.0.gamma", {top, 1, 1, 1}});
  s.push_back({"encoder.head.2.weight", {z2, top, 3, 3, 3}});
  s.push_back({"encoder.head.2.bias", {z2}});
  s.push_back({"conv1.weight", {z2, z2, 1, 1, 1}});
  s.push_back({"conv1.bias", {z2}});
  s.push_back({"conv2.weight", {v.z_dim, v.z_dim, 1, 1, 1}});
  s.push_back({"conv2.bias", {v.z_dim}});
  // Decoder: dims = dim * [dim_mult[-1]] + dim_mult[::-1]; temporal upsampling reversed.
  std::vector<int64_t> ddims = {v.dim * v.dim_mult.back()};
  for (int64_t i = n - 1; i >= 0; --i) ddims.push_back(v.dim * v.dim_mult[i]);
  std::vector<bool> up(v.temporal.rbegin(), v.temporal.rend());
  s.push_back({"decoder.conv1.weight", {ddims[0], v.z_dim, 3, 3, 3}});
  s.push_back({"decoder.conv1.bias", {ddims[0]}});
  middle("decoder.", ddims[0]);
  idx = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t in = ddims[i], out = ddims[i + 1];
    if (i >= 1 && i <= 3) in /= 2;
    for (int64_t r = 0; r < v.num_res_blocks + 1; ++r, ++idx) {
      res("decoder.upsamples." + std::to_string(idx) + ".", in, out);
      in = out;
    }
    if (i != n - 1) {
      const std::string p = "decoder.upsamples." + std::to_string(idx++) + ".";
      s.push_back({p + "resample.1.weight", {out / 2, out, 3, 3}});
      s.push_back({p + "resample.1.bias", {out / 2}});
      if (up[i]) {
        s.push_back({p + "time_conv.weight", {out * 2, out, 3, 1, 1}});
        s.push_back({p + "time_conv.bias", {out * 2}});
      }
    }
  }
  const int64_t last = ddims.back();
  s.push_back({"decoder.head.0.gamma", {last, 1, 1, 1}});
  s.push_back({"decoder.head.2.weight", {3, last, 3, 3, 3}});
  s.push_back({"decoder.head.2.bias", {3}});
  return s;
}

int64_t count_params(const Shapes& s) {
  int64_t n = 0;
  for (const auto& kv : s) {
    int64_t k = 1;
    for (int64_t d : kv.second) k *= d;
    n += k;
  }
  return n;
}

tensorio::TensorMap random_weights(const Shapes& shapes, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  tensorio::TensorMap m;
  for (const auto& [name, shape] : shapes) {
    const bool is_norm = ends_with(name, ".gamma") || name.find("norm") != std::string::npos;
    torch::Tensor t;
    if (ends_with(name, ".bias") && !is_norm) t = torch::zeros(shape);
    else if (is_norm && !ends_with(name, ".bias")) t = torch::ones(shape);
    else if (is_norm) t = torch::zeros(shape);
    else t = torch::randn(shape, gen, torch::kFloat32) * 0.02;
    m[name] = t;
  }
  return m;
}

Tokens byte_tokens(const std::string& prompt, int64_t vocab, int64_t text_len) {
  std::string text = clean_prompt(prompt);
  Tokens t;
  for (unsigned char c : text) {
    if (static_cast<int64_t>(t.ids.size()) >= text_len - 1) break;
    t.ids.push_back(2 + static_cast<int64_t>(c) % (vocab - 2));
  }
  t.ids.push_back(T5Tokenizer::kEosId);
  t.seq_len = static_cast<int64_t>(t.ids.size());
  t.mask.assign(t.ids.size(), 1);
  t.ids.resize(text_len, T5Tokenizer::kPadId);
  t.mask.resize(text_len, 0);
  return t;
}

}  // namespace reel::wan
