// Reading soundtracks with FFmpeg's libraries (libavformat, libavcodec, libswresample):
// any file FFmpeg demuxes (WAV, MP3, M4A/AAC, FLAC, Ogg, the audio track of a video...)
// decoded to float32 PCM at a requested sample rate. Audio-driven models (the avatar
// model's Whisper features) take mono; the MP4 writer takes the channels as they are.
//
// Samples are float32 in [-1, 1] (integer PCM scaled by 1 / 2^(bits-1), so 16-bit WAV
// samples come back as int16 / 32768 exactly when no resampling is needed), interleaved
// when there is more than one channel: index frame * channels + channel.
// Down-mixing to mono is the plain mean of the input channels (as librosa's
// `load(mono=True)` does, which the reference uses), not FFmpeg's default -3 dB matrix.
// Resampling uses libswresample's windowed-sinc resampler; the file's whole length is
// decoded (the resampler's tail is flushed, so n input samples give about
// n * rate / input_rate output samples).
// Errors: MediaError naming the path and saying what is wrong (missing file, not a
// decodable media file, no audio stream, undecodable audio, no samples at all).
// Thread-safety: functions are reentrant (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "media/video_writer.hpp"  // MediaError

namespace reel::media {

struct DecodedAudio {
  int sample_rate = 0;
  int channels = 0;
  std::vector<float> samples;  // frames * channels, interleaved
  int64_t frames() const { return channels ? static_cast<int64_t>(samples.size()) / channels : 0; }
  double duration_s() const { return sample_rate ? static_cast<double>(frames()) / sample_rate : 0.0; }
};

// The first audio stream of `path`, down-mixed to mono and resampled to `sample_rate` Hz.
DecodedAudio decode_audio(const std::string& path, int sample_rate);

// The same with a chosen channel count: `channels` 1 = mono (mean of the inputs),
// 2 = stereo (mono duplicated; more than two inputs mixed by FFmpeg's standard matrix),
// 0 = the file's own channel count. `sample_rate` 0 keeps the file's rate.
DecodedAudio decode_audio_channels(const std::string& path, int sample_rate, int channels);

struct AudioInfo {
  std::string codec;   // e.g. "aac", "pcm_s16le", "mp3"
  int sample_rate = 0;
  int channels = 0;
  double duration_s = 0;  // the stream's duration as the container states it (0 when unknown)
};
// The first audio stream's parameters, without decoding.
AudioInfo read_audio_info(const std::string& path);

}  // namespace reel::media
