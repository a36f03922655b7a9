// The LLaVA-LLaMA-3 prompt encoder (plugins/hyavatar/llava_encoder.hpp) against the
// reference run in hyavatar-enc-tiny-a (`llava_io`): the reference's template text, the
// reference image's pixels, the vision features, the merged LLaMA input, every LLaMA
// hidden state, and the cropped text_states / text_mask for both CFG branches.
// The fixture's token ids come from a word-level stand-in for the Llama-3 tokenizer, so
// the model tests take ids from llava_io; the template and padding are checked with the
// stand-in's vocabulary (golden.json `llava.tokenizer.vocab`).
#include <fstream>
#include <iostream>

#include "llava_encoder.hpp"
#include "llava_image.hpp"
#include "llama_tokenizer.hpp"
#include "media/video_writer.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace reel::hyavatar {
namespace {

std::string fixture() { return golden::fixture_dir("REEL_HYAVATAR_ENC_GOLDEN", "hyavatar-enc-tiny-a"); }
std::string ckpt() { return fixture() + "/ckpts/llava_llama_image"; }

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

void report(const std::string& name, const torch::Tensor& a, const torch::Tensor& b) {
  std::cout << "[llava] max abs error " << name << ": " << max_abs(a, b) << "\n";
}

LlavaEncodeOptions options(const nlohmann::json& g) {
  LlavaEncodeOptions o;
  o.crop_start = g["llava"]["crop_start"].get<int64_t>();
  o.hidden_state_skip_layer = g["reference_args"]["hidden_state_skip_layer"].get<int64_t>();
  o.apply_final_norm = g["reference_args"]["apply_final_norm"].get<bool>();
  return o;
}

TEST(HyAvatarLlava, TemplateMatchesTheReference) {
  auto g = golden::read_json(fixture() + "/golden.json");
  const auto t = LlavaPromptTemplate::avatar_video();
  EXPECT_EQ(t.text, g["llava"]["template"].get<std::string>());
  EXPECT_EQ(t.suffix, g["llava"]["suffix"].get<std::string>());
  EXPECT_EQ(t.crop_start, g["llava"]["crop_start"].get<int64_t>());
  const int64_t text_len = g["reference_args"]["text_len"].get<int64_t>();
  EXPECT_EQ(text_len + t.crop_start, g["llava"]["max_length"].get<int64_t>());
}

TEST(HyAvatarLlava, PaddingMatchesTheTokenizerCall) {
  auto g = golden::read_json(fixture() + "/golden.json");
  auto io = tensorio::load_safetensors(fixture() + "/golden/llava_io.safetensors");
  auto cfg = LlavaConfig::from_json_file(ckpt() + "/config.json");
  const int64_t max_length = g["llava"]["max_length"].get<int64_t>();
  for (const char* b : {"pos", "neg"}) {
    SCOPED_TRACE(b);
    torch::Tensor ids = io.at(std::string(b) + ".input_ids").flatten();
    torch::Tensor mask = io.at(std::string(b) + ".tokenizer_attention_mask").flatten();
    const int64_t n_valid = mask.sum().item<int64_t>();
    std::vector<int64_t> valid(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + n_valid);
    LlavaTokens t = pad_llava_tokens(valid, max_length, cfg.pad_token_id);
    EXPECT_TRUE(torch::equal(torch::tensor(t.ids, torch::kLong), ids));
    EXPECT_TRUE(torch::equal(torch::tensor(t.mask, torch::kLong), mask));
  }
  EXPECT_EQ(io.at("pos.tokenizer_attention_mask").sum().item<int64_t>(),
            g["llava"]["positions"]["n_valid_tokens"].get<int64_t>());
  // Too long: cut on the right, no padding.
  LlavaTokens t = pad_llava_tokens(std::vector<int64_t>(10, 7), 4, cfg.pad_token_id);
  EXPECT_EQ(t.ids, std::vector<int64_t>(4, 7));
  EXPECT_EQ(t.n_valid, 4);
}

// The fixture's stand-in tokenizer (Llama-3 pre-tokenizer, one id per piece from
// golden.json's vocabulary) through the template and padding gives the reference's ids:
// this checks the template text, special-token splitting, the pre-tokenizer pattern and
// the padding -- everything but the real Llama-3 BPE vocabulary.
TEST(HyAvatarLlava, StandInTokenizerReproducesTheReferenceIds) {
  auto g = golden::read_json(fixture() + "/golden.json");
  auto io = tensorio::load_safetensors(fixture() + "/golden/llava_io.safetensors");
  auto cfg = LlavaConfig::from_json_file(ckpt() + "/config.json");
  const auto& tj = g["llava"]["tokenizer"];
  std::vector<std::string> specials;
  for (auto it = tj["special_ids_here"].begin(); it != tj["special_ids_here"].end(); ++it) specials.push_back(it.key());
  auto tok = Llama3Tokenizer::word_level(tj["vocab"].get<std::vector<std::string>>(), specials, "<|begin_of_text|>", "<unk>");
  const auto tmpl = LlavaPromptTemplate::avatar_video();
  const int64_t max_length = g["llava"]["max_length"].get<int64_t>();
  const std::string pos_text = tmpl.build(g["inputs"]["csv"]["prompt_fed_to_encoders"].get<std::string>());
  EXPECT_EQ(tok.tokens(pos_text), g["llava"]["tokens_pos"].get<std::vector<std::string>>());
  for (const auto& [branch, key] : {std::pair<std::string, std::string>{"pos", "prompt_fed_to_encoders"}, {"neg", "negative_prompt"}}) {
    SCOPED_TRACE(branch);
    LlavaTokens t = pad_llava_tokens(tok.encode(tmpl.build(g["inputs"]["csv"][key].get<std::string>())), max_length,
                                     cfg.pad_token_id);
    EXPECT_TRUE(torch::equal(torch::tensor(t.ids, torch::kLong).view({1, -1}), io.at(branch + ".input_ids")));
    EXPECT_TRUE(torch::equal(torch::tensor(t.mask, torch::kLong).view({1, -1}), io.at(branch + ".tokenizer_attention_mask")));
  }
}

TEST(HyAvatarLlava, Llama3PreTokenizerPattern) {
  // Contractions, a letter run with one leading non-letter, digits in threes, punctuation
  // with its leading space, newline runs, and trailing-space handling of \s+(?!\S).
  EXPECT_EQ(llama3_pretokenize("I'm 12345 ok?! \n\n  x  "),
            (std::vector<std::string>{"I", "'m", " ", "123", "45", " ok", "?!", " \n\n", " ", " x", "  "}));
  EXPECT_EQ(llama3_pretokenize("-quality, -Fixed"), (std::vector<std::string>{"-quality", ",", " -", "Fixed"}));
}

class HyAvatarLlavaModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_ = new nlohmann::json(golden::read_json(fixture() + "/golden.json"));
    io_ = new tensorio::TensorMap(tensorio::load_safetensors(fixture() + "/golden/llava_io.safetensors"));
    enc_ = new LlavaEncoder(LlavaEncoder::load_dir(ckpt()));
  }
  static void TearDownTestSuite() {
    delete g_;
    delete io_;
    delete enc_;
  }
  static const torch::Tensor& io(const std::string& k) { return io_->at(k); }
  static nlohmann::json* g_;
  static tensorio::TensorMap* io_;
  static LlavaEncoder* enc_;
};
nlohmann::json* HyAvatarLlavaModel::g_ = nullptr;
tensorio::TensorMap* HyAvatarLlavaModel::io_ = nullptr;
LlavaEncoder* HyAvatarLlavaModel::enc_ = nullptr;

// Tolerances: float32 with the reference's operations in the same order; what differs
// is matmul/reduction blocking, i.e. rounding (~1e-6 relative). The vision features
// (|x| up to ~15) and LLaMA states (|x| up to ~25 after 4 layers of width 32) carry that
// as ~1e-5 absolute; 1e-4 (relative and absolute) leaves margin and stays orders below a
// formula error (1e-1 and more). Masks and positions are integers: exact.
constexpr double kTol = 1e-4;

TEST_F(HyAvatarLlavaModel, VisionFeaturesAndProjector) {
  const torch::Tensor& pixels = io("pixel_values");
  torch::Tensor selected = enc_->vision_selected_features(pixels);
  EXPECT_TRUE(golden::close(selected, io("vision_selected_features"), kTol, kTol));
  report("vision_selected_features", selected, io("vision_selected_features"));
  // The projector on the reference's own vision features isolates it.
  torch::Tensor features = enc_->project(io("vision_selected_features"));
  EXPECT_TRUE(golden::close(features, io("image_features"), kTol, kTol));
  report("image_features", features, io("image_features"));
  EXPECT_EQ(features.size(1), g_->at("llava").at("config").at("image_seq_length").get<int64_t>());
}

TEST_F(HyAvatarLlavaModel, MergeEmbedsMasksAndPositions) {
  for (const char* b : {"pos", "neg"}) {
    SCOPED_TRACE(b);
    const std::string p = b;
    LlavaMerged m = enc_->merge(io(p + ".input_ids"), io(p + ".tokenizer_attention_mask"), io("image_features"));
    EXPECT_TRUE(torch::equal(m.attention_mask, io(p + ".lm_attention_mask")));
    EXPECT_TRUE(torch::equal(m.position_ids, io(p + ".lm_position_ids")));
    EXPECT_EQ(m.inputs_embeds.size(1), g_->at("llava").at("positions").at("merged_length").get<int64_t>());
    if (p == "pos") {
      // Embedding lookups and copies only: exact.
      EXPECT_TRUE(golden::close(m.inputs_embeds, io("pos.lm_inputs_embeds"), 0, 0));
      report("pos.lm_inputs_embeds", m.inputs_embeds, io("pos.lm_inputs_embeds"));
    }
  }
  // An <image> token cut off by truncation is refused, not silently encoded.
  torch::Tensor ids = io("pos.input_ids").clone();
  ids.masked_fill_(ids == enc_->config().image_token_index, 0);
  EXPECT_THROW(enc_->merge(ids, io("pos.tokenizer_attention_mask"), io("image_features")), std::invalid_argument);
}

TEST_F(HyAvatarLlavaModel, DecoderHiddenStates) {
  const torch::Tensor& expected = io("pos.lm_hidden_states");  // [1, N + 1, T, H]
  auto states = enc_->decoder().hidden_states(io("pos.lm_inputs_embeds"), io("pos.lm_attention_mask"),
                                              io("pos.lm_position_ids"));
  ASSERT_EQ(static_cast<int64_t>(states.size()), expected.size(1));
  for (size_t i = 0; i < states.size(); ++i) {
    SCOPED_TRACE(i);
    torch::Tensor e = expected.select(1, static_cast<int64_t>(i));
    EXPECT_TRUE(golden::close(states[i], e, kTol, kTol));
    report("pos.lm_hidden_states[" + std::to_string(i) + "]", states[i], e);
  }
}

TEST_F(HyAvatarLlavaModel, TextStatesAndMaskForBothBranches) {
  const LlavaEncodeOptions o = options(*g_);
  for (const char* b : {"pos", "neg"}) {
    SCOPED_TRACE(b);
    const std::string p = b;
    LlavaTrace trace;
    LlavaOutput out = enc_->encode(io(p + ".input_ids"), io(p + ".tokenizer_attention_mask"), io("pixel_values"), o, &trace);
    EXPECT_TRUE(golden::close(out.text_states, io(p + ".text_states"), kTol, kTol));
    report(p + ".text_states", out.text_states, io(p + ".text_states"));
    EXPECT_TRUE(torch::equal(out.text_mask, io(p + ".text_mask")));
    EXPECT_TRUE(golden::close(trace.image_features, io("image_features"), kTol, kTol));
    if (p == "neg") {
      EXPECT_TRUE(golden::close(trace.hidden_states.back(), io("neg.lm_hidden_state_used"), kTol, kTol));
      report("neg.lm_hidden_state_used", trace.hidden_states.back(), io("neg.lm_hidden_state_used"));
    }
  }
  // The documented misalignment: ones exactly on the ranges golden.json gives.
  torch::Tensor mask = io("pos.text_mask").flatten();
  int64_t ones = 0;
  for (const auto& r : g_->at("llava").at("positions").at("cropped_text_mask_ones")) {
    const int64_t a = r[0].get<int64_t>(), z = r[1].get<int64_t>();
    EXPECT_EQ(mask.slice(0, a, z).sum().item<int64_t>(), z - a);
    ones += z - a;
  }
  EXPECT_EQ(mask.sum().item<int64_t>(), ones);
}

// From the files to text_states: the PNG through the image preparation, the prompts
// through the stand-in tokenizer and the template, then the encoder.
TEST_F(HyAvatarLlavaModel, EndToEndFromTheInputFiles) {
  const auto& tj = g_->at("llava").at("tokenizer");
  std::vector<std::string> specials;
  for (auto it = tj["special_ids_here"].begin(); it != tj["special_ids_here"].end(); ++it) specials.push_back(it.key());
  auto tok = Llama3Tokenizer::word_level(tj["vocab"].get<std::vector<std::string>>(), specials, "<|begin_of_text|>", "<unk>");
  media::DecodedImage img = media::read_image(fixture() + "/" + g_->at("inputs").at("image").at("file").get<std::string>());
  torch::Tensor rgb = torch::from_blob(img.rgb.data(), {img.height, img.width, 3}, torch::kUInt8).clone();
  LlavaImageInputs in = prepare_llava_image(rgb, g_->at("reference_args").at("image_size").get<int64_t>(),
                                            enc_->config().vision.image_size);
  const auto tmpl = LlavaPromptTemplate::avatar_video();
  const int64_t max_length = g_->at("reference_args").at("text_len").get<int64_t>() + tmpl.crop_start;
  LlavaTokens t = pad_llava_tokens(tok.encode(tmpl.build(g_->at("inputs").at("csv").at("prompt_fed_to_encoders").get<std::string>())),
                                   max_length, enc_->config().pad_token_id);
  auto ids = torch::tensor(t.ids, torch::kLong).view({1, -1}), mask = torch::tensor(t.mask, torch::kLong).view({1, -1});
  LlavaOutput out = enc_->encode(ids, mask, in.pixel_values, options(*g_));
  EXPECT_TRUE(golden::close(out.text_states, io("pos.text_states"), kTol, kTol));
  EXPECT_TRUE(torch::equal(out.text_mask, io("pos.text_mask")));
}

// Weights stored in float16 (as the official release ships them) are upcast per use:
// half the bytes, and text_states move only by the weights' rounding. Each weight is off
// by at most 2^-11 relative; through the vision tower, projector and 2 LLaMA layers that
// stays well under 1% of the states' norm (measured ~1e-3), while a dropped upcast or a
// wrong weight would be off by far more.
TEST_F(HyAvatarLlavaModel, Float16StorageIsUpcast) {
  LlavaEncoder half = LlavaEncoder::load_dir(ckpt(), torch::kFloat16);
  EXPECT_EQ(half.bytes() * 2, enc_->bytes());
  LlavaOutput out = half.encode(io("pos.input_ids"), io("pos.tokenizer_attention_mask"), io("pixel_values"), options(*g_));
  EXPECT_EQ(out.text_states.scalar_type(), torch::kFloat32);
  const torch::Tensor& ref = io("pos.text_states");
  const double rel = ((out.text_states - ref).norm() / ref.norm()).item<double>();
  std::cout << "[llava] fp16 storage: relative error of pos.text_states " << rel << "\n";
  EXPECT_LT(rel, 1e-2);
}

TEST_F(HyAvatarLlavaModel, SizesAndMemory) {
  const auto& c = g_->at("llava").at("config");
  EXPECT_EQ(enc_->config().text.num_kv_heads, c.at("llm").at("num_key_value_heads").get<int64_t>());
  EXPECT_EQ(enc_->config().vision.num_layers, c.at("vision").at("num_hidden_layers").get<int64_t>());
  // bytes(): everything loaded, float32: the checkpoint minus lm_head, the unused last
  // vision layer and post_layernorm.
  auto w = tensorio::load_weights(ckpt() + "/model.safetensors.index.json");
  int64_t expected = 0;
  const std::string last_vision =
      "vision_tower.vision_model.encoder.layers." + std::to_string(enc_->config().vision.num_layers - 1) + ".";
  for (const auto& kv : w.all()) {
    const std::string& k = kv.first;
    if (k == "language_model.lm_head.weight" || k.rfind(last_vision, 0) == 0 || k.find("post_layernorm") != std::string::npos)
      continue;
    expected += kv.second.numel() * 4;
  }
  EXPECT_EQ(enc_->bytes(), expected);
}

TEST(HyAvatarLlavaImage, ReferenceImageAndPixelsMatchThePillowPipeline) {
  auto g = golden::read_json(fixture() + "/golden.json");
  auto io = tensorio::load_safetensors(fixture() + "/golden/llava_io.safetensors");
  auto cfg = LlavaConfig::from_json_file(ckpt() + "/config.json");
  media::DecodedImage img = media::read_image(fixture() + "/" + g["inputs"]["image"]["file"].get<std::string>());
  ASSERT_EQ(img.width, g["inputs"]["image"]["width"].get<int>());
  torch::Tensor rgb = torch::from_blob(img.rgb.data(), {img.height, img.width, 3}, torch::kUInt8).clone();
  LlavaImageInputs in = prepare_llava_image(rgb, g["reference_args"]["image_size"].get<int64_t>(), cfg.vision.image_size);
  // Pillow's integer resampling reproduced bit for bit, then the same float32 ops and
  // float16 rounding: exact.
  EXPECT_TRUE(torch::equal(in.ref_image, io.at("ref_image_vae")))
      << "max abs diff " << max_abs(in.ref_image, io.at("ref_image_vae"));
  EXPECT_TRUE(torch::equal(in.pixel_values, io.at("pixel_values")))
      << "max abs diff " << max_abs(in.pixel_values, io.at("pixel_values"));
  report("ref_image_vae", in.ref_image, io.at("ref_image_vae"));
  report("pixel_values", in.pixel_values, io.at("pixel_values"));
}

TEST(HyAvatarLlavaImage, ReferenceSizeRoundsToMultiplesOf64) {
  EXPECT_EQ(reference_image_size(160, 120, 256), std::make_pair(int64_t{320}, int64_t{256}));
  // 1280 x 720 at 704: 1280 x 704 exceeds 704 x 1216 pixels, so scale = sqrt(704 * 1216 /
  // (1280 * 720)) = 0.9638: 1233.7 / 64 -> 19 * 64 = 1216, 693.9 / 64 -> 11 * 64 = 704.
  EXPECT_EQ(reference_image_size(1280, 720, 704), std::make_pair(int64_t{1216}, int64_t{704}));
  // 3000 x 1000: 2112 x 704 is too large; scale sqrt(704 * 1216 / 3e6) gives 1600 x 512.
  EXPECT_EQ(reference_image_size(3000, 1000, 704), std::make_pair(int64_t{1600}, int64_t{512}));
  // Upscaling by an integer factor with the bilinear filter keeps a constant image constant.
  torch::Tensor flat = torch::full({5, 7, 3}, 200, torch::kUInt8);
  EXPECT_TRUE(torch::equal(pil_resize(flat, 14, 10, PilFilter::kBilinear), torch::full({10, 14, 3}, 200, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(pil_resize(flat, 3, 2, PilFilter::kLanczos), torch::full({2, 3, 3}, 200, torch::kUInt8)));
}

// Released configs omit every value equal to transformers' default; the sizes must then
// be those defaults, as from_pretrained builds them (LlamaConfig, CLIPVisionConfig,
// LlavaConfig), not a parse error.
TEST(HyAvatarLlavaConfig, OmittedKeysTakeTransformersDefaults) {
  const std::string path = ::testing::TempDir() + "/llava_sparse_config.json";
  std::ofstream(path) << R"({"model_type": "llava", "image_token_index": 128257, "pad_token_id": 128258,
    "text_config": {"model_type": "llama", "intermediate_size": 14336, "num_key_value_heads": 8,
                    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "vocab_size": 128320},
    "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024, "image_size": 336,
                      "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                      "patch_size": 14}})";
  LlavaConfig c = LlavaConfig::from_json_file(path);
  EXPECT_EQ(c.text.hidden_size, 4096);
  EXPECT_EQ(c.text.num_layers, 32);
  EXPECT_EQ(c.text.num_heads, 32);
  EXPECT_EQ(c.text.num_kv_heads, 8);
  EXPECT_EQ(c.text.head_dim, 128);
  EXPECT_EQ(c.text.intermediate_size, 14336);
  EXPECT_EQ(c.vision.hidden_act, "quick_gelu");
  EXPECT_EQ(c.vision.num_patches(), 576);
  EXPECT_EQ(c.image_seq_length, 576);
  EXPECT_EQ(c.vision_feature_layer, -2);
  EXPECT_EQ(c.vision_feature_select_strategy, "default");
  // A sub-config of another kind is refused with the file named.
  std::ofstream(path) << R"({"text_config": {"model_type": "mistral"}})";
  try {
    LlavaConfig::from_json_file(path);
    FAIL() << "a mistral text_config was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(HyAvatarLlavaKeys, CheckedStrictly) {
  auto cfg = LlavaConfig::from_json_file(ckpt() + "/config.json");
  auto w = tensorio::load_weights(ckpt() + "/model.safetensors.index.json");
  tensorio::TensorMap broken = w.all();
  broken.erase("language_model.model.layers.0.mlp.up_proj.weight");
  broken.erase("vision_tower.vision_model.post_layernorm.bias");
  broken["multi_modal_projector.linear_3.weight"] = torch::zeros({2, 2});
  try {
    LlavaEncoder::load(cfg, tensorio::Weights(broken, "broken.index.json"));
    FAIL() << "a checkpoint with missing and unexpected keys loaded";
  } catch (const tensorio::WeightError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("broken.index.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("language_model.model.layers.0.mlp.up_proj.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("vision_tower.vision_model.post_layernorm.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected keys: multi_modal_projector.linear_3.weight"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace reel::hyavatar
