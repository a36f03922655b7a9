// Internal to plugins/media: owning handles for FFmpeg objects (their free functions take
// a pointer to the pointer, so std::unique_ptr needs small deleters) and the error
// helpers every media file throws with. Include only from media/*.cpp.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <string>

#include "video_writer.hpp"

namespace reel::media::detail {

inline std::string averr(int e) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(e, buf, sizeof buf);
  return buf;
}

// Throws MediaError "<path>: <what>[: <FFmpeg's reason>]".
[[noreturn]] inline void fail(const std::string& path, const std::string& what, int err = 0) {
  std::string msg = path + ": " + what;
  if (err != 0) msg += ": " + averr(err);
  throw MediaError(msg);
}

struct InputFree {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct CodecCtxFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFree {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
struct SwrFree {
  void operator()(SwrContext* s) const { swr_free(&s); }
};
using Input = std::unique_ptr<AVFormatContext, InputFree>;
using CodecCtx = std::unique_ptr<AVCodecContext, CodecCtxFree>;
using Frame = std::unique_ptr<AVFrame, FrameFree>;
using Packet = std::unique_ptr<AVPacket, PacketFree>;
using Sws = std::unique_ptr<SwsContext, SwsFree>;
using Swr = std::unique_ptr<SwrContext, SwrFree>;

}  // namespace reel::media::detail
