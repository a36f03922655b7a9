// Pillow-exact resampling and the reference's image preparation; see llava_image.hpp.
// The resampling follows Pillow 9.4's libImaging/Resample.c (precompute_coeffs,
// normalize_coeffs_8bpc, ImagingResampleHorizontal_8bpc / Vertical_8bpc).
#include "llava_image.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace reel::hyavatar {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}
double lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }
double bilinear(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // per output: first input index, count
  std::vector<int32_t> k;   // per output: ksize fixed-point weights
};

Coeffs precompute(int in_size, int out_size, PilFilter filter) {
  const double support_base = filter == PilFilter::kLanczos ? 3.0 : 1.0;
  double (*fn)(double) = filter == PilFilter::kLanczos ? lanczos : bilinear;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = support_base * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(static_cast<size_t>(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = fn((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      // normalize_coeffs_8bpc: round half away from zero to 22 fractional bits.
      c.k[static_cast<size_t>(xx) * c.ksize + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// One separable pass along `axis` (1 = width, 0 = height) of a [H, W, C] uint8 image.
std::vector<uint8_t> pass(const std::vector<uint8_t>& in, int h, int w, int ch, int out_len, bool horizontal,
                          PilFilter filter) {
  const int in_len = horizontal ? w : h;
  const Coeffs c = precompute(in_len, out_len, filter);
  const int oh = horizontal ? h : out_len, ow = horizontal ? out_len : w;
  std::vector<uint8_t> out(static_cast<size_t>(oh) * ow * ch);
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      const int o = horizontal ? x : y;
      const int first = c.bounds[o * 2], count = c.bounds[o * 2 + 1];
      const int32_t* k = &c.k[static_cast<size_t>(o) * c.ksize];
      for (int z = 0; z < ch; ++z) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int i = 0; i < count; ++i) {
          const int sy = horizontal ? y : first + i, sx = horizontal ? first + i : x;
          ss += static_cast<int32_t>(in[(static_cast<size_t>(sy) * w + sx) * ch + z]) * k[i];
        }
        out[(static_cast<size_t>(y) * ow + x) * ch + z] = clip8(ss);
      }
    }
  return out;
}

}  // namespace

torch::Tensor pil_resize(const torch::Tensor& image, int64_t out_w, int64_t out_h, PilFilter filter) {
  if (image.dim() != 3 || image.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("pil_resize: the image must be uint8 [H, W, C]");
  if (out_w <= 0 || out_h <= 0) throw std::invalid_argument("pil_resize: the output size must be positive");
  const int h = static_cast<int>(image.size(0)), w = static_cast<int>(image.size(1)), ch = static_cast<int>(image.size(2));
  torch::Tensor src = image.contiguous();
  std::vector<uint8_t> data(src.data_ptr<uint8_t>(), src.data_ptr<uint8_t>() + src.numel());
  int cur_w = w, cur_h = h;
  // Pillow skips a pass whose size does not change.
  if (out_w != w) {
    data = pass(data, cur_h, cur_w, ch, static_cast<int>(out_w), true, filter);
    cur_w = static_cast<int>(out_w);
  }
  if (out_h != h) {
    data = pass(data, cur_h, cur_w, ch, static_cast<int>(out_h), false, filter);
    cur_h = static_cast<int>(out_h);
  }
  return torch::from_blob(data.data(), {cur_h, cur_w, ch}, torch::kUInt8).clone();
}

std::pair<int64_t, int64_t> reference_image_size(int64_t w, int64_t h, int64_t image_size) {
  if (w <= 0 || h <= 0) throw std::invalid_argument("reference image of size " + std::to_string(w) + "x" + std::to_string(h));
  // Python's round(): half to even, as std::nearbyint in the default rounding mode.
  auto side = [](double v) { return static_cast<int64_t>(std::nearbyint(v / 64.0)) * 64; };
  double scale = static_cast<double>(image_size) / static_cast<double>(std::min(w, h));
  int64_t nw = side(w * scale), nh = side(h * scale);
  if (image_size == 704) {
    const int64_t long_side = 1216;
    if (nw * nh > image_size * long_side) {
      scale = std::sqrt(static_cast<double>(image_size * long_side) / static_cast<double>(w) / static_cast<double>(h));
      nw = side(w * scale);
      nh = side(h * scale);
    }
  }
  return {nw, nh};
}

LlavaImageInputs prepare_llava_image(const torch::Tensor& rgb, int64_t image_size, int64_t llava_size) {
  if (rgb.dim() != 3 || rgb.size(2) != 3 || rgb.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("prepare_llava_image: the image must be uint8 [H, W, 3] RGB");
  const auto [nw, nh] = reference_image_size(rgb.size(1), rgb.size(0), image_size);
  LlavaImageInputs out;
  out.ref_image = pil_resize(rgb, nw, nh, PilFilter::kLanczos);
  torch::Tensor small = pil_resize(out.ref_image, llava_size, llava_size, PilFilter::kBilinear);
  torch::Tensor x = small.permute({2, 0, 1}).to(torch::kFloat32).div(255.0).unsqueeze(0);
  // torchvision Normalize (float32): (x - mean) / std.
  const torch::Tensor mean = torch::tensor({0.48145466f, 0.4578275f, 0.4082107f}).view({1, 3, 1, 1});
  const torch::Tensor stdv = torch::tensor({0.26862954f, 0.26130258f, 0.27577711f}).view({1, 3, 1, 1});
  out.pixel_values = x.sub(mean).div(stdv).to(torch::kFloat16);
  return out;
}

}  // namespace reel::hyavatar
