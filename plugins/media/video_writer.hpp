// Writing model output as media files with FFmpeg's libraries (libavformat,
// libavcodec + libx264, libswscale): H.264 MP4 for videos, PNG for stills / contact
// sheets, and a decoder used by tests to read results back. Torch-free, so the daemon
// can link it as well as the model plugins.
//
// Pixel layout everywhere: 8-bit RGB, interleaved, rows top to bottom, frames
// contiguous: index ((f * height + y) * width + x) * 3 + c.
// MP4: H.264 (libx264) yuv420p, limited range, BT.709 matrix (tagged in the stream so
// players convert back the same way), constant frame rate, "+faststart" (index at the
// front, playable while downloading). yuv420p needs even sizes: odd widths/heights are
// refused rather than silently padded or cropped (Wan sizes are multiples of 16).
// Optional soundtrack (Mp4Options::audio): decoded with audio.hpp and encoded as AAC-LC
// (FFmpeg's native encoder, 96 kb/s per channel), interleaved with the video.
// Errors: every failure throws MediaError with the path and FFmpeg's reason; a failed
// write removes the partial file.
// Thread-safety: functions are reentrant (no shared state; FFmpeg >= 4 needs no global init).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace reel::media {

struct MediaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Mp4Options {
  int crf = 18;                  // x264 constant rate factor: 0 lossless .. 51; 18 is visually lossless
  std::string preset = "medium"; // x264 preset: ultrafast .. veryslow
  // A soundtrack to mux (e.g. the speech an avatar video was generated from): any audio
  // file FFmpeg decodes, or a video's audio track. Its sample rate is kept when AAC allows
  // it (else 48 kHz); mono stays mono, anything else becomes stereo. The track is kept
  // WHOLE by default, even when it runs longer or shorter than the video (audio-driven
  // models make the video as long as the audio; cutting speech mid-word would be worse
  // than a held last frame). Empty: no audio stream. A soundtrack that cannot be decoded
  // throws MediaError naming both files, before anything is written.
  std::string audio;
  // Cut the soundtrack to the video's duration (frames / fps) when it is longer. A shorter
  // soundtrack is never padded: the audio stream simply ends first.
  bool cut_audio_to_video = false;
};

// Encodes `frames` RGB frames of width x height (buffer of frames*height*width*3 bytes) at
// `fps` frames per second into an MP4 at `path` (overwritten).
void write_mp4(const std::string& path, const uint8_t* rgb, int frames, int height, int width, double fps,
               const Mp4Options& options = {});

struct VideoInfo {
  int width = 0, height = 0;
  int64_t frames = 0;       // from the container's index, or counted by decoding when absent
  double fps = 0;           // average frame rate
  double duration_s = 0;
  std::string codec;        // e.g. "h264"
  std::string pixel_format; // e.g. "yuv420p"
};
VideoInfo read_video_info(const std::string& path);

struct DecodedVideo {
  int width = 0, height = 0;
  int64_t frames = 0;
  double fps = 0;
  std::vector<uint8_t> rgb;  // frames*height*width*3, the layout above
};
// Decodes the frames of the first video stream to RGB (using the stream's colour matrix):
// all of them, or the first `max_frames` when that is positive.
DecodedVideo decode_frames(const std::string& path, int64_t max_frames = -1);

struct DecodedImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height*width*3, rows top to bottom
};
// An input image for a model: a still (PNG, JPEG, WebP, ... anything FFmpeg demuxes as an
// image) or the first frame of a video, as RGB (alpha dropped). Throws MediaError naming
// the path and saying it is not a decodable image when FFmpeg cannot read a frame.
DecodedImage read_image(const std::string& path);

// A single RGB image (width*height*3 bytes) as PNG, via libavcodec's PNG encoder.
void write_png(const std::string& path, const uint8_t* rgb, int width, int height);

// FFmpeg logs to stderr at "info" by default (x264 prints its settings per file). This
// lowers the process-wide level to errors only; the daemon or a test calls it once.
void quiet_ffmpeg_logging();

}  // namespace reel::media
