#include "avatar_pipeline.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "audio_windows.hpp"
#include "face_mask.hpp"
#include "llava_image.hpp"
#include "reference_latents.hpp"
#include "rope.hpp"
#include "sampler_schedule.hpp"

namespace reel::hyavatar {

const char* const kAvatarPromptPrefix = "Authentic, Realistic, Natural, High-quality, Lens-Fixed, ";
const char* const kAvatarNegativePrompt =
    "Aerial view, aerial view, overexposed, low quality, deformation, a poor composition, bad hands, bad teeth, "
    "bad eyes, bad limbs, distortion, blurring, Lens changes";

namespace {

torch::Tensor ids_tensor(const std::vector<int64_t>& v, const torch::Device& device) {
  return torch::tensor(v, torch::kInt64).view({1, -1}).to(device);
}

struct TextStates {
  torch::Tensor states, mask, pooled;
};

// One prompt through both text encoders: LLaVA sees the template, the prompt and the
// reference image; CLIP the prompt alone.
TextStates encode_text(const AvatarEncoders& e, const std::string& text, const torch::Tensor& pixel_values,
                       int64_t text_len) {
  const LlavaPromptTemplate tmpl = LlavaPromptTemplate::avatar_video();
  const LlavaTokens tokens = pad_llava_tokens(e.llama_tokenizer->encode(tmpl.build(text)), text_len + tmpl.crop_start,
                                              e.llava->config().pad_token_id);
  LlavaEncodeOptions options;
  options.crop_start = tmpl.crop_start;
  const torch::Device device = e.llava->device();
  LlavaOutput llava = e.llava->encode(ids_tensor(tokens.ids, device), ids_tensor(tokens.mask, device),
                                      pixel_values.to(device), options);
  const ClipTokens clip_tokens = e.clip_tokenizer->encode(text);
  const torch::Device clip_device = e.clip->device();
  ClipTextOutput clip = e.clip->encode(ids_tensor(clip_tokens.ids, clip_device), ids_tensor(clip_tokens.mask, clip_device));
  return {llava.text_states, llava.text_mask, clip.pooled};
}

// Video frames whose audio window fits in `encoder_frames` Whisper frames: frame f reads
// 10 frames from 2f, after 4 leading zeros (audio_windows.hpp). Audio ending within 3 frames
// of a whole 30 s chunk loses those frames, which the reference would refuse.
int64_t frames_with_audio(int64_t encoder_frames) {
  return (encoder_frames + kAudioLeadingZeroFrames - kAudioWindowFrames) / 2 + 1;
}

struct AudioCondition {
  torch::Tensor prompts;   // padded to at least one window
  int64_t frames = 0;      // video frames with audio
};

// Whisper over the audio, 30 s at a time (the reference encodes only the first 30 s and
// keeps at most 400 frames; both limits hold at its settings), windowed per video frame.
AudioCondition audio_condition(const AvatarEncoders& e, const torch::Tensor& waveform, int64_t max_frames,
                               int64_t window_frames) {
  const AudioFeatures features = whisper_audio_features(waveform, e.features);
  const torch::Device device = e.whisper->device();
  torch::Tensor hidden = e.whisper->hidden_states_chunked(features.mel.to(device)).to(torch::kCPU);
  AudioCondition c;
  c.frames = std::min({features.audio_len, max_frames, frames_with_audio(hidden.size(1))});
  c.prompts = pad_audio_prompts(audio_windows(hidden, kAvatarFps, c.frames, c.frames), window_frames);
  return c;
}

torch::Tensor normal(const std::vector<int64_t>& shape, uint64_t seed) {
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(seed);
  return torch::randn(shape, gen);
}

}  // namespace

AvatarVideo generate_avatar(AvatarParts& parts, const AvatarRequest& r, const AvatarProgress& progress) {
  torch::NoGradGuard no_grad;
  auto report = [&](const std::string& stage, int64_t step, int64_t total) {
    if (progress) progress(stage, step, total);
  };
  if (r.waveform.dim() != 1 || r.waveform.numel() < 640)
    throw std::invalid_argument("the audio is shorter than one video frame (40 ms)");
  if (r.image.dim() != 3 || r.image.size(2) != 3 || r.image.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("the image must be uint8 [h, w, 3]");
  const torch::Device device = parts.dit->device();
  const HYAvatarDiTConfig& cfg = parts.dit->config();

  LlavaImageInputs image;   // the reference frame (sides multiples of 64) and LLaVA's pixels
  AvatarVideo out;
  AvatarConditions c;
  torch::Tensor audio_prompts;
  int64_t audio_prompts_frames = 0;   // the video frames with audio: the output's length
  report("encode", 0, 3);
  {
    AvatarEncoders enc = parts.load_encoders(parts.encoder_device);
    image = prepare_llava_image(r.image, r.image_size, enc.llava->config().vision.image_size);
    const std::string prompt = kAvatarPromptPrefix + r.prompt;
    TextStates pos = encode_text(enc, prompt, image.pixel_values, parts.text_len);
    TextStates neg = encode_text(enc, r.negative_prompt, image.pixel_values, parts.text_len);
    report("encode", 1, 3);
    out.audio_frames = r.waveform.numel() / kSamplesPerVideoFrame;
    const AudioCondition audio = audio_condition(enc, r.waveform, r.max_frames, 4 * static_cast<int64_t>(r.window) - 3);
    out.audio_cut = audio.frames < out.audio_frames;
    audio_prompts_frames = audio.frames;
    audio_prompts = audio.prompts;
    report("encode", 2, 3);
    auto on = [&](const torch::Tensor& t) { return t.to(device); };
    c.prompt_embeds = on(pos.states);
    c.prompt_mask = on(pos.mask);
    c.prompt_embeds_2 = on(pos.pooled);
    c.negative_prompt_embeds = on(neg.states);
    c.negative_prompt_mask = on(neg.mask);
    c.negative_prompt_embeds_2 = on(neg.pooled);
  }  // the encoders are released here, before the DiT needs the memory

  const torch::Tensor ref_image = image.ref_image.contiguous();
  const int64_t H = ref_image.size(0), W = ref_image.size(1), h = H / 8, w = W / 8;
  const auto faces = parts.face_detector->detect(ref_image.data_ptr<uint8_t>(), static_cast<int>(H), static_cast<int>(W));
  c.face_mask = face_mask_latent(face_mask_pixels(reference_face(faces), static_cast<int>(H), static_cast<int>(W)),
                                 static_cast<int>(h), static_cast<int>(w))
                    .view({1, 1, 1, h, w})
                    .to(device);
  report("encode", 3, 3);

  // Reference latents over one window, and the audio in the window's shape.
  const int64_t window_frames = 4 * static_cast<int64_t>(r.window) - 3;
  const int64_t latent_channels = parts.vae->config().latent_channels;
  const torch::Tensor ref_noise = r.ref_noise.defined() ? r.ref_noise : normal({1, latent_channels, r.window, h, w}, r.seed + 1);
  c.ref_latents = reference_latents(*parts.vae, ref_image.to(device), ref_noise.to(device), window_frames).latents;
  c.audio_prompts = audio_prompts.to(device);
  c.uncond_audio_prompts = uncond_audio_prompts(audio_prompts, window_frames).to(device);
  c.motion_exp = torch::full({1, 4}, kAvatarMotionExp, torch::kInt64).to(device);
  c.motion_pose = torch::full({1, 4}, kAvatarMotionPose, torch::kInt64).to(device);
  c.fps = torch::full({1}, kAvatarFps, torch::kFloat32).to(device);

  const WindowPlan plan = plan_windows(static_cast<int>(audio_prompts.size(1)), r.window);
  const torch::Tensor noise = r.initial_noise.defined()
                                  ? r.initial_noise
                                  : normal({1, latent_channels, plan.noise_frames, h, w}, r.seed);
  const RopeTables rope = rope_tables(rope_grid_sizes(window_frames, H, W, cfg.patch_size), cfg.rope_dim_list,
                                      cfg.rope_theta);
  SamplerSettings s;
  s.steps = r.steps;
  s.shift = r.shift;
  s.cfg_scale = r.cfg_scale;
  s.step_cache = r.step_cache;
  s.window = r.window;
  report("denoise", 0, r.steps);
  DitFn run = [&](const DitCall& call) { return parts.dit->call(call, rope); };
  torch::Tensor latents = denoise(run, c, noise.to(device), s, [&](int step, const torch::Tensor&) {
    report("denoise", step + 1, r.steps);
  });

  report("decode", 0, 1);
  VaeTiling tiling = VaeTiling::reference(parts.vae->config());
  if (r.vae_tile > 0) {
    const int64_t ratio = tiling.tile_sample_min_size / std::max<int64_t>(1, tiling.tile_latent_min_size);
    tiling.tile_sample_min_size = r.vae_tile;
    tiling.tile_latent_min_size = std::max<int64_t>(1, r.vae_tile / ratio);
    tiling.validate();
  }
  torch::Tensor video = (parts.vae->decode(latents / parts.vae->config().scaling_factor, tiling) / 2 + 0.5).clamp(0, 1);
  // As sample_batch writes them: uint8 by truncation, cut to the audio's frames.
  torch::Tensor frames = (video[0].permute({1, 2, 3, 0}) * 255).to(torch::kUInt8).to(torch::kCPU);
  const int64_t kept = std::min<int64_t>(frames.size(0), audio_prompts_frames);
  out.frames = frames.slice(0, 0, kept).contiguous();
  report("decode", 1, 1);
  return out;
}

}  // namespace reel::hyavatar
