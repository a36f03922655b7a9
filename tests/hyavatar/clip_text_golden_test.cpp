// The CLIP-L text encoder (plugins/hyavatar/clip_tokenizer.hpp, clip_text_encoder.hpp)
// against the reference run in hyavatar-enc-tiny-a: the reference's prompt (with its
// quality prefix) and negative prompt went through transformers' CLIPTokenizer (slow,
// no ftfy) and CLIPTextModel, giving `clip_io` (ids, masks, last_hidden_state, pooled).
#include <iostream>

#include "clip_text_encoder.hpp"
#include "clip_tokenizer.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace reel::hyavatar {
namespace {

std::string fixture() { return golden::fixture_dir("REEL_HYAVATAR_ENC_GOLDEN", "hyavatar-enc-tiny-a"); }
std::string ckpt() { return fixture() + "/ckpts/text_encoder_2"; }

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kLong).contiguous().flatten();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

struct Branch {
  const char* name;         // tensor prefix in clip_io
  const char* prompt_key;   // golden.json inputs.csv key
};
const Branch kBranches[] = {{"pos", "prompt_fed_to_encoders"}, {"neg", "negative_prompt"}};

TEST(HyAvatarClipText, TokenizerReproducesTheReferenceIdsAndMasks) {
  auto g = golden::read_json(fixture() + "/golden.json");
  auto io = tensorio::load_safetensors(fixture() + "/golden/clip_io.safetensors");
  auto tok = ClipTokenizer::load(ckpt(), g["reference_args"]["text_len_2"].get<int64_t>());
  for (const Branch& b : kBranches) {
    SCOPED_TRACE(b.name);
    ClipTokens t = tok.encode(g["inputs"]["csv"][b.prompt_key].get<std::string>());
    EXPECT_EQ(t.ids, to_vector(io.at(std::string(b.name) + ".input_ids")));
    EXPECT_EQ(t.mask, to_vector(io.at(std::string(b.name) + ".attention_mask")));
  }
  // The token strings the reference logged for the positive prompt: bos, pieces, eos.
  auto expected = g["clip"]["tokens_pos"].get<std::vector<std::string>>();
  auto pieces = tok.tokenize(g["inputs"]["csv"]["prompt_fed_to_encoders"].get<std::string>());
  ASSERT_EQ(pieces.size() + 2, expected.size());
  for (size_t i = 0; i < pieces.size(); ++i) EXPECT_EQ(pieces[i], expected[i + 1]) << "piece " << i;
  ClipTokens pos = tok.encode(g["inputs"]["csv"]["prompt_fed_to_encoders"].get<std::string>());
  EXPECT_EQ(pos.n_valid, g["clip"]["n_valid_tokens"].get<int64_t>());
  EXPECT_EQ(pos.n_valid - 1, g["clip"]["eos_position"].get<int64_t>());
}

TEST(HyAvatarClipText, TokenizerCleansCaseAndWhitespaceAndTruncates) {
  auto g = golden::read_json(fixture() + "/golden.json");
  const int64_t max_length = g["reference_args"]["text_len_2"].get<int64_t>();
  auto tok = ClipTokenizer::load(ckpt(), max_length);
  // BasicTokenizer: case folded, control characters dropped, whitespace runs collapsed.
  EXPECT_EQ(clip_basic_clean("  A\tPerson\x01  SITS\n"), "a person sits");
  EXPECT_EQ(tok.encode("  A\tPerson  SITS,\r\nby a CAMPFIRE. ").ids, tok.encode("a person sits, by a campfire.").ids);
  // Contractions split off; digits one per piece; punctuation runs kept together. The
  // tiny vocabulary has no merges for these pieces, so BPE leaves single characters and
  // "</w>" marks where each pre-tokenised piece ends: it | 's | 4 | 2 | ?!
  EXPECT_EQ(tok.tokenize("it's 42 ?!"),
            (std::vector<std::string>{"i", "t</w>", "'", "s</w>", "4</w>", "2</w>", "?", "!</w>"}));
  // Literal special tokens map to their ids.
  ClipTokens s = tok.encode("<|endoftext|>");
  EXPECT_EQ(s.ids[1], tok.eos_id());
  EXPECT_EQ(s.n_valid, 3);
  // Too long: cut to max_length - 2 pieces, eos kept last, no padding.
  std::string long_text;
  for (int64_t i = 0; i < max_length; ++i) long_text += "person ";
  ClipTokens t = tok.encode(long_text);
  ASSERT_EQ(static_cast<int64_t>(t.ids.size()), max_length);
  EXPECT_EQ(t.n_valid, max_length);
  EXPECT_EQ(t.ids.front(), tok.bos_id());
  EXPECT_EQ(t.ids.back(), tok.eos_id());
  EXPECT_EQ(t.ids[1], tok.id_of("person</w>"));
  EXPECT_EQ(std::count(t.mask.begin(), t.mask.end(), 0), 0);
}

TEST(HyAvatarClipText, EncoderReproducesTheReferencePooledOutput) {
  auto io = tensorio::load_safetensors(fixture() + "/golden/clip_io.safetensors");
  auto enc = ClipTextEncoder::load_dir(ckpt());
  for (const Branch& b : kBranches) {
    SCOPED_TRACE(b.name);
    const std::string p = b.name;
    ClipTextOutput out = enc.encode(io.at(p + ".input_ids"), io.at(p + ".attention_mask"));
    // float32 with the same operations in the same order except for matmul blocking:
    // differences are rounding (~1e-6 on values of magnitude ~3 after two layers); 1e-4
    // leaves margin and is far below a formula error (1e-1 and more).
    EXPECT_TRUE(golden::close(out.pooled, io.at(p + ".pooled"), 1e-4, 1e-4));
    EXPECT_TRUE(golden::close(out.last_hidden_state, io.at(p + ".last_hidden_state"), 1e-4, 1e-4));
    std::cout << "[clip " << p << "] max abs error: pooled " << max_abs(out.pooled, io.at(p + ".pooled"))
              << ", last_hidden_state " << max_abs(out.last_hidden_state, io.at(p + ".last_hidden_state")) << "\n";
  }
  // Tokenizer -> encoder end to end gives the same pooled vector.
  auto g = golden::read_json(fixture() + "/golden.json");
  auto tok = ClipTokenizer::load(ckpt(), g["reference_args"]["text_len_2"].get<int64_t>());
  auto out = enc.encode(tok.encode(g["inputs"]["csv"]["prompt_fed_to_encoders"].get<std::string>()));
  EXPECT_TRUE(golden::close(out.pooled, io.at("pos.pooled"), 1e-4, 1e-4));
}

TEST(HyAvatarClipText, CheckpointKeysAreCheckedStrictly) {
  auto cfg = ClipTextConfig::from_json_file(ckpt() + "/config.json");
  auto w = tensorio::load_weights(ckpt() + "/model.safetensors");
  tensorio::TensorMap broken = w.all();
  broken.erase("text_model.encoder.layers.1.mlp.fc2.bias");
  broken["text_model.encoder.layers.7.mlp.fc2.bias"] = torch::zeros({cfg.hidden_size});
  broken["text_model.final_layer_norm.weight"] = torch::zeros({cfg.hidden_size + 1});
  try {
    ClipTextEncoder::load(cfg, tensorio::Weights(broken, "broken.safetensors"));
    FAIL() << "a checkpoint with a missing, an unexpected and a mis-shaped key loaded";
  } catch (const tensorio::WeightError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("broken.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing keys: text_model.encoder.layers.1.mlp.fc2.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected keys: text_model.encoder.layers.7.mlp.fc2.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("text_model.final_layer_norm.weight is [" + std::to_string(cfg.hidden_size + 1)), std::string::npos)
        << msg;
  }
  // The vision half of the CLIPModel is not this encoder's business.
  EXPECT_NO_THROW(ClipTextEncoder::load(cfg, w));
  auto enc = ClipTextEncoder::load(cfg, w);
  EXPECT_EQ(enc.bytes(), [&] {
    int64_t n = 0;
    for (const auto& kv : w.all())
      if (kv.first.rfind("text_model.", 0) == 0) n += kv.second.numel() * 4;
    return n;
  }());
}

}  // namespace
}  // namespace reel::hyavatar
