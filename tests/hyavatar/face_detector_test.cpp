// FaceDetector (plugins/hyavatar/face_detector.hpp) with a tiny TorchScript stand-in for
// det_align/detface.pt, built here with LibTorch's own script compiler: it checks the
// inputs the reference gives the network (size, grids, RGB in 0..1) and returns fixed
// candidates in the network's input pixels, so the test can check thresholds,
// suppression, scaling back to the image and the reference's face choice.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include <torch/script.h>

#include "face_detector.hpp"

namespace reel::hyavatar {
namespace {

namespace fs = std::filesystem;

// Candidates as [cx, cy, w, h, objectness, 10 landmark coords, class confidence], in the
// 416-based input's pixels. The red channel's mean scales A's objectness: fed BGR or
// 0..255 instead of RGB in 0..1, A would fall below or far above the threshold.
const char* kStandIn = R"(
def forward(self, img: Tensor, grids: List[Tensor]) -> Tensor:
    h = img.size(2)
    w = img.size(3)
    assert len(grids) == 3
    assert grids[0].size(2) == h // 8 and grids[0].size(3) == w // 8 and grids[0].size(4) == 2
    assert grids[2].size(2) == h // 32
    assert float(img.max()) <= 1.0
    red = float(img[0, 0].mean())
    out = torch.zeros(1, 5, 16)
    rows = [[100.0, 100.0, 80.0, 80.0, 0.5 + 0.45 * red, 1.0],
            [105.0, 100.0, 80.0, 80.0, 0.85, 1.0],
            [300.0, 200.0, 120.0, 100.0, 0.8, 1.0],
            [300.0, 300.0, 50.0, 50.0, 0.3, 1.0],
            [200.0, 50.0, 40.0, 40.0, 0.9, 0.4]]
    for i in range(5):
        r = rows[i]
        out[0, i, 0] = r[0]
        out[0, i, 1] = r[1]
        out[0, i, 2] = r[2]
        out[0, i, 3] = r[3]
        out[0, i, 4] = r[4]
        for k in range(5):
            out[0, i, 5 + 2 * k] = r[0]
            out[0, i, 6 + 2 * k] = r[1]
        out[0, i, 15] = r[5]
    return out
)";

struct StandIn {
  fs::path dir = fs::temp_directory_path() / ("reel-facedet-" + std::to_string(::getpid()));
  std::string path = (dir / "detface.pt").string();
  StandIn() {
    fs::create_directories(dir);
    torch::jit::Module m("FaceDetStandIn");
    m.define(kStandIn);
    m.save(path);
  }
  ~StandIn() { fs::remove_all(dir); }
};

std::vector<uint8_t> solid(int h, int w, uint8_t r, uint8_t g, uint8_t b) {
  std::vector<uint8_t> px(static_cast<size_t>(h) * w * 3);
  for (size_t i = 0; i < px.size(); i += 3) {
    px[i] = r;
    px[i + 1] = g;
    px[i + 2] = b;
  }
  return px;
}

TEST(HyAvatarFaceDetector, ThresholdsSuppressionScalingAndChoice) {
  StandIn s;
  auto det = FaceDetector::load(s.path);
  // 208 x 320 image: the short side 208 -> 416, scale 2; 640 is a multiple of 32.
  auto red = solid(208, 320, 255, 0, 0);
  auto faces = det.detect(red.data(), 208, 320);
  // A (0.95) suppresses B (0.85, IoU ~0.88); C stays (0.8); D (0.3) and E (0.9*0.4) fall
  // below 0.5.
  ASSERT_EQ(faces.size(), 2u);
  EXPECT_NEAR(faces[0].score, 0.95, 1e-6);
  EXPECT_NEAR(faces[1].score, 0.8, 1e-6);
  // A: centre (100, 100), 80 x 80 in input pixels -> top-left (30, 30), 40 x 40 in the image.
  EXPECT_NEAR(faces[0].box.x, 30, 1e-4);
  EXPECT_NEAR(faces[0].box.y, 30, 1e-4);
  EXPECT_NEAR(faces[0].box.w, 40, 1e-4);
  EXPECT_NEAR(faces[0].box.h, 40, 1e-4);
  EXPECT_NEAR(faces[0].landmarks[0], 50, 1e-4);
  // A width that is not a multiple of 32 after scaling: 312*2 = 624 -> 640 wide input,
  // and boxes scale back by 312/640.
  auto narrow = solid(208, 312, 255, 0, 0);
  auto scaled = det.detect(narrow.data(), 208, 312);
  ASSERT_EQ(scaled.size(), 2u);
  EXPECT_NEAR(scaled[0].box.x, 60 * 312.0 / 640, 1e-4);
  // C is larger than A, so the reference's choice is C.
  auto chosen = reference_face(faces);
  ASSERT_TRUE(chosen);
  EXPECT_NEAR(chosen->x, (300 - 60) / 2.0, 1e-4);
  EXPECT_NEAR(chosen->w, 60, 1e-4);
}

TEST(HyAvatarFaceDetector, FedRgbInZeroToOne) {
  StandIn s;
  auto det = FaceDetector::load(s.path);
  // A blue image: red mean 0 gives A an objectness of exactly 0.5, not above the
  // threshold, so B (no longer suppressed by A) is the first face.
  auto blue = solid(208, 320, 0, 0, 255);
  auto faces = det.detect(blue.data(), 208, 320);
  ASSERT_EQ(faces.size(), 2u);
  EXPECT_NEAR(faces[0].score, 0.85, 1e-6);
}

TEST(HyAvatarFaceDetector, ReferenceChoiceComparesWithTheFirstBox) {
  auto face = [](double w) { return FaceDetection{FaceBox{0, 0, w, w}, 0.9, {}}; };
  // 10, 30, 20: the last one larger than the FIRST (20 > 10) wins, not the largest (30).
  EXPECT_EQ(reference_face({face(10), face(30), face(20)})->w, 20);
  EXPECT_EQ(reference_face({face(30), face(10)})->w, 30);
  EXPECT_FALSE(reference_face({}));
}

TEST(HyAvatarFaceDetector, MissingOrBrokenFilesAreClearErrors) {
  StandIn s;
  auto load_error = [](const std::string& path) -> std::string {
    try {
      FaceDetector::load(path);
    } catch (const FaceDetectorError& e) {
      return e.what();
    }
    return "(no error)";
  };
  const auto missing = (s.dir / "nope.pt").string();
  EXPECT_NE(load_error(missing).find(missing + " does not exist"), std::string::npos) << load_error(missing);
  const auto broken = (s.dir / "broken.pt").string();
  std::ofstream(broken) << "not a zip archive";
  EXPECT_NE(load_error(broken).find("not a loadable TorchScript file"), std::string::npos) << load_error(broken);
}

}  // namespace
}  // namespace reel::hyavatar
