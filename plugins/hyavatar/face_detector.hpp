// FaceDetector: the official face detector (ckpts/det_align/detface.pt, a TorchScript
// YOLO-style network that predicts boxes with five landmarks) run the way the reference
// (DetFace + AlignImage) runs it: the image scaled so its short side is 416 and both
// sides rounded up to multiples of 32, the network called with its three anchor grids
// (strides 8, 16, 32), candidates above 0.5 confidence, non-maximum suppression at IoU
// 0.45, boxes scaled back to the image. The face used for the mask is picked as the
// reference picks it (largest_face).
// The resize is bilinear like OpenCV's INTER_LINEAR but computed in float and rounded,
// so pixels may differ from cv2's fixed-point result by one level; boxes move by a
// fraction of a pixel at most.
// Thread-safety: detect() may be called from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "face_mask.hpp"

namespace torch::jit {
struct Module;
}

namespace reel::hyavatar {

struct FaceDetectorError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct FaceDetection {
  FaceBox box;                 // image pixels
  double score = 0;
  std::vector<double> landmarks;   // 5 (x, y) pairs, image pixels
};

class FaceDetector {
 public:
  // Throws FaceDetectorError naming the path when it is missing or not a TorchScript file.
  static FaceDetector load(const std::string& path);
  // A network given as TorchScript source defining `forward(self, img, grids)` with the
  // official network's inputs and output: the tiny smoke-test model's stand-in.
  static FaceDetector from_script(const std::string& source, const std::string& name);
  FaceDetector(FaceDetector&&) noexcept;
  FaceDetector& operator=(FaceDetector&&) noexcept;
  ~FaceDetector();

  // `rgb`: height x width x 3 bytes, rows top to bottom. Detections after suppression,
  // highest score first. Throws FaceDetectorError when the network's output is not the
  // [1, N, 16] the reference expects.
  std::vector<FaceDetection> detect(const uint8_t* rgb, int height, int width) const;

  static constexpr int kInputSize = 416;
  static constexpr double kConfidence = 0.5;
  static constexpr double kIou = 0.45;

 private:
  FaceDetector(std::unique_ptr<torch::jit::Module> module, std::string path);
  std::unique_ptr<torch::jit::Module> module_;
  std::string path_;
};

// The reference's choice among several faces (AlignImage with maxface=True): it compares
// each box with the FIRST box's area and keeps the last one that is larger, which is not
// always the largest; kept so masks match the reference. nullopt when there is no face.
std::optional<FaceBox> reference_face(const std::vector<FaceDetection>& detections);

}  // namespace reel::hyavatar
