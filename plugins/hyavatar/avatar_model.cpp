#include "avatar_model.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "random_weights.hpp"

namespace reel::hyavatar {

namespace {

// The 884-16c VAE's layout (four causal blocks, 16 latent channels, the release's
// scaling factor) at the given widths and tile sizes.
VaeConfig causal_vae_config(std::vector<int64_t> channels, int64_t layers_per_block, int64_t groups,
                            int64_t tile, int64_t tile_frames) {
  VaeConfig v;
  v.down_block_types.assign(channels.size(), "DownEncoderBlockCausal3D");
  v.up_block_types.assign(channels.size(), "UpDecoderBlockCausal3D");
  v.block_out_channels = std::move(channels);
  v.layers_per_block = layers_per_block;
  v.latent_channels = 16;
  v.norm_num_groups = groups;
  v.sample_size = tile;
  v.sample_tsize = tile_frames;
  v.scaling_factor = 0.476986;
  return v;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

const char* const kDitDir = "/hunyuan-video-t2v-720p";
const char* const kDitCheckpoint = "/hunyuan-video-t2v-720p/transformers/mp_rank_00_model_states.pt";
const char* const kDitFp8Checkpoint = "/hunyuan-video-t2v-720p/transformers/mp_rank_00_model_states_fp8.pt";

// The tiny model's face detector: one face, centred horizontally, in the upper half, in
// the network's output layout ([cx, cy, w, h, objectness, 5 landmarks, class] in input
// pixels), so the face mask covers part of the frame as a real detection would.
const char* const kTinyFaceDetector = R"(
def forward(self, img: Tensor, grids: List[Tensor]) -> Tensor:
    h = float(img.size(2))
    w = float(img.size(3))
    out = torch.zeros(1, 1, 16)
    out[0, 0, 0] = 0.5 * w
    out[0, 0, 1] = 0.4 * h
    out[0, 0, 2] = 0.3 * w
    out[0, 0, 3] = 0.4 * h
    out[0, 0, 4] = 0.9
    for k in range(5):
        out[0, 0, 5 + 2 * k] = 0.5 * w
        out[0, 0, 6 + 2 * k] = 0.4 * h
    out[0, 0, 15] = 1.0
    return out
)";

// The word-level stand-in's vocabulary: the prompt template's own pieces, then
// placeholders, with the special tokens at the ids the tiny LLaVA config names.
constexpr int64_t kTinyLlamaVocab = 128, kTinyFirstSpecial = 88;
const std::vector<std::string> kTinySpecials = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                                "<|end_header_id|>", "<|eot_id|>",       "<unk>",
                                                "<image>",           "<pad>"};

std::unique_ptr<LlamaTokenizer> tiny_llama_tokenizer() {
  std::vector<std::string> vocab;
  std::set<std::string> seen;
  const LlavaPromptTemplate tmpl = LlavaPromptTemplate::avatar_video();
  std::string plain = tmpl.build(kAvatarPromptPrefix);
  for (const std::string& s : kTinySpecials)
    for (size_t at; (at = plain.find(s)) != std::string::npos;) plain.replace(at, s.size(), " ");
  for (const std::string& piece : llama3_pretokenize(plain))
    if (static_cast<int64_t>(vocab.size()) < kTinyFirstSpecial && seen.insert(piece).second) vocab.push_back(piece);
  while (static_cast<int64_t>(vocab.size()) < kTinyFirstSpecial) vocab.push_back("<unused" + std::to_string(vocab.size()) + ">");
  for (const std::string& s : kTinySpecials) vocab.push_back(s);
  while (static_cast<int64_t>(vocab.size()) < kTinyLlamaVocab) vocab.push_back("<unused" + std::to_string(vocab.size()) + ">");
  return std::make_unique<Llama3Tokenizer>(Llama3Tokenizer::word_level(vocab, kTinySpecials, "<|begin_of_text|>", "<unk>"));
}

// Whisper has no to(): it is built from weights already on its device.
tensorio::Weights on_device(const tensorio::Weights& w, const torch::Device& device) {
  tensorio::TensorMap moved;
  for (const auto& [name, t] : w.all()) moved.emplace(name, t.to(device));
  return tensorio::Weights(std::move(moved), w.source());
}

AvatarEncoders tiny_encoders(const torch::Device& device) {
  const TinyAvatarConfigs c = tiny_avatar_configs();
  AvatarEncoders e;
  const auto llava_keys = keys_read_by([&](const tensorio::Weights& w) { LlavaEncoder::load(c.llava, w); });
  e.llava = std::make_unique<LlavaEncoder>(
      LlavaEncoder::load(c.llava, seeded_weights(llava_keys, 3, "hunyuan-avatar-tiny LLaVA")).to(device));
  e.llama_tokenizer = tiny_llama_tokenizer();
  const auto clip_keys = keys_read_by([&](const tensorio::Weights& w) { ClipTextEncoder::load(c.clip, w); });
  e.clip = std::make_unique<ClipTextEncoder>(
      ClipTextEncoder::load(c.clip, seeded_weights(clip_keys, 4, "hunyuan-avatar-tiny CLIP")).to(device));
  e.clip_tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::byte_level(c.clip.max_positions));
  e.whisper = std::make_unique<WhisperEncoder>(WhisperEncoder::load(
      on_device(seeded_weights(WhisperEncoder::expected_keys(c.whisper), 5, "hunyuan-avatar-tiny Whisper"), device),
      c.whisper));
  e.features = c.features;
  return e;
}

AvatarEncoders official_encoders(const std::string& ckpts, const torch::Device& device) {
  AvatarEncoders e;
  const std::string llava = ckpts + "/llava_llama_image";
  // Stored fp16 and mapped from the files, not copied; computed in float32.
  e.llava = std::make_unique<LlavaEncoder>(LlavaEncoder::load_dir(llava, torch::kFloat16).to(device));
  e.llama_tokenizer = std::make_unique<Llama3Tokenizer>(Llama3Tokenizer::from_tokenizer_json(llava + "/tokenizer.json"));
  const std::string clip = ckpts + "/text_encoder_2";
  const std::string clip_file = exists(clip + "/model.safetensors") ? "model.safetensors" : "pytorch_model.bin";
  e.clip = std::make_unique<ClipTextEncoder>(ClipTextEncoder::load_dir(clip, clip_file, torch::kFloat16).to(device));
  e.clip_tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::load(clip, e.clip->config().max_positions));
  const std::string whisper = ckpts + "/whisper-tiny";
  const WhisperEncoderConfig wc = WhisperEncoderConfig::from_json(whisper + "/config.json");
  e.whisper = std::make_unique<WhisperEncoder>(
      WhisperEncoder::load(on_device(tensorio::load_weights(whisper + "/model.safetensors"), device), wc));
  e.features = WhisperFeatureConfig::from_json(whisper + "/preprocessor_config.json");
  return e;
}

}  // namespace

const std::vector<AvatarSpec>& avatar_models() {
  static const std::vector<AvatarSpec> models = [] {
    AvatarSpec full;
    full.name = "hunyuan-avatar";
    full.description = "HunyuanVideo-Avatar: a portrait and a voice to a talking video with sound "
                       "(official checkpoints from $REEL_HUNYUAN_AVATAR_DIR)";
    full.env_var = "REEL_HUNYUAN_AVATAR_DIR";
    full.default_dir = "/var/lib/reel/models/HunyuanVideo-Avatar";
    full.repo = "https://huggingface.co/tencent/HunyuanVideo-Avatar";
    AvatarSpec tiny;
    tiny.name = "hunyuan-avatar-tiny";
    tiny.description = "HunyuanVideo-Avatar at tiny sizes with RANDOM weights (smoke test of the whole path; "
                       "the video is noise, the sound is yours)";
    tiny.random_weights = true;
    tiny.image_size = 64;
    tiny.max_image_size = 256;
    tiny.steps = 4;
    return std::vector<AvatarSpec>{full, tiny};
  }();
  return models;
}

const AvatarSpec* find_avatar_model(const std::string& name) {
  for (const auto& m : avatar_models())
    if (m.name == name) return &m;
  return nullptr;
}

TinyAvatarConfigs tiny_avatar_configs() {
  TinyAvatarConfigs c;
  // The golden fixtures' "config a", with the DiT's input layers at the encoders' widths
  // (as hyavatar-pipeline-tiny-a does).
  HYAvatarDiTConfig& d = c.dit;
  d.text_states_dim = 32;
  d.text_states_dim_2 = 32;
  d.hidden_size = 64;
  d.num_heads = 2;
  d.depth_double_blocks = 4;
  d.depth_single_blocks = 2;
  d.rope_dim_list = {8, 12, 12};
  d.audio_proj = {10, 3, 32, 48, 64, 4};
  d.adapter_dim = 64;
  d.adapter_dim_head = 32;
  d.adapter_heads = 33;
  c.vae = causal_vae_config({8, 16, 32, 32}, 1, 4, 64, 16);
  LlavaConfig& l = c.llava;
  l.vision.hidden_size = 32;
  l.vision.intermediate_size = 64;
  l.vision.num_layers = 3;
  l.vision.num_heads = 4;
  l.vision.image_size = 336;
  l.vision.patch_size = 14;
  l.vision.hidden_act = "quick_gelu";
  l.text.vocab_size = kTinyLlamaVocab;
  l.text.hidden_size = 32;
  l.text.intermediate_size = 80;
  l.text.num_layers = 4;
  l.text.num_heads = 4;
  l.text.num_kv_heads = 2;
  l.text.head_dim = 8;
  l.text.rms_norm_eps = 1e-5;
  l.text.rope_theta = 500000.0;
  l.image_token_index = kTinyFirstSpecial + 6;   // <image>
  l.pad_token_id = kTinyFirstSpecial + 7;        // <pad>
  l.image_seq_length = l.vision.num_patches();
  l.vision_feature_layer = -2;
  l.vision_feature_select_strategy = "default";
  l.projector_hidden_act = "gelu";
  ClipTextConfig& t = c.clip;
  t.vocab_size = 514;   // ClipTokenizer::byte_level
  t.hidden_size = 32;
  t.intermediate_size = 64;
  t.num_layers = 2;
  t.num_heads = 4;
  t.max_positions = 77;
  t.hidden_act = "quick_gelu";
  WhisperEncoderConfig& w = c.whisper;
  w.d_model = 32;
  w.encoder_layers = 2;
  w.encoder_attention_heads = 4;
  w.encoder_ffn_dim = 64;
  w.num_mel_bins = 80;
  w.max_source_positions = 1500;
  WhisperFeatureConfig& f = c.features;   // whisper-tiny's preprocessor_config.json
  f.feature_size = 80;
  f.sampling_rate = 16000;
  f.hop_length = 160;
  f.n_fft = 400;
  f.n_samples = 480000;
  f.nb_max_frames = 3000;
  return c;
}

std::string avatar_ckpts_dir(const AvatarSpec& spec) {
  const char* env = std::getenv(spec.env_var.c_str());
  const std::string root = env && *env ? env : spec.default_dir;
  return exists(root + "/ckpts") ? root + "/ckpts" : root;
}

std::vector<std::string> missing_avatar_files(const std::string& ckpts) {
  const std::vector<std::pair<std::string, std::string>> files = {
      {kDitCheckpoint, kDitFp8Checkpoint},
      {"/hunyuan-video-t2v-720p/vae/config.json", ""},
      {"/hunyuan-video-t2v-720p/vae/pytorch_model.pt", ""},
      {"/llava_llama_image/config.json", ""},
      {"/llava_llama_image/tokenizer.json", ""},
      {"/llava_llama_image/model.safetensors.index.json", "/llava_llama_image/model.safetensors"},
      {"/text_encoder_2/config.json", ""},
      {"/text_encoder_2/vocab.json", ""},
      {"/text_encoder_2/merges.txt", ""},
      {"/text_encoder_2/model.safetensors", "/text_encoder_2/pytorch_model.bin"},
      {"/whisper-tiny/config.json", ""},
      {"/whisper-tiny/preprocessor_config.json", ""},
      {"/whisper-tiny/model.safetensors", ""},
      {"/det_align/detface.pt", ""}};
  std::vector<std::string> missing;
  for (const auto& [file, alt] : files)
    if (!exists(ckpts + file) && (alt.empty() || !exists(ckpts + alt)))
      missing.push_back(file.substr(1) + (alt.empty() ? "" : " (or " + alt.substr(1) + ")"));
  return missing;
}

namespace {

AvatarSizes sizes_from(const HYAvatarDiTConfig& dit, const VaeConfig& vae, const WhisperEncoderConfig& whisper) {
  AvatarSizes z;
  std::map<std::string, int64_t> per_block;
  for (const ExpectedTensor& k : keys_read_by([&](const tensorio::Weights& w) { HYAvatarDiT::load(w, dit); })) {
    const int64_t n = parameter_count({k});
    const bool block = k.name.rfind("double_blocks.", 0) == 0 || k.name.rfind("single_blocks.", 0) == 0;
    if (!block) {
      z.dit_shell += n;
      continue;
    }
    z.dit_blocks += n;
    per_block[k.name.substr(0, k.name.find('.', k.name.find('.') + 1))] += n;
  }
  for (const auto& [name, n] : per_block) z.dit_block = std::max(z.dit_block, n);
  z.dit_hidden = dit.hidden_size;
  z.dit_heads = dit.num_heads;
  z.vae = parameter_count(keys_read_by([&](const tensorio::Weights& w) { HyVae::load(w, vae); }));
  z.vae_width = vae.block_out_channels.empty() ? 0 : vae.block_out_channels.front();
  z.vae_tile = vae.sample_size;
  z.vae_tile_frames = vae.sample_tsize;
  z.whisper = parameter_count(WhisperEncoder::expected_keys(whisper));
  z.audio_frame_values = dit.audio_proj.seq_len * dit.audio_proj.blocks * dit.audio_proj.channels;
  return z;
}

// The release's VAE (hunyuan-video-t2v-720p/vae/config.json) and whisper-tiny.
VaeConfig official_vae_config() { return causal_vae_config({128, 256, 512, 512}, 2, 32, 256, 64); }
WhisperEncoderConfig whisper_tiny_config() {
  WhisperEncoderConfig w;
  w.d_model = 384;
  w.encoder_layers = 4;
  w.encoder_attention_heads = 6;
  w.encoder_ffn_dim = 1536;
  w.num_mel_bins = 80;
  w.max_source_positions = 1500;
  return w;
}

}  // namespace

const AvatarSizes& avatar_sizes(const AvatarSpec& spec) {
  static const AvatarSizes tiny = [] {
    const TinyAvatarConfigs c = tiny_avatar_configs();
    AvatarSizes z = sizes_from(c.dit, c.vae, c.whisper);
    z.llava = parameter_count(keys_read_by([&](const tensorio::Weights& w) { LlavaEncoder::load(c.llava, w); }));
    z.clip = parameter_count(keys_read_by([&](const tensorio::Weights& w) { ClipTextEncoder::load(c.clip, w); }));
    z.text_tokens = 256 + c.llava.image_seq_length - 1;
    z.dit_stored_bytes = z.encoder_stored_bytes = 4;   // generated in float32
    return z;
  }();
  static const AvatarSizes official = [] {
    AvatarSizes z = sizes_from(HYAvatarDiTConfig{}, official_vae_config(), whisper_tiny_config());
    z.llava = int64_t{8'355'000'000};   // LLaMA-3-8B 8.03B + CLIP-L/336 vision 0.30B + projector
    z.clip = int64_t{123'000'000};      // CLIP-L's text tower
    z.text_tokens = 256 + 576 - 1;      // text_len + the image's 576 patches merged at <image>
    return z;
  }();
  return spec.random_weights ? tiny : official;
}

AvatarPlacement avatar_placement(const AvatarRung& rung, const torch::Device& device) {
  AvatarPlacement p;
  p.device = rung.cpu_only ? torch::Device(torch::kCPU) : device;
  p.encoders_on_device = !rung.encoders_cpu;
  p.dit.blocks = rung.fp8 ? DitPlacement::Blocks::fp8
                 : rung.streamed ? DitPlacement::Blocks::streamed
                                 : DitPlacement::Blocks::resident;
  p.dit.cfg_split = rung.cfg_split;
  return p;
}

void apply_avatar_shape(AvatarRequest& r, const AvatarShape& s, const AvatarRung& rung, const AvatarSpec& spec) {
  r.image_size = s.image_size;
  r.steps = static_cast<int>(s.steps);
  r.window = static_cast<int>((s.window_frames - 1) / 4 + 1);
  r.max_frames = std::max<int64_t>(1, static_cast<int64_t>(std::floor(s.audio_seconds * kAvatarFps + 1e-6)));
  r.vae_tile = rung.small_tiles ? avatar_sizes(spec).vae_tile / 2 : 0;
}

AvatarParts load_avatar(const AvatarSpec& spec, const AvatarPlacement& placement) {
  AvatarParts parts;
  parts.encoder_device = placement.encoders_on_device ? placement.device : torch::Device(torch::kCPU);
  if (spec.random_weights) {
    const TinyAvatarConfigs c = tiny_avatar_configs();
    const auto dit_keys = keys_read_by([&](const tensorio::Weights& w) { HYAvatarDiT::load(w, c.dit); });
    parts.dit = std::make_unique<DitRunner>(seeded_weights(dit_keys, 1, "hunyuan-avatar-tiny DiT"), c.dit,
                                            placement.device, placement.dit);
    const auto vae_keys = keys_read_by([&](const tensorio::Weights& w) { HyVae::load(w, c.vae); });
    parts.vae = std::make_unique<HyVae>(HyVae::load(seeded_weights(vae_keys, 2, "hunyuan-avatar-tiny VAE"), c.vae).to(placement.device));
    parts.face_detector = std::make_unique<FaceDetector>(FaceDetector::from_script(kTinyFaceDetector, "tiny face detector"));
    parts.load_encoders = tiny_encoders;
    return parts;
  }
  const std::string ckpts = avatar_ckpts_dir(spec);
  const bool fp8_file = placement.dit.blocks == DitPlacement::Blocks::fp8 && exists(ckpts + kDitFp8Checkpoint);
  const std::string config = ckpts + kDitDir + "/config.json";
  const HYAvatarDiTConfig cfg = exists(config) ? read_hyavatar_dit_config(config) : HYAvatarDiTConfig{};
  std::map<std::string, double> scales;
  tensorio::Weights w = load_hyavatar_dit_weights(ckpts + (fp8_file ? kDitFp8Checkpoint : kDitCheckpoint),
                                                  fp8_file ? &scales : nullptr);
  parts.dit = std::make_unique<DitRunner>(w, cfg, placement.device, placement.dit, scales);
  parts.vae = std::make_unique<HyVae>(HyVae::load(ckpts + kDitDir).to(placement.device));
  parts.face_detector = std::make_unique<FaceDetector>(FaceDetector::load(ckpts + "/det_align/detface.pt"));
  parts.load_encoders = [ckpts](const torch::Device& device) { return official_encoders(ckpts, device); };
  return parts;
}

}  // namespace reel::hyavatar
