// Whisper log-mel features; see audio_features.hpp for the contract.
#include "audio_features.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

namespace reel::hyavatar {
namespace {

// The extractor's fixed band: 0 Hz .. 8 kHz (WhisperFeatureExtractor passes these
// literally, whatever the sampling rate).
constexpr double kMinHz = 0.0, kMaxHz = 8000.0;

// Slaney's mel scale: linear below 1 kHz, logarithmic above (transformers' audio_utils,
// written with the same operation order so the float64 values agree bit for bit).
double hz_to_mel(double hz) {
  if (hz < 1000.0) return 3.0 * hz / 200.0;
  const double logstep = 27.0 / std::log(6.4);
  return 15.0 + std::log(hz / 1000.0) * logstep;
}
double mel_to_hz(double mel) {
  if (mel < 15.0) return 200.0 * mel / 3.0;
  const double logstep = std::log(6.4) / 27.0;
  return 1000.0 * std::exp(logstep * (mel - 15.0));
}

// numpy.linspace(start, stop, num): start + i * step, the last point exactly `stop`.
std::vector<double> linspace(double start, double stop, int64_t num) {
  std::vector<double> v(static_cast<size_t>(num));
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int64_t i = 0; i < num; ++i) v[i] = static_cast<double>(i) * step + start;
  if (num > 1) v[num - 1] = stop;
  return v;
}

int64_t positive(const nlohmann::json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
    throw std::runtime_error(path + ": \"" + key + "\" must be a positive integer");
  return j[key].get<int64_t>();
}

}  // namespace

WhisperFeatureConfig WhisperFeatureConfig::from_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot read the Whisper preprocessor config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  WhisperFeatureConfig c;
  c.feature_size = positive(j, "feature_size", path);
  c.sampling_rate = positive(j, "sampling_rate", path);
  c.hop_length = positive(j, "hop_length", path);
  c.n_fft = positive(j, "n_fft", path);
  c.n_samples = positive(j, "n_samples", path);
  c.nb_max_frames = positive(j, "nb_max_frames", path);
  if (j.contains("padding_value") && j["padding_value"].is_number()) c.padding_value = j["padding_value"].get<double>();
  // The extractor drops the STFT's last frame: n_samples / hop + 1 - 1 frames per chunk.
  if (c.n_samples / c.hop_length != c.nb_max_frames)
    throw std::runtime_error(path + ": nb_max_frames (" + std::to_string(c.nb_max_frames) +
                             ") != n_samples / hop_length (" + std::to_string(c.n_samples / c.hop_length) + ")");
  return c;
}

torch::Tensor whisper_mel_filters(const WhisperFeatureConfig& cfg) {
  const int64_t bins = cfg.n_fft / 2 + 1, mels = cfg.feature_size;
  const std::vector<double> fft_hz = linspace(0.0, static_cast<double>(cfg.sampling_rate / 2), bins);
  const std::vector<double> mel_points = linspace(hz_to_mel(kMinHz), hz_to_mel(kMaxHz), mels + 2);
  std::vector<double> edge_hz(mel_points.size());
  for (size_t i = 0; i < mel_points.size(); ++i) edge_hz[i] = mel_to_hz(mel_points[i]);

  auto fb = torch::empty({bins, mels}, torch::kFloat64);
  auto a = fb.accessor<double, 2>();
  for (int64_t m = 0; m < mels; ++m) {
    const double lower_width = edge_hz[m + 1] - edge_hz[m], upper_width = edge_hz[m + 2] - edge_hz[m + 1];
    const double area_norm = 2.0 / (edge_hz[m + 2] - edge_hz[m]);  // Slaney: equal area per filter
    for (int64_t k = 0; k < bins; ++k) {
      const double down = -(edge_hz[m] - fft_hz[k]) / lower_width;  // rising edge
      const double up = (edge_hz[m + 2] - fft_hz[k]) / upper_width;  // falling edge
      a[k][m] = std::max(0.0, std::min(down, up)) * area_norm;
    }
  }
  return fb.to(torch::kFloat32);
}

torch::Tensor whisper_log_mel_chunk(const torch::Tensor& chunk, const WhisperFeatureConfig& cfg,
                                    const torch::Tensor& filters) {
  if (chunk.dim() != 1 || chunk.size(0) > cfg.n_samples)
    throw std::invalid_argument("whisper_log_mel_chunk: expected a 1-D chunk of at most " +
                                std::to_string(cfg.n_samples) + " samples");
  auto x = chunk.to(torch::kFloat32).contiguous();
  if (x.size(0) < cfg.n_samples)
    x = torch::constant_pad_nd(x, {0, cfg.n_samples - x.size(0)}, cfg.padding_value);
  // torch.stft(center=True): reflect-pad n_fft / 2 on both sides, then frame.
  const int64_t pad = cfg.n_fft / 2;
  x = torch::reflection_pad1d(x.view({1, 1, -1}), {pad, pad}).view({-1});
  const auto window = torch::hann_window(cfg.n_fft, /*periodic=*/true, torch::kFloat32);
  const auto spec = torch::stft(x, cfg.n_fft, cfg.hop_length, cfg.n_fft, window, /*normalized=*/false,
                                /*onesided=*/true, /*return_complex=*/true);
  const auto power = spec.slice(-1, 0, spec.size(-1) - 1).abs().pow(2);
  const auto mel = filters.t().matmul(power);
  auto log_spec = mel.clamp_min(1e-10).log10();
  log_spec = torch::maximum(log_spec, log_spec.max() - 8.0);
  return (log_spec + 4.0) / 4.0;
}

AudioFeatures whisper_audio_features(const torch::Tensor& waveform, const WhisperFeatureConfig& cfg) {
  if (waveform.dim() != 1 || waveform.size(0) == 0)
    throw std::invalid_argument("whisper_audio_features: expected a non-empty 1-D mono waveform");
  if (cfg.sampling_rate != 16000)
    throw std::invalid_argument("whisper_audio_features: the reference frames audio at 16 kHz (640 samples per "
                                "25 fps frame); preprocessor_config.json says " +
                                std::to_string(cfg.sampling_rate) + " Hz");
  const auto filters = whisper_mel_filters(cfg);
  const auto x = waveform.to(torch::kFloat32);
  const int64_t n = x.size(0), chunk = kVideoFramesPerChunk * kSamplesPerVideoFrame;
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < n; start += chunk) {
    // The extractor truncates a longer chunk to n_samples (equal sizes for whisper-tiny).
    const int64_t end = std::min({n, start + chunk, start + cfg.n_samples});
    parts.push_back(whisper_log_mel_chunk(x.slice(0, start, end), cfg, filters));
  }
  return {torch::cat(parts, 1), n / kSamplesPerVideoFrame};
}

}  // namespace reel::hyavatar
