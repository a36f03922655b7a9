// The FFmpeg writer: an MP4 written from RGB frames decodes back to the same count, size,
// frame rate and (up to H.264 + yuv420p rounding) the same pixels; PNG is lossless;
// errors name the path.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "media/video_writer.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
}

namespace {

namespace fs = std::filesystem;
using reel::media::MediaError;

// A private scratch folder, removed when the test program exits.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("reel_media_test_" + std::to_string(::getpid()));
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

// A smooth gradient that moves over time (smooth content survives 4:2:0 subsampling).
std::vector<uint8_t> gradient(int frames, int h, int w) {
  std::vector<uint8_t> v(static_cast<size_t>(frames) * h * w * 3);
  for (int f = 0; f < frames; ++f)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        uint8_t* p = &v[((static_cast<size_t>(f) * h + y) * w + x) * 3];
        p[0] = static_cast<uint8_t>(32 + x * 3);
        p[1] = static_cast<uint8_t>(32 + y * 3);
        p[2] = static_cast<uint8_t>(64 + f * 12);
      }
  return v;
}

double mean_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::abs(int(a[i]) - int(b[i]));
  return s / double(a.size());
}

TEST(Media, Mp4RoundTrip) {
  const int F = 9, H = 64, W = 64;
  const double fps = 16;
  auto rgb = gradient(F, H, W);
  const std::string path = tmp("gradient.mp4");
  reel::media::write_mp4(path, rgb.data(), F, H, W, fps);

  auto info = reel::media::read_video_info(path);
  EXPECT_EQ(info.width, W);
  EXPECT_EQ(info.height, H);
  EXPECT_EQ(info.frames, F);
  EXPECT_DOUBLE_EQ(info.fps, fps);
  EXPECT_EQ(info.codec, "h264");
  EXPECT_EQ(info.pixel_format, "yuv420p");
  EXPECT_NEAR(info.duration_s, F / fps, 1e-3);

  auto dec = reel::media::decode_frames(path);
  ASSERT_EQ(dec.frames, F);
  ASSERT_EQ(dec.width, W);
  ASSERT_EQ(dec.height, H);
  EXPECT_DOUBLE_EQ(dec.fps, fps);
  ASSERT_EQ(dec.rgb.size(), rgb.size());
  const double mad = mean_abs_diff(dec.rgb, rgb);
  std::printf("mp4 round trip: mean abs error %.3f levels\n", mad);
  EXPECT_LT(mad, 3.0);
  // Per frame too, so a dropped or reordered frame cannot hide in the mean.
  const size_t fb = size_t(H) * W * 3;
  for (int f = 0; f < F; ++f) {
    std::vector<uint8_t> a(dec.rgb.begin() + f * fb, dec.rgb.begin() + (f + 1) * fb);
    std::vector<uint8_t> b(rgb.begin() + f * fb, rgb.begin() + (f + 1) * fb);
    EXPECT_LT(mean_abs_diff(a, b), 4.0) << "frame " << f;
  }

  // faststart: the index ("moov") precedes the media data ("mdat").
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  ASSERT_TRUE(fp);
  std::vector<char> head(4096);
  head.resize(std::fread(head.data(), 1, head.size(), fp));
  std::fclose(fp);
  std::string s(head.begin(), head.end());
  auto moov = s.find("moov"), mdat = s.find("mdat");
  ASSERT_NE(moov, std::string::npos);
  EXPECT_TRUE(mdat == std::string::npos || moov < mdat);
}

TEST(Media, UnwritablePathNamesThePath) {
  auto rgb = gradient(2, 16, 16);
  const std::string path = "/nonexistent-reel-dir/sub/out.mp4";
  try {
    reel::media::write_mp4(path, rgb.data(), 2, 16, 16, 16);
    FAIL() << "no error";
  } catch (const MediaError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  try {
    reel::media::write_png("/nonexistent-reel-dir/x.png", rgb.data(), 16, 16);
    FAIL() << "no error";
  } catch (const MediaError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-reel-dir/x.png"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reel::media::read_video_info("/nonexistent-reel-dir/none.mp4"), MediaError);
}

TEST(Media, RefusesBadArguments) {
  auto rgb = gradient(1, 16, 16);
  const std::string path = tmp("bad.mp4");
  EXPECT_THROW(reel::media::write_mp4(path, rgb.data(), 1, 15, 16, 16), MediaError);  // odd height
  EXPECT_THROW(reel::media::write_mp4(path, rgb.data(), 0, 16, 16, 16), MediaError);  // no frames
  EXPECT_THROW(reel::media::write_mp4(path, rgb.data(), 1, 16, 16, 0), MediaError);   // fps 0
  reel::media::Mp4Options o;
  o.audio = "voice.wav";  // a soundtrack that does not exist
  EXPECT_THROW(reel::media::write_mp4(path, rgb.data(), 1, 16, 16, 16, o), MediaError);
  o = {};
  o.preset = "not-a-preset";
  EXPECT_THROW(reel::media::write_mp4(path, rgb.data(), 1, 16, 16, 16, o), MediaError);
  EXPECT_FALSE(fs::exists(path));  // failed writes leave no partial file
}

TEST(Media, PngIsLossless) {
  const int H = 24, W = 40;
  auto rgb = gradient(1, H, W);
  const std::string path = tmp("sheet.png");
  reel::media::write_png(path, rgb.data(), W, H);
  auto dec = reel::media::decode_frames(path);
  ASSERT_EQ(dec.frames, 1);
  ASSERT_EQ(dec.width, W);
  ASSERT_EQ(dec.height, H);
  EXPECT_EQ(dec.rgb, rgb);
}

// Input images for image-to-video: a still decodes exactly, a video gives its first frame,
// and anything else is refused with the path and what to use instead.
TEST(Media, ReadImageDecodesAStillExactly) {
  const int H = 50, W = 70;
  auto rgb = gradient(1, H, W);
  const std::string path = tmp("input.png");
  reel::media::write_png(path, rgb.data(), W, H);
  auto img = reel::media::read_image(path);
  EXPECT_EQ(img.width, W);
  EXPECT_EQ(img.height, H);
  EXPECT_EQ(img.rgb, rgb);
}

// A gray gradient as a baseline JPEG, written with libavcodec's MJPEG encoder (one
// full-range 4:2:0 frame; neutral chroma, so RGB = Y after decoding).
std::vector<uint8_t> write_gray_jpeg(const std::string& path, int W, int H) {
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
  if (!codec) return {};
  AVCodecContext* ctx = avcodec_alloc_context3(codec);
  ctx->width = W, ctx->height = H, ctx->pix_fmt = AV_PIX_FMT_YUVJ420P, ctx->time_base = AVRational{1, 25};
  ctx->flags |= AV_CODEC_FLAG_QSCALE;
  ctx->global_quality = FF_QP2LAMBDA * 2;  // high quality
  std::vector<uint8_t> gray(static_cast<size_t>(W) * H);
  if (avcodec_open2(ctx, codec, nullptr) == 0) {
    AVFrame* f = av_frame_alloc();
    f->format = ctx->pix_fmt, f->width = W, f->height = H, f->quality = ctx->global_quality;
    av_frame_get_buffer(f, 0);
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) f->data[0][y * f->linesize[0] + x] = gray[y * W + x] = static_cast<uint8_t>(40 + 2 * x + y);
    for (int p = 1; p < 3; ++p)
      for (int y = 0; y < H / 2; ++y) std::fill_n(f->data[p] + y * f->linesize[p], W / 2, uint8_t{128});
    AVPacket* pkt = av_packet_alloc();
    if (avcodec_send_frame(ctx, f) == 0 && avcodec_receive_packet(ctx, pkt) == 0) {
      std::FILE* out = std::fopen(path.c_str(), "wb");
      std::fwrite(pkt->data, 1, pkt->size, out);
      std::fclose(out);
    }
    av_packet_free(&pkt);
    av_frame_free(&f);
  }
  avcodec_free_context(&ctx);
  return gray;
}

TEST(Media, ReadImageDecodesAJpeg) {
  const int W = 64, H = 48;
  const std::string path = tmp("photo.jpg");
  std::vector<uint8_t> gray = write_gray_jpeg(path, W, H);
  if (!fs::exists(path)) GTEST_SKIP() << "this FFmpeg has no MJPEG encoder to make the test image";
  auto img = reel::media::read_image(path);
  ASSERT_EQ(img.width, W);
  ASSERT_EQ(img.height, H);
  double diff = 0;
  for (size_t i = 0; i < gray.size(); ++i)
    for (int c = 0; c < 3; ++c) diff += std::abs(int(img.rgb[i * 3 + c]) - int(gray[i]));
  EXPECT_LT(diff / double(gray.size() * 3), 3.0) << "JPEG is lossy, but a smooth gradient survives";
}

TEST(Media, ReadImageTakesTheFirstFrameOfAVideo) {
  const int F = 9, H = 64, W = 64;
  auto rgb = gradient(F, H, W);
  const std::string path = tmp("clip.mp4");
  reel::media::write_mp4(path, rgb.data(), F, H, W, 16);
  auto img = reel::media::read_image(path);
  ASSERT_EQ(img.width, W);
  ASSERT_EQ(img.height, H);
  std::vector<uint8_t> first(rgb.begin(), rgb.begin() + H * W * 3);
  EXPECT_LT(mean_abs_diff(img.rgb, first), 3.0);
  // The second frame differs by 12 in blue: the decoded one must be the first.
  std::vector<uint8_t> second(rgb.begin() + H * W * 3, rgb.begin() + 2 * H * W * 3);
  EXPECT_LT(mean_abs_diff(img.rgb, first), mean_abs_diff(img.rgb, second));
}

TEST(Media, ReadImageRefusesAnUndecodableFile) {
  const std::string path = tmp("cat.png");
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("this is not an image at all, just some text pretending to be one", f);
    std::fclose(f);
  }
  try {
    reel::media::read_image(path);
    FAIL() << "expected a MediaError";
  } catch (const MediaError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a decodable image"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reel::media::read_image(tmp("missing.png")), MediaError);
}

}  // namespace
