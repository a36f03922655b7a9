// The `wan` plugin: Wan 2.1 text-to-video and image-to-video behind the reel plugin SDK. The models, their
// ladder and estimates are data (model_specs.hpp, ladder.hpp); loading and placement are
// T2VModel's (t2v_model.hpp). This file is the glue: describe/estimate/load, and run():
//
//   tokenize -> T5 -> denoise (progress "denoise", cancel polled per step) ->
//   work_dir/latent.pt checkpoint (reused by a retry, e.g. after an OOM in decode) -> VAE
//   decode ("decode") -> MP4 + sidecar JSON (+ contact-sheet PNG).
//
// wan2.1-t2v-tiny has RANDOM weights from fixed seeds (a smoke test of the whole path);
// wan2.1-t2v-1.3b / -14b read the official folders from $REEL_WAN21_T2V_1_3B_DIR /
// $REEL_WAN21_T2V_14B_DIR (defaults under /var/lib/reel/models). docs/WAN.md has the rest.
//
// Image-to-video (wan2.1-i2v-*): the job's "image" input is decoded with FFmpeg (a still
// or a video's first frame), the output size follows max_area and the image's aspect
// (i2v.hpp), and CLIP tokens plus the conditioning y go to both guidance branches.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "ladder.hpp"
#include "media/video_writer.hpp"
#include "model_specs.hpp"
#include "sdk/reel_plugin.hpp"
#include "sdk/run_files.hpp"
#include "sdk/torch_guard.hpp"
#include "t2v_model.hpp"
#include "tensorio/weights.hpp"

namespace {

namespace sdk = reel::sdk;
namespace wan = reel::wan;
using sdk::json;

const wan::ModelSpec& spec_of(const std::string& name) {
  if (const wan::ModelSpec* m = wan::find_model(name)) return *m;
  throw sdk::BadInputError("wan: no model '" + name + "'");
}

wan::Rung rung_of(const json& rung) {
  try {
    return wan::parse_rung(rung);
  } catch (const std::invalid_argument& e) {
    throw sdk::BadInputError(std::string("wan: ") + e.what());
  }
}

// The size an i2v job asks for: max_area at the image's aspect (image_hw), or at the model's
// default aspect when the image is not read (estimates: the area, hence memory, is the same).
wan::I2VSize i2v_size_of(const wan::ModelSpec& m, const json& job, std::pair<int64_t, int64_t> image_hw) {
  const int64_t max_area = sdk::param<int64_t>(job, "max_area", m.max_area);
  try {
    return wan::i2v_size(image_hw.first, image_hw.second, max_area);
  } catch (const std::invalid_argument& e) {
    throw sdk::BadInputError(std::string("wan: ") + e.what());
  }
}

wan::JobShape requested_shape(const wan::ModelSpec& m, const json& job,
                              std::pair<int64_t, int64_t> image_hw = {0, 0}) {
  wan::JobShape s;
  s.steps = sdk::param<int64_t>(job, "steps", m.steps);
  s.frames = sdk::param<int64_t>(job, "frames", m.frames);
  if (m.i2v) {
    if (image_hw.first <= 0) image_hw = {m.height, m.width};
    const wan::I2VSize size = i2v_size_of(m, job, image_hw);
    s.width = size.width, s.height = size.height;
  } else {
    s.width = sdk::param<int64_t>(job, "width", m.width);
    s.height = sdk::param<int64_t>(job, "height", m.height);
  }
  return s;
}

// The job's "image" input as [3, H, W] float32 in [-1, 1] (TF.to_tensor, then (x - 0.5) / 0.5).
torch::Tensor read_input_image(const json& job, std::string& path) {
  const json inputs = job.value("inputs", json::object());
  if (!inputs.is_object() || !inputs.contains("image") || !inputs["image"].is_string())
    throw sdk::BadInputError("wan: this image-to-video model needs an input image: --input image=<file>");
  path = inputs["image"].get<std::string>();
  reel::media::DecodedImage img;
  try {
    img = reel::media::read_image(path);
  } catch (const reel::media::MediaError& e) {
    throw sdk::BadInputError(std::string("wan: input image: ") + e.what());
  }
  torch::Tensor rgb = torch::from_blob(img.rgb.data(), {img.height, img.width, 3}, torch::kUInt8);
  return rgb.permute({2, 0, 1}).to(torch::kFloat32).div(255.0).sub(0.5).div(0.5).contiguous();
}

// ---------------------------------------------------------------------------------------
// Helpers for run() (the shared ones are in sdk/run_files.hpp and sdk/torch_guard.hpp).

using sdk::file_exists;
using sdk::peak_rss_bytes;
using sdk::read_text;
using sdk::seconds_since;


void write_text(const std::string& path, const std::string& text) {
  try {
    sdk::write_text_atomic(path, text);
  } catch (const sdk::InternalError& e) {
    throw sdk::InternalError(std::string("wan: ") + e.what());
  }
}

template <class F>
auto oom_guard(const std::string& stage, F&& f) -> decltype(f()) {
  return sdk::oom_guard("wan", stage, std::forward<F>(f));
}

// A checkpoint model's folder: $<env_var>, else its default.
std::string checkpoint_dir(const wan::ModelSpec& m) {
  const char* env = std::getenv(m.env_var.c_str());
  return env && *env ? env : m.default_dir;
}

// Throws MissingWeightsError naming the first file of the checkpoint that is absent
// (cheap: stat calls only, so estimate() uses it too and a job fails at planning).
void check_checkpoint(const wan::ModelSpec& m) {
  const std::string dir = checkpoint_dir(m);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"config.json", ""},
      {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json"},
      {"models_t5_umt5-xxl-enc-bf16.pth", ""},
      {"Wan2.1_VAE.pth", ""},
      {"google/umt5-xxl/spiece.model", ""}};
  if (m.i2v && !file_exists(dir + "/" + wan::kClipCheckpoint))
    throw sdk::MissingWeightsError("wan: " + m.name + ": weights not found: missing " + dir + "/" + wan::kClipCheckpoint +
                                   "; download " + m.repo + " into " + dir + " or set $" + m.env_var);
  for (const auto& [rel, alt] : files) {
    if (file_exists(dir + "/" + rel) || (!alt.empty() && file_exists(dir + "/" + alt))) continue;
    throw sdk::MissingWeightsError("wan: " + m.name + ": weights not found: missing " + dir + "/" + rel +
                                   (alt.empty() ? "" : " (or " + alt + ")") + "; download " + m.repo + " into " + dir + " or set $" + m.env_var);
  }
}

// ---------------------------------------------------------------------------------------
// The loaded model.

class WanModel : public sdk::Model {
 public:
  WanModel(const wan::ModelSpec& spec, const wan::Rung& rung, const std::string& device)
      : spec_(spec), device_str_(device),
        model_(wan::T2VModel::load(spec, rung, device, spec.random_weights ? "" : checkpoint_dir(spec))) {
    reel::media::quiet_ffmpeg_logging();  // x264 prints its settings per file otherwise (this worker only)
  }

  json run(const json& job, const json& rung_json, const sdk::RunDirs& dirs, sdk::Host& host) override {
    torch::NoGradGuard no_grad;
    const wan::Rung rung = rung_of(rung_json);
    const std::string prompt = sdk::param<std::string>(job, "prompt", "");
    if (prompt.empty()) throw sdk::BadInputError("wan: 'prompt' is required and must not be empty");
    const std::string negative = sdk::param<std::string>(job, "negative_prompt", wan::kDefaultNegativePrompt);
    const int64_t req_frames = sdk::param<int64_t>(job, "frames", spec_.frames);
    if (req_frames < 1 || (req_frames - 1) % 4 != 0)
      throw sdk::BadInputError("wan: frames must be 4n+1 (1, 5, 9, ..., 81), got " + std::to_string(req_frames));
    std::string image_path;
    torch::Tensor image;
    if (spec_.i2v) {
      image = read_input_image(job, image_path);
    } else {
      const int64_t req_w = sdk::param<int64_t>(job, "width", spec_.width);
      const int64_t req_h = sdk::param<int64_t>(job, "height", spec_.height);
      if (req_w < 16 || req_h < 16 || req_w % 16 != 0 || req_h % 16 != 0)
        throw sdk::BadInputError("wan: width and height must be multiples of 16, got " + std::to_string(req_w) + "x" +
                                 std::to_string(req_h));
    }
    const std::pair<int64_t, int64_t> image_hw = image.defined() ? std::make_pair(image.size(1), image.size(2))
                                                                 : std::make_pair(int64_t{0}, int64_t{0});
    const wan::JobShape s = wan::effective_shape(requested_shape(spec_, job, image_hw), rung);
    const double shift = sdk::param<double>(job, "shift", spec_.shift);
    const double guide = sdk::param<double>(job, "guide_scale", spec_.guide);
    const std::string solver = sdk::param<std::string>(job, "solver", spec_.solver);
    if (solver != "unipc" && solver != "euler") throw sdk::BadInputError("wan: solver must be unipc or euler");
    int64_t seed = sdk::param<int64_t>(job, "seed", -1);
    const double fps = sdk::param<double>(job, "fps", 16.0);
    const bool contact_sheet = sdk::param<bool>(job, "contact_sheet", false);
    if (!(fps > 0)) throw sdk::BadInputError("wan: fps must be > 0");

    json timings = json::object();
    const std::string ckpt = dirs.work_dir + "/latent.pt", ckpt_meta = dirs.work_dir + "/latent.json";
    json key = {{"model", spec_.name}, {"prompt", prompt}, {"negative_prompt", negative}, {"steps", s.steps},
                {"frames", s.frames}, {"width", s.width}, {"height", s.height}, {"shift", shift},
                {"guide_scale", guide}, {"solver", solver}};
    if (spec_.i2v) key["image"] = image_path;

    torch::Tensor latent;
    bool reused = false;
    if (file_exists(ckpt) && file_exists(ckpt_meta)) {
      try {
        json meta = json::parse(read_text(ckpt_meta));
        if (meta.value("key", json()) == key && (seed < 0 || meta.value("seed", int64_t{-2}) == seed)) {
          torch::load(latent, ckpt);
          seed = meta["seed"].get<int64_t>();
          reused = true;
        }
      } catch (const std::exception& e) {
        host.warn(std::string("wan: ignoring an unreadable latent checkpoint: ") + e.what());
        latent = torch::Tensor();
      }
    }

    if (reused) {
      host.event("checkpoint", {{"stage", "denoise"}, {"reused", true}});
    } else {
      auto t0 = std::chrono::steady_clock::now();
      host.progress(0, 1, "encode");
      auto [ctx, neg] = oom_guard("encode", [&] {
        torch::Tensor c = model_.encode(prompt), n = model_.encode(negative);
        return std::make_pair(c, n);
      });
      torch::Tensor clip_fea, y;
      if (spec_.i2v) {
        const wan::I2VSize size{s.height / 8, s.width / 8, s.height, s.width};
        std::tie(clip_fea, y) = oom_guard("encode image", [&] {
          return std::make_pair(model_.encode_image(image), model_.condition(image, s.frames, size));
        });
      }
      host.progress(1, 1, "encode");
      timings["encode_s"] = seconds_since(t0);
      host.check_cancelled("after encode");

      t0 = std::chrono::steady_clock::now();
      wan::NoiseSource noise(seed);
      seed = noise.seed();
      auto shape = wan::latent_shape(model_.vae().config().z_dim, s.frames, s.height, s.width,
                                     model_.vae().temporal_factor(), model_.vae().spatial_factor());
      wan::DenoiseRequest req;
      req.noise = noise.normal(shape[0], shape[1], shape[2], shape[3]);
      req.context = ctx;
      req.negative = neg;
      req.clip_fea = clip_fea;
      req.y = y;
      req.steps = s.steps;
      req.shift = shift;
      req.guide_scale = guide;
      req.solver = solver;
      host.progress(0, s.steps, "denoise");
      latent = oom_guard("denoise", [&] {
        return model_.denoise(req, [&](int64_t step, int64_t total, const torch::Tensor&) {
          host.check_cancelled("in denoise at step " + std::to_string(step));
          host.progress(step, total, "denoise");
          return true;
        });
      });
      if (!torch::isfinite(latent).all().item<bool>())
        throw sdk::InternalError("wan: denoise produced non-finite values (NaN/inf) in the latent");
      timings["denoise_s"] = seconds_since(t0);
      torch::save(latent, ckpt + ".tmp");
      if (std::rename((ckpt + ".tmp").c_str(), ckpt.c_str()) != 0)
        throw sdk::InternalError("wan: cannot rename " + ckpt + ".tmp");
      write_text(ckpt_meta, json{{"key", key}, {"seed", seed}}.dump(2) + "\n");
      host.event("checkpoint", {{"stage", "denoise"}, {"reused", false}});
    }
    host.check_cancelled("before decode");

    auto t0 = std::chrono::steady_clock::now();
    host.progress(0, 1, "decode");
    torch::Tensor video = oom_guard("decode", [&] { return model_.decode(latent); });
    if (!torch::isfinite(video).all().item<bool>())
      throw sdk::InternalError("wan: decode produced non-finite values (NaN/inf)");
    host.progress(1, 1, "decode");
    timings["decode_s"] = seconds_since(t0);

    // [3, T, H, W] in [-1, 1] -> uint8 [T, H, W, 3].
    t0 = std::chrono::steady_clock::now();
    torch::Tensor rgb = ((video.to(torch::kCPU) + 1.0) / 2.0 * 255.0)
                            .round()
                            .clamp(0, 255)
                            .to(torch::kUInt8)
                            .permute({1, 2, 3, 0})
                            .contiguous();
    const int T = static_cast<int>(rgb.size(0)), H = static_cast<int>(rgb.size(1)), W = static_cast<int>(rgb.size(2));
    const std::string mp4 = dirs.output_dir + "/video.mp4";
    try {
      reel::media::write_mp4(mp4, rgb.data_ptr<uint8_t>(), T, H, W, fps);
    } catch (const reel::media::MediaError& e) {
      throw sdk::InternalError(std::string("wan: ") + e.what());
    }
    json outputs = json::array({mp4});
    std::string png;
    if (contact_sheet) {
      // Up to 4 frames, evenly spaced, side by side.
      const int n = std::min(4, T);
      std::vector<torch::Tensor> picks;
      for (int i = 0; i < n; ++i) picks.push_back(rgb[n == 1 ? 0 : static_cast<int64_t>(i) * (T - 1) / (n - 1)]);
      torch::Tensor sheet = torch::cat(picks, 1).contiguous();  // [H, n*W, 3]
      png = dirs.output_dir + "/contact_sheet.png";
      try {
        reel::media::write_png(png, sheet.data_ptr<uint8_t>(), static_cast<int>(sheet.size(1)), H);
      } catch (const reel::media::MediaError& e) {
        throw sdk::InternalError(std::string("wan: ") + e.what());
      }
    }
    timings["write_s"] = seconds_since(t0);

    const std::string sidecar = dirs.output_dir + "/video.json";
    json info = {{"model", spec_.name},
                 {"prompt", prompt},
                 {"negative_prompt", negative},
                 {"seed", seed},
                 {"rung", rung.name},
                 {"device", device_str_},
                 {"steps", s.steps},
                 {"frames", T},
                 {"width", W},
                 {"height", H},
                 {"fps", fps},
                 {"shift", shift},
                 {"guide_scale", guide},
                 {"solver", solver},
                 {"precision", rung.cpu_only || !model_.device().is_cuda() ? "fp32" : rung.precision()},
                 {"fallbacks", job.value("fallbacks", json::array())},
                 {"denoise_reused", reused},
                 {"timings", timings},
                 {"peak_rss_bytes", peak_rss_bytes()}};
    if (spec_.i2v) {
      info["image"] = image_path;
      info["max_area"] = sdk::param<int64_t>(job, "max_area", spec_.max_area);
    }
    if (spec_.random_weights) {
      info["random_weights"] = true;
      info["note"] = "random weights, for smoke tests";
    }
    write_text(sidecar, info.dump(2) + "\n");
    outputs.push_back(sidecar);
    if (!png.empty()) outputs.push_back(png);
    host.memory_sample(0, static_cast<uint64_t>(peak_rss_bytes()));
    return {{"outputs", outputs}, {"info", info}};
  }

 private:
  const wan::ModelSpec& spec_;
  std::string device_str_;
  wan::T2VModel model_;
};

// ---------------------------------------------------------------------------------------

class WanPlugin : public sdk::Plugin {
 public:
  json describe() override {
    json out = json::array();
    for (const auto& m : wan::models()) {
      json params = json::array({
          {{"name", "prompt"}, {"type", "string"}, {"help", "what to show"}},
          {{"name", "negative_prompt"}, {"type", "string"}, {"default", wan::kDefaultNegativePrompt},
           {"help", "what to avoid (default: the reference's Chinese default negative prompt)"}},
          {{"name", "frames"}, {"type", "integer"}, {"min", 1}, {"max", m.max_frames}, {"default", m.frames},
           {"help", "number of frames, 4n+1"}},
          {{"name", "steps"}, {"type", "integer"}, {"min", 1}, {"max", 200}, {"default", m.steps},
           {"help", "denoising steps"}},
          {{"name", "shift"}, {"type", "number"}, {"min", 0.01}, {"max", 100}, {"default", m.shift},
           {"help", "flow-matching timestep shift"}},
          {{"name", "guide_scale"}, {"type", "number"}, {"min", 0}, {"max", 30}, {"default", m.guide},
           {"help", "classifier-free guidance scale"}},
          {{"name", "solver"}, {"type", "string"}, {"choices", json::array({"unipc", "euler"})}, {"default", m.solver},
           {"help", "sampler"}},
          {{"name", "seed"}, {"type", "integer"}, {"min", -1}, {"max", 9007199254740991LL}, {"default", -1},
           {"help", "noise seed; -1 picks one at random (recorded in the sidecar)"}},
          {{"name", "fps"}, {"type", "number"}, {"min", 1}, {"max", 120}, {"default", 16},
           {"help", "frames per second of the MP4"}},
          {{"name", "contact_sheet"}, {"type", "boolean"}, {"default", false},
           {"help", "also write a PNG of up to 4 sampled frames side by side"}},
      });
      json inputs = json::array();
      if (m.i2v) {
        params.push_back({{"name", "max_area"}, {"type", "integer"}, {"min", 256}, {"max", m.max_side * m.max_side},
                          {"default", m.max_area},
                          {"help", "output pixel area; the size follows the image's aspect (multiples of 16)"}});
        inputs.push_back({{"role", "image"},
                          {"required", true},
                          {"help", "the first frame: PNG, JPEG, WebP, or a video (its first frame)"},
                          {"kinds", json::array({"image/png", "image/jpeg", "image/webp", "video/mp4"})}});
      } else {
        // After prompt and negative_prompt, where they have always been listed.
        const json width = {{"name", "width"}, {"type", "integer"}, {"min", 16}, {"max", m.max_side},
                            {"default", m.width}, {"help", "pixels, a multiple of 16"}};
        const json height = {{"name", "height"}, {"type", "integer"}, {"min", 16}, {"max", m.max_side},
                             {"default", m.height}, {"help", "pixels, a multiple of 16"}};
        params.insert(params.begin() + 2, width);
        params.insert(params.begin() + 3, height);
      }
      out.push_back({{"name", m.name},
                     {"description", m.description},
                     {"params", params},
                     {"inputs", inputs},
                     {"outputs", json::array({"video/mp4", "application/json", "image/png"})},
                     {"ladder", wan::ladder()},
                     {"budget", "memory"}});
    }
    return {{"models", out}};
  }

  json estimate(const json& job, const json& rung_json) override {
    const wan::ModelSpec& m = spec_of(job.value("model", ""));
    if (!m.random_weights) check_checkpoint(m);
    const wan::Rung r = rung_of(rung_json);
    const wan::JobShape requested = requested_shape(m, job);
    const wan::JobShape s = wan::effective_shape(requested, r);
    const wan::MemoryEstimate b = wan::estimate(m, s, r);
    double rel = r.relative_time;
    rel *= static_cast<double>(s.steps) / std::max<int64_t>(1, requested.steps);
    rel *= static_cast<double>(s.frames * s.width * s.height) /
           std::max<int64_t>(1, requested.frames * requested.width * requested.height);
    return {{"device_bytes", b.device},
            {"host_bytes", b.host},
            {"resident_device_bytes", b.resident_device},
            {"resident_host_bytes", b.resident_host},
            {"relative_time", std::max(rel, 0.01)},
            {"cpu_only", r.cpu_only},
            {"effective",
             {{"steps", s.steps}, {"frames", s.frames}, {"width", s.width}, {"height", s.height},
              {"precision", r.precision()}}}};
  }

  std::unique_ptr<sdk::Model> load(const std::string& model, const json& rung, const std::string& device) override {
    const wan::ModelSpec& m = spec_of(model);
    const wan::Rung r = rung_of(rung);
    if (!m.random_weights) check_checkpoint(m);
    return oom_guard("load", [&] {
      try {
        return std::make_unique<WanModel>(m, r, device);
      } catch (const reel::tensorio::WeightError& e) {
        throw sdk::MissingWeightsError("wan: " + m.name + ": corrupt weights: " + e.what());
      }
    });
  }
};

}  // namespace

REEL_PLUGIN(WanPlugin, "wan", "0.1.0")
