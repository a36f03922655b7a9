// The ladder and estimate(); see ladder.hpp. The formulas are documented in docs/WAN.md:
// change both together.
#include "ladder.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace reel::wan {

using json = nlohmann::json;

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// Parameter counts of one model, split the way placement moves them.
struct Params {
  int64_t dit = 0, dit_block = 0, dit_block_matrix = 0, dit_other = 0;
  int64_t t5 = 0, t5_block = 0, vae = 0;
  int64_t clip = 0;  // i2v: the vision tower's loaded part (every block but the last)
};

bool starts_with(const std::string& s, const std::string& head) { return s.compare(0, head.size(), head) == 0; }

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Params params_of(const ModelSpec& m) {
  Params p;
  for (const auto& [name, shape] : dit_shapes(m.dit, m.t5.dim)) {
    p.dit += numel(shape);
    if (!starts_with(name, "blocks.0.")) continue;
    p.dit_block += numel(shape);
    if (shape.size() == 2) p.dit_block_matrix += numel(shape);
  }
  p.dit_other = p.dit - m.dit.num_layers * p.dit_block;
  for (const auto& [name, shape] : t5_shapes(m.t5)) {
    p.t5 += numel(shape);
    if (starts_with(name, "blocks.0.")) p.t5_block += numel(shape);
  }
  p.vae = count_params(vae_shapes(m.vae));
  if (m.i2v) {
    const std::string last = "visual.transformer." + std::to_string(m.clip.num_layers - 1) + ".";
    for (const auto& [name, shape] : clip_shapes(m.clip))
      if (!starts_with(name, last)) p.clip += numel(shape);
  }
  return p;
}

}  // namespace

int64_t Rung::resident_blocks(int64_t num_layers) const {
  switch (dit) {
    case DitPlacement::resident: return num_layers;
    case DitPlacement::swap: return num_layers / 2;
    case DitPlacement::sequential: return 0;
  }
  return num_layers;
}

std::string Rung::precision() const {
  if (cpu_only) return "fp32";
  return fp8 ? "fp8" : "bf16";
}

const json& ladder() {
  static const json l = json::parse(R"json([
    {"name": "resident", "kind": "placement", "help": "T5, DiT and VAE on the GPU",
     "settings": {"t5": "device", "vae": "device", "dit": "resident", "relative_time": 1.0}},
    {"name": "t5-cpu", "kind": "placement", "help": "text encoder (and i2v's CLIP) on the CPU",
     "settings": {"t5": "cpu", "vae": "device", "dit": "resident", "relative_time": 1.05}},
    {"name": "vae-cpu", "kind": "placement", "help": "text encoder (and i2v's CLIP) and VAE on the CPU",
     "settings": {"t5": "cpu", "vae": "cpu", "dit": "resident", "relative_time": 1.5}},
    {"name": "vae-tiled", "kind": "placement", "help": "text encoder on the CPU, VAE decoded in spatial tiles",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "dit": "resident", "relative_time": 1.3}},
    {"name": "block-swap", "kind": "placement",
     "help": "as vae-tiled, half the DiT blocks streamed from pinned host memory (next one prefetched)",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "dit": "swap", "relative_time": 1.6}},
    {"name": "sequential", "kind": "placement",
     "help": "sequential offload: every DiT block streamed to the GPU as it runs, T5 and VAE on the CPU",
     "settings": {"t5": "cpu", "vae": "cpu", "dit": "sequential", "relative_time": 3.0}},
    {"name": "cpu", "kind": "placement", "help": "everything on the CPU (slow)",
     "settings": {"t5": "cpu", "vae": "cpu", "dit": "resident", "cpu_only": true, "relative_time": 40.0}},
    {"name": "fp8", "kind": "quality", "help": "DiT weights stored as float8 e4m3, upcast per block (placement as vae-tiled)",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "dit": "resident", "fp8": true, "relative_time": 1.1}},
    {"name": "steps-75", "kind": "quality", "help": "75% of the steps (placement as block-swap)",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "dit": "swap", "steps_factor": 0.75, "relative_time": 1.2}},
    {"name": "frames-half", "kind": "quality", "help": "half the frames (placement as block-swap)",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "dit": "swap", "frames_factor": 0.5, "relative_time": 0.8}},
    {"name": "res-75", "kind": "quality", "help": "75% of the width and height (placement as block-swap)",
     "settings": {"t5": "cpu", "vae": "device", "vae_tiled": true, "dit": "swap", "res_factor": 0.75, "relative_time": 0.9}}
  ])json");
  return l;
}

Rung parse_rung(const json& rung) {
  if (!rung.is_object() || !rung.contains("name") || !rung["name"].is_string())
    throw std::invalid_argument("the rung has no name: " + rung.dump());
  Rung r;
  r.name = rung["name"].get<std::string>();
  const json* st = nullptr;
  for (const auto& e : ladder())
    if (e["name"] == r.name) st = &e["settings"];
  if (!st) throw std::invalid_argument("no rung '" + r.name + "'");
  r.t5_cpu = st->value("t5", "device") == "cpu";
  r.vae_cpu = st->value("vae", "device") == "cpu";
  r.vae_tiled = st->value("vae_tiled", false);
  r.cpu_only = st->value("cpu_only", false);
  const std::string dit = st->value("dit", "resident");
  r.dit = dit == "swap" ? DitPlacement::swap : dit == "sequential" ? DitPlacement::sequential : DitPlacement::resident;
  r.fp8 = st->value("fp8", false);
  r.steps_factor = st->value("steps_factor", 1.0);
  r.frames_factor = st->value("frames_factor", 1.0);
  r.res_factor = st->value("res_factor", 1.0);
  r.relative_time = st->value("relative_time", 1.0);
  return r;
}

namespace {

int64_t round16(double v) { return std::max<int64_t>(16, static_cast<int64_t>(std::llround(v / 16.0)) * 16); }

}  // namespace

JobShape effective_shape(const JobShape& requested, const Rung& r) {
  JobShape s = requested;
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

MemoryEstimate estimate(const ModelSpec& m, const JobShape& s, const Rung& r) {
  const Params p = params_of(m);
  const int64_t L = m.dit.num_layers;
  const int64_t c = r.cpu_only ? 4 : 2;  // compute bytes per weight: fp32 on the CPU, bf16 on CUDA

  // The job's working sets.
  const int64_t f_lat = (std::max<int64_t>(s.frames, 1) - 1) / 4 + 1;
  const int64_t tokens = f_lat * (s.height / 16) * (s.width / 16);
  const int64_t acts = tokens * m.dit.dim * 4 * 24;
  const int64_t attn = std::min<int64_t>(tokens * tokens * m.dit.num_heads * 4, 256 * kMiB + tokens * m.dit.num_heads * 4);
  const int64_t video = s.frames * s.height * s.width * 3 * 4;
  // Decoding one latent frame holds ~8 feature maps of 4 frames at full resolution and the
  // decoder's widest full-resolution width (vae.dim), a tile's worth when tiled; the
  // frames decoded so far and their concatenation (2 x video); and the convolutions'
  // scratch (bounded_conv3d's columns and oneDNN's workspace), measured at under 96 MiB.
  const int64_t tile_px = kVaeTile * 8;
  const int64_t work_h = r.vae_tiled ? std::min(s.height, tile_px) : s.height;
  const int64_t work_w = r.vae_tiled ? std::min(s.width, tile_px) : s.width;
  const int64_t vae_peak = 2 * video + 8 * (4 * work_h * work_w * m.vae.dim * 4) + 96 * kMiB +
                           (r.vae_tiled ? s.height * s.width * 3 * 4 * 4 : 0);  // tiles' blend buffers
  const int64_t t5_acts = m.dit.text_len * (m.t5.dim + 2 * m.t5.dim_ffn + m.t5.num_heads * m.dit.text_len) * 4 * 2;
  const int64_t t5_upcast = m.t5_stored_bytes == 4 ? 0 : p.t5_block * 4;  // one block in fp32
  const int64_t t5_weights = p.t5 * m.t5_stored_bytes, vae_weights = p.vae * 4;
  const int64_t video_u8 = s.frames * s.height * s.width * 3;
  // i2v: CLIP sits with T5 (same rungs move both to the CPU): weights fp32 on the CPU, bf16
  // on CUDA, computed in fp32 (one weight upcast at a time); activations of one image. The
  // conditioning's VAE encode stays under vae_peak (the encoder is narrower than the decoder).
  const int64_t clip_tokens = m.i2v ? (m.clip.image_size / m.clip.patch_size) * (m.clip.image_size / m.clip.patch_size) + 1 : 0;
  const int64_t clip_acts = m.i2v ? clip_tokens * (4 * m.clip.dim + m.clip.mlp_dim) * 4 * 2 +
                                        m.clip.num_heads * clip_tokens * clip_tokens * 4 * 2 + m.clip.dim * m.clip.mlp_dim * 4
                                  : 0;
  const int64_t clip_host = p.clip * 4, clip_device = p.clip * 2;
  const int64_t text_acts = std::max(t5_acts + t5_upcast, clip_acts);

  MemoryEstimate e;
  if (r.cpu_only) {
    // Blocks computed from their stored dtype; a non-fp32 block is upcast (current + prefetched).
    const int64_t dit_weights = p.dit * m.dit_stored_bytes;
    const int64_t dit_upcast = m.dit_stored_bytes == 4 ? 0 : 2 * p.dit_block * 4;
    e.resident_host = dit_weights + t5_weights + vae_weights + clip_host;
    e.host = kWorkerOverheadBytes + e.resident_host +
             std::max({acts + attn + dit_upcast, text_acts, vae_peak}) + video_u8;
    return e;
  }

  const int64_t R = r.resident_blocks(L);
  int64_t dit_device = p.dit_other * c;
  if (r.fp8)
    dit_device += L * (p.dit_block_matrix + (p.dit_block - p.dit_block_matrix) * c) + p.dit_block * c;
  else
    dit_device += R * p.dit_block * c + (R < L ? 2 * p.dit_block * c : 0);  // streamed: current + prefetched
  const int64_t dit_host = (L - R) * p.dit_block * c;                      // pinned copies of the streamed blocks

  e.resident_device = dit_device + (r.t5_cpu ? 0 : p.t5 * 2 + clip_device) + (r.vae_cpu ? 0 : vae_weights);
  e.device = e.resident_device + std::max({acts + attn, r.t5_cpu ? int64_t{0} : text_acts,
                                           r.vae_cpu ? int64_t{0} : vae_peak});
  e.resident_host = dit_host + (r.t5_cpu ? t5_weights + clip_host : 0) + (r.vae_cpu ? vae_weights : 0);
  e.host = kWorkerOverheadBytes + e.resident_host +
           std::max(r.t5_cpu ? text_acts : int64_t{0}, r.vae_cpu ? vae_peak : int64_t{0}) + video + video_u8;
  return e;
}

}  // namespace reel::wan
