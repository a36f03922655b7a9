// The `wan` plugin: Wan 2.1 text-to-video (plugins/wan: tokenizer, UMT5, DiT, VAE, sampler)
// behind the reel plugin SDK. Models:
//
//   wan2.1-t2v-tiny  the Wan 2.1 architecture at tiny sizes with RANDOM weights generated
//                    from a fixed seed (no download): a smoke test of the whole path
//                    (daemon -> worker -> plugin -> MP4). Its tokenizer is byte-level (see
//                    ByteTokenizer) since no SentencePiece model goes with random weights.
//   wan2.1-t2v-1.3b  the official checkpoint folders, from $REEL_WAN21_T2V_1_3B_DIR /
//   wan2.1-t2v-14b   $REEL_WAN21_T2V_14B_DIR (defaults under /var/lib/reel/models).
//
// run(): tokenize -> T5 -> denoise (progress "denoise", cancel polled per step) ->
// work_dir/latent.pt checkpoint (reused by a retry, e.g. after an OOM in decode) -> VAE
// decode ("decode") -> MP4 + sidecar JSON (+ contact-sheet PNG). Everything is computed in
// float32. On "cuda:N" the DiT (and T5 unless the rung offloads it) are moved to the
// GPU; the VAE implementation is CPU-only, so it always decodes on the host. The CUDA
// path is untested (developed on a CPU-only machine). Memory formulas: docs/WAN.md and
// estimate_bytes() below.
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>
#include <torch/torch.h>

#include "media/video_writer.hpp"
#include "pipeline.hpp"
#include "sdk/reel_plugin.hpp"
#include "t5_encoder.hpp"
#include "tensorio/weights.hpp"
#include "tokenizer.hpp"
#include "vae.hpp"

namespace {

namespace sdk = reel::sdk;
namespace wan = reel::wan;
using sdk::json;
using Shapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

constexpr int64_t kMiB = int64_t{1} << 20;

// The reference's default negative prompt (wan/configs/shared_config.py sample_neg_prompt).
const char* const kDefaultNegative =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

// Wan 2.1's latent normalisation (wan/modules/vae.py, WanVAE.__init__ mean / std).
const std::vector<float> kVaeMean = {-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
                                     0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};
const std::vector<float> kVaeStd = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                    3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

// ---------------------------------------------------------------------------------------
// The model table.

struct DitDims {
  int64_t dim, ffn_dim, freq_dim, num_heads, num_layers, text_len, in_dim = 16, out_dim = 16;
};
struct T5Dims {
  int64_t vocab, dim, dim_attn, dim_ffn, num_heads, num_layers, num_buckets;
};
struct VaeDims {
  int64_t dim, z_dim;
  std::vector<int64_t> dim_mult;
  int64_t num_res_blocks;
  std::vector<bool> temporal;
};

struct ModelSpec {
  std::string name, description;
  bool random_weights = false;
  std::string env_var, default_dir;
  DitDims dit;
  T5Dims t5;
  VaeDims vae;
  // defaults and ranges
  int64_t width, height, frames, steps;
  double shift, guide;
  std::string solver;
  int64_t max_side, max_frames;
};

const std::vector<ModelSpec>& models() {
  static const std::vector<ModelSpec> m = [] {
    std::vector<ModelSpec> v;
    ModelSpec tiny;
    tiny.name = "wan2.1-t2v-tiny";
    tiny.description =
        "Wan 2.1 text-to-video architecture at tiny sizes, random weights, for smoke tests "
        "(byte-level tokenizer; the output is noise-like)";
    tiny.random_weights = true;
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
    big.default_dir = "/var/lib/reel/models/Wan2.1-T2V-14B";
    big.dit = {5120, 13824, 256, 40, 40, 512};
    v.push_back(big);
    return v;
  }();
  return m;
}

const ModelSpec& spec_of(const std::string& name) {
  for (const auto& s : models())
    if (s.name == name) return s;
  throw sdk::BadInputError("wan: no model '" + name + "'");
}

// ---------------------------------------------------------------------------------------
// Published key names and shapes, from the dims (what the loaders require()). Used to
// generate the tiny model's random weights and to count parameters for estimate().

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

// WanVAE_ (wan/modules/vae.py): Encoder3d, conv1, conv2, Decoder3d.
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

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Random weights with a fixed seed: biases 0, norm scales (gamma, norm*.weight) 1, every
// other tensor normal * 0.02, so activations stay finite.
reel::tensorio::TensorMap random_weights(const Shapes& shapes, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  reel::tensorio::TensorMap m;
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

// ---------------------------------------------------------------------------------------
// The tiny model's tokenizer: byte-level. The prompt is cleaned as the reference does
// (clean_prompt), then each UTF-8 byte b becomes id 2 + b % (vocab - 2) (0 = pad and
// 1 = eos are never produced by a byte), truncated to text_len - 1, then eos, then padded.
wan::Tokens byte_tokens(const std::string& prompt, int64_t vocab, int64_t text_len) {
  std::string text = wan::clean_prompt(prompt);
  wan::Tokens t;
  for (unsigned char c : text) {
    if (static_cast<int64_t>(t.ids.size()) >= text_len - 1) break;
    t.ids.push_back(2 + static_cast<int64_t>(c) % (vocab - 2));
  }
  t.ids.push_back(wan::T5Tokenizer::kEosId);
  t.seq_len = static_cast<int64_t>(t.ids.size());
  t.mask.assign(t.ids.size(), 1);
  t.ids.resize(text_len, wan::T5Tokenizer::kPadId);
  t.mask.resize(text_len, 0);
  return t;
}

// ---------------------------------------------------------------------------------------
// The ladder.

struct Rung {
  std::string name;
  bool t5_cpu = false, vae_cpu = false, vae_tiled = false, cpu_only = false;
  double steps_factor = 1, frames_factor = 1, res_factor = 1, relative_time = 1;
};

const json& ladder() {
  static const json l = json::parse(R"json([
    {"name": "resident", "kind": "placement", "help": "T5, DiT and VAE on the GPU",
     "settings": {"t5": "device", "vae": "device", "vae_tiled": false, "relative_time": 1.0}},
    {"name": "t5-cpu", "kind": "placement", "help": "text encoder on the CPU",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": false, "relative_time": 1.05}},
    {"name": "vae-cpu", "kind": "placement", "help": "text encoder and VAE on the CPU",
     "settings": {"t5": "cpu", "vae": "cpu", "vae_tiled": false, "relative_time": 1.5}},
    {"name": "vae-tiled", "kind": "placement", "help": "text encoder on the CPU, VAE decoded in spatial tiles",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "relative_time": 1.3}},
    {"name": "cpu", "kind": "placement", "help": "everything on the CPU (slow)",
     "settings": {"t5": "cpu", "vae": "cpu", "vae_tiled": false, "cpu_only": true, "relative_time": 40.0}},
    {"name": "steps-75", "kind": "quality", "help": "75% of the steps (placement as vae-tiled)",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "steps_factor": 0.75, "relative_time": 1.0}},
    {"name": "frames-half", "kind": "quality", "help": "half the frames (placement as vae-tiled)",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "frames_factor": 0.5, "relative_time": 0.65}},
    {"name": "res-75", "kind": "quality", "help": "75% of the width and height (placement as vae-tiled)",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "res_factor": 0.75, "relative_time": 0.7}}
  ])json");
  return l;
}

Rung parse_rung(const json& rung) {
  if (!rung.is_object() || !rung.contains("name") || !rung["name"].is_string())
    throw sdk::BadInputError("wan: the rung has no name: " + rung.dump());
  Rung r;
  r.name = rung["name"].get<std::string>();
  const json* st = nullptr;
  for (const auto& e : ladder())
    if (e["name"] == r.name) st = &e["settings"];
  if (!st) throw sdk::BadInputError("wan: no rung '" + r.name + "'");
  r.t5_cpu = st->value("t5", "device") == "cpu";
  r.vae_cpu = st->value("vae", "device") == "cpu";
  r.vae_tiled = st->value("vae_tiled", false);
  r.cpu_only = st->value("cpu_only", false);
  r.steps_factor = st->value("steps_factor", 1.0);
  r.frames_factor = st->value("frames_factor", 1.0);
  r.res_factor = st->value("res_factor", 1.0);
  r.relative_time = st->value("relative_time", 1.0);
  return r;
}

// The job's shape after the rung's quality changes.
struct Shape {
  int64_t steps, frames, width, height;
};

int64_t round16(double v) { return std::max<int64_t>(16, static_cast<int64_t>(std::llround(v / 16.0)) * 16); }

Shape effective_shape(const ModelSpec& m, const json& job, const Rung& r) {
  Shape s;
  s.steps = sdk::param<int64_t>(job, "steps", m.steps);
  s.frames = sdk::param<int64_t>(job, "frames", m.frames);
  s.width = sdk::param<int64_t>(job, "width", m.width);
  s.height = sdk::param<int64_t>(job, "height", m.height);
  if (r.steps_factor < 1) s.steps = std::max<int64_t>(1, static_cast<int64_t>(std::llround(s.steps * r.steps_factor)));
  if (r.frames_factor < 1) {
    int64_t lat = (std::max<int64_t>(s.frames, 1) - 1) / 4 + 1;
    lat = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(lat * r.frames_factor)));
    s.frames = 4 * (lat - 1) + 1;
  }
  if (r.res_factor < 1) {
    s.width = round16(s.width * r.res_factor);
    s.height = round16(s.height * r.res_factor);
  }
  return s;
}

// ---------------------------------------------------------------------------------------
// estimate(): bytes (see docs/WAN.md). All weights are float32 once loaded (4 B/param).
//   weights_X    = 4 * params(X), params counted from the key/shape tables above
//   latent       = 16 x (1 + (frames-1)/4) x H/8 x W/8; tokens = F_lat * H/16 * W/16
//   activations  = tokens * dim * 4 B * 24   (x, q/k/v/o, ffn (~6 dim), modulation; CFG's
//                                             two passes run one after the other, x2 slack)
//   attention    = min(tokens^2 * heads * 4 B, 256 MiB + tokens * heads * 4 B) (one query
//                  chunk of scores; dit_attention bounds a chunk near 256 MiB)
//   vae_decode   = frames * H * W * 3 * 4 B (the float video)
//                  + 4 * H * W * vae_dim * 4 B * 8 (one latent frame's 4 output frames at
//                  full width, conv input/output/cache); tiled: the second term / 4
//   t5_acts      = text_len * (dim + dim_ffn * 2 + heads * text_len) * 4 B * 2
//   host overhead 768 MiB (LibTorch, worker), plus every weight once while loading
//   (the loaders read to host memory first), plus whatever the rung keeps on the host.
struct Bytes {
  int64_t device = 0, host = 0, resident_device = 0, resident_host = 0;
};

Bytes estimate_bytes(const ModelSpec& m, const Shape& s, const Rung& r) {
  const int64_t w_dit = 4 * count_params(dit_shapes(m.dit, m.t5.dim));
  const int64_t w_t5 = 4 * count_params(t5_shapes(m.t5));
  const int64_t w_vae = 4 * count_params(vae_shapes(m.vae));
  const int64_t f_lat = (std::max<int64_t>(s.frames, 1) - 1) / 4 + 1;
  const int64_t tokens = f_lat * (s.height / 16) * (s.width / 16);
  const int64_t acts = tokens * m.dit.dim * 4 * 24;
  const int64_t attn = std::min<int64_t>(tokens * tokens * m.dit.num_heads * 4, 256 * kMiB + tokens * m.dit.num_heads * 4);
  const int64_t video = s.frames * s.height * s.width * 3 * 4;
  int64_t vae_work = 4 * s.height * s.width * m.vae.dim * 4 * 8;
  if (r.vae_tiled) vae_work /= 4;
  const int64_t vae_peak = video + vae_work;
  const int64_t t5_acts = m.dit.text_len * (m.t5.dim + 2 * m.t5.dim_ffn + m.t5.num_heads * m.dit.text_len) * 4 * 2;
  const int64_t overhead = 768 * kMiB;

  Bytes b;
  // This VAE implementation decodes on the host whatever the rung says; its work is host memory.
  const int64_t denoise_dev = w_dit + acts + attn;
  if (r.cpu_only) {
    b.device = 0;
    b.resident_host = w_dit + w_t5 + w_vae;
    b.host = overhead + b.resident_host + std::max({acts + attn, vae_peak, t5_acts});
  } else {
    b.resident_device = w_dit + (r.t5_cpu ? 0 : w_t5) + (r.vae_cpu ? 0 : w_vae);
    b.device = b.resident_device + std::max(acts + attn, r.t5_cpu ? int64_t{0} : t5_acts);
    b.device = std::max(b.device, denoise_dev);
    b.resident_host = (r.t5_cpu ? w_t5 : 0) + w_vae;
    b.host = overhead + w_dit + w_t5 + w_vae + vae_peak + (r.t5_cpu ? t5_acts : 0);
  }
  return b;
}

// ---------------------------------------------------------------------------------------
// Helpers for run().

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void write_text(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc | std::ios::binary);
    f << text;
    if (!f.flush()) throw sdk::InternalError("wan: cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw sdk::InternalError("wan: cannot rename " + tmp);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

int64_t peak_rss_bytes() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs `f`, turning LibTorch's out-of-memory errors into sdk::OomError (the host then
// retries one rung lower).
template <class F>
auto oom_guard(const std::string& stage, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const sdk::Error&) {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    throw sdk::OomError("wan: out of memory in " + stage + ": " + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw sdk::OomError("wan: out of host memory in " + stage);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    if (msg.find("out of memory") != std::string::npos) throw sdk::OomError("wan: out of memory in " + stage + ": " + msg);
    throw sdk::InternalError("wan: " + stage + ": " + msg);
  }
}

// A checkpoint model's folder: $<env_var>, else its default.
std::string checkpoint_dir(const ModelSpec& m) {
  const char* env = std::getenv(m.env_var.c_str());
  return env && *env ? env : m.default_dir;
}

// Throws MissingWeightsError naming the first file of the checkpoint that is absent
// (cheap: stat calls only, so estimate() uses it too and a job fails at planning).
void check_checkpoint(const ModelSpec& m) {
  const std::string dir = checkpoint_dir(m);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"config.json", ""},
      {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json"},
      {"models_t5_umt5-xxl-enc-bf16.pth", ""},
      {"Wan2.1_VAE.pth", ""},
      {"google/umt5-xxl/spiece.model", ""}};
  for (const auto& [rel, alt] : files) {
    if (exists(dir + "/" + rel) || (!alt.empty() && exists(dir + "/" + alt))) continue;
    throw sdk::MissingWeightsError("wan: " + m.name + ": weights not found: missing " + dir + "/" + rel +
                                   (alt.empty() ? "" : " (or " + alt + ")") + "; download Wan-AI/" +
                                   (m.name == "wan2.1-t2v-14b" ? "Wan2.1-T2V-14B" : "Wan2.1-T2V-1.3B") +
                                   " into " + dir + " or set $" + m.env_var);
  }
}

// ---------------------------------------------------------------------------------------
// The loaded model.

class WanModel : public sdk::Model {
 public:
  WanModel(const ModelSpec& spec, const Rung& rung, const std::string& device) : spec_(spec), device_str_(device) {
    reel::media::quiet_ffmpeg_logging();  // x264 prints its settings per file otherwise (this worker only)
    device_ = torch::Device(torch::kCPU);
    if (device.rfind("cuda", 0) == 0 && !rung.cpu_only) {
      if (!torch::cuda::is_available()) throw sdk::InternalError("wan: device " + device + " but CUDA is not available");
      device_ = torch::Device(device);
    }
    // T5Encoder has no to(): the text encoder always runs on the host (as t5-cpu) and only
    // its output moves to the device.
    if (spec.random_weights) load_random();
    else load_checkpoint();
    if (device_.is_cuda()) {
      dit_ = dit_->to(device_);  // untested: developed on a CPU-only machine
    }
  }

  json run(const json& job, const json& rung_json, const sdk::RunDirs& dirs, sdk::Host& host) override {
    torch::NoGradGuard no_grad;
    const Rung rung = parse_rung(rung_json);
    const std::string prompt = sdk::param<std::string>(job, "prompt", "");
    if (prompt.empty()) throw sdk::BadInputError("wan: 'prompt' is required and must not be empty");
    const std::string negative = sdk::param<std::string>(job, "negative_prompt", kDefaultNegative);
    const int64_t req_frames = sdk::param<int64_t>(job, "frames", spec_.frames);
    const int64_t req_w = sdk::param<int64_t>(job, "width", spec_.width);
    const int64_t req_h = sdk::param<int64_t>(job, "height", spec_.height);
    if (req_frames < 1 || (req_frames - 1) % 4 != 0)
      throw sdk::BadInputError("wan: frames must be 4n+1 (1, 5, 9, ..., 81), got " + std::to_string(req_frames));
    if (req_w < 16 || req_h < 16 || req_w % 16 != 0 || req_h % 16 != 0)
      throw sdk::BadInputError("wan: width and height must be multiples of 16, got " + std::to_string(req_w) + "x" +
                               std::to_string(req_h));
    const Shape s = effective_shape(spec_, job, rung);
    const double shift = sdk::param<double>(job, "shift", spec_.shift);
    const double guide = sdk::param<double>(job, "guide_scale", spec_.guide);
    const std::string solver = sdk::param<std::string>(job, "solver", spec_.solver);
    if (solver != "unipc" && solver != "euler") throw sdk::BadInputError("wan: solver must be unipc or euler");
    int64_t seed = sdk::param<int64_t>(job, "seed", -1);
    const double fps = sdk::param<double>(job, "fps", 16.0);
    const bool contact_sheet = sdk::param<bool>(job, "contact_sheet", false);
    if (!(fps > 0)) throw sdk::BadInputError("wan: fps must be > 0");

    json timings = json::object();
    const std::string ckpt = dirs.work_dir + "/latent.pt", ckpt_meta = dirs.work_dir + "/latent.json";
    json key = {{"model", spec_.name}, {"prompt", prompt}, {"negative_prompt", negative}, {"steps", s.steps},
                {"frames", s.frames}, {"width", s.width}, {"height", s.height}, {"shift", shift},
                {"guide_scale", guide}, {"solver", solver}};

    torch::Tensor latent;
    bool reused = false;
    if (exists(ckpt) && exists(ckpt_meta)) {
      try {
        json meta = json::parse(read_text(ckpt_meta));
        if (meta.value("key", json()) == key && (seed < 0 || meta.value("seed", int64_t{-2}) == seed)) {
          torch::load(latent, ckpt);
          seed = meta["seed"].get<int64_t>();
          reused = true;
        }
      } catch (const std::exception& e) {
        host.warn(std::string("wan: ignoring an unreadable latent checkpoint: ") + e.what());
        latent = torch::Tensor();
      }
    }

    if (reused) {
      host.event("checkpoint", {{"stage", "denoise"}, {"reused", true}});
    } else {
      auto t0 = std::chrono::steady_clock::now();
      host.progress(0, 1, "encode");
      auto [ctx, neg] = oom_guard("encode", [&] {
        torch::Tensor c = encode(prompt), n = encode(negative);
        return std::make_pair(c, n);
      });
      host.progress(1, 1, "encode");
      timings["encode_s"] = seconds_since(t0);
      host.check_cancelled("after encode");

      t0 = std::chrono::steady_clock::now();
      wan::NoiseSource noise(seed);
      seed = noise.seed();
      auto shape = wan::latent_shape(vae_->config().z_dim, s.frames, s.height, s.width, vae_->temporal_factor(),
                                     vae_->spatial_factor());
      wan::DenoiseRequest req;
      req.noise = noise.normal(shape[0], shape[1], shape[2], shape[3]).to(device_);
      req.context = ctx.to(device_);
      req.negative = neg.to(device_);
      req.steps = s.steps;
      req.shift = shift;
      req.guide_scale = guide;
      req.solver = solver;
      host.progress(0, s.steps, "denoise");
      latent = oom_guard("denoise", [&] {
        return wan::denoise(*dit_, req, [&](int64_t step, int64_t total, const torch::Tensor&) {
          host.check_cancelled("in denoise at step " + std::to_string(step));
          host.progress(step, total, "denoise");
          return true;
        });
      });
      latent = latent.to(torch::kCPU).contiguous();
      if (!torch::isfinite(latent).all().item<bool>())
        throw sdk::InternalError("wan: denoise produced non-finite values (NaN/inf) in the latent");
      timings["denoise_s"] = seconds_since(t0);
      torch::save(latent, ckpt + ".tmp");
      if (std::rename((ckpt + ".tmp").c_str(), ckpt.c_str()) != 0)
        throw sdk::InternalError("wan: cannot rename " + ckpt + ".tmp");
      write_text(ckpt_meta, json{{"key", key}, {"seed", seed}}.dump(2) + "\n");
      host.event("checkpoint", {{"stage", "denoise"}, {"reused", false}});
    }
    host.check_cancelled("before decode");

    auto t0 = std::chrono::steady_clock::now();
    host.progress(0, 1, "decode");
    torch::Tensor video = oom_guard("decode", [&] {
      if (rung.vae_tiled) return vae_->decode_tiled(latent, 32, 8);
      return vae_->decode(latent);
    });
    if (!torch::isfinite(video).all().item<bool>())
      throw sdk::InternalError("wan: decode produced non-finite values (NaN/inf)");
    host.progress(1, 1, "decode");
    timings["decode_s"] = seconds_since(t0);

    // [3, T, H, W] in [-1, 1] -> uint8 [T, H, W, 3].
    t0 = std::chrono::steady_clock::now();
    torch::Tensor rgb = ((video.to(torch::kCPU) + 1.0) / 2.0 * 255.0)
                            .round()
                            .clamp(0, 255)
                            .to(torch::kUInt8)
                            .permute({1, 2, 3, 0})
                            .contiguous();
    const int T = static_cast<int>(rgb.size(0)), H = static_cast<int>(rgb.size(1)), W = static_cast<int>(rgb.size(2));
    const std::string mp4 = dirs.output_dir + "/video.mp4";
    try {
      reel::media::write_mp4(mp4, rgb.data_ptr<uint8_t>(), T, H, W, fps);
    } catch (const reel::media::MediaError& e) {
      throw sdk::InternalError(std::string("wan: ") + e.what());
    }
    json outputs = json::array({mp4});
    std::string png;
    if (contact_sheet) {
      // Up to 4 frames, evenly spaced, side by side.
      const int n = std::min(4, T);
      std::vector<torch::Tensor> picks;
      for (int i = 0; i < n; ++i) picks.push_back(rgb[n == 1 ? 0 : static_cast<int64_t>(i) * (T - 1) / (n - 1)]);
      torch::Tensor sheet = torch::cat(picks, 1).contiguous();  // [H, n*W, 3]
      png = dirs.output_dir + "/contact_sheet.png";
      try {
        reel::media::write_png(png, sheet.data_ptr<uint8_t>(), static_cast<int>(sheet.size(1)), H);
      } catch (const reel::media::MediaError& e) {
        throw sdk::InternalError(std::string("wan: ") + e.what());
      }
    }
    timings["write_s"] = seconds_since(t0);

    const std::string sidecar = dirs.output_dir + "/video.json";
    json info = {{"model", spec_.name},
                 {"prompt", prompt},
                 {"negative_prompt", negative},
                 {"seed", seed},
                 {"rung", rung.name},
                 {"device", device_str_},
                 {"steps", s.steps},
                 {"frames", T},
                 {"width", W},
                 {"height", H},
                 {"fps", fps},
                 {"shift", shift},
                 {"guide_scale", guide},
                 {"solver", solver},
                 {"precision", "fp32"},
                 {"denoise_reused", reused},
                 {"timings", timings},
                 {"peak_rss_bytes", peak_rss_bytes()}};
    if (spec_.random_weights) {
      info["random_weights"] = true;
      info["note"] = "random weights, for smoke tests";
    }
    write_text(sidecar, info.dump(2) + "\n");
    outputs.push_back(sidecar);
    if (!png.empty()) outputs.push_back(png);
    host.memory_sample(0, static_cast<uint64_t>(peak_rss_bytes()));
    return {{"outputs", outputs}, {"info", info}};
  }

 private:
  torch::Tensor encode(const std::string& text) {
    wan::Tokens tok = tokenizer_ ? tokenizer_->encode(text) : byte_tokens(text, spec_.t5.vocab, spec_.dit.text_len);
    auto [ids, mask] = wan::to_tensors(tok);
    torch::Tensor out = t5_->forward(ids.to(t5_device_), mask.to(t5_device_));
    return out[0].slice(0, 0, tok.seq_len).to(torch::kCPU);
  }

  void load_random() {
    const auto& m = spec_;
    // Fixed seeds per component: the same weights in every process.
    reel::tensorio::Weights t5w(random_weights(t5_shapes(m.t5), 0x7e57ULL), m.name + ":t5(random)");
    t5_ = wan::T5Encoder::load(t5w, m.t5.num_heads);
    wan::DiTConfig cfg;
    cfg.model_type = "t2v";
    cfg.dim = m.dit.dim, cfg.ffn_dim = m.dit.ffn_dim, cfg.freq_dim = m.dit.freq_dim;
    cfg.in_dim = m.dit.in_dim, cfg.out_dim = m.dit.out_dim, cfg.num_heads = m.dit.num_heads;
    cfg.num_layers = m.dit.num_layers, cfg.text_len = m.dit.text_len, cfg.eps = 1e-6;
    reel::tensorio::Weights ditw(random_weights(dit_shapes(m.dit, m.t5.dim), 0xd17ULL), m.name + ":dit(random)");
    dit_ = wan::WanDiT::load(ditw, cfg);
    reel::tensorio::Weights vaew(random_weights(vae_shapes(m.vae), 0x7aeULL), m.name + ":vae(random)");
    vae_ = wan::WanVae::load(vaew, kVaeMean, kVaeStd);
  }

  void load_checkpoint() {
    const std::string dir = checkpoint_dir(spec_);
    check_checkpoint(spec_);
    const std::string t5p = dir + "/models_t5_umt5-xxl-enc-bf16.pth";
    const std::string vaep = dir + "/Wan2.1_VAE.pth";
    const std::string spm = dir + "/google/umt5-xxl/spiece.model";
    try {
      tokenizer_.emplace(spm, spec_.dit.text_len);
      reel::tensorio::Weights t5w(reel::tensorio::load_pth(t5p), t5p);
      t5_ = wan::T5Encoder::load(t5w, spec_.t5.num_heads);
      dit_ = wan::WanDiT::load_dir(dir);
      vae_ = wan::WanVae::load_file(vaep, kVaeMean, kVaeStd);
    } catch (const reel::tensorio::WeightError& e) {
      throw sdk::MissingWeightsError(std::string("wan: ") + spec_.name + ": corrupt weights: " + e.what());
    }
  }

  const ModelSpec& spec_;
  std::string device_str_;
  torch::Device device_{torch::kCPU};
  torch::Device t5_device_{torch::kCPU};
  std::optional<wan::T5Tokenizer> tokenizer_;
  std::optional<wan::T5Encoder> t5_;
  std::optional<wan::WanDiT> dit_;
  std::optional<wan::WanVae> vae_;
};

// ---------------------------------------------------------------------------------------

class WanPlugin : public sdk::Plugin {
 public:
  json describe() override {
    json out = json::array();
    for (const auto& m : models()) {
      json params = json::array({
          {{"name", "prompt"}, {"type", "string"}, {"help", "what to show"}},
          {{"name", "negative_prompt"}, {"type", "string"}, {"default", kDefaultNegative},
           {"help", "what to avoid (default: the reference's Chinese default negative prompt)"}},
          {{"name", "width"}, {"type", "integer"}, {"min", 16}, {"max", m.max_side}, {"default", m.width},
           {"help", "pixels, a multiple of 16"}},
          {{"name", "height"}, {"type", "integer"}, {"min", 16}, {"max", m.max_side}, {"default", m.height},
           {"help", "pixels, a multiple of 16"}},
          {{"name", "frames"}, {"type", "integer"}, {"min", 1}, {"max", m.max_frames}, {"default", m.frames},
           {"help", "number of frames, 4n+1"}},
          {{"name", "steps"}, {"type", "integer"}, {"min", 1}, {"max", 200}, {"default", m.steps},
           {"help", "denoising steps"}},
          {{"name", "shift"}, {"type", "number"}, {"min", 0.01}, {"max", 100}, {"default", m.shift},
           {"help", "flow-matching timestep shift"}},
          {{"name", "guide_scale"}, {"type", "number"}, {"min", 0}, {"max", 30}, {"default", m.guide},
           {"help", "classifier-free guidance scale"}},
          {{"name", "solver"}, {"type", "string"}, {"choices", json::array({"unipc", "euler"})}, {"default", m.solver},
           {"help", "sampler"}},
          {{"name", "seed"}, {"type", "integer"}, {"min", -1}, {"max", 9007199254740991LL}, {"default", -1},
           {"help", "noise seed; -1 picks one at random (recorded in the sidecar)"}},
          {{"name", "fps"}, {"type", "number"}, {"min", 1}, {"max", 120}, {"default", 16},
           {"help", "frames per second of the MP4"}},
          {{"name", "contact_sheet"}, {"type", "boolean"}, {"default", false},
           {"help", "also write a PNG of up to 4 sampled frames side by side"}},
      });
      out.push_back({{"name", m.name},
                     {"description", m.description},
                     {"params", params},
                     {"inputs", json::array()},
                     {"outputs", json::array({"video/mp4", "application/json", "image/png"})},
                     {"ladder", ladder()},
                     {"budget", "memory"}});
    }
    return {{"models", out}};
  }

  json estimate(const json& job, const json& rung_json) override {
    const ModelSpec& m = spec_of(job.value("model", ""));
    if (!m.random_weights) check_checkpoint(m);
    const Rung r = parse_rung(rung_json);
    const Shape s = effective_shape(m, job, r);
    const Bytes b = estimate_bytes(m, s, r);
    double rel = r.relative_time;
    const Shape full = effective_shape(m, job, parse_rung(ladder()[0]));
    rel *= static_cast<double>(s.steps) / std::max<int64_t>(1, full.steps);
    rel *= static_cast<double>(s.frames * s.width * s.height) /
           std::max<int64_t>(1, full.frames * full.width * full.height);
    return {{"device_bytes", b.device},
            {"host_bytes", b.host},
            {"resident_device_bytes", b.resident_device},
            {"resident_host_bytes", b.resident_host},
            {"relative_time", std::max(rel, 0.01)},
            {"cpu_only", r.cpu_only},
            {"effective",
             {{"steps", s.steps}, {"frames", s.frames}, {"width", s.width}, {"height", s.height}, {"precision", "fp32"}}}};
  }

  std::unique_ptr<sdk::Model> load(const std::string& model, const json& rung, const std::string& device) override {
    const ModelSpec& m = spec_of(model);
    const Rung r = parse_rung(rung);
    return oom_guard("load", [&] { return std::make_unique<WanModel>(m, r, device); });
  }
};

}  // namespace

REEL_PLUGIN(WanPlugin, "wan", "0.1.0")
