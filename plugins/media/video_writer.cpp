// FFmpeg-based MP4/PNG writing and decoding; see video_writer.hpp for the contract.
#include "video_writer.hpp"

#include "audio.hpp"
#include "ffmpeg_handles.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <memory>

namespace reel::media {
namespace {

using namespace detail;   // handles and fail() (ffmpeg_handles.hpp)

// An output container; on destruction without commit() the partial file is removed.
struct Output {
  AVFormatContext* fmt = nullptr;
  std::string path;
  bool committed = false;
  ~Output() {
    if (!fmt) return;
    if (fmt->pb) avio_closep(&fmt->pb);
    avformat_free_context(fmt);
    if (!committed) std::remove(path.c_str());
  }
};

// Switches a swscale context's YUV matrix to `colorspace_id` (SWS_CS_*), keeping the ranges
// swscale chose (full-range RGB, limited-range YUV unless `yuv_full_range`).
void set_matrix(SwsContext* sws, int colorspace_id, bool yuv_is_src, bool yuv_full_range) {
  int *inv = nullptr, *tbl = nullptr;
  int src_range = 0, dst_range = 0, brightness = 0, contrast = 0, saturation = 0;
  sws_getColorspaceDetails(sws, &inv, &src_range, &tbl, &dst_range, &brightness, &contrast, &saturation);
  const int* coef = sws_getCoefficients(colorspace_id);
  if (yuv_is_src)
    src_range = yuv_full_range ? 1 : 0;
  else
    dst_range = yuv_full_range ? 1 : 0;
  sws_setColorspaceDetails(sws, coef, src_range, coef, dst_range, brightness, contrast, saturation);
}

// Sends `frame` (nullptr = flush) and writes every packet the encoder has ready.
void encode(const std::string& path, AVCodecContext* enc, AVFrame* frame, AVFormatContext* fmt, AVStream* st,
            AVPacket* pkt) {
  int r = avcodec_send_frame(enc, frame);
  if (r < 0) fail(path, "encoding a frame failed", r);
  for (;;) {
    r = avcodec_receive_packet(enc, pkt);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
    if (r < 0) fail(path, "encoding a frame failed", r);
    av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
    pkt->stream_index = st->index;
    r = av_interleaved_write_frame(fmt, pkt);  // takes ownership of the packet's data
    if (r < 0) fail(path, "writing a packet failed", r);
  }
}

struct OpenInput {
  Input fmt;
  int stream = -1;
  AVStream* st = nullptr;
};

OpenInput open_input(const std::string& path) {
  OpenInput in;
  AVFormatContext* raw = nullptr;
  int r = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (r < 0) fail(path, "cannot open for reading", r);
  in.fmt.reset(raw);
  r = avformat_find_stream_info(raw, nullptr);
  if (r < 0) fail(path, "cannot read stream information", r);
  in.stream = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (in.stream < 0) fail(path, "no video stream", in.stream);
  in.st = raw->streams[in.stream];
  return in;
}

double to_double(AVRational q) { return q.den ? av_q2d(q) : 0.0; }

// The soundtrack of an MP4 being written: the decoded audio, its AAC encoder and stream.
// Audio is encoded in step with the video (encode_until after each video frame) so the
// muxer can interleave the two without buffering a whole track.
struct AudioTrack {
  DecodedAudio pcm;  // interleaved float at the encoder's rate and channel count
  CodecCtx enc;
  AVStream* st = nullptr;
  Frame frame;
  int64_t next = 0;  // the next sample frame to encode

  // Decodes `audio` and sets up its encoder (before anything is written, so a bad
  // soundtrack leaves no file behind). Keeps the input's rate when AAC supports it (else
  // 48 kHz) and its channels (mono stays mono; more than two are mixed to stereo).
  void open(const std::string& path, const std::string& audio, double video_seconds, bool cut) {
    const AVCodec* codec = avcodec_find_encoder_by_name("aac");
    if (!codec) fail(path, "this FFmpeg has no native AAC encoder");
    try {
      const AudioInfo info = read_audio_info(audio);
      int rate = 48000;
      for (const int* r = codec->supported_samplerates; r && *r; ++r)
        if (*r == info.sample_rate) rate = info.sample_rate;
      pcm = decode_audio_channels(audio, rate, info.channels == 1 ? 1 : 2);
    } catch (const MediaError& e) {
      fail(path, std::string("soundtrack: ") + e.what());
    }
    if (cut) {
      const auto keep = static_cast<int64_t>(std::llround(video_seconds * pcm.sample_rate));
      if (keep < pcm.frames()) pcm.samples.resize(static_cast<size_t>(keep) * pcm.channels);
    }
    enc.reset(avcodec_alloc_context3(codec));
    if (!enc) fail(path, "out of memory");
    enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    enc->sample_rate = pcm.sample_rate;
    av_channel_layout_default(&enc->ch_layout, pcm.channels);
    enc->bit_rate = 96000 * pcm.channels;
    enc->time_base = AVRational{1, pcm.sample_rate};
  }

  // After the video stream: the encoder opened against the container, its stream added.
  void add_stream(const std::string& path, AVFormatContext* fmt) {
    if (fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int r = avcodec_open2(enc.get(), enc->codec, nullptr);
    if (r < 0) fail(path, "cannot open the AAC encoder", r);
    st = avformat_new_stream(fmt, nullptr);
    if (!st) fail(path, "cannot add an audio stream");
    if ((r = avcodec_parameters_from_context(st->codecpar, enc.get())) < 0) fail(path, "audio codec parameters", r);
    st->time_base = enc->time_base;
    frame.reset(av_frame_alloc());
    if (!frame) fail(path, "out of memory");
  }

  // Encodes the samples before `end` (a sample index; clipped to the track's length).
  void encode_until(const std::string& path, int64_t end, AVFormatContext* fmt, AVPacket* pkt) {
    end = std::min(end, pcm.frames());
    const int64_t frame_size = enc->frame_size > 0 ? enc->frame_size : 1024;
    while (next < end && (end - next >= frame_size || end == pcm.frames())) {
      const int n = static_cast<int>(std::min(frame_size, pcm.frames() - next));
      av_frame_unref(frame.get());
      frame->format = AV_SAMPLE_FMT_FLTP;
      frame->sample_rate = pcm.sample_rate;
      frame->nb_samples = n;
      int r = av_channel_layout_copy(&frame->ch_layout, &enc->ch_layout);
      if (r >= 0) r = av_frame_get_buffer(frame.get(), 0);
      if (r < 0) fail(path, "cannot allocate an audio frame", r);
      for (int c = 0; c < pcm.channels; ++c) {
        auto* dst = reinterpret_cast<float*>(frame->extended_data[c]);
        const float* src = pcm.samples.data() + next * pcm.channels + c;
        for (int i = 0; i < n; ++i) dst[i] = src[static_cast<size_t>(i) * pcm.channels];
      }
      frame->pts = next;
      encode(path, enc.get(), frame.get(), fmt, st, pkt);
      next += n;
    }
  }

  void finish(const std::string& path, AVFormatContext* fmt, AVPacket* pkt) {
    encode_until(path, pcm.frames(), fmt, pkt);
    encode(path, enc.get(), nullptr, fmt, st, pkt);
  }
};

}  // namespace

void write_mp4(const std::string& path, const uint8_t* rgb, int frames, int height, int width, double fps,
               const Mp4Options& options) {
  if (!rgb) fail(path, "no pixel data");
  if (frames < 1) fail(path, "need at least one frame, got " + std::to_string(frames));
  if (width < 2 || height < 2 || width % 2 || height % 2)
    fail(path, "H.264 yuv420p needs even width and height, got " + std::to_string(width) + "x" +
                   std::to_string(height));
  if (!(fps > 0) || !std::isfinite(fps)) fail(path, "fps must be positive, got " + std::to_string(fps));
  if (options.crf < 0 || options.crf > 51) fail(path, "crf must be in 0..51, got " + std::to_string(options.crf));

  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (!codec) fail(path, "this FFmpeg has no libx264 encoder");
  const AVRational rate = av_d2q(fps, 100000);

  std::unique_ptr<AudioTrack> audio;
  if (!options.audio.empty()) {
    audio = std::make_unique<AudioTrack>();
    audio->open(path, options.audio, frames / fps, options.cut_audio_to_video);
  }

  Output out;
  out.path = path;
  int r = avformat_alloc_output_context2(&out.fmt, nullptr, "mp4", path.c_str());
  if (r < 0 || !out.fmt) fail(path, "cannot set up an MP4 muxer", r);

  CodecCtx enc(avcodec_alloc_context3(codec));
  if (!enc) fail(path, "out of memory");
  enc->width = width;
  enc->height = height;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = av_inv_q(rate);
  enc->framerate = rate;
  enc->color_range = AVCOL_RANGE_MPEG;
  enc->colorspace = AVCOL_SPC_BT709;
  enc->color_primaries = AVCOL_PRI_BT709;
  enc->color_trc = AVCOL_TRC_BT709;
  if (out.fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if ((r = av_opt_set(enc->priv_data, "preset", options.preset.c_str(), 0)) < 0)
    fail(path, "unknown x264 preset '" + options.preset + "'", r);
  if ((r = av_opt_set(enc->priv_data, "crf", std::to_string(options.crf).c_str(), 0)) < 0)
    fail(path, "cannot set crf", r);
  if ((r = avcodec_open2(enc.get(), codec, nullptr)) < 0) fail(path, "cannot open the H.264 encoder", r);

  AVStream* st = avformat_new_stream(out.fmt, nullptr);
  if (!st) fail(path, "cannot add a video stream");
  if ((r = avcodec_parameters_from_context(st->codecpar, enc.get())) < 0) fail(path, "codec parameters", r);
  st->time_base = enc->time_base;
  st->avg_frame_rate = rate;
  if (audio) audio->add_stream(path, out.fmt);

  if ((r = avio_open(&out.fmt->pb, path.c_str(), AVIO_FLAG_WRITE)) < 0) fail(path, "cannot open for writing", r);
  AVDictionary* mux_opts = nullptr;
  av_dict_set(&mux_opts, "movflags", "+faststart", 0);
  r = avformat_write_header(out.fmt, &mux_opts);
  av_dict_free(&mux_opts);
  if (r < 0) fail(path, "cannot write the MP4 header", r);

  Sws sws(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                         SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr));
  if (!sws) fail(path, "cannot set up the RGB to YUV conversion");
  set_matrix(sws.get(), SWS_CS_ITU709, /*yuv_is_src=*/false, /*yuv_full_range=*/false);

  Frame frame(av_frame_alloc());
  Packet pkt(av_packet_alloc());
  if (!frame || !pkt) fail(path, "out of memory");
  frame->format = AV_PIX_FMT_YUV420P;
  frame->width = width;
  frame->height = height;
  frame->color_range = enc->color_range;
  frame->colorspace = enc->colorspace;
  frame->color_primaries = enc->color_primaries;
  frame->color_trc = enc->color_trc;
  if ((r = av_frame_get_buffer(frame.get(), 0)) < 0) fail(path, "cannot allocate a frame", r);

  const size_t frame_bytes = static_cast<size_t>(width) * height * 3;
  for (int i = 0; i < frames; ++i) {
    // The encoder may still reference the previous frame's buffer.
    if ((r = av_frame_make_writable(frame.get())) < 0) fail(path, "cannot allocate a frame", r);
    const uint8_t* src[1] = {rgb + frame_bytes * static_cast<size_t>(i)};
    const int src_stride[1] = {width * 3};
    sws_scale(sws.get(), src, src_stride, 0, height, frame->data, frame->linesize);
    frame->pts = i;
    encode(path, enc.get(), frame.get(), out.fmt, st, pkt.get());
    if (audio) audio->encode_until(path, static_cast<int64_t>(std::ceil((i + 1) / fps * audio->pcm.sample_rate)),
                                   out.fmt, pkt.get());
  }
  encode(path, enc.get(), nullptr, out.fmt, st, pkt.get());
  if (audio) audio->finish(path, out.fmt, pkt.get());
  if ((r = av_write_trailer(out.fmt)) < 0) fail(path, "cannot finish the MP4", r);
  if ((r = avio_closep(&out.fmt->pb)) < 0) fail(path, "cannot close", r);
  out.committed = true;
}

VideoInfo read_video_info(const std::string& path) {
  OpenInput in = open_input(path);
  VideoInfo info;
  const AVCodecParameters* par = in.st->codecpar;
  info.width = par->width;
  info.height = par->height;
  info.codec = avcodec_get_name(par->codec_id);
  const char* pf = av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format));
  info.pixel_format = pf ? pf : "";
  info.fps = to_double(in.st->avg_frame_rate);
  if (info.fps == 0) info.fps = to_double(in.st->r_frame_rate);
  if (in.st->duration != AV_NOPTS_VALUE)
    info.duration_s = in.st->duration * av_q2d(in.st->time_base);
  else if (in.fmt->duration != AV_NOPTS_VALUE)
    info.duration_s = in.fmt->duration / static_cast<double>(AV_TIME_BASE);
  info.frames = in.st->nb_frames;
  if (info.frames <= 0) {
    // No index (e.g. a raw stream): count the packets of the video stream.
    Packet pkt(av_packet_alloc());
    int64_t n = 0;
    while (av_read_frame(in.fmt.get(), pkt.get()) >= 0) {
      if (pkt->stream_index == in.stream) ++n;
      av_packet_unref(pkt.get());
    }
    info.frames = n;
  }
  return info;
}

DecodedVideo decode_frames(const std::string& path, int64_t max_frames) {
  OpenInput in = open_input(path);
  const AVCodec* codec = avcodec_find_decoder(in.st->codecpar->codec_id);
  if (!codec) fail(path, std::string("no decoder for ") + avcodec_get_name(in.st->codecpar->codec_id));
  CodecCtx dec(avcodec_alloc_context3(codec));
  if (!dec) fail(path, "out of memory");
  int r = avcodec_parameters_to_context(dec.get(), in.st->codecpar);
  if (r < 0) fail(path, "codec parameters", r);
  if ((r = avcodec_open2(dec.get(), codec, nullptr)) < 0) fail(path, "cannot open the decoder", r);

  DecodedVideo v;
  v.width = in.st->codecpar->width;
  v.height = in.st->codecpar->height;
  v.fps = to_double(in.st->avg_frame_rate);
  if (v.fps == 0) v.fps = to_double(in.st->r_frame_rate);

  Frame frame(av_frame_alloc());
  Packet pkt(av_packet_alloc());
  SwsContext* sws_raw = nullptr;  // cached across frames, freed below
  Sws sws_owner;
  auto enough = [&] { return max_frames > 0 && v.frames >= max_frames; };
  auto take = [&]() {
    while (!enough()) {
      r = avcodec_receive_frame(dec.get(), frame.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      if (r < 0) fail(path, "decoding failed", r);
      if (frame->width != v.width || frame->height != v.height) fail(path, "frame size changes mid-stream");
      sws_owner.release();
      sws_raw = sws_getCachedContext(sws_raw, frame->width, frame->height, static_cast<AVPixelFormat>(frame->format),
                                     v.width, v.height, AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND |
                                     SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
      sws_owner.reset(sws_raw);
      if (!sws_raw) fail(path, "cannot set up the YUV to RGB conversion");
      // Untagged streams are treated as BT.601, as most players do.
      const int matrix = frame->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_ITU601;
      set_matrix(sws_raw, matrix, /*yuv_is_src=*/true, frame->color_range == AVCOL_RANGE_JPEG);
      const size_t bytes = static_cast<size_t>(v.width) * v.height * 3;
      const size_t at = v.rgb.size();
      v.rgb.resize(at + bytes);
      uint8_t* dst[1] = {v.rgb.data() + at};
      const int dst_stride[1] = {v.width * 3};
      sws_scale(sws_raw, frame->data, frame->linesize, 0, frame->height, dst, dst_stride);
      ++v.frames;
      av_frame_unref(frame.get());
    }
  };
  while (!enough() && (r = av_read_frame(in.fmt.get(), pkt.get())) >= 0) {
    if (pkt->stream_index == in.stream) {
      int s = avcodec_send_packet(dec.get(), pkt.get());
      av_packet_unref(pkt.get());
      if (s < 0) fail(path, "decoding failed", s);
      take();
    } else {
      av_packet_unref(pkt.get());
    }
  }
  if (enough()) return v;
  if (r != AVERROR_EOF) fail(path, "reading failed", r);
  avcodec_send_packet(dec.get(), nullptr);  // drain
  take();
  return v;
}

DecodedImage read_image(const std::string& path) {
  DecodedVideo v;
  try {
    v = decode_frames(path, 1);
  } catch (const MediaError& e) {
    throw MediaError(std::string(e.what()) + " (not a decodable image: use PNG, JPEG, WebP or a video)");
  }
  if (v.frames < 1) fail(path, "no image frame in the file (not a decodable image: use PNG, JPEG, WebP or a video)");
  v.rgb.resize(static_cast<size_t>(v.width) * v.height * 3);
  return {v.width, v.height, std::move(v.rgb)};
}

void write_png(const std::string& path, const uint8_t* rgb, int width, int height) {
  if (!rgb) fail(path, "no pixel data");
  if (width < 1 || height < 1)
    fail(path, "bad image size " + std::to_string(width) + "x" + std::to_string(height));
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
  if (!codec) fail(path, "this FFmpeg has no PNG encoder");
  CodecCtx enc(avcodec_alloc_context3(codec));
  if (!enc) fail(path, "out of memory");
  enc->width = width;
  enc->height = height;
  enc->pix_fmt = AV_PIX_FMT_RGB24;
  enc->time_base = AVRational{1, 1};
  int r = avcodec_open2(enc.get(), codec, nullptr);
  if (r < 0) fail(path, "cannot open the PNG encoder", r);

  Frame frame(av_frame_alloc());
  Packet pkt(av_packet_alloc());
  if (!frame || !pkt) fail(path, "out of memory");
  frame->format = AV_PIX_FMT_RGB24;
  frame->width = width;
  frame->height = height;
  if ((r = av_frame_get_buffer(frame.get(), 0)) < 0) fail(path, "cannot allocate a frame", r);
  av_image_copy_plane(frame->data[0], frame->linesize[0], rgb, width * 3, width * 3, height);
  frame->pts = 0;

  std::vector<uint8_t> bytes;
  auto drain = [&]() {
    for (;;) {
      r = avcodec_receive_packet(enc.get(), pkt.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      if (r < 0) fail(path, "PNG encoding failed", r);
      bytes.insert(bytes.end(), pkt->data, pkt->data + pkt->size);
      av_packet_unref(pkt.get());
    }
  };
  if ((r = avcodec_send_frame(enc.get(), frame.get())) < 0) fail(path, "PNG encoding failed", r);
  drain();
  avcodec_send_frame(enc.get(), nullptr);
  drain();

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail(path, "cannot open for writing: " + std::string(std::strerror(errno)));
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(path.c_str());
    fail(path, "write failed");
  }
}

void quiet_ffmpeg_logging() { av_log_set_level(AV_LOG_ERROR); }

}  // namespace reel::media
