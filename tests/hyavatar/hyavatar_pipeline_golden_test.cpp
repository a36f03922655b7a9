// The Avatar sampling loop (plugins/hyavatar/denoise_loop.hpp) with the real tiny DiT
// against the reference's whole run in hyavatar-pipeline-tiny-a: 50 steps, shift 5, both
// guidance phases, the step cache, bf16 rounding between steps. The encoders' outputs,
// the reference latents, audio features, face mask and noise are the fixture's own
// inputs (golden/pipeline.safetensors), so this checks the loop and the DiT together.
#include "hyavatar/avatar_pipeline.hpp"
#include "hyavatar/denoise_loop.hpp"
#include "hyavatar/dit.hpp"
#include "hyavatar/llava_image.hpp"
#include "hyavatar/reference_latents.hpp"
#include "hyavatar/vae.hpp"
#include "media/audio.hpp"
#include "media/video_writer.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace reel::hyavatar {
namespace {

using nlohmann::json;

std::string fixture() { return golden::fixture_dir("REEL_HYAVATAR_PIPELINE_GOLDEN", "hyavatar-pipeline-tiny-a"); }
std::string dit_fixture() { return golden::fixture_dir("REEL_HYAVATAR_DIT_GOLDEN", "hyavatar-dit-tiny-a"); }

struct PipelineDitCheckpoint {
  tensorio::Weights weights;
  HYAvatarDiTConfig config;
};

// The DiT fixture's checkpoint with the input layers the pipeline fixture re-drew for its
// encoders' widths (golden.json components.dit).
PipelineDitCheckpoint pipeline_dit_checkpoint(const json& g) {
  const json& c = g["components"]["dit"]["config"];
  HYAvatarDiTConfig cfg = read_hyavatar_dit_config(dit_fixture() + "/checkpoint/config.json");
  cfg.text_states_dim = c["text_states_dim"].get<int64_t>();
  cfg.text_states_dim_2 = c["text_states_dim_2"].get<int64_t>();
  const json& ap = c["audio_proj"];
  cfg.audio_proj.seq_len = ap["seq_len"].get<int64_t>();
  cfg.audio_proj.blocks = ap["blocks"].get<int64_t>();
  cfg.audio_proj.channels = ap["channels"].get<int64_t>();
  cfg.audio_proj.intermediate_dim = ap["intermediate_dim"].get<int64_t>();
  cfg.audio_proj.output_dim = ap["output_dim"].get<int64_t>();
  cfg.audio_proj.context_tokens = ap["context_tokens"].get<int64_t>();
  auto base = load_hyavatar_dit_weights(dit_fixture() + "/checkpoint/transformers/mp_rank_00_model_states.pt");
  tensorio::TensorMap tensors = base.all();
  auto replaced = tensorio::load_safetensors(fixture() + "/checkpoint/dit_replaced.safetensors");
  for (auto& [name, t] : replaced) {
    EXPECT_TRUE(tensors.count(name)) << name << " is not in the DiT fixture";
    tensors[name] = t;
  }
  return {tensorio::Weights(std::move(tensors), "pipeline fixture DiT"), cfg};
}

HYAvatarDiT pipeline_dit(const json& g) {
  const PipelineDitCheckpoint c = pipeline_dit_checkpoint(g);
  return HYAvatarDiT::load(c.weights, c.config);
}

TEST(HyAvatarPipeline, SamplingLoopMatchesTheReferenceRun) {
  const json g = golden::read_json(fixture() + "/golden.json");
  auto t = tensorio::load_safetensors(fixture() + "/golden/pipeline.safetensors");
  auto f32 = [&](const char* name) { return t.at(name).to(torch::kFloat32); };
  HYAvatarDiT dit = pipeline_dit(g);

  AvatarConditions c;
  c.prompt_embeds = f32("prompt_embeds");
  c.prompt_mask = t.at("prompt_mask");
  c.negative_prompt_embeds = f32("negative_prompt_embeds");
  c.negative_prompt_mask = t.at("negative_prompt_mask");
  c.prompt_embeds_2 = f32("prompt_embeds_2");
  c.negative_prompt_embeds_2 = f32("negative_prompt_embeds_2");
  c.ref_latents = f32("ref_latents");
  // The reference feeds float16 audio features and fps to float32 modules (widened, exact).
  c.audio_prompts = f32("audio_prompts");
  c.uncond_audio_prompts = f32("uncond_audio_prompts");
  c.face_mask = f32("face_masks");
  c.motion_exp = t.at("motion_exp");
  c.motion_pose = t.at("motion_pose");
  c.fps = f32("fps");
  const auto freqs_cos = f32("freqs_cos"), freqs_sin = f32("freqs_sin");

  int calls = 0;
  torch::Tensor first_x, first_t, first_out;
  DitFn run = [&](const DitCall& call) {
    HYAvatarDiTInputs in;
    in.x = call.x;
    in.t = call.t;
    in.ref_latents = call.ref_latents;
    in.text_states = call.text_states;
    in.text_mask = call.text_mask;
    in.text_states_2 = call.text_states_2;
    in.freqs_cos = freqs_cos;
    in.freqs_sin = freqs_sin;
    in.motion_exp = call.motion_exp;
    in.motion_pose = call.motion_pose;
    in.fps = call.fps;
    in.audio_prompts = call.audio_prompts;
    in.face_mask = call.face_mask;
    DitResult r;
    if (call.cache_in.defined()) {
      r.x = dit.forward_cached(in, call.cache_in);
    } else {
      r.x = dit.forward(in, &r.cache_out);
    }
    if (calls++ == 0) {
      first_x = call.x;
      first_t = call.t;
      first_out = r.x;
    }
    return r;
  };

  SamplerSettings s;
  s.steps = g["pipeline_call"]["num_inference_steps"].get<int>();
  s.shift = g["pipeline_call"]["scheduler"]["shift"].get<double>();
  s.cfg_scale = g["pipeline_call"]["guidance_scale"].get<double>();
  const auto expected_steps = f32("latents_all_steps");
  std::vector<double> step_error;
  auto final_latents = denoise(run, c, f32("initial_noise"), s, [&](int i, const torch::Tensor& latents_all) {
    step_error.push_back((latents_all - expected_steps[i]).abs().max().item<double>());
  });

  // The first DiT call's inputs are the reference's exactly; its output agrees to float32
  // rounding order (the DiT's own golden test uses the same bound).
  EXPECT_TRUE(torch::equal(first_x, f32("dit_call0_x")));
  EXPECT_TRUE(torch::equal(first_t, f32("dit_call0_t")));
  EXPECT_TRUE(golden::close(first_out, f32("dit_call0_out"), 1e-4, 1e-4));
  ASSERT_EQ(step_error.size(), static_cast<size_t>(s.steps));
  // Latents are rounded to bf16 after every step (8 significant bits): a float32
  // rounding-order difference in the DiT (~1e-6) can flip one rounding, and guidance (up
  // to 7.5) carries it on. Every step must stay within one bf16 ulp at the latents'
  // largest magnitude (|x| < 8: 2^-5); measured: 0 for the first steps, 2^-7 at the end.
  const double max_abs = expected_steps.abs().max().item<double>();
  ASSERT_LT(max_abs, 8.0);
  for (int i = 0; i < s.steps; ++i) {
    std::printf("step %2d: max |latents - reference| = %.3g\n", i, step_error[static_cast<size_t>(i)]);
    EXPECT_LE(step_error[static_cast<size_t>(i)], 1.0 / 32) << "step " << i;
  }
  EXPECT_TRUE(golden::close(final_latents, f32("final_latents"), 0, 1.0 / 32));
}

// The end of the run: the final latents / scaling factor decoded with the reference's
// tiling, mapped to [0, 1], and the uint8 frames sample_batch writes, cut to the audio.
TEST(HyAvatarPipeline, DecodeToFramesMatchesTheReferenceRun) {
  const json g = golden::read_json(fixture() + "/golden.json");
  auto t = tensorio::load_safetensors(fixture() + "/golden/pipeline.safetensors");
  const std::string vae_dir = golden::fixture_dir("REEL_HYAVATAR_VAE_GOLDEN", "hyavatar-vae-tiny-a");
  HyVae vae = HyVae::load(vae_dir + "/checkpoint");
  const json& tiling = g["components"]["vae"]["tiling"];
  VaeTiling tiles = VaeTiling::reference(vae.config());
  EXPECT_EQ(tiles.tile_sample_min_size, tiling["tile_sample_min_size"].get<int64_t>());
  EXPECT_EQ(tiles.tile_sample_min_tsize, tiling["tile_sample_min_tsize"].get<int64_t>());
  EXPECT_DOUBLE_EQ(vae.config().scaling_factor, g["components"]["vae"]["scaling_factor"].get<double>());
  auto latents = t.at("final_latents").to(torch::kFloat32) / vae.config().scaling_factor;
  auto video = (vae.decode(latents, tiles) / 2 + 0.5).clamp(0, 1);
  // The VAE's own golden test bounds its decode at 1e-4; [0, 1] halves that.
  EXPECT_TRUE(golden::close(video, t.at("video"), 0, 1e-4));
  const int64_t audio_frames = g["sizes"]["audio_len"].get<int64_t>();
  auto frames = (t.at("video")[0].permute({1, 2, 3, 0}) * 255).to(torch::kUInt8).slice(0, 0, audio_frames);
  // From the reference's own video, the conversion is exact (truncation, not rounding).
  EXPECT_TRUE(torch::equal(frames, t.at("frames_uint8")));
  // From ours, a value within 1e-4 of a multiple of 1/255 may truncate one level lower.
  auto ours = (video[0].permute({1, 2, 3, 0}) * 255).to(torch::kUInt8).slice(0, 0, audio_frames);
  EXPECT_LE((ours.to(torch::kInt32) - t.at("frames_uint8").to(torch::kInt32)).abs().max().item<int>(), 1);
}

// The start of the run: input.png prepared as the data loader does, mapped to [-1, 1] in
// float16 arithmetic, repeated over a window, encoded with the reference's tiling and
// sampled with the fixture's noise: the `ref_latents` the DiT gets.
TEST(HyAvatarPipeline, ReferenceLatentsMatchTheReferenceRun) {
  const json g = golden::read_json(fixture() + "/golden.json");
  auto t = tensorio::load_safetensors(fixture() + "/golden/pipeline.safetensors");
  const std::string vae_dir = golden::fixture_dir("REEL_HYAVATAR_VAE_GOLDEN", "hyavatar-vae-tiny-a");
  HyVae vae = HyVae::load(vae_dir + "/checkpoint");
  auto image = media::read_image(fixture() + "/inputs/input.png");
  auto rgb = torch::from_blob(image.rgb.data(), {image.height, image.width, 3}, torch::kUInt8).clone();
  const int64_t image_size = g["driver"]["args"]["image_size"].get<int64_t>();
  auto ref = prepare_llava_image(rgb, image_size).ref_image;
  EXPECT_EQ(ref.size(0), g["sizes"]["image_in"][0].get<int64_t>());
  EXPECT_EQ(ref.size(1), g["sizes"]["image_in"][1].get<int64_t>());
  const int64_t frames = g["sizes"]["audio_prompts_frames"].get<int64_t>();   // one window: 129
  auto input = vae_input_from_image(ref, frames);
  // Pillow-exact resize and float16 arithmetic: the VAE input is the reference's bit for bit.
  EXPECT_TRUE(torch::equal(input.slice(2, 0, 1), t.at("vae_encode_input_frame0")));
  ReferenceLatents r = reference_latents(vae, ref, t.at("ref_posterior_noise"), frames);
  // The VAE's own golden test bounds its tiled encode at 1e-4.
  EXPECT_TRUE(golden::close(r.posterior.mean, t.at("ref_posterior_mean"), 1e-4, 1e-4));
  EXPECT_TRUE(golden::close(r.posterior.std(), t.at("ref_posterior_std"), 1e-4, 1e-4));
  EXPECT_TRUE(golden::close(r.latents, t.at("ref_latents"), 1e-4, 1e-4));
}

// The whole chain assembled (avatar_pipeline.hpp) from the fixture's files: input.png,
// input.wav and the CSV prompt through the fixture's encoders (LLaVA with its word-level
// tokenizer stand-in, CLIP, Whisper), the stand-in face box, the reference latents, the
// 50-step loop and the tiled decode, with only the reference's random draws passed in.
// The frames must be the reference's sample_batch frames.
TEST(HyAvatarPipeline, WholeChainFromTheInputFilesMatchesTheReferenceFrames) {
  const json g = golden::read_json(fixture() + "/golden.json");
  auto t = tensorio::load_safetensors(fixture() + "/golden/pipeline.safetensors");
  const std::string enc_dir = golden::fixture_dir("REEL_HYAVATAR_ENC_GOLDEN", "hyavatar-enc-tiny-a");
  const json eg = golden::read_json(enc_dir + "/golden.json");
  const std::string ckpts = enc_dir + "/ckpts";

  AvatarParts parts;
  const PipelineDitCheckpoint dit = pipeline_dit_checkpoint(g);
  parts.dit = std::make_unique<DitRunner>(dit.weights, dit.config, torch::kCPU, DitPlacement{});
  parts.vae = std::make_unique<HyVae>(HyVae::load(golden::fixture_dir("REEL_HYAVATAR_VAE_GOLDEN", "hyavatar-vae-tiny-a") +
                                                  "/checkpoint"));
  // golden.json stand_ins.face_detector: one box at fixed fractions of the image it gets,
  // written here in the network's output layout (centre and size in input pixels).
  const json& box = g["stand_ins"]["face_calls"][0];
  const double iw = box["image_hw"][1].get<double>(), ih = box["image_hw"][0].get<double>();
  const auto xywh = box["box_xywh"].get<std::vector<double>>();
  char script[1024];
  std::snprintf(script, sizeof script, R"(
def forward(self, img: Tensor, grids: List[Tensor]) -> Tensor:
    h = float(img.size(2))
    w = float(img.size(3))
    out = torch.zeros(1, 1, 16)
    out[0, 0, 0] = %.17g * w
    out[0, 0, 1] = %.17g * h
    out[0, 0, 2] = %.17g * w
    out[0, 0, 3] = %.17g * h
    out[0, 0, 4] = 0.9
    out[0, 0, 15] = 1.0
    return out
)", (xywh[0] + xywh[2] / 2) / iw, (xywh[1] + xywh[3] / 2) / ih, xywh[2] / iw, xywh[3] / ih);
  parts.face_detector = std::make_unique<FaceDetector>(FaceDetector::from_script(script, "fixture face box"));
  parts.text_len = g["driver"]["args"]["text_len"].get<int64_t>();
  parts.load_encoders = [&](const torch::Device&) {
    AvatarEncoders e;
    e.llava = std::make_unique<LlavaEncoder>(LlavaEncoder::load_dir(ckpts + "/llava_llama_image"));
    const json& tj = eg["llava"]["tokenizer"];
    std::vector<std::string> specials;
    for (auto it = tj["special_ids_here"].begin(); it != tj["special_ids_here"].end(); ++it) specials.push_back(it.key());
    e.llama_tokenizer = std::make_unique<Llama3Tokenizer>(Llama3Tokenizer::word_level(
        tj["vocab"].get<std::vector<std::string>>(), specials, "<|begin_of_text|>", "<unk>"));
    e.clip = std::make_unique<ClipTextEncoder>(ClipTextEncoder::load_dir(ckpts + "/text_encoder_2"));
    e.clip_tokenizer = std::make_unique<ClipTokenizer>(
        ClipTokenizer::load(ckpts + "/text_encoder_2", g["driver"]["args"]["text_len_2"].get<int64_t>()));
    e.whisper = std::make_unique<WhisperEncoder>(WhisperEncoder::load_dir(ckpts + "/whisper-tiny"));
    e.features = WhisperFeatureConfig::from_json(ckpts + "/whisper-tiny/preprocessor_config.json");
    return e;
  };

  AvatarRequest r;
  auto image = media::read_image(fixture() + "/inputs/input.png");
  r.image = torch::from_blob(image.rgb.data(), {image.height, image.width, 3}, torch::kUInt8).clone();
  const auto audio = media::decode_audio(fixture() + "/inputs/input.wav", 16000);
  r.waveform = torch::tensor(audio.samples);
  r.prompt = eg["inputs"]["csv"]["prompt"].get<std::string>();
  r.negative_prompt = g["pipeline_call"]["negative_prompt"].get<std::string>();
  r.image_size = g["driver"]["args"]["image_size"].get<int64_t>();
  r.steps = g["pipeline_call"]["num_inference_steps"].get<int>();
  r.cfg_scale = g["pipeline_call"]["guidance_scale"].get<double>();
  r.shift = g["pipeline_call"]["scheduler"]["shift"].get<double>();
  r.window = g["loop"]["frames_per_batch"].get<int>();
  r.initial_noise = t.at("initial_noise").to(torch::kFloat32);
  r.ref_noise = t.at("ref_posterior_noise").to(torch::kFloat32);
  const AvatarVideo out = generate_avatar(parts, r);

  const auto expected = t.at("frames_uint8");
  ASSERT_EQ(out.frames.sizes(), expected.sizes());
  EXPECT_EQ(out.audio_frames, g["sizes"]["audio_len"].get<int64_t>());
  EXPECT_FALSE(out.audio_cut);
  // The loop's latents stay within one bf16 ulp of the reference's (test above); decoded
  // and truncated to uint8, that moves a pixel by a level where it moves at all (measured:
  // max 1, mean 0.04). A wrong stage (prompt, mask, audio, latents) moves them by tens.
  const auto diff = (out.frames.to(torch::kInt32) - expected.to(torch::kInt32)).abs();
  const int max_diff = diff.max().item<int>();
  const double mean_diff = diff.to(torch::kFloat64).mean().item<double>();
  std::printf("whole chain: frames max |diff| %d levels, mean %.4f\n", max_diff, mean_diff);
  EXPECT_LE(max_diff, 2);
  EXPECT_LT(mean_diff, 0.2);
}

}  // namespace
}  // namespace reel::hyavatar
