// Golden tests for the Wan 2.1 causal 3D VAE against wan21-tiny-a (env REEL_WAN21_GOLDEN):
// config inference from tensor shapes (checked against golden.json's "vae" entry), decode
// (latent -> video) and encode (video -> normalised mean) against golden/vae_io, the tiled
// decode against the untiled one, and the error for a missing or mis-shaped tensor.
// Every size comes from the fixture: the model's from Wan2.1_VAE.pth, the latent
// normalisation tables from golden.json, the input shapes from vae_io.safetensors.
//
// Tolerance for the goldens: rtol = atol = 1e-4. The port runs the same float32 ops in the
// same order and chunking as the reference; what remains is rounding from different
// kernels (convolution algorithms, the exact softmax attention), about 1e-6 here.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tensorio/weights.hpp"
#include "vae.hpp"
#include "wan/golden.hpp"

namespace {

using reel::golden::close;
using reel::wan::VaeConfig;
using reel::wan::WanVae;
namespace tio = reel::tensorio;

std::string fixture() { return reel::golden::fixture_dir("REEL_WAN21_GOLDEN", "wan21-tiny-a"); }
std::string vae_pth() { return fixture() + "/checkpoint/Wan2.1_VAE.pth"; }
nlohmann::json golden_json() { return reel::golden::read_json(fixture() + "/golden.json"); }

const tio::Weights& vae_weights() {
  static const tio::Weights w(tio::load_pth(vae_pth()), vae_pth());
  return w;
}
std::vector<float> table(const char* name) { return golden_json().at(name).get<std::vector<float>>(); }
const WanVae& vae() {
  static const WanVae v = WanVae::load(vae_weights(), table("vae_mean"), table("vae_std"));
  return v;
}
const tio::TensorMap& io() {
  static const tio::TensorMap m = tio::load_safetensors(fixture() + "/golden/vae_io.safetensors");
  return m;
}

TEST(WanVae, InfersConfigFromTensorShapes) {
  auto g = golden_json().at("vae");
  VaeConfig cfg = WanVae::infer_config(vae_weights());
  EXPECT_EQ(cfg.dim, g.at("dim").get<int64_t>());
  EXPECT_EQ(cfg.z_dim, g.at("z_dim").get<int64_t>());
  EXPECT_EQ(cfg.dim_mult, g.at("dim_mult").get<std::vector<int64_t>>());
  EXPECT_EQ(cfg.num_res_blocks, g.at("num_res_blocks").get<int64_t>());
  EXPECT_EQ(cfg.attn_scales, g.at("attn_scales").get<std::vector<double>>());
  EXPECT_EQ(cfg.temperal_downsample, g.at("temperal_downsample").get<std::vector<bool>>());
  // golden.json's dropout is the reference's eval no-op; it has no weights to infer from.
  EXPECT_EQ(g.at("dropout").get<double>(), 0.0);
}

TEST(WanVae, DecodeMatchesGolden) {
  const auto& latent = io().at("latent");
  const auto& video = io().at("video");
  // Shape rule from the model's factors: [3, 1 + tf*(F-1), sf*H, sf*W].
  int64_t tf = vae().temporal_factor(), sf = vae().spatial_factor();
  ASSERT_EQ(video.sizes(), (std::vector<int64_t>{3, 1 + tf * (latent.size(1) - 1), sf * latent.size(2),
                                                 sf * latent.size(3)}));
  auto out = vae().decode(latent);
  auto r = close(out, video, 1e-4, 1e-4);
  EXPECT_TRUE(r);
  std::cout << "decode vs golden: " << r.message() << "\n";
  EXPECT_LE(out.abs().max().item<double>(), 1.0);
}

TEST(WanVae, EncodeMatchesGolden) {
  auto out = vae().encode(io().at("encode_in"));
  auto r = close(out, io().at("encode_mu"), 1e-4, 1e-4);
  EXPECT_TRUE(r);
  std::cout << "encode vs golden: " << r.message() << "\n";
}

TEST(WanVae, TiledDecodeWithOneTileEqualsDecode) {
  const auto& latent = io().at("latent");
  int64_t whole = std::max(latent.size(2), latent.size(3));
  auto full = vae().decode(latent);
  EXPECT_TRUE(torch::equal(vae().decode_tiled(latent, whole, 0), full));
  EXPECT_TRUE(torch::equal(vae().decode_tiled(latent, whole + 3, 2), full));
}

TEST(WanVae, TiledDecodeWithSmallTilesStaysClose) {
  const auto& latent = io().at("latent");
  auto full = vae().decode(latent);
  // Three-quarter tiles overlapping by a quarter: 2x2 tiles on the fixture's latent.
  int64_t hl = latent.size(2), wl = latent.size(3), sf = vae().spatial_factor();
  int64_t side = std::min(hl, wl);
  int64_t tile = side * 3 / 4, overlap = side / 4;
  ASSERT_GT(tile, overlap);
  ASSERT_LT(tile, side);
  auto tiled = vae().decode_tiled(latent, tile, overlap);
  ASSERT_EQ(tiled.sizes(), full.sizes());

  // Placement and per-tile causal caches: where only the top-left tile contributes (before
  // the second tile's start, which vae.hpp's rule puts at min(tile - overlap, size - tile)),
  // the result is decode() of that tile's latent crop. Not bit-exact: decode_tiled runs the
  // pointwise conv2 on the whole latent, decode() on the crop, and the convolution kernels
  // round differently for different sizes; same 1e-4 tolerance as the goldens.
  int64_t h1 = std::min(tile - overlap, hl - tile), w1 = std::min(tile - overlap, wl - tile);
  auto corner = vae().decode(latent.slice(2, 0, tile).slice(3, 0, tile));
  auto rc = close(tiled.slice(2, 0, h1 * sf).slice(3, 0, w1 * sf), corner.slice(2, 0, h1 * sf).slice(3, 0, w1 * sf),
                  1e-4, 1e-4);
  EXPECT_TRUE(rc);
  std::cout << "tiled corner vs decode(crop): " << rc.message() << "\n";

  // Everywhere: tiling is an approximation (zero padding at tile borders, attention within
  // a tile), so this is a bound, not a golden. This tiny random-weight decoder's receptive
  // field spans the whole 8x8 latent, so the effect is large here: measured mean abs diff
  // 0.164 (max 1.33) against a video std of 0.49. The bound (0.25) leaves rounding room and
  // still catches an unweighted blend (checked by mutation: mean abs diff 0.31).
  auto diff = (tiled - full).abs();
  double max_diff = diff.max().item<double>(), mean_diff = diff.mean().item<double>();
  std::cout << "tiled (tile " << tile << ", overlap " << overlap << ") vs decode: max abs diff " << max_diff
            << ", mean abs diff " << mean_diff << ", video std " << full.std().item<double>() << "\n";
  EXPECT_LT(mean_diff, 0.25);
}

TEST(WanVae, MissingTensorNamesFileAndTensor) {
  const std::string gone = "decoder.upsamples.3.time_conv.weight";
  tio::TensorMap m = vae_weights().all();
  ASSERT_EQ(m.erase(gone), 1u);
  tio::Weights w(m, vae_pth());
  try {
    WanVae::load(w, table("vae_mean"), table("vae_std"));
    FAIL() << "load() accepted a checkpoint without " << gone;
  } catch (const tio::WeightError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(vae_pth()), std::string::npos) << msg;
    EXPECT_NE(msg.find(gone), std::string::npos) << msg;
  }
}

TEST(WanVae, MisShapedTensorNamesFileAndTensor) {
  const std::string bad = "decoder.head.2.bias";
  tio::TensorMap m = vae_weights().all();
  m[bad] = torch::zeros({m.at(bad).size(0) + 1});
  tio::Weights w(m, vae_pth());
  try {
    WanVae::load(w, table("vae_mean"), table("vae_std"));
    FAIL() << "load() accepted a mis-shaped " << bad;
  } catch (const tio::WeightError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(vae_pth()), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad), std::string::npos) << msg;
  }
}

TEST(WanVae, WrongNormalisationTableSizeIsRejected) {
  auto mean = table("vae_mean");
  mean.pop_back();
  EXPECT_THROW(WanVae::load(vae_weights(), mean, table("vae_std")), std::invalid_argument);
}

}  // namespace
