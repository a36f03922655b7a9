// Whisper's log-mel features as HunyuanVideo-Avatar computes them for its audio
// condition: the reference's get_audio_feature (hymm_sp/data_kits/audio_dataset.py) cuts
// the 16 kHz waveform into 30 s chunks and runs Hugging Face's WhisperFeatureExtractor
// (transformers 4.45.1, its torch path) on each:
//   chunk zero-padded on the right to n_samples -> torch.stft(n_fft, hop, periodic Hann,
//   center, reflect padding) -> last frame dropped -> |X|^2 -> Slaney mel filterbank ->
//   log10(max(., 1e-10)) -> floored at (chunk maximum - 8) -> (x + 4) / 4,
// chunks concatenated on the frame axis. Every size comes from preprocessor_config.json;
// the filterbank is recomputed (in float64, then float32) as the extractor does, ignoring
// any mel_filters stored in the JSON (the extractor overwrites those too).
//
// The waveform is mono float32 at the extractor's sampling rate; decoding and resampling
// a file is media/audio.hpp's decode_audio (this library stays usable without FFmpeg).
// Pure functions of their arguments; reentrant.
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

namespace reel::hyavatar {

// preprocessor_config.json of the whisper-tiny folder (WhisperFeatureExtractor).
struct WhisperFeatureConfig {
  int64_t feature_size = 0;   // mel bins (80)
  int64_t sampling_rate = 0;  // Hz (16000)
  int64_t hop_length = 0;     // STFT hop (160)
  int64_t n_fft = 0;          // STFT size (400) -> n_fft / 2 + 1 frequency bins
  int64_t n_samples = 0;      // samples per featurised chunk after padding (480000 = 30 s)
  int64_t nb_max_frames = 0;  // mel frames per chunk (3000)
  double padding_value = 0.0;
  // Reads the file; throws std::runtime_error naming it and the missing / invalid key.
  static WhisperFeatureConfig from_json(const std::string& path);
};

// The reference's fixed framing (audio_dataset.py): 640 samples per 25 fps video frame
// at 16 kHz, and 750 video frames (30 s) per featurised chunk.
constexpr int64_t kSamplesPerVideoFrame = 640;
constexpr int64_t kVideoFramesPerChunk = 750;

// The Slaney-style mel filterbank (Slaney mel scale, Slaney area normalisation) over
// 0 .. 8000 Hz: float32 [n_fft / 2 + 1, feature_size], as the extractor's mel_filters.
torch::Tensor whisper_mel_filters(const WhisperFeatureConfig& cfg);

// One chunk (float32 [n], n <= n_samples) -> float32 [feature_size, nb_max_frames].
// `filters` is whisper_mel_filters(cfg).
torch::Tensor whisper_log_mel_chunk(const torch::Tensor& chunk, const WhisperFeatureConfig& cfg,
                                    const torch::Tensor& filters);

struct AudioFeatures {
  torch::Tensor mel;      // float32 [feature_size, nb_max_frames * chunks]
  int64_t audio_len = 0;  // video frames the audio covers at 25 fps: samples / 640
};
// The reference's get_audio_feature on a mono waveform (float32 [n], n > 0) at
// cfg.sampling_rate. Throws std::invalid_argument for an empty or non-1-D waveform.
AudioFeatures whisper_audio_features(const torch::Tensor& waveform, const WhisperFeatureConfig& cfg);

}  // namespace reel::hyavatar
