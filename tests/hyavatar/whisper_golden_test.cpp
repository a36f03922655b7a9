// HunyuanVideo-Avatar's audio condition against the reference run
// (hyavatar-enc-tiny-a, golden/whisper_io): the mel filterbank, the log-mel features of
// inputs/input.wav (decoded with media::decode_audio, as the reference starts from the
// file), the Whisper encoder's stacked hidden states, the per-video-frame windows at the
// CSV's fps and at 12.5 fps, and the padded float16 audio_prompts. Each stage is checked
// from the golden's own input to the stage, and the whole chain from the WAV file.
// Every size comes from the fixture (config.json, preprocessor_config.json, golden.json).
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "audio_features.hpp"
#include "audio_windows.hpp"
#include "media/audio.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"
#include "whisper_encoder.hpp"

namespace {

using namespace reel::hyavatar;
namespace tio = reel::tensorio;

struct Fixture {
  std::string dir = reel::golden::fixture_dir("REEL_HYAVATAR_ENC_GOLDEN", "hyavatar-enc-tiny-a");
  nlohmann::json golden = reel::golden::read_json(dir + "/golden.json");
  std::string whisper_dir = dir + "/" + golden["whisper"]["checkpoint"].get<std::string>();
  tio::TensorMap io = tio::load_safetensors(dir + "/golden/whisper_io.safetensors");
  WhisperFeatureConfig features = WhisperFeatureConfig::from_json(whisper_dir + "/preprocessor_config.json");

  torch::Tensor t(const std::string& name) const {
    auto it = io.find(name);
    if (it == io.end()) throw std::runtime_error("golden/whisper_io.safetensors has no " + name);
    return it->second.to(torch::kFloat32);
  }
  torch::Tensor waveform() const {
    const auto a = reel::media::decode_audio(dir + "/" + golden["inputs"]["wav"]["file"].get<std::string>(),
                                             static_cast<int>(features.sampling_rate));
    return torch::tensor(a.samples);
  }
  double csv_fps() const { return golden["inputs"]["csv"]["fps"].get<double>(); }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

TEST(WhisperGolden, MelFilterbank) {
  const auto& f = fixture();
  const auto fb = whisper_mel_filters(f.features);
  const auto expected = f.t("mel_filters");
  // Both computed in float64 with the same formulas and rounded once to float32: equal up
  // to a float32 rounding of a last-bit float64 difference (values are below 0.03).
  EXPECT_TRUE(reel::golden::close(fb, expected, 1e-6, 1e-9));
  std::cout << "mel_filters max abs error " << max_abs(fb, expected) << "\n";
}

TEST(WhisperGolden, LogMelFromTheWavFile) {
  const auto& f = fixture();
  const auto feats = whisper_audio_features(f.waveform(), f.features);
  const auto expected = f.t("mel");
  ASSERT_EQ(feats.mel.sizes(), expected.sizes());
  EXPECT_EQ(feats.mel.size(1), f.features.nb_max_frames * f.golden["whisper"]["n_chunks"].get<int64_t>());
  EXPECT_EQ(feats.audio_len, f.io.at("audio_len").item<int64_t>());
  EXPECT_EQ(feats.audio_len, f.golden["whisper"]["audio_len"].get<int64_t>());
  // Same torch.stft and float32 matmul as the reference; log10 amplifies rounding only
  // for tiny mel energies, which the (max - 8) floor clips. 1e-5 on values of |x| < 1.3.
  EXPECT_TRUE(reel::golden::close(feats.mel, expected, 0, 1e-5));
  std::cout << "mel max abs error " << max_abs(feats.mel, expected) << "\n";
  // The dataset's float16 copy: the same rounding of (nearly) the same numbers. A value
  // within 1e-5 of a float16 rounding boundary may land on the neighbour: one float16 ulp
  // at |x| < 2 is 2^-10.
  const auto half = feats.mel.to(torch::kHalf).to(torch::kFloat32);
  const auto expected_half = f.t("mel_fp16");
  EXPECT_TRUE(reel::golden::close(half, expected_half, 0, std::ldexp(1.0, -10)));
  const double mismatched = (half != expected_half).sum().item<double>();
  EXPECT_LE(mismatched / half.numel(), 1e-3);
  std::cout << "mel_fp16 max abs error " << max_abs(half, expected_half) << " (" << mismatched
            << " values on the other side of a float16 rounding)\n";
}

TEST(WhisperGolden, EncoderHiddenStates) {
  const auto& f = fixture();
  const auto enc = WhisperEncoder::load_dir(f.whisper_dir);
  const auto& c = enc.config();
  // The encoder's input is the dataset's float16 mel, cast back (golden.json "dtype").
  const auto mel = f.t("mel_fp16").slice(1, 0, c.input_frames());
  const auto hidden = enc.hidden_states(mel);
  const auto expected = f.t("encoder_hidden_states");
  ASSERT_EQ(hidden.sizes(), expected.sizes());
  EXPECT_EQ(hidden.size(2), c.encoder_layers + 1);
  // float32 through two convolutions and two layers, reordered sums: ~1e-6 relative on
  // values up to |4.3|.
  EXPECT_TRUE(reel::golden::close(hidden, expected, 1e-4, 1e-4));
  std::cout << "encoder_hidden_states max abs error " << max_abs(hidden, expected) << "\n";
}

TEST(WhisperGolden, WindowsAndPrompts) {
  const auto& f = fixture();
  const auto hidden = f.t("encoder_hidden_states");
  const int64_t audio_len = f.io.at("audio_len").item<int64_t>();
  // Pure indexing of the golden's own hidden states: exact.
  const auto windows = audio_windows(hidden, f.csv_fps(), audio_len);
  const auto expected = f.t("audio_windows");
  ASSERT_EQ(windows.sizes(), expected.sizes());
  EXPECT_EQ(windows.size(1), f.golden["whisper"]["num_frames"].get<int64_t>());
  EXPECT_TRUE(reel::golden::close(windows, expected, 0, 0));
  const auto slow = audio_windows(hidden, 12.5, audio_len);
  EXPECT_TRUE(reel::golden::close(slow, f.t("audio_windows_fps12p5"), 0, 0));
  EXPECT_FALSE(torch::equal(slow, windows));  // the step really differs

  const auto prompts = pad_audio_prompts(expected);
  const auto expected_prompts = f.t("audio_prompts");  // float16 in the file
  EXPECT_TRUE(reel::golden::close(prompts, expected_prompts, 0, 0));
  const auto uncond = uncond_audio_prompts(prompts);
  EXPECT_EQ(uncond.size(1), kAudioPromptMinFrames);
  EXPECT_EQ(uncond.abs().sum().item<double>(), 0.0);
  std::cout << "audio_windows / fps12p5 / audio_prompts max abs error " << max_abs(windows, expected) << " / "
            << max_abs(slow, f.t("audio_windows_fps12p5")) << " / " << max_abs(prompts, expected_prompts) << "\n";
}

TEST(WhisperGolden, WholeChainFromTheWavFile) {
  // input.wav -> mel -> float16 -> encoder -> windows -> audio_prompts, nothing from the
  // golden but the comparison. The float16 step can round a mel value to the other
  // neighbour (see LogMelFromTheWavFile); such a 2^-10 change moves the encoder's output
  // by about its weight scale (0.12) times that, far below 1e-3.
  const auto& f = fixture();
  const auto enc = WhisperEncoder::load_dir(f.whisper_dir);
  const auto feats = whisper_audio_features(f.waveform(), f.features);
  const auto mel = feats.mel.to(torch::kHalf).to(torch::kFloat32).slice(1, 0, enc.config().input_frames());
  const auto hidden = enc.hidden_states(mel);
  const auto windows = audio_windows(hidden, f.csv_fps(), feats.audio_len);
  const auto prompts = pad_audio_prompts(windows);
  const auto e_hidden = f.t("encoder_hidden_states"), e_windows = f.t("audio_windows"), e_prompts = f.t("audio_prompts");
  EXPECT_TRUE(reel::golden::close(hidden, e_hidden, 1e-3, 1e-3));
  EXPECT_TRUE(reel::golden::close(windows, e_windows, 1e-3, 1e-3));
  // audio_prompts are float16 (ulp 2^-8 at |x| < 4): a last-bit flip is allowed.
  EXPECT_TRUE(reel::golden::close(prompts, e_prompts, 0, std::ldexp(1.0, -8) + 1e-3));
  std::cout << "chain from input.wav: encoder_hidden_states " << max_abs(hidden, e_hidden) << ", audio_windows "
            << max_abs(windows, e_windows) << ", audio_prompts " << max_abs(prompts, e_prompts) << "\n";
}

TEST(WhisperGolden, ChunkedEncoderForAudioPast30Seconds) {
  // reel's extension: each 30 s chunk of the mel is encoded on its own and the hidden
  // states are concatenated in time. The second chunk is the fixture's mel reversed in
  // time, so that it differs from the first.
  const auto& f = fixture();
  const auto enc = WhisperEncoder::load_dir(f.whisper_dir);
  const auto& c = enc.config();
  const int64_t positions = c.max_source_positions;
  const auto first = f.t("mel_fp16").slice(1, 0, c.input_frames());
  const auto second = first.flip({1});
  const auto one = enc.hidden_states(first), other = enc.hidden_states(second);
  // One chunk: hidden_states() itself.
  EXPECT_TRUE(torch::equal(enc.hidden_states_chunked(first), one));
  EXPECT_TRUE(torch::equal(enc.hidden_states_chunked(first.unsqueeze(0)), one));

  const auto two = enc.hidden_states_chunked(torch::cat({first, second}, 1));
  ASSERT_EQ(two.sizes().vec(), (std::vector<int64_t>{1, 2 * positions, c.encoder_layers + 1, c.d_model}));
  // The same operations on the same numbers: exact.
  EXPECT_TRUE(torch::equal(two.slice(1, 0, positions), one));
  EXPECT_TRUE(torch::equal(two.slice(1, positions), other));
  EXPECT_FALSE(torch::equal(one, other));
  // ... and the first half is the reference's (same bound as EncoderHiddenStates).
  EXPECT_TRUE(reel::golden::close(two.slice(1, 0, positions), f.t("encoder_hidden_states"), 1e-4, 1e-4));
  std::cout << "two chunks: first half vs encoder_hidden_states max abs error "
            << max_abs(two.slice(1, 0, positions), f.t("encoder_hidden_states")) << "; vs one chunk "
            << max_abs(two.slice(1, 0, positions), one) << "; second half vs its chunk alone "
            << max_abs(two.slice(1, positions), other) << "\n";

  // Windows past the reference's 400 frames reach into the second chunk: video frame
  // 900 at 25 fps starts at encoder frame 2*900 - 4 (the 4 leading zeros), the second
  // chunk's frame 1796 - 1500.
  const auto windows = audio_windows(two, 25, 1000, /*max_video_frames=*/1000);
  ASSERT_EQ(windows.size(1), 1000);
  const int64_t second_start = 2 * 900 - kAudioLeadingZeroFrames - positions;
  EXPECT_TRUE(torch::equal(windows[0][900], other[0].slice(0, second_start, second_start + kAudioWindowFrames)));
  EXPECT_TRUE(torch::equal(windows.slice(1, 0, kAudioMaxVideoFrames), audio_windows(one, 25, kAudioMaxVideoFrames)));
  EXPECT_EQ(audio_windows(two, 25, 1000).size(1), kAudioMaxVideoFrames);  // the default keeps the reference's cap
  // Two chunks hold 2 * 1500 + 4 frames: the last window (10 frames, step 2) starts by 2994.
  const int64_t fit = (2 * positions + kAudioLeadingZeroFrames - kAudioWindowFrames) / 2 + 1;
  EXPECT_EQ(audio_windows(two, 25, fit, fit).size(1), fit);
  try {
    audio_windows(two, 25, fit + 1, fit + 1);
    ADD_FAILURE() << "a window past the encoder's frames was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("at most " + std::to_string(fit) + " video frames fit"), std::string::npos)
        << e.what();
  }

  // Not whole chunks, or the wrong number of mel bins.
  EXPECT_THROW(enc.hidden_states_chunked(torch::cat({first, first.slice(1, 0, 100)}, 1)), std::invalid_argument);
  EXPECT_THROW(enc.hidden_states_chunked(first.slice(1, 0, 100)), std::invalid_argument);
  EXPECT_THROW(enc.hidden_states_chunked(first.slice(0, 0, 40)), std::invalid_argument);
}

TEST(WhisperFeatures, LongAudioIsFeaturisedPerChunk) {
  // Past 30 s the reference featurises each 750 * 640-sample chunk on its own (its own
  // zero padding and its own max - 8 floor) and concatenates: each chunk's frames equal
  // that chunk's features computed alone.
  const auto& f = fixture();
  const auto wav = f.waveform();
  const int64_t chunk = kVideoFramesPerChunk * kSamplesPerVideoFrame;
  const auto tail = wav.slice(0, 0, 20000) * 0.01;  // quieter: a different floor than chunk 1
  const auto x = torch::cat({wav.repeat({chunk / wav.size(0) + 1}).slice(0, 0, chunk), tail});
  const auto feats = whisper_audio_features(x, f.features);
  ASSERT_EQ(feats.mel.size(1), 2 * f.features.nb_max_frames);
  EXPECT_EQ(feats.audio_len, x.size(0) / kSamplesPerVideoFrame);
  const auto filters = whisper_mel_filters(f.features);
  const auto second = whisper_log_mel_chunk(tail, f.features, filters);
  EXPECT_TRUE(torch::equal(feats.mel.slice(1, f.features.nb_max_frames), second));
  EXPECT_TRUE(torch::equal(feats.mel.slice(1, 0, f.features.nb_max_frames),
                           whisper_log_mel_chunk(x.slice(0, 0, chunk), f.features, filters)));
  EXPECT_THROW(whisper_log_mel_chunk(x, f.features, filters), std::invalid_argument);  // longer than a chunk
}

// --- loading and argument errors ---

tio::Weights fixture_weights() {
  return tio::load_weights(fixture().whisper_dir + "/model.safetensors");
}
WhisperEncoderConfig fixture_config() {
  return WhisperEncoderConfig::from_json(fixture().whisper_dir + "/config.json");
}
std::string load_error(const tio::Weights& w, const WhisperEncoderConfig& c) {
  try {
    WhisperEncoder::load(w, c);
  } catch (const tio::WeightError& e) {
    return e.what();
  }
  return "";
}

TEST(WhisperEncoderLoad, DecoderIsIgnoredEncoderKeysAreStrict) {
  auto w = fixture_weights();
  bool has_decoder = false;
  for (const auto& kv : w.all()) has_decoder |= kv.first.find("decoder.") != std::string::npos;
  ASSERT_TRUE(has_decoder) << "the fixture is a full WhisperForConditionalGeneration checkpoint";
  EXPECT_EQ(load_error(w, fixture_config()), "");  // decoder tensors present, ignored

  auto tensors = w.all();
  tensors.erase("model.encoder.layers.1.fc2.bias");
  tensors.erase("model.encoder.conv1.weight");
  tensors["model.encoder.layers.2.fc1.weight"] = torch::zeros({1});
  tensors["lm_head.weight"] = torch::zeros({1});
  const std::string m = load_error(tio::Weights(tensors, "whisper.safetensors"), fixture_config());
  EXPECT_NE(m.find("whisper.safetensors"), std::string::npos) << m;
  EXPECT_NE(m.find("2 missing keys: model.encoder.conv1.weight"), std::string::npos) << m;
  EXPECT_NE(m.find("model.encoder.layers.1.fc2.bias"), std::string::npos) << m;
  EXPECT_NE(m.find("2 unexpected keys"), std::string::npos) << m;
  EXPECT_NE(m.find("model.encoder.layers.2.fc1.weight"), std::string::npos) << m;
  EXPECT_NE(m.find("lm_head.weight"), std::string::npos) << m;
}

TEST(WhisperEncoderLoad, BareWhisperModelKeysAndWrongShapes) {
  auto w = fixture_weights();
  w.strip_prefix("model.");  // a WhisperModel saved on its own
  EXPECT_EQ(load_error(w, fixture_config()), "");
  auto tensors = w.all();
  tensors["encoder.layers.0.fc1.weight"] = torch::zeros({3, 3});
  const std::string m = load_error(tio::Weights(tensors, "bare.safetensors"), fixture_config());
  EXPECT_NE(m.find("encoder.layers.0.fc1.weight"), std::string::npos) << m;
  EXPECT_NE(m.find("bare.safetensors"), std::string::npos) << m;
  // Not a Whisper checkpoint at all.
  const std::string none = load_error(tio::Weights({{"x", torch::zeros({1})}}, "other.safetensors"), fixture_config());
  EXPECT_NE(none.find("no Whisper encoder tensors"), std::string::npos) << none;
}

TEST(WhisperArguments, Refused) {
  const auto& f = fixture();
  const auto enc = WhisperEncoder::load_dir(f.whisper_dir);
  EXPECT_THROW(enc.hidden_states(torch::zeros({enc.config().num_mel_bins, 100})), std::invalid_argument);
  const auto hidden = f.t("encoder_hidden_states");
  EXPECT_THROW(audio_windows(hidden, 30, 10), std::invalid_argument);  // the reference knows 25 and 12.5 only
  // 12.5 fps: frame f starts at encoder frame 4f; 400 frames would need 1606 of 1504.
  EXPECT_THROW(audio_windows(hidden, 12.5, 400), std::invalid_argument);
  EXPECT_EQ(audio_windows(hidden, 25, 1000).size(1), kAudioMaxVideoFrames);  // capped as the reference does
  EXPECT_THROW(whisper_audio_features(torch::zeros({0}), f.features), std::invalid_argument);
  // More than 129 windows: 5 zero frames appended instead of padding to 129.
  const auto long_prompts = pad_audio_prompts(audio_windows(hidden, 25, 200));
  EXPECT_EQ(long_prompts.size(1), 205);
  EXPECT_EQ(long_prompts.slice(1, 200).abs().sum().item<double>(), 0.0);
  // A sampler window of W latent frames pads to one window's 4*W - 3 audio frames (129 is
  // W = 33's); the 5 extra frames past that do not depend on W.
  const int64_t five = 4 * 5 - 3;
  const auto short_prompts = pad_audio_prompts(audio_windows(hidden, 25, 10), five);
  EXPECT_EQ(short_prompts.size(1), five);
  EXPECT_EQ(short_prompts.slice(1, 10).abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(short_prompts.slice(1, 0, 10), pad_audio_prompts(audio_windows(hidden, 25, 10)).slice(1, 0, 10)));
  EXPECT_EQ(pad_audio_prompts(audio_windows(hidden, 25, 200), five).size(1), 205);
  EXPECT_EQ(pad_audio_prompts(audio_windows(hidden, 25, five), five).size(1), five);
  EXPECT_EQ(pad_audio_prompts(audio_windows(hidden, 25, five + 1), five).size(1), five + 6);
  EXPECT_THROW(pad_audio_prompts(audio_windows(hidden, 25, 10), 0), std::invalid_argument);
  const auto uncond = uncond_audio_prompts(short_prompts, five);
  EXPECT_EQ(uncond.size(1), five);
  EXPECT_EQ(uncond.abs().sum().item<double>(), 0.0);
  EXPECT_THROW(uncond_audio_prompts(short_prompts), std::invalid_argument);  // 17 frames, not 129
  EXPECT_THROW(audio_windows(hidden, 25, 10, 0), std::invalid_argument);
}

}  // namespace
