#include "face_detector.hpp"

#include <algorithm>
#include <filesystem>

#include <torch/script.h>
#include <torch/torch.h>

namespace reel::hyavatar {

namespace {

// Greedy non-maximum suppression (torchvision.ops.nms): highest score first, drop every
// later box whose IoU with a kept one exceeds `iou`. Boxes are x1, y1, x2, y2.
std::vector<int64_t> suppress(const torch::Tensor& boxes, const torch::Tensor& scores, double iou) {
  auto order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  auto b = boxes.accessor<float, 2>();
  std::vector<int64_t> kept;
  std::vector<bool> dropped(static_cast<size_t>(boxes.size(0)), false);
  auto area = [&](int64_t i) { return (b[i][2] - b[i][0]) * (b[i][3] - b[i][1]); };
  for (int64_t k = 0; k < order.size(0); ++k) {
    const int64_t i = order[k].item<int64_t>();
    if (dropped[static_cast<size_t>(i)]) continue;
    kept.push_back(i);
    for (int64_t m = k + 1; m < order.size(0); ++m) {
      const int64_t j = order[m].item<int64_t>();
      const float w = std::max(0.0f, std::min(b[i][2], b[j][2]) - std::max(b[i][0], b[j][0]));
      const float h = std::max(0.0f, std::min(b[i][3], b[j][3]) - std::max(b[i][1], b[j][1]));
      const float inter = w * h;
      if (inter / (area(i) + area(j) - inter) > iou) dropped[static_cast<size_t>(j)] = true;
    }
  }
  return kept;
}

}  // namespace

FaceDetector::FaceDetector(std::unique_ptr<torch::jit::Module> module, std::string path)
    : module_(std::move(module)), path_(std::move(path)) {}
FaceDetector::FaceDetector(FaceDetector&&) noexcept = default;
FaceDetector& FaceDetector::operator=(FaceDetector&&) noexcept = default;
FaceDetector::~FaceDetector() = default;

FaceDetector FaceDetector::load(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw FaceDetectorError("the face detector " + path + " does not exist; download det_align/detface.pt with "
                            "the HunyuanVideo-Avatar checkpoints");
  try {
    auto module = std::make_unique<torch::jit::Module>(torch::jit::load(path, torch::kCPU));
    module->eval();
    return FaceDetector(std::move(module), path);
  } catch (const c10::Error& e) {
    throw FaceDetectorError("the face detector " + path + " is not a loadable TorchScript file (" +
                            e.what_without_backtrace() + "); download det_align/detface.pt again");
  }
}

FaceDetector FaceDetector::from_script(const std::string& source, const std::string& name) {
  try {
    auto module = std::make_unique<torch::jit::Module>(name);
    module->define(source);
    module->eval();
    return FaceDetector(std::move(module), name);
  } catch (const c10::Error& e) {
    throw FaceDetectorError("the face detector script " + name + " does not compile: " + e.what_without_backtrace());
  }
}

std::vector<FaceDetection> FaceDetector::detect(const uint8_t* rgb, int height, int width) const {
  torch::NoGradGuard no_grad;
  const double r = static_cast<double>(kInputSize) / std::min(height, width);
  const int64_t h1 = static_cast<int64_t>(height * r + 31) / 32 * 32;
  const int64_t w1 = static_cast<int64_t>(width * r + 31) / 32 * 32;
  auto image = torch::from_blob(const_cast<uint8_t*>(rgb), {height, width, 3}, torch::kUInt8)
                   .permute({2, 0, 1})
                   .unsqueeze(0)
                   .to(torch::kFloat32);
  namespace F = torch::nn::functional;
  // Resized as an 8-bit image first (cv2.resize on uint8), then scaled to 0..1.
  image = F::interpolate(image, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{h1, w1})
                                    .mode(torch::kBilinear)
                                    .align_corners(false))
              .round()
              .clamp(0, 255) /
          255;
  std::vector<torch::Tensor> grids;
  for (int64_t stride : {8, 16, 32}) {
    auto ys = torch::arange(h1 / stride), xs = torch::arange(w1 / stride);
    auto mesh = torch::meshgrid({ys, xs}, "ij");
    grids.push_back(torch::stack({mesh[1], mesh[0]}, 2).view({1, 1, h1 / stride, w1 / stride, 2}).to(torch::kFloat32));
  }
  torch::Tensor pred;
  try {
    pred = module_->forward({image, c10::List<torch::Tensor>(grids)}).toTensor().to(torch::kFloat32);
  } catch (const c10::Error& e) {
    throw FaceDetectorError("the face detector " + path_ + " failed on a " + std::to_string(width) + "x" +
                            std::to_string(height) + " image: " + e.what_without_backtrace());
  }
  if (pred.dim() != 3 || pred.size(0) != 1 || pred.size(2) != 16)
    throw FaceDetectorError("the face detector " + path_ + " returned shape " + c10::str(pred.sizes()) +
                            ", not [1, N, 16] (box, confidence, 5 landmarks, class): is it det_align/detface.pt?");
  auto x = pred[0];
  x = x.index({x.select(1, 4) > kConfidence});
  std::vector<FaceDetection> out;
  if (x.size(0) == 0) return out;
  // Class confidence times objectness; one class, so it is the score.
  auto score = x.select(1, 15) * x.select(1, 4);
  auto keep_mask = score > kConfidence;
  x = x.index({keep_mask});
  score = score.index({keep_mask});
  if (x.size(0) == 0) return out;
  auto cx = x.select(1, 0), cy = x.select(1, 1), bw = x.select(1, 2), bh = x.select(1, 3);
  auto boxes = torch::stack({cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2}, 1).contiguous();
  const double sx = static_cast<double>(width) / w1, sy = static_cast<double>(height) / h1;
  for (int64_t i : suppress(boxes, score.contiguous(), kIou)) {
    FaceDetection d;
    const double x1 = boxes[i][0].item<double>() * sx, y1 = boxes[i][1].item<double>() * sy;
    d.box = FaceBox{x1, y1, boxes[i][2].item<double>() * sx - x1, boxes[i][3].item<double>() * sy - y1};
    d.score = score[i].item<double>();
    for (int k = 0; k < 5; ++k) {
      d.landmarks.push_back(x[i][5 + 2 * k].item<double>() * sx);
      d.landmarks.push_back(x[i][6 + 2 * k].item<double>() * sy);
    }
    out.push_back(std::move(d));
  }
  return out;
}

std::optional<FaceBox> reference_face(const std::vector<FaceDetection>& detections) {
  if (detections.empty()) return std::nullopt;
  size_t pick = 0;
  const double first_area = detections[0].box.w * detections[0].box.h;
  for (size_t i = 1; i < detections.size(); ++i)
    if (detections[i].box.w * detections[i].box.h > first_area) pick = i;
  return detections[pick].box;
}

}  // namespace reel::hyavatar
