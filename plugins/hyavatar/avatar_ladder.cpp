// The ladder and estimate_avatar(); see avatar_ladder.hpp. The formulas are documented in
// docs/HYAVATAR.md: change both together.
#include "avatar_ladder.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace reel::hyavatar {

using json = nlohmann::json;

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kF32 = 4;   // the port computes in float32 on every device
// The DiT's attention runs in query chunks of at most 2^26 scores (dit_blocks.cpp); the
// scores, their softmax and its output live at once.
int64_t attention_scratch(int64_t heads, int64_t tokens) {
  return 3 * kF32 * std::min<int64_t>(int64_t{1} << 26, heads * tokens * tokens);
}

// The placement every quality tier runs with: the leanest GPU one.
const char* const kLeanest = R"("encoders": "cpu", "dit": "streamed", "cfg_split": true, "small_tiles": true)";

std::string tier(const char* name, const char* help, int side, int frames, int seconds, int steps, double time) {
  return std::string(R"({"name": ")") + name + R"(", "kind": "quality", "help": ")" + help + R"(", "settings": {)" +
         kLeanest + R"(, "max_side": )" + std::to_string(side) + R"(, "max_window_frames": )" + std::to_string(frames) +
         R"(, "max_audio_seconds": )" + std::to_string(seconds) + R"(, "max_steps": )" + std::to_string(steps) +
         R"(, "relative_time": )" + std::to_string(time) + "}}";
}

int64_t round_down_4n1(int64_t frames) { return std::max<int64_t>(5, (frames - 1) / 4 * 4 + 1); }

}  // namespace

const json& avatar_ladder() {
  static const json l = [] {
    json out = json::parse(R"json([
      {"name": "resident", "kind": "placement", "help": "everything on the GPU (encoders too, while encoding)",
       "settings": {"encoders": "device", "dit": "resident", "relative_time": 1.0}},
      {"name": "encoders-cpu", "kind": "placement", "help": "LLaVA, CLIP and Whisper on the CPU, dropped after encoding",
       "settings": {"encoders": "cpu", "dit": "resident", "relative_time": 1.1}},
      {"name": "fp8", "kind": "placement", "help": "as encoders-cpu, DiT blocks kept as float8 e4m3 and upcast one at a time",
       "settings": {"encoders": "cpu", "dit": "fp8", "relative_time": 1.15}},
      {"name": "block-swap", "kind": "placement", "help": "as encoders-cpu, every DiT block streamed from host memory as it runs",
       "settings": {"encoders": "cpu", "dit": "streamed", "relative_time": 1.6}},
      {"name": "cfg-split", "kind": "placement", "help": "as block-swap, the two guidance branches one after the other",
       "settings": {"encoders": "cpu", "dit": "streamed", "cfg_split": true, "relative_time": 2.4}},
      {"name": "vae-small-tiles", "kind": "placement", "help": "as cfg-split, VAE tiles of half the reference's edge",
       "settings": {"encoders": "cpu", "dit": "streamed", "cfg_split": true, "small_tiles": true, "relative_time": 2.6}},
      {"name": "cpu", "kind": "placement", "help": "everything on the CPU (very slow)",
       "settings": {"encoders": "cpu", "dit": "resident", "cpu_only": true, "relative_time": 60.0}}
    ])json");
    // The seeds' seven tiers (docs/HYAVATAR.md): side px, window frames, audio s, steps.
    for (const std::string& t :
         {tier("maximum", "24 GB+: 1024 px, 257-frame windows, 120 s, 50 steps", 1024, 257, 120, 50, 2.6),
          tier("high", "16-24 GB: 704 px, 129-frame windows, 60 s, 35 steps", 704, 129, 60, 35, 1.8),
          tier("balanced", "12-16 GB: 512 px, 65-frame windows, 45 s, 30 steps", 512, 65, 45, 30, 1.0),
          tier("low", "8-12 GB: 384 px, 33-frame windows, 30 s, 25 steps", 384, 33, 30, 25, 0.5),
          tier("ultra-low", "6-8 GB: 256 px, 17-frame windows, 20 s, 20 steps", 256, 17, 20, 20, 0.25),
          tier("ultra-minimal", "4-6 GB: 128 px, 9-frame windows, 15 s, 15 steps", 128, 9, 15, 15, 0.12),
          tier("emergency", "up to 4 GB: 96 px, 5-frame windows, 8 s, 10 steps", 96, 5, 8, 10, 0.08)})
      out.push_back(json::parse(t));
    return out;
  }();
  return l;
}

AvatarRung parse_avatar_rung(const json& rung) {
  if (!rung.is_object() || !rung.contains("name") || !rung["name"].is_string())
    throw std::invalid_argument("the rung has no name: " + rung.dump());
  const std::string name = rung["name"].get<std::string>();
  for (const auto& e : avatar_ladder()) {
    if (e["name"] != name) continue;
    const json& s = e["settings"];
    AvatarRung r;
    r.name = name;
    r.kind = e["kind"].get<std::string>();
    r.encoders_cpu = s.value("encoders", "device") == "cpu";
    const std::string dit = s.value("dit", "resident");
    r.fp8 = dit == "fp8";
    r.streamed = dit == "streamed";
    r.cfg_split = s.value("cfg_split", false);
    r.small_tiles = s.value("small_tiles", false);
    r.cpu_only = s.value("cpu_only", false);
    r.max_side = s.value("max_side", int64_t{0});
    r.max_window_frames = s.value("max_window_frames", int64_t{0});
    r.max_steps = s.value("max_steps", int64_t{0});
    r.max_audio_seconds = s.value("max_audio_seconds", 0.0);
    r.relative_time = s.value("relative_time", 1.0);
    return r;
  }
  throw std::invalid_argument("no rung '" + name + "'");
}

AvatarShape effective_avatar_shape(const AvatarShape& q, const AvatarRung& r) {
  AvatarShape s = q;
  if (r.max_side > 0) s.image_size = std::min(s.image_size, r.max_side);
  if (r.max_window_frames > 0) s.window_frames = round_down_4n1(std::min(s.window_frames, r.max_window_frames));
  if (r.max_steps > 0) s.steps = std::min(s.steps, r.max_steps);
  if (r.max_audio_seconds > 0) s.audio_seconds = std::min(s.audio_seconds, r.max_audio_seconds);
  return s;
}

AvatarEstimate estimate_avatar(const AvatarSizes& z, const AvatarShape& s, const AvatarRung& r) {
  const int64_t h = s.height / 8, w = s.width / 8;
  const int64_t window_latents = (s.window_frames - 1) / 4 + 1;
  const int64_t frames = static_cast<int64_t>(std::ceil(s.audio_seconds * 25.0)) + s.window_frames;

  // The DiT: the window's tokens (reference frame included) and text, per CFG branch.
  const int64_t tokens = (window_latents + 1) * (h / 2) * (w / 2) + z.text_tokens;
  const int64_t branch = tokens * z.dit_hidden * kAvatarActivationBytes;
  const int64_t dit_acts = branch * (r.cfg_split ? 1 : 2) + attention_scratch(z.dit_heads, tokens);
  // Latents, noise, predictions and the audio condition of the whole video.
  const int64_t latents = 16 * (frames / 4 + window_latents) * h * w * kF32 * 4;
  const int64_t audio = frames * z.audio_frame_values * kF32 * 2;
  // The VAE decode: a tile's feature maps at the decoder's widest full-resolution width,
  // and the decoded video (float32, then uint8).
  const int64_t tile = r.small_tiles ? z.vae_tile / 2 : z.vae_tile;
  const int64_t tile_px = std::min(s.height, tile) * std::min(s.width, tile);
  const int64_t vae_work = tile_px * (z.vae_tile_frames + 1) * z.vae_width * kF32 * 3;
  const int64_t video = frames * s.height * s.width * 3 * (kF32 * 2 + 1);
  const int64_t vae_peak = vae_work + video;
  // The encoders: weights as stored, one LLaMA layer upcast at a time, ~1000 tokens.
  const int64_t encoder_weights = (z.llava + z.clip) * z.encoder_stored_bytes + z.whisper * kF32;
  const int64_t encoder_acts = z.llava / 32 * kF32 + 256 * kMiB;

  AvatarEstimate e;
  const int64_t dit_all = (z.dit_shell + z.dit_blocks) * kF32;
  if (r.cpu_only) {
    e.resident_host = dit_all + z.vae * kF32;
    e.host = kAvatarWorkerOverheadBytes + e.resident_host + encoder_weights +
             std::max({dit_acts, vae_peak, encoder_acts}) + latents + audio + video;
  } else {
    int64_t dit_device = dit_all;
    if (r.fp8) dit_device = z.dit_shell * kF32 + z.dit_blocks + z.dit_block * kF32;
    if (r.streamed) dit_device = z.dit_shell * kF32 + z.dit_block * (z.dit_stored_bytes + kF32);
    e.resident_device = dit_device + z.vae * kF32;
    e.device = e.resident_device + latents + audio +
               std::max({dit_acts, vae_peak, r.encoders_cpu ? int64_t{0} : encoder_weights + encoder_acts});
    e.resident_host = r.streamed ? z.dit_blocks * z.dit_stored_bytes : 0;
    e.host = kAvatarWorkerOverheadBytes + e.resident_host + latents + audio + video +
             (r.encoders_cpu ? encoder_weights + encoder_acts : 0);
  }
  e.relative_time = r.relative_time;
  return e;
}

}  // namespace reel::hyavatar
