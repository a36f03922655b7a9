// WAV files written by hand for tests (RIFF, PCM 16-bit or IEEE float 32-bit,
// interleaved), so audio inputs need no encoder. Header-only; reentrant.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace reel::test {

namespace wav_detail {
inline void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_u16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
}  // namespace wav_detail

// `interleaved` holds frames * channels values in [-1, 1].
inline void write_wav(const std::string& path, const std::vector<float>& interleaved, int channels, int rate,
                      bool float32) {
  using namespace wav_detail;
  const int bytes_per_sample = float32 ? 4 : 2;
  std::string data;
  for (float x : interleaved) {
    if (float32) {
      uint32_t bits;
      std::memcpy(&bits, &x, 4);
      put_u32(data, bits);
    } else {
      const long q = std::lround(std::max(-1.0f, std::min(1.0f, x)) * 32767.0f);
      put_u16(data, static_cast<uint16_t>(static_cast<int16_t>(q)));
    }
  }
  std::string h = "RIFF";
  put_u32(h, static_cast<uint32_t>(36 + data.size()));
  h += "WAVEfmt ";
  put_u32(h, 16);
  put_u16(h, float32 ? 3 : 1);
  put_u16(h, static_cast<uint16_t>(channels));
  put_u32(h, static_cast<uint32_t>(rate));
  put_u32(h, static_cast<uint32_t>(rate * channels * bytes_per_sample));
  put_u16(h, static_cast<uint16_t>(channels * bytes_per_sample));
  put_u16(h, static_cast<uint16_t>(8 * bytes_per_sample));
  h += "data";
  put_u32(h, static_cast<uint32_t>(data.size()));
  std::ofstream(path, std::ios::binary) << h << data;
}

// A tone of `hz`, n samples at `rate`.
inline std::vector<float> sine(double hz, double amplitude, int rate, int64_t n, double phase = 0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<float>(amplitude * std::sin(2 * M_PI * hz * static_cast<double>(i) / rate + phase));
  return v;
}

}  // namespace reel::test
