// The Avatar ladder (plugins/hyavatar/avatar_ladder.hpp) as tables: order and settings,
// the tiers' caps, and estimates that fall rung by rung for the official model; and the
// key lists behind the tiny model's seeded weights (random_weights.hpp), checked against
// the golden fixtures' real checkpoints, so hunyuan-avatar-tiny is the fixtures'
// architecture and the recorder lists exactly what the loaders read.
#include <map>

#include <gtest/gtest.h>

#include "hyavatar/avatar_model.hpp"
#include "hyavatar/random_weights.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace reel::hyavatar {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

const AvatarSpec& official() { return *find_avatar_model("hunyuan-avatar"); }
const AvatarSpec& tiny() { return *find_avatar_model("hunyuan-avatar-tiny"); }

TEST(AvatarLadder, PlacementRungsThenTheSevenTiersBestFirst) {
  std::vector<std::string> names;
  bool quality_seen = false;
  for (const auto& r : avatar_ladder()) {
    names.push_back(r["name"]);
    const bool quality = r["kind"] == "quality";
    EXPECT_FALSE(quality_seen && !quality) << "placement rung " << r["name"] << " after a quality rung";
    quality_seen = quality_seen || quality;
    EXPECT_NO_THROW(parse_avatar_rung(r));
  }
  const std::vector<std::string> expected = {"resident", "encoders-cpu", "fp8", "block-swap", "cfg-split",
                                             "vae-small-tiles", "cpu", "maximum", "high", "balanced",
                                             "low", "ultra-low", "ultra-minimal", "emergency"};
  EXPECT_EQ(names, expected);
  EXPECT_THROW(parse_avatar_rung({{"name", "turbo"}}), std::invalid_argument);
  const AvatarRung e = parse_avatar_rung({{"name", "emergency"}});
  EXPECT_TRUE(e.encoders_cpu && e.streamed && e.cfg_split && e.small_tiles);
  EXPECT_EQ(e.max_side, 96);
  EXPECT_EQ(e.max_window_frames, 5);
  EXPECT_EQ(e.max_steps, 10);
  EXPECT_DOUBLE_EQ(e.max_audio_seconds, 8);
}

TEST(AvatarLadder, TiersCapTheJobNeverRaiseIt) {
  struct Row {
    const char* rung;
    int64_t image_size, window, steps;
    double seconds;
    int64_t want_size, want_window, want_steps;
    double want_seconds;
  };
  const Row rows[] = {
      {"resident", 704, 129, 50, 30, 704, 129, 50, 30},
      {"maximum", 704, 129, 50, 200, 704, 129, 50, 120},
      {"high", 1024, 257, 50, 30, 704, 129, 35, 30},
      {"balanced", 704, 129, 50, 30, 512, 65, 30, 30},
      {"low", 704, 129, 20, 10, 384, 33, 20, 10},     // steps below the cap stay
      {"ultra-low", 704, 129, 50, 30, 256, 17, 20, 20},
      {"emergency", 704, 129, 50, 30, 96, 5, 10, 8},
      {"emergency", 64, 9, 4, 2, 64, 5, 4, 2},
      {"balanced", 704, 71, 50, 30, 512, 65, 30, 30},   // a window not 4n+1 is rounded down
  };
  for (const Row& r : rows) {
    AvatarShape q;
    q.image_size = r.image_size;
    q.window_frames = r.window;
    q.steps = r.steps;
    q.audio_seconds = r.seconds;
    const AvatarShape s = effective_avatar_shape(q, parse_avatar_rung({{"name", r.rung}}));
    EXPECT_EQ(s.image_size, r.want_size) << r.rung;
    EXPECT_EQ(s.window_frames, r.want_window) << r.rung;
    EXPECT_EQ(s.steps, r.want_steps) << r.rung;
    EXPECT_DOUBLE_EQ(s.audio_seconds, r.want_seconds) << r.rung;
  }
}

// The official model at a 704 x 704 portrait and 10 s of speech: each placement rung needs
// less GPU memory than the one before, and so does each tier; the CPU rung none.
TEST(AvatarLadder, OfficialEstimatesFallRungByRung) {
  const AvatarSizes& z = avatar_sizes(official());
  AvatarShape q;
  q.audio_seconds = 10;
  int64_t previous = INT64_MAX;
  std::map<std::string, int64_t> device;
  for (const auto& entry : avatar_ladder()) {
    const AvatarRung r = parse_avatar_rung(entry);
    AvatarShape s = effective_avatar_shape(q, r);
    s.height = s.width = std::max<int64_t>(64, (s.image_size + 32) / 64 * 64);
    const AvatarEstimate e = estimate_avatar(z, s, r);
    std::printf("%-16s device %6.1f GiB  host %6.1f GiB\n", r.name.c_str(), static_cast<double>(e.device) / kGiB,
                static_cast<double>(e.host) / kGiB);
    if (r.cpu_only) {
      EXPECT_EQ(e.device, 0);
      EXPECT_GT(e.host, 80 * kGiB) << "the DiT alone is over 17B float32 parameters";
      continue;
    }
    if (r.name == "maximum") previous = INT64_MAX;   // the tiers start again from the top
    EXPECT_LE(e.device, previous) << r.name;
    previous = e.device;
    device[r.name] = e.device;
    EXPECT_GE(e.device, e.resident_device);
  }
  // Where a rung moves what binds, the need falls (small VAE tiles help only when the
  // decode, not the DiT, is the peak; `high` differs from `maximum` in steps only here).
  const char* strictly_less[][2] = {{"fp8", "encoders-cpu"}, {"block-swap", "fp8"},
                                    {"cfg-split", "block-swap"},  {"balanced", "high"},     {"low", "balanced"},
                                    {"ultra-low", "low"},         {"ultra-minimal", "ultra-low"}};
  for (const auto& pair : strictly_less) EXPECT_LT(device[pair[0]], device[pair[1]]) << pair[0] << " < " << pair[1];
  EXPECT_GT(device["resident"], 60 * kGiB) << "17B float32 parameters and the 8B LLaVA";
  // The seeds put the emergency tier under 4 GB assuming bf16 weights; computing in float32,
  // the DiT's non-block weights (0.53B), one streamed block and the VAE alone take ~5 GB.
  // What must hold: the smallest GPU reel's users have (8 GB) runs it.
  EXPECT_LT(device["emergency"], 8 * kGiB);
}

// The encoders are dropped before the DiT runs, so moving them to the CPU lowers the peak
// only where encoding is the peak: a small portrait and short audio.
TEST(AvatarLadder, EncodersOnTheCpuHelpWhenEncodingIsThePeak) {
  const AvatarSizes& z = avatar_sizes(official());
  AvatarShape s;
  s.image_size = s.height = s.width = 256;
  s.window_frames = 33;
  s.audio_seconds = 2;
  const AvatarEstimate resident = estimate_avatar(z, s, parse_avatar_rung({{"name", "resident"}}));
  const AvatarEstimate cpu = estimate_avatar(z, s, parse_avatar_rung({{"name", "encoders-cpu"}}));
  EXPECT_LT(cpu.device + 8 * kGiB, resident.device) << "LLaVA-8B's 16 GB leave the GPU (the VAE decode, ~8 GB, is then the peak)";
  EXPECT_GT(cpu.host, resident.host + 15 * kGiB) << "... and are held in host memory while encoding";
}

// The research figure: ~10 GB of activations per CFG branch at 704x768 in bf16. Ours
// computes in float32, so one branch is twice that: the difference between running both
// branches together and one at a time.
TEST(AvatarLadder, OneBranchOfActivationsMatchesTheResearchFigure) {
  const AvatarSizes& z = avatar_sizes(official());
  AvatarShape s;
  s.height = 704;
  s.width = 768;
  s.audio_seconds = 5;
  const AvatarEstimate both = estimate_avatar(z, s, parse_avatar_rung({{"name", "block-swap"}}));
  const AvatarEstimate one = estimate_avatar(z, s, parse_avatar_rung({{"name", "cfg-split"}}));
  const double branch_gb = static_cast<double>(both.device - one.device) / 1e9;
  EXPECT_GT(branch_gb, 2 * 8.0);
  EXPECT_LT(branch_gb, 2 * 12.0);
}

// Official sizes come from the loaders' key lists at the official configuration: 20 double
// and 40 single blocks of width 3072, listed without allocating the 17B parameters.
TEST(AvatarSizes, OfficialCountsFromTheLoaders) {
  const AvatarSizes& z = avatar_sizes(official());
  std::printf("DiT: shell %.3fB, blocks %.3fB (largest %.3fB); VAE %.1fM; Whisper %.1fM\n", z.dit_shell / 1e9,
              z.dit_blocks / 1e9, z.dit_block / 1e9, z.vae / 1e6, z.whisper / 1e6);
  EXPECT_EQ(z.dit_hidden, 3072);
  EXPECT_GT(z.dit_blocks, 11'000'000'000LL);
  EXPECT_LT(z.dit_blocks, 13'500'000'000LL);
  // Embeddings, token refiner, audio projection, the ten adapters, final layer.
  EXPECT_GT(z.dit_shell, 100'000'000LL);
  EXPECT_LT(z.dit_shell, z.dit_blocks / 10);
  // 20 double blocks of ~36 D^2 and 40 single blocks of ~15 D^2: the largest is a double.
  EXPECT_GT(z.dit_block, 30 * 3072LL * 3072);
  EXPECT_GT(z.vae, 100'000'000LL);
  EXPECT_LT(z.whisper, 10'000'000LL);
}

std::map<std::string, std::vector<int64_t>> shapes(const std::vector<ExpectedTensor>& keys) {
  std::map<std::string, std::vector<int64_t>> m;
  for (const auto& k : keys) m[k.name] = k.shape;
  return m;
}
std::map<std::string, std::vector<int64_t>> shapes(const tensorio::TensorMap& t) {
  std::map<std::string, std::vector<int64_t>> m;
  for (const auto& [name, x] : t) m[name] = x.sizes().vec();
  return m;
}

TEST(TinyAvatar, DitKeysAreThePipelineFixturesCheckpoint) {
  const std::string dit_dir = golden::fixture_dir("REEL_HYAVATAR_DIT_GOLDEN", "hyavatar-dit-tiny-a");
  const std::string pipe_dir = golden::fixture_dir("REEL_HYAVATAR_PIPELINE_GOLDEN", "hyavatar-pipeline-tiny-a");
  auto expected = shapes(load_hyavatar_dit_weights(dit_dir + "/checkpoint/transformers/mp_rank_00_model_states.pt").all());
  for (const auto& [name, shape] : shapes(tensorio::load_safetensors(pipe_dir + "/checkpoint/dit_replaced.safetensors")))
    expected[name] = shape;
  const TinyAvatarConfigs c = tiny_avatar_configs();
  const auto recorded = keys_read_by([&](const tensorio::Weights& w) { HYAvatarDiT::load(w, c.dit); });
  EXPECT_EQ(shapes(recorded), expected);
}

TEST(TinyAvatar, VaeAndEncoderKeysAreTheFixturesCheckpoints) {
  const TinyAvatarConfigs c = tiny_avatar_configs();
  const std::string vae_dir = golden::fixture_dir("REEL_HYAVATAR_VAE_GOLDEN", "hyavatar-vae-tiny-a");
  auto vae_file = tensorio::load_pth(vae_dir + "/checkpoint/vae/pytorch_model.pt");
  EXPECT_EQ(shapes(keys_read_by([&](const tensorio::Weights& w) { HyVae::load(w, c.vae); })),
            shapes(vae_checkpoint_weights(vae_file, "vae").all()));
  const std::string enc = golden::fixture_dir("REEL_HYAVATAR_ENC_GOLDEN", "hyavatar-enc-tiny-a") + "/ckpts";
  auto llava = shapes(tensorio::load_weights(enc + "/llava_llama_image/model.safetensors.index.json").all());
  llava.erase("language_model.lm_head.weight");   // never read: the hidden states are the output
  llava.erase("vision_tower.vision_model.embeddings.position_ids");
  EXPECT_EQ(shapes(keys_read_by([&](const tensorio::Weights& w) { LlavaEncoder::load(c.llava, w); })), llava);
  auto whisper = shapes(tensorio::load_weights(enc + "/whisper-tiny/model.safetensors").all());
  std::map<std::string, std::vector<int64_t>> whisper_encoder;
  for (const auto& [name, shape] : whisper)
    if (name.rfind("model.encoder.", 0) == 0) whisper_encoder["encoder." + name.substr(14)] = shape;
  EXPECT_EQ(shapes(WhisperEncoder::expected_keys(c.whisper)), whisper_encoder);
}

TEST(TinyAvatar, SeededWeightsAreReproducibleAndShaped) {
  const std::vector<ExpectedTensor> keys = {{"a.norm.weight", {4}}, {"a.bias", {4}}, {"a.proj.weight", {3, 4}}};
  const auto w1 = seeded_weights(keys, 9, "t"), w2 = seeded_weights(keys, 9, "t"), w3 = seeded_weights(keys, 10, "t");
  EXPECT_TRUE(torch::equal(w1.all().at("a.proj.weight"), w2.all().at("a.proj.weight")));
  EXPECT_FALSE(torch::equal(w1.all().at("a.proj.weight"), w3.all().at("a.proj.weight")));
  EXPECT_TRUE(torch::equal(w1.all().at("a.norm.weight"), torch::ones({4})));
  EXPECT_TRUE(torch::equal(w1.all().at("a.bias"), torch::zeros({4})));
  EXPECT_NEAR(w1.all().at("a.proj.weight").std().item<double>(), 0.02, 0.02);
  EXPECT_EQ(parameter_count(keys), 4 + 4 + 12);
}

}  // namespace
}  // namespace reel::hyavatar
