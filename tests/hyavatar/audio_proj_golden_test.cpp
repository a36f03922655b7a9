// The DiT's audio projection (audio_proj) against hyavatar-dit-tiny-a's
// golden/audio_proj_io.safetensors (env REEL_HYAVATAR_DIT_GOLDEN). Sizes from config.json.
//
// Tolerance: rtol 1e-4 / atol 1e-5. Three float32 linears and a LayerNorm in the
// reference's order: only matmul summation order differs (~1e-6 on O(1) outputs).
#include <iostream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "hyavatar/audio_proj.hpp"
#include "hyavatar/dit.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace {

namespace hy = reel::hyavatar;
namespace tio = reel::tensorio;

std::string fixture() { return reel::golden::fixture_dir("REEL_HYAVATAR_DIT_GOLDEN", "hyavatar-dit-tiny-a"); }

TEST(HyAvatarAudioProj, MatchesReference) {
  auto cfg = hy::read_hyavatar_dit_config(fixture() + "/checkpoint/config.json");
  auto w = hy::load_hyavatar_dit_weights(fixture() + "/checkpoint/transformers/mp_rank_00_model_states.pt");
  hy::CheckpointReader r(w, "audio projection");
  auto proj = hy::AudioProj::load(r, cfg.audio_proj);
  auto io = tio::load_safetensors(fixture() + "/golden/audio_proj_io.safetensors");
  auto out = proj.forward(io.at("audio_prompts"));
  std::cout << "[max abs err] audio_proj_io.out " << (out - io.at("out")).abs().max().item<double>() << "\n";
  EXPECT_TRUE(reel::golden::close(out, io.at("out"), 1e-4, 1e-5));
  EXPECT_THROW(proj.forward(io.at("audio_prompts").slice(4, 1)), std::invalid_argument);
}

}  // namespace
