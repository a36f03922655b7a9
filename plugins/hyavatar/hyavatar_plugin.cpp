// The `hyavatar` plugin: HunyuanVideo-Avatar (a portrait and a voice in, a talking video
// with sound out) behind the reel plugin SDK. Models and loading: avatar_model.hpp; the
// pipeline: avatar_pipeline.hpp; the ladder and estimates: avatar_ladder.hpp. This file is
// the glue: describe / estimate / load, and run():
//
//   decode image + audio (16 kHz mono) -> generate_avatar (progress "encode", "denoise",
//   "decode"; cancel polled per step) -> MP4 at 25 fps with the input audio as AAC -> sidecar
//
// A rung's quality caps (image side, window, audio length, steps) apply to the job's own
// parameters; audio longer than the cap is cut, and the sidecar says so.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "avatar_model.hpp"
#include "llava_image.hpp"
#include "media/audio.hpp"
#include "media/video_writer.hpp"
#include "sdk/reel_plugin.hpp"
#include "sdk/run_files.hpp"
#include "sdk/torch_guard.hpp"
#include "tensorio/weights.hpp"

namespace {

namespace sdk = reel::sdk;
namespace hy = reel::hyavatar;
using sdk::json;

const char* const kPlugin = "hyavatar";

const hy::AvatarSpec& spec_of(const std::string& name) {
  if (const hy::AvatarSpec* m = hy::find_avatar_model(name)) return *m;
  throw sdk::BadInputError("hyavatar: no model '" + name + "'");
}

hy::AvatarRung rung_of(const json& rung) {
  try {
    return hy::parse_avatar_rung(rung);
  } catch (const std::invalid_argument& e) {
    throw sdk::BadInputError(std::string("hyavatar: ") + e.what());
  }
}

// Throws MissingWeightsError listing every absent file (stat() only: estimate() uses it,
// so a job fails at planning).
void check_checkpoint(const hy::AvatarSpec& m) {
  const std::string dir = hy::avatar_ckpts_dir(m);
  const std::vector<std::string> missing = hy::missing_avatar_files(dir);
  if (missing.empty()) return;
  std::string list;
  for (const auto& f : missing) list += (list.empty() ? "" : ", ") + f;
  throw sdk::MissingWeightsError("hyavatar: " + m.name + ": weights not found in " + dir + ": missing " + list +
                                 "; download " + m.repo + " (its ckpts/ folder) and set $" + m.env_var +
                                 " to the folder holding ckpts/");
}

std::string input_path(const json& job, const std::string& role, const std::string& example) {
  const json inputs = job.value("inputs", json::object());
  if (!inputs.is_object() || !inputs.contains(role) || !inputs[role].is_string())
    throw sdk::BadInputError("hyavatar: this model needs an input " + role + ": --input " + role + "=" + example);
  return inputs[role].get<std::string>();
}

reel::media::DecodedImage read_portrait(const json& job) {
  const std::string path = input_path(job, "image", "face.png");
  try {
    return reel::media::read_image(path);
  } catch (const reel::media::MediaError& e) {
    throw sdk::BadInputError(std::string("hyavatar: input image: ") + e.what() +
                             " (give a PNG, JPEG or WebP portrait, or a video whose first frame is one)");
  }
}

double audio_seconds(const json& job) {
  const std::string path = input_path(job, "audio", "voice.wav");
  try {
    const reel::media::AudioInfo info = reel::media::read_audio_info(path);
    return info.duration_s;
  } catch (const reel::media::MediaError& e) {
    throw sdk::BadInputError(std::string("hyavatar: input audio: ") + e.what() + " (give a wav, mp3, m4a or flac file)");
  }
}

// The job's parameters as the ladder sees them; pixel sizes from the portrait's aspect.
hy::AvatarShape requested_shape(const hy::AvatarSpec& m, const json& job, int image_w, int image_h, double seconds) {
  hy::AvatarShape s;
  s.image_size = sdk::param<int64_t>(job, "image_size", m.image_size);
  s.window_frames = sdk::param<int64_t>(job, "window_frames", 129);
  s.steps = sdk::param<int64_t>(job, "steps", m.steps);
  const double cap = sdk::param<double>(job, "max_seconds", hy::kAvatarMaxAudioSeconds);
  s.audio_seconds = std::min({seconds, cap, hy::kAvatarMaxAudioSeconds});
  s.width = image_w;
  s.height = image_h;
  return s;
}

// The caps of the rung applied, and the reference image's pixel size for the capped side.
hy::AvatarShape effective_shape(const hy::AvatarShape& requested, const hy::AvatarRung& rung) {
  hy::AvatarShape s = hy::effective_avatar_shape(requested, rung);
  const auto [w, h] = hy::reference_image_size(requested.width, requested.height, s.image_size);
  s.width = w;
  s.height = h;
  return s;
}

json describe_model(const hy::AvatarSpec& m) {
  const hy::AvatarSizes& z = hy::avatar_sizes(m);
  json params = json::array({
      {{"name", "prompt"}, {"type", "string"}, {"default", ""},
       {"help", "what happens in the scene (optional; the reference prepends its quality words)"}},
      {{"name", "negative_prompt"}, {"type", "string"}, {"default", hy::kAvatarNegativePrompt},
       {"help", "what to avoid in the first guidance phase (default: the reference's)"}},
      {{"name", "image_size"}, {"type", "integer"}, {"min", 64}, {"max", m.max_image_size}, {"default", m.image_size},
       {"help", "the portrait's short side in pixels; both sides are rounded to multiples of 64"}},
      {{"name", "steps"}, {"type", "integer"}, {"min", 1}, {"max", 100}, {"default", m.steps}, {"help", "denoising steps"}},
      {{"name", "cfg_scale"}, {"type", "number"}, {"min", 1}, {"max", 20}, {"default", 7.5},
       {"help", "guidance scale of the first 10 steps (the later ones follow the reference's schedule)"}},
      {{"name", "shift"}, {"type", "number"}, {"min", 0.01}, {"max", 100}, {"default", 5.0},
       {"help", "flow-matching timestep shift"}},
      {{"name", "window_frames"}, {"type", "integer"}, {"min", 5}, {"max", 257}, {"default", 129},
       {"help", "video frames denoised together (4n+1); longer audio slides the window, the reference's is 129"}},
      {{"name", "max_seconds"}, {"type", "number"}, {"min", 0.04}, {"max", hy::kAvatarMaxAudioSeconds},
       {"default", hy::kAvatarMaxAudioSeconds}, {"help", "audio past this is cut (the sidecar says so)"}},
      {{"name", "step_cache"}, {"type", "boolean"}, {"default", true},
       {"help", "the reference's step cache (20 of 50 steps reuse the previous DiT tokens)"}},
      {{"name", "seed"}, {"type", "integer"}, {"min", -1}, {"max", 9007199254740991LL}, {"default", -1},
       {"help", "noise seed; -1 picks one at random (recorded in the sidecar)"}},
  });
  json inputs = json::array({
      {{"role", "image"}, {"required", true}, {"help", "the portrait: PNG, JPEG, WebP (or a video's first frame)"},
       {"kinds", json::array({"image/png", "image/jpeg", "image/webp"})}},
      {{"role", "audio"}, {"required", true}, {"help", "the speech: wav, mp3, m4a, flac (resampled to 16 kHz mono)"},
       {"kinds", json::array({"audio/wav", "audio/mpeg", "audio/mp4", "audio/flac"})}},
  });
  char cost[256];
  std::snprintf(cost, sizeof cost,
                "cost: one DiT call per 129-frame window (5.2 s of video) per step, two guidance branches; "
                "a window holds %lld tokens at 704 px",
                static_cast<long long>(34 * 44 * 44 + z.text_tokens));
  json limits = json::array({
      "audio: up to 120 s (the reference stops at 16 s; reel encodes Whisper in 30 s chunks); longer is cut to "
      "max_seconds and the sidecar says audio_cut",
      "video: 25 fps, as long as the audio (frames = audio length x 25)",
      cost,
      "quality tiers cap the portrait side, the window, the audio length and the steps: `reelctl models " + m.name +
          "` lists them"});
  return {{"name", m.name},
          {"description", m.description},
          {"params", params},
          {"inputs", inputs},
          {"outputs", json::array({"video/mp4", "application/json"})},
          {"ladder", hy::avatar_ladder()},
          {"limits", limits},
          {"budget", "memory"}};
}

// ---------------------------------------------------------------------------------------

class AvatarModel : public sdk::Model {
 public:
  AvatarModel(const hy::AvatarSpec& spec, const hy::AvatarRung& rung, const std::string& device)
      : spec_(spec),
        device_str_(device),
        parts_(hy::load_avatar(spec, hy::avatar_placement(rung, torch::Device(device.empty() ? "cpu" : device)))) {
    reel::media::quiet_ffmpeg_logging();
  }

  json run(const json& job, const json& rung_json, const sdk::RunDirs& dirs, sdk::Host& host) override {
    torch::NoGradGuard no_grad;
    const hy::AvatarRung rung = rung_of(rung_json);
    const reel::media::DecodedImage image = read_portrait(job);
    const std::string audio_path = input_path(job, "audio", "voice.wav");
    reel::media::DecodedAudio audio;
    try {
      audio = reel::media::decode_audio(audio_path, static_cast<int>(hy::kAvatarSampleRate));
    } catch (const reel::media::MediaError& e) {
      throw sdk::BadInputError(std::string("hyavatar: input audio: ") + e.what() + " (give a wav, mp3, m4a or flac file)");
    }
    if (audio.frames() < 640)
      throw sdk::BadInputError("hyavatar: input audio " + audio_path + " is shorter than one video frame (40 ms)");
    const int64_t window_frames = sdk::param<int64_t>(job, "window_frames", 129);
    if (window_frames < 5 || (window_frames - 1) % 4 != 0)
      throw sdk::BadInputError("hyavatar: window_frames must be 4n+1 (5, 9, ..., 129, ..., 257), got " +
                               std::to_string(window_frames));
    const hy::AvatarShape s =
        effective_shape(requested_shape(spec_, job, image.width, image.height, audio.duration_s()), rung);

    hy::AvatarRequest r;
    r.image = torch::from_blob(const_cast<uint8_t*>(image.rgb.data()), {image.height, image.width, 3}, torch::kUInt8);
    r.waveform = torch::from_blob(audio.samples.data(), {audio.frames()}, torch::kFloat32);
    r.prompt = sdk::param<std::string>(job, "prompt", "");
    r.negative_prompt = sdk::param<std::string>(job, "negative_prompt", hy::kAvatarNegativePrompt);
    r.cfg_scale = sdk::param<double>(job, "cfg_scale", 7.5);
    r.shift = sdk::param<double>(job, "shift", 5.0);
    r.step_cache = sdk::param<bool>(job, "step_cache", true);
    hy::apply_avatar_shape(r, s, rung, spec_);
    int64_t seed = sdk::param<int64_t>(job, "seed", -1);
    if (seed < 0) seed = static_cast<int64_t>(std::random_device{}() & 0x7fffffff);
    r.seed = static_cast<uint64_t>(seed);

    json timings = json::object();
    auto t0 = std::chrono::steady_clock::now();
    std::string stage = "encode";
    hy::AvatarVideo video = sdk::oom_guard(kPlugin, "generate", [&] {
      try {
        return hy::generate_avatar(parts_, r, [&](const std::string& st, int64_t step, int64_t total) {
          if (st != stage) {
            timings[stage + "_s"] = sdk::seconds_since(t0);
            t0 = std::chrono::steady_clock::now();
            stage = st;
          }
          host.check_cancelled("in " + st + " at step " + std::to_string(step));
          host.progress(step, total, st);
        });
      } catch (const std::invalid_argument& e) {
        throw sdk::BadInputError(std::string("hyavatar: ") + e.what());
      } catch (const hy::FaceDetectorError& e) {
        throw sdk::InternalError(std::string("hyavatar: face detector: ") + e.what());
      }
    });
    timings[stage + "_s"] = sdk::seconds_since(t0);
    if (video.frames.size(0) < 1) throw sdk::InternalError("hyavatar: the pipeline produced no frames");

    t0 = std::chrono::steady_clock::now();
    const int T = static_cast<int>(video.frames.size(0)), H = static_cast<int>(video.frames.size(1)),
              W = static_cast<int>(video.frames.size(2));
    const std::string mp4 = dirs.output_dir + "/video.mp4";
    reel::media::Mp4Options options;
    options.audio = audio_path;
    options.cut_audio_to_video = video.audio_cut;   // a cut video gets the matching stretch of sound
    try {
      reel::media::write_mp4(mp4, video.frames.data_ptr<uint8_t>(), T, H, W, hy::kAvatarFps, options);
    } catch (const reel::media::MediaError& e) {
      throw sdk::InternalError(std::string("hyavatar: ") + e.what());
    }
    timings["write_s"] = sdk::seconds_since(t0);

    json info = {{"model", spec_.name},
                 {"prompt", r.prompt},
                 {"negative_prompt", r.negative_prompt},
                 {"seed", seed},
                 {"rung", rung.name},
                 {"device", device_str_},
                 {"image", input_path(job, "image", "")},
                 {"audio", audio_path},
                 {"audio_seconds", audio.duration_s()},
                 {"audio_cut", video.audio_cut},
                 {"steps", r.steps},
                 {"window_frames", s.window_frames},
                 {"image_size", r.image_size},
                 {"frames", T},
                 {"width", W},
                 {"height", H},
                 {"fps", hy::kAvatarFps},
                 {"cfg_scale", r.cfg_scale},
                 {"shift", r.shift},
                 {"step_cache", r.step_cache},
                 {"precision", "fp32" + std::string(rung.fp8 ? " (DiT blocks stored fp8)" : "")},
                 {"fallbacks", job.value("fallbacks", json::array())},
                 {"timings", timings},
                 {"peak_rss_bytes", sdk::peak_rss_bytes()}};
    if (spec_.random_weights) {
      info["random_weights"] = true;
      info["note"] = "random weights, for smoke tests";
    }
    const std::string sidecar = dirs.output_dir + "/video.json";
    sdk::write_text_atomic(sidecar, info.dump(2) + "\n");
    host.memory_sample(0, static_cast<uint64_t>(sdk::peak_rss_bytes()));
    return {{"outputs", json::array({mp4, sidecar})}, {"info", info}};
  }

 private:
  const hy::AvatarSpec& spec_;
  std::string device_str_;
  hy::AvatarParts parts_;
};

class AvatarPlugin : public sdk::Plugin {
 public:
  json describe() override {
    json out = json::array();
    for (const auto& m : hy::avatar_models()) out.push_back(describe_model(m));
    return {{"models", out}};
  }

  json estimate(const json& job, const json& rung_json) override {
    const hy::AvatarSpec& m = spec_of(job.value("model", ""));
    if (!m.random_weights) check_checkpoint(m);
    const hy::AvatarRung r = rung_of(rung_json);
    const reel::media::DecodedImage image = read_portrait(job);
    const hy::AvatarShape requested = requested_shape(m, job, image.width, image.height, audio_seconds(job));
    const hy::AvatarShape s = effective_shape(requested, r);
    const hy::AvatarShape full = effective_shape(requested, hy::AvatarRung{});
    const hy::AvatarEstimate e = hy::estimate_avatar(hy::avatar_sizes(m), s, r);
    // Time relative to the rung's placement at the job's own settings: steps x pixels x audio.
    const double work = static_cast<double>(s.steps * s.width * s.height) * std::max(s.audio_seconds, 0.04);
    const double full_work = static_cast<double>(full.steps * full.width * full.height) * std::max(full.audio_seconds, 0.04);
    return {{"device_bytes", e.device},
            {"host_bytes", e.host},
            {"resident_device_bytes", e.resident_device},
            {"resident_host_bytes", e.resident_host},
            {"relative_time", std::max(0.01, e.relative_time * work / std::max(full_work, 1.0))},
            {"cpu_only", r.cpu_only},
            {"effective",
             {{"image_size", s.image_size}, {"width", s.width}, {"height", s.height},
              {"window_frames", s.window_frames}, {"steps", s.steps}, {"audio_seconds", s.audio_seconds}}}};
  }

  std::unique_ptr<sdk::Model> load(const std::string& model, const json& rung, const std::string& device) override {
    const hy::AvatarSpec& m = spec_of(model);
    const hy::AvatarRung r = rung_of(rung);
    if (!m.random_weights) check_checkpoint(m);
    return sdk::oom_guard(kPlugin, "load", [&] {
      try {
        return std::make_unique<AvatarModel>(m, r, device);
      } catch (const sdk::Error&) {
        throw;
      } catch (const reel::tensorio::WeightError& e) {
        throw sdk::MissingWeightsError("hyavatar: " + m.name + ": corrupt weights: " + e.what() +
                                       "; download the file again");
      } catch (const hy::FaceDetectorError& e) {
        throw sdk::MissingWeightsError("hyavatar: " + m.name + ": " + e.what());
      } catch (const std::runtime_error& e) {
        throw sdk::MissingWeightsError("hyavatar: " + m.name + ": cannot load the checkpoint: " + e.what());
      }
    });
  }
};

}  // namespace

REEL_PLUGIN(AvatarPlugin, "hyavatar", "0.1.0")
