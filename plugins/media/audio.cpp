// Decoding soundtracks to float32 PCM with libavformat/libavcodec/libswresample; see
// audio.hpp for the contract.
#include "audio.hpp"
#include "ffmpeg_handles.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

#include <memory>

namespace reel::media {
namespace {

using namespace detail;   // handles and fail() (ffmpeg_handles.hpp)

struct AudioInput {
  Input fmt;
  int stream = -1;
  AVStream* st = nullptr;
};

AudioInput open_audio(const std::string& path) {
  AudioInput in;
  AVFormatContext* raw = nullptr;
  int r = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (r == AVERROR(ENOENT)) fail(path, "audio file not found");
  if (r < 0) fail(path, "cannot open as an audio file (not a media file FFmpeg can demux)", r);
  in.fmt.reset(raw);
  r = avformat_find_stream_info(raw, nullptr);
  if (r < 0) fail(path, "cannot read stream information (not a decodable audio file)", r);
  in.stream = av_find_best_stream(raw, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
  if (in.stream < 0) fail(path, "no audio stream in the file (give a WAV, MP3, M4A or a video with sound)");
  in.st = raw->streams[in.stream];
  return in;
}

// A channel layout with a known order: files that only state a channel count (order
// "unspecified", e.g. some WAVs) get FFmpeg's default layout for that count.
AVChannelLayout known_layout(const AVChannelLayout& layout) {
  AVChannelLayout out{};
  if (layout.order == AV_CHANNEL_ORDER_UNSPEC || layout.order == AV_CHANNEL_ORDER_CUSTOM)
    av_channel_layout_default(&out, layout.nb_channels);
  else
    av_channel_layout_copy(&out, &layout);
  return out;
}

// The resampler for frames like `frame`, converting to interleaved float at out_rate
// with out_channels. Mono output is the mean of the inputs and mono input is copied to
// every output channel (FFmpeg's own matrices scale those cases by 1/sqrt(2)).
Swr make_resampler(const std::string& path, const AVFrame* frame, int out_rate, int out_channels) {
  AVChannelLayout in_layout = known_layout(frame->ch_layout);
  AVChannelLayout out_layout{};
  av_channel_layout_default(&out_layout, out_channels);
  SwrContext* raw = nullptr;
  int r = swr_alloc_set_opts2(&raw, &out_layout, AV_SAMPLE_FMT_FLT, out_rate, &in_layout,
                              static_cast<AVSampleFormat>(frame->format), frame->sample_rate, 0, nullptr);
  Swr swr(raw);
  const int in_channels = in_layout.nb_channels;
  av_channel_layout_uninit(&in_layout);
  av_channel_layout_uninit(&out_layout);
  if (r < 0 || !swr) fail(path, "cannot set up audio resampling", r);
  if (in_channels != out_channels && (out_channels == 1 || in_channels == 1)) {
    std::vector<double> matrix(static_cast<size_t>(out_channels) * in_channels,
                               out_channels == 1 ? 1.0 / in_channels : 1.0);
    if ((r = swr_set_matrix(swr.get(), matrix.data(), in_channels)) < 0) fail(path, "cannot set the down-mix", r);
  }
  if ((r = swr_init(swr.get())) < 0) fail(path, "cannot set up audio resampling", r);
  return swr;
}

}  // namespace

DecodedAudio decode_audio(const std::string& path, int sample_rate) {
  if (sample_rate <= 0) fail(path, "sample rate must be positive, got " + std::to_string(sample_rate));
  return decode_audio_channels(path, sample_rate, 1);
}

DecodedAudio decode_audio_channels(const std::string& path, int sample_rate, int channels) {
  if (sample_rate < 0 || sample_rate > 768000)
    fail(path, "sample rate must be 0 (keep) or in 1..768000, got " + std::to_string(sample_rate));
  if (channels < 0 || channels > 8) fail(path, "channels must be 0 (keep) or 1..8, got " + std::to_string(channels));

  AudioInput in = open_audio(path);
  const AVCodecParameters* par = in.st->codecpar;
  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (!codec) fail(path, std::string("no decoder for the audio codec ") + avcodec_get_name(par->codec_id));
  CodecCtx dec(avcodec_alloc_context3(codec));
  if (!dec) fail(path, "out of memory");
  int r = avcodec_parameters_to_context(dec.get(), par);
  if (r < 0) fail(path, "audio codec parameters", r);
  if ((r = avcodec_open2(dec.get(), codec, nullptr)) < 0) fail(path, "cannot open the audio decoder", r);

  DecodedAudio out;
  Swr swr;
  int swr_rate = 0, swr_format = -1;
  AVChannelLayout swr_layout{};
  Frame frame(av_frame_alloc());
  Packet pkt(av_packet_alloc());
  if (!frame || !pkt) fail(path, "out of memory");

  // Appends up to `max_out` converted frames (input `data`/`count`; nullptr flushes).
  auto convert = [&](const uint8_t** data, int count) -> int {
    const int max_out = swr_get_out_samples(swr.get(), count);
    if (max_out < 0) fail(path, "audio resampling failed", max_out);
    const size_t at = out.samples.size();
    out.samples.resize(at + static_cast<size_t>(max_out) * out.channels);
    uint8_t* dst = reinterpret_cast<uint8_t*>(out.samples.data() + at);
    const int got = swr_convert(swr.get(), &dst, max_out, data, count);
    if (got < 0) fail(path, "audio resampling failed", got);
    out.samples.resize(at + static_cast<size_t>(got) * out.channels);
    return got;
  };
  auto take = [&]() {
    for (;;) {
      r = avcodec_receive_frame(dec.get(), frame.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      if (r < 0) fail(path, "the audio stream is not decodable", r);
      if (!swr) {
        if (frame->ch_layout.nb_channels < 1 || frame->sample_rate < 1)
          fail(path, "the audio stream has no channels or no sample rate");
        out.sample_rate = sample_rate ? sample_rate : frame->sample_rate;
        out.channels = channels ? channels : frame->ch_layout.nb_channels;
        swr = make_resampler(path, frame.get(), out.sample_rate, out.channels);
        swr_rate = frame->sample_rate;
        swr_format = frame->format;
        av_channel_layout_copy(&swr_layout, &frame->ch_layout);
      } else if (frame->sample_rate != swr_rate || frame->format != swr_format ||
                 av_channel_layout_compare(&frame->ch_layout, &swr_layout) != 0) {
        av_channel_layout_uninit(&swr_layout);
        fail(path, "the audio format changes mid-stream (not supported)");
      }
      convert(const_cast<const uint8_t**>(frame->extended_data), frame->nb_samples);
      av_frame_unref(frame.get());
    }
  };
  try {
    while ((r = av_read_frame(in.fmt.get(), pkt.get())) >= 0) {
      if (pkt->stream_index == in.stream) {
        const int s = avcodec_send_packet(dec.get(), pkt.get());
        av_packet_unref(pkt.get());
        if (s < 0) fail(path, "the audio stream is not decodable", s);
        take();
      } else {
        av_packet_unref(pkt.get());
      }
    }
    if (r != AVERROR_EOF) fail(path, "reading the audio failed", r);
    avcodec_send_packet(dec.get(), nullptr);  // drain the decoder
    take();
    if (swr)
      while (convert(nullptr, 0) > 0) {
      }  // the resampler's buffered tail
  } catch (...) {
    av_channel_layout_uninit(&swr_layout);
    throw;
  }
  av_channel_layout_uninit(&swr_layout);
  if (out.samples.empty()) fail(path, "no audio samples could be decoded (empty or broken audio stream)");
  return out;
}

AudioInfo read_audio_info(const std::string& path) {
  AudioInput in = open_audio(path);
  const AVCodecParameters* par = in.st->codecpar;
  AudioInfo info;
  info.codec = avcodec_get_name(par->codec_id);
  info.sample_rate = par->sample_rate;
  info.channels = par->ch_layout.nb_channels;
  if (in.st->duration != AV_NOPTS_VALUE)
    info.duration_s = in.st->duration * av_q2d(in.st->time_base);
  else if (in.fmt->duration != AV_NOPTS_VALUE)
    info.duration_s = in.fmt->duration / static_cast<double>(AV_TIME_BASE);
  return info;
}

}  // namespace reel::media
