// The soundtrack path (torch-free, reel_media): decode_audio turns WAV / AAC-in-MP4 files
// into mono float32 at a requested rate (exact for 16-bit PCM at its own rate, the right
// length and frequency content when resampled, stereo down-mixed to the mean), write_mp4
// muxes a soundtrack as AAC that decodes back to the input, and broken inputs give errors
// that name the file and the problem. Test audio is synthesised here (sines, a sweep).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "media/audio.hpp"
#include "support/wav_file.hpp"
#include "media/video_writer.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
}

namespace {

namespace fs = std::filesystem;
using reel::media::MediaError;
using reel::test::sine;
using reel::test::write_wav;
constexpr double kPi = 3.14159265358979323846;

struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("reel_audio_test_" + std::to_string(::getpid()));
  Scratch() {
    fs::create_directories(dir);
    reel::media::quiet_ffmpeg_logging();
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};
Scratch scratch;
std::string tmp(const std::string& name) { return (scratch.dir / name).string(); }

// Runs `f`, which must throw MediaError mentioning every one of `parts`.
template <class F>
void expect_media_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const MediaError& e) {
    const std::string m = e.what();
    for (const auto& part : parts) EXPECT_NE(m.find(part), std::string::npos) << m << "\nmissing: " << part;
  }
}


// Mono float samples encoded with FFmpeg's `encoder` into `path` (container from the
// name: .m4a, .mp3): compressed test files without any tool outside the test. False when
// this FFmpeg lacks the encoder.
bool encode_audio_file(const std::string& path, const char* encoder, const std::vector<float>& x, int rate) {
  const AVCodec* codec = avcodec_find_encoder_by_name(encoder);
  if (!codec) return false;
  AVFormatContext* fmt = nullptr;
  if (avformat_alloc_output_context2(&fmt, nullptr, nullptr, path.c_str()) < 0) throw std::runtime_error(path);
  AVCodecContext* enc = avcodec_alloc_context3(codec);
  enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
  enc->sample_rate = rate;
  av_channel_layout_default(&enc->ch_layout, 1);
  enc->bit_rate = 128000;
  enc->time_base = AVRational{1, rate};
  if (fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (avcodec_open2(enc, codec, nullptr) < 0) throw std::runtime_error(path + ": cannot open " + encoder);
  AVStream* st = avformat_new_stream(fmt, nullptr);
  avcodec_parameters_from_context(st->codecpar, enc);
  st->time_base = enc->time_base;
  if (avio_open(&fmt->pb, path.c_str(), AVIO_FLAG_WRITE) < 0 || avformat_write_header(fmt, nullptr) < 0)
    throw std::runtime_error(path + ": cannot write");
  AVPacket* pkt = av_packet_alloc();
  auto send = [&](AVFrame* frame) {
    avcodec_send_frame(enc, frame);
    while (avcodec_receive_packet(enc, pkt) == 0) {
      av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
      pkt->stream_index = st->index;
      av_interleaved_write_frame(fmt, pkt);
    }
  };
  AVFrame* frame = av_frame_alloc();
  for (size_t at = 0; at < x.size(); at += static_cast<size_t>(enc->frame_size)) {
    const int n = static_cast<int>(std::min(x.size() - at, static_cast<size_t>(enc->frame_size)));
    av_frame_unref(frame);
    frame->format = AV_SAMPLE_FMT_FLTP;
    frame->sample_rate = rate;
    frame->nb_samples = n;
    av_channel_layout_default(&frame->ch_layout, 1);
    av_frame_get_buffer(frame, 0);
    std::memcpy(frame->extended_data[0], x.data() + at, sizeof(float) * n);
    frame->pts = static_cast<int64_t>(at);
    send(frame);
  }
  send(nullptr);
  av_write_trailer(fmt);
  avio_closep(&fmt->pb);
  av_frame_free(&frame);
  av_packet_free(&pkt);
  avcodec_free_context(&enc);
  avformat_free_context(fmt);
  return true;
}


// Amplitude of the `hz` component of x[from, from + n) (n spanning whole periods).
double amplitude_at(const std::vector<float>& x, double hz, int rate, int64_t from, int64_t n) {
  double re = 0, im = 0;
  for (int64_t i = from; i < from + n; ++i) {
    re += x[i] * std::cos(2 * kPi * hz * i / rate);
    im += x[i] * std::sin(2 * kPi * hz * i / rate);
  }
  return 2 * std::hypot(re, im) / static_cast<double>(n);
}

int64_t zero_crossings(const std::vector<float>& x, int64_t from, int64_t n) {
  int64_t c = 0;
  for (int64_t i = from + 1; i < from + n; ++i) c += (x[i - 1] < 0) != (x[i] < 0);
  return c;
}

// Normalised correlation of a[from, from+n) with b shifted by `lag`.
double correlation(const std::vector<float>& a, const std::vector<float>& b, int64_t from, int64_t n, int64_t lag) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = from; i < from + n; ++i) {
    const double x = a[i], y = b[i + lag];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / std::sqrt(aa * bb);
}

std::vector<uint8_t> grey_frames(int frames, int h, int w) {
  std::vector<uint8_t> v(static_cast<size_t>(frames) * h * w * 3);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(64 + (i / 3) % 97);
  return v;
}

// A 0.25 s linear sweep 200..2000 Hz followed by a 440 Hz tone: content that a wrong
// offset, rate or channel mapping would decorrelate.
std::vector<float> speechlike(int rate, double seconds) {
  const auto n = static_cast<int64_t>(seconds * rate);
  std::vector<float> v(static_cast<size_t>(n));
  const double sweep = 0.25 * rate;
  for (int64_t i = 0; i < n; ++i) {
    const double t = double(i) / rate;
    if (i < sweep)
      v[i] = static_cast<float>(0.5 * std::sin(2 * kPi * (200 * t + 0.5 * (1800 / 0.25) * t * t)));
    else
      v[i] = static_cast<float>(0.4 * std::sin(2 * kPi * 440 * t) + 0.1 * std::sin(2 * kPi * 1230 * t));
  }
  return v;
}

std::string fixture_dir() {
  if (const char* v = std::getenv("REEL_HYAVATAR_ENC_GOLDEN"); v && *v) return v;
  return std::string(REEL_SOURCE_DIR) + "/../shared/fixtures/hyavatar-enc-tiny-a";
}

TEST(Audio, Pcm16AtItsOwnRateIsExact) {
  const int rate = 16000;
  auto x = sine(440, 0.6, rate, rate);
  const std::string path = tmp("mono16k.wav");
  write_wav(path, x, 1, rate, false);
  auto a = reel::media::decode_audio(path, rate);
  ASSERT_EQ(a.channels, 1);
  ASSERT_EQ(a.sample_rate, rate);
  ASSERT_EQ(a.frames(), rate);
  EXPECT_DOUBLE_EQ(a.duration_s(), 1.0);
  for (int64_t i = 0; i < a.frames(); ++i) {
    const float expected = static_cast<float>(static_cast<int16_t>(std::lround(x[i] * 32767.0f))) / 32768.0f;
    ASSERT_EQ(a.samples[i], expected) << "sample " << i;
  }
}

TEST(Audio, ResamplesToTheRequestedRateKeepingFrequencies) {
  // 48 kHz float WAV of 440 Hz -> 16 kHz: a third of the samples, still 880 zero
  // crossings a second, the same amplitude.
  const int in_rate = 48000, out_rate = 16000;
  const std::string path = tmp("mono48k_float.wav");
  write_wav(path, sine(440, 0.5, in_rate, 2 * in_rate, 0.3), 1, in_rate, true);
  auto a = reel::media::decode_audio(path, out_rate);
  ASSERT_EQ(a.sample_rate, out_rate);
  EXPECT_NEAR(static_cast<double>(a.frames()), 2.0 * out_rate, 2);
  EXPECT_NEAR(a.duration_s(), 2.0, 2.0 / out_rate);
  // One second from the middle (away from the resampler's edges).
  EXPECT_NEAR(static_cast<double>(zero_crossings(a.samples, out_rate / 2, out_rate)), 880.0, 1.0);
  EXPECT_NEAR(amplitude_at(a.samples, 440, out_rate, out_rate / 2, out_rate), 0.5, 0.005);
  // Aligned with the ideal signal (no offset introduced by the resampler's filter).
  auto ideal = sine(440, 0.5, out_rate, 2 * out_rate, 0.3);
  EXPECT_GT(correlation(a.samples, ideal, out_rate / 2, out_rate, 0), 0.9999);
}

TEST(Audio, StereoIsDownMixedToTheMean) {
  // Left 440 Hz at 0.5, right 1000 Hz at 0.3, 44.1 kHz -> mono 16 kHz: the mean keeps
  // half of each (0.25 and 0.15), not FFmpeg's default 1/sqrt(2) mix.
  const int in_rate = 44100, out_rate = 16000;
  auto l = sine(440, 0.5, in_rate, in_rate), r = sine(1000, 0.3, in_rate, in_rate);
  std::vector<float> stereo;
  for (int i = 0; i < in_rate; ++i) {
    stereo.push_back(l[i]);
    stereo.push_back(r[i]);
  }
  const std::string path = tmp("stereo44k.wav");
  write_wav(path, stereo, 2, in_rate, false);
  auto a = reel::media::decode_audio(path, out_rate);
  ASSERT_EQ(a.channels, 1);
  EXPECT_NEAR(static_cast<double>(a.frames()), out_rate, 2);
  // 0.5 s from the middle: whole periods of both tones (220 and 500).
  EXPECT_NEAR(amplitude_at(a.samples, 440, out_rate, 4000, 8000), 0.25, 0.003);
  EXPECT_NEAR(amplitude_at(a.samples, 1000, out_rate, 4000, 8000), 0.15, 0.003);
  // Keeping the channels instead gives both back separately.
  auto both = reel::media::decode_audio_channels(path, 0, 0);
  ASSERT_EQ(both.channels, 2);
  ASSERT_EQ(both.sample_rate, in_rate);
  EXPECT_EQ(both.frames(), in_rate);
}

TEST(Audio, FixtureWavDecodesToItsInt16Samples) {
  // The reference loads it with librosa (int16 / 32768, no resampling at 16 kHz).
  const std::string dir = fixture_dir();
  std::ifstream jf(dir + "/golden.json");
  ASSERT_TRUE(jf) << "fixture missing: " << dir << " (set REEL_HYAVATAR_ENC_GOLDEN)";
  const auto wav_info = nlohmann::json::parse(jf)["inputs"]["wav"];
  const std::string path = dir + "/" + wav_info["file"].get<std::string>();
  auto a = reel::media::decode_audio(path, 16000);
  EXPECT_EQ(a.frames(), wav_info["samples"].get<int64_t>());
  EXPECT_NEAR(a.duration_s(), wav_info["seconds"].get<double>(), 1.0 / 16000);
  // The data chunk read by hand (PCM 16-bit mono, golden.json "format").
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t at = bytes.find("data");
  ASSERT_NE(at, std::string::npos);
  uint32_t size;
  std::memcpy(&size, bytes.data() + at + 4, 4);
  ASSERT_EQ(static_cast<int64_t>(size / 2), a.frames());
  for (int64_t i = 0; i < a.frames(); ++i) {
    int16_t s;
    std::memcpy(&s, bytes.data() + at + 8 + 2 * i, 2);
    ASSERT_EQ(a.samples[i], s / 32768.0f) << "sample " << i;
  }
}

TEST(Audio, CompressedFilesDecodeAndResample) {
  // M4A (AAC, 44.1 kHz) and MP3 (LAME, 22.05 kHz) of the same 440 Hz + 1230 Hz tone, read
  // at 16 kHz: full length (codecs work in whole frames of 1024 / 1152 samples and mark
  // their padding), in time with the signal, both tones in proportion. (LAME's output
  // level is about 5% lower than its input, so levels are checked loosely.)
  struct Case {
    const char* name;
    const char* encoder;
    int rate;
  };
  for (const Case c : {Case{"tone.m4a", "aac", 44100}, Case{"tone.mp3", "libmp3lame", 22050}}) {
    SCOPED_TRACE(c.name);
    auto x = speechlike(c.rate, 2.0);
    const std::string path = tmp(c.name);
    ASSERT_TRUE(encode_audio_file(path, c.encoder, x, c.rate)) << "this FFmpeg has no " << c.encoder << " encoder";
    const int out_rate = 16000;
    auto a = reel::media::decode_audio(path, out_rate);
    const double frame_s = 1152.0 / c.rate;
    EXPECT_NEAR(a.duration_s(), 2.0, frame_s);
    // 1 s from the tone part (after the 0.25 s sweep): 440 periods, 1230 periods.
    ASSERT_GE(a.frames(), 24000);
    const auto ideal = speechlike(out_rate, 2.0);
    EXPECT_GT(correlation(a.samples, ideal, 8000, 16000, 0), 0.999);
    const double low = amplitude_at(a.samples, 440, out_rate, 8000, 16000);
    EXPECT_NEAR(low, 0.4, 0.03);
    EXPECT_NEAR(amplitude_at(a.samples, 1230, out_rate, 8000, 16000) / low, 0.25, 0.01);
  }
}

TEST(Audio, Mp4SoundtrackIsAacMatchingTheInput) {
  // 1.5 s of audio under a 1 s video: the track is kept whole (the default).
  const int rate = 16000, frames = 25, H = 32, W = 48;
  const double fps = 25;
  auto x = speechlike(rate, 1.5);
  const std::string wav = tmp("voice.wav");
  write_wav(wav, x, 1, rate, true);
  auto rgb = grey_frames(frames, H, W);
  reel::media::Mp4Options o;
  o.preset = "ultrafast";
  o.audio = wav;
  const std::string mp4 = tmp("talk.mp4");
  reel::media::write_mp4(mp4, rgb.data(), frames, H, W, fps, o);

  auto info = reel::media::read_audio_info(mp4);
  EXPECT_EQ(info.codec, "aac");
  EXPECT_EQ(info.sample_rate, rate);
  EXPECT_EQ(info.channels, 1);
  auto vinfo = reel::media::read_video_info(mp4);
  EXPECT_EQ(vinfo.codec, "h264");
  EXPECT_EQ(reel::media::decode_frames(mp4).frames, frames);

  // AAC is lossy and works in 1024-sample frames: the decoded track is as long as the
  // input within one frame, and the waveform matches (priming removed by the edit list).
  auto back = reel::media::decode_audio(mp4, rate);
  EXPECT_NEAR(static_cast<double>(back.frames()), static_cast<double>(x.size()), 1024);
  const int64_t n = std::min<int64_t>(back.frames(), static_cast<int64_t>(x.size())) - 2048;
  EXPECT_GT(correlation(back.samples, x, 1024, n, 0), 0.99);
}

TEST(Audio, Mp4SoundtrackCanBeCutToTheVideo) {
  const int rate = 44100, frames = 10;
  const double fps = 20;  // 0.5 s of video under 1.5 s of stereo audio
  auto l = speechlike(rate, 1.5), r = sine(300, 0.3, rate, static_cast<int64_t>(1.5 * rate));
  std::vector<float> stereo;
  for (size_t i = 0; i < l.size(); ++i) {
    stereo.push_back(l[i]);
    stereo.push_back(r[i]);
  }
  const std::string wav = tmp("stereo_voice.wav");
  write_wav(wav, stereo, 2, rate, false);
  auto rgb = grey_frames(frames, 16, 16);
  reel::media::Mp4Options o;
  o.preset = "ultrafast";
  o.audio = wav;
  o.cut_audio_to_video = true;
  const std::string mp4 = tmp("cut.mp4");
  reel::media::write_mp4(mp4, rgb.data(), frames, 16, 16, fps, o);
  auto info = reel::media::read_audio_info(mp4);
  EXPECT_EQ(info.codec, "aac");
  EXPECT_EQ(info.sample_rate, rate);
  EXPECT_EQ(info.channels, 2);
  auto back = reel::media::decode_audio_channels(mp4, 0, 0);
  ASSERT_EQ(back.channels, 2);
  EXPECT_NEAR(static_cast<double>(back.frames()), 0.5 * rate, 1024);
  // The right channel is still the 300 Hz tone at 0.3.
  std::vector<float> right;
  for (int64_t i = 0; i < back.frames(); ++i) right.push_back(back.samples[2 * i + 1]);
  EXPECT_NEAR(amplitude_at(right, 300, rate, 2205, 14700), 0.3, 0.01);  // 0.33 s = 100 periods
}

TEST(Audio, MissingFileIsNamed) {
  const std::string path = tmp("no-such-voice.wav");
  expect_media_error([&] { reel::media::decode_audio(path, 16000); }, {path, "not found"});
}

TEST(Audio, GarbageIsNotDecodable) {
  const std::string path = tmp("garbage.wav");
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::ofstream(path, std::ios::binary) << junk;
  expect_media_error([&] { reel::media::decode_audio(path, 16000); }, {path, "cannot open as an audio file"});
}

TEST(Audio, EmptyWavHasNoSamples) {
  const std::string path = tmp("empty.wav");
  write_wav(path, {}, 1, 16000, false);
  expect_media_error([&] { reel::media::decode_audio(path, 16000); }, {path, "no audio samples"});
}

TEST(Audio, SilentVideoHasNoAudioStream) {
  auto rgb = grey_frames(2, 16, 16);
  const std::string mp4 = tmp("silent.mp4");
  reel::media::Mp4Options o;
  o.preset = "ultrafast";
  reel::media::write_mp4(mp4, rgb.data(), 2, 16, 16, 25, o);
  expect_media_error([&] { reel::media::decode_audio(mp4, 16000); }, {mp4, "no audio stream"});
  EXPECT_THROW(reel::media::read_audio_info(mp4), MediaError);
}

TEST(Audio, BadSoundtrackNamesBothFilesAndWritesNothing) {
  auto rgb = grey_frames(2, 16, 16);
  const std::string mp4 = tmp("nosound.mp4"), wav = tmp("missing-soundtrack.wav");
  reel::media::Mp4Options o;
  o.preset = "ultrafast";
  o.audio = wav;
  expect_media_error([&] { reel::media::write_mp4(mp4, rgb.data(), 2, 16, 16, 25, o); }, {mp4, wav, "soundtrack"});
  EXPECT_FALSE(fs::exists(mp4));
}

}  // namespace
