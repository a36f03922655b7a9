// The face mask (plugins/hyavatar/face_mask.hpp) against the reference run in
// hyavatar-pipeline-tiny-a: the detector there is a stand-in returning a fixed box
// (golden.json `stand_ins.face_calls`), and get_facemask + the bilinear resize ran as in
// the reference, giving `face_mask_pixels` and `face_masks`.
#include "face_mask.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace reel::hyavatar {
namespace {

std::string fixture() { return golden::fixture_dir("REEL_HYAVATAR_PIPELINE_GOLDEN", "hyavatar-pipeline-tiny-a"); }

TEST(HyAvatarFaceMask, MatchesTheReferenceMaskAndItsLatentResize) {
  auto g = golden::read_json(fixture() + "/golden.json");
  auto tensors = tensorio::load_safetensors(fixture() + "/golden/pipeline.safetensors");
  const auto& call = g["stand_ins"]["face_calls"][0];
  auto box_xywh = call["box_xywh"].get<std::vector<double>>();
  const int h = call["image_hw"][0].get<int>(), w = call["image_hw"][1].get<int>();
  auto pixels = face_mask_pixels(FaceBox{box_xywh[0], box_xywh[1], box_xywh[2], box_xywh[3]}, h, w,
                                 call["area"].get<double>());
  auto expected_pixels = tensors.at("face_mask_pixels").to(torch::kFloat32).reshape({h, w});
  // 0/1 values: exact.
  EXPECT_TRUE(torch::equal(pixels, expected_pixels)) << "ones: " << pixels.sum().item<double>() << " vs "
                                                     << expected_pixels.sum().item<double>();
  const auto& latent = tensors.at("face_masks");
  auto resized = face_mask_latent(pixels, static_cast<int>(latent.size(3)), static_cast<int>(latent.size(4)));
  // The same bilinear kernel on the same input: equal up to float rounding order.
  EXPECT_TRUE(golden::close(resized, latent.reshape({latent.size(3), latent.size(4)}), 0, 1e-6));
}

TEST(HyAvatarFaceMask, NoFaceMeansTheWholeImageAndBoxesAreClipped) {
  EXPECT_EQ(face_mask_pixels(std::nullopt, 20, 30).sum().item<double>(), 600);
  // A box at the corner, tripled about its centre, stays inside the image.
  auto corner = face_mask_pixels(FaceBox{0, 0, 10, 10}, 40, 40);
  EXPECT_EQ(corner.sum().item<double>(), 20 * 20);   // centre 5, half size 15: [0, 20)
  EXPECT_EQ(corner[19][19].item<float>(), 1.0f);
  EXPECT_EQ(corner[20][0].item<float>(), 0.0f);
}

}  // namespace
}  // namespace reel::hyavatar
