// Golden tests for Wan 2.1's text side: the prompt tokenizer (cleaning + SentencePiece)
// and the UMT5 encoder, against wan21-tiny-a (env REEL_WAN21_GOLDEN). Every size comes
// from the fixture: text_len from the checkpoint's config.json, the T5 sizes from tensor
// shapes (cross-checked against golden.json's t5 section), num_heads from golden.json.
#include <iostream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tensorio/weights.hpp"
#include "t5_encoder.hpp"
#include "tokenizer.hpp"
#include "wan/golden.hpp"

namespace {

using reel::golden::close;
using reel::wan::T5Encoder;
using reel::wan::T5Tokenizer;
namespace tio = reel::tensorio;

std::string fixture() { return reel::golden::fixture_dir("REEL_WAN21_GOLDEN", "wan21-tiny-a"); }
std::string spiece() { return fixture() + "/checkpoint/google/umt5-xxl/spiece.model"; }
std::string t5_pth() { return fixture() + "/checkpoint/models_t5_umt5-xxl-enc-bf16.pth"; }
nlohmann::json golden_json() { return reel::golden::read_json(fixture() + "/golden.json"); }
int64_t text_len() {
  return reel::golden::read_json(fixture() + "/checkpoint/config.json").at("text_len").get<int64_t>();
}

const tio::Weights& t5_weights() {
  static const tio::Weights w(tio::load_pth(t5_pth()), t5_pth());
  return w;
}

std::vector<int64_t> as_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kInt64).contiguous().flatten();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// ---- tokenizer ----

TEST(WanTokenizer, ReproducesPipelinePromptIds) {
  auto g = golden_json();
  auto pipe = tio::load_safetensors(fixture() + "/golden/pipeline.safetensors");
  T5Tokenizer tok(spiece(), text_len());

  auto pos = tok.encode(g.at("pipeline").at("prompt").get<std::string>());
  EXPECT_EQ(pos.ids, as_vector(pipe.at("ids")));
  EXPECT_EQ(pos.mask, as_vector(pipe.at("mask")));

  auto neg = tok.encode(g.at("pipeline").at("negative_prompt").get<std::string>());
  EXPECT_EQ(neg.ids, as_vector(pipe.at("neg_ids")));
  EXPECT_EQ(neg.mask, as_vector(pipe.at("neg_mask")));
  EXPECT_EQ(neg.seq_len, pipe.at("neg_mask").sum().item<int64_t>());
  // The negative prompt is short: it exercises eos placement and zero padding.
  EXPECT_LT(neg.seq_len, text_len());

  // t5_io was fed the same tokenizer output.
  auto io = tio::load_safetensors(fixture() + "/golden/t5_io.safetensors");
  EXPECT_EQ(pos.ids, as_vector(io.at("ids")));
  EXPECT_EQ(pos.seq_len, io.at("seq_len").item<int64_t>());
}

// Python's html.unescape results for these inputs (checked with CPython 3.11).
TEST(WanTokenizer, HtmlUnescapeFollowsPython) {
  using reel::wan::html_unescape;
  EXPECT_EQ(html_unescape("a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&#39;"), "a & b <c> \"d\" 'e'");
  EXPECT_EQ(html_unescape("&#x41;&#65&#X42;"), "AAB");
  EXPECT_EQ(html_unescape("&amp;amp;"), "&amp;");     // one level per call
  EXPECT_EQ(html_unescape("&ampx &notit;"), "&x \xC2\xACit;");  // legacy names match without ';'
  EXPECT_EQ(html_unescape("&apos &unknown; & &#;"), "&apos &unknown; & &#;");
  EXPECT_EQ(html_unescape("&eacute;t&eacute; &hellip;"), "\xC3\xA9t\xC3\xA9 \xE2\x80\xA6");
  EXPECT_EQ(html_unescape("&#150;&#0;"), "\xE2\x80\x93\xEF\xBF\xBD");  // cp1252 remap, NUL -> U+FFFD
}

TEST(WanTokenizer, CleaningCollapsesWhitespaceAndUnescapesTwice) {
  using reel::wan::clean_prompt;
  EXPECT_EQ(clean_prompt("  a\t\tb \n c\r\n"), "a b c");
  EXPECT_EQ(clean_prompt("fox &amp;amp; cat"), "fox & cat");
  EXPECT_EQ(clean_prompt("\xE2\x80\x9Cquoted\xE2\x80\x9D \xE2\x80\x99s"), "\"quoted\" 's");  // ftfy uncurls
  EXPECT_EQ(clean_prompt("a\xC2\xA0\xE3\x80\x80 b"), "a b");  // Unicode spaces count as \s
  EXPECT_EQ(clean_prompt(""), "");
  // ftfy parts: its own unescape (no '<' in the text) before the two html.unescape calls,
  // terminal escapes dropped, C1 controls read as windows-1252 (then uncurled).
  EXPECT_EQ(clean_prompt("&amp;amp;amp;"), "&");
  EXPECT_EQ(clean_prompt("<b> &amp;amp;amp;"), "<b> &amp;");
  EXPECT_EQ(clean_prompt("\x1b[31mred\x1b[0m"), "red");
  EXPECT_EQ(clean_prompt("\xC2\x93hi\xC2\x94"), "\"hi\"");
}

TEST(WanTokenizer, TruncatesToTextLenWithEos) {
  const int64_t L = text_len();
  T5Tokenizer tok(spiece(), L);
  std::string longer;
  for (int64_t i = 0; i < 4 * L; ++i) longer += "snow ";
  auto t = tok.encode(longer);
  ASSERT_EQ(static_cast<int64_t>(t.ids.size()), L);
  EXPECT_EQ(t.seq_len, L);
  EXPECT_EQ(t.ids.back(), T5Tokenizer::kEosId);
  auto empty = tok.encode("   ");
  EXPECT_EQ(empty.seq_len, 1);
  EXPECT_EQ(empty.ids[0], T5Tokenizer::kEosId);
  EXPECT_EQ(empty.mask[1], 0);
}

TEST(WanTokenizer, MissingModelNamesTheFile) {
  try {
    T5Tokenizer tok(fixture() + "/no-such-spiece.model", 8);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-spiece.model"), std::string::npos) << e.what();
  }
}

// ---- encoder ----

TEST(WanT5Encoder, SizesFromShapesMatchGoldenJson) {
  auto t5 = golden_json().at("t5");
  auto enc = T5Encoder::load(t5_weights(), t5.at("num_heads").get<int64_t>());
  const auto& c = enc.config();
  EXPECT_EQ(c.vocab, t5.at("vocab").get<int64_t>());
  EXPECT_EQ(c.dim, t5.at("dim").get<int64_t>());
  EXPECT_EQ(c.dim_attn, t5.at("dim_attn").get<int64_t>());
  EXPECT_EQ(c.dim_ffn, t5.at("dim_ffn").get<int64_t>());
  EXPECT_EQ(c.num_layers, t5.at("num_layers").get<int64_t>());
  EXPECT_EQ(c.num_buckets, t5.at("num_buckets").get<int64_t>());
  EXPECT_EQ(c.shared_pos, t5.at("shared_pos").get<bool>());
  // The relative-position table also carries the head count.
  EXPECT_EQ(T5Encoder::load(t5_weights(), 0).config().num_heads, t5.at("num_heads").get<int64_t>());
}

// Tolerance: the port runs the reference's float32 ops in the reference's order, so it can
// differ only by summation order inside matmuls/softmax (~1e-6 relative; on this machine
// the result is bit-identical). A wrong formula (scaling, bucket, GELU variant, norm) is
// off by 1e-2 or more.
TEST(WanT5Encoder, MatchesGolden) {
  auto io = tio::load_safetensors(fixture() + "/golden/t5_io.safetensors");
  auto enc = T5Encoder::load(t5_weights(), golden_json().at("t5").at("num_heads").get<int64_t>());
  auto out = enc.forward(io.at("ids"), io.at("mask"));
  EXPECT_TRUE(close(out, io.at("out"), 1e-4, 1e-5));
  std::cout << "t5 out: max abs diff " << (out - io.at("out")).abs().max().item<double>() << ", max |ref| "
            << io.at("out").abs().max().item<double>() << "\n";

  // The pipeline path: tokenizer -> context rows [0, seq_len).
  T5Tokenizer tok(spiece(), text_len());
  auto ctx = enc.context(tok.encode(golden_json().at("pipeline").at("prompt").get<std::string>()));
  const int64_t seq_len = io.at("seq_len").item<int64_t>();
  EXPECT_TRUE(close(ctx, io.at("out")[0].slice(0, 0, seq_len), 1e-4, 1e-5));
}

// The golden prompt fills text_len, so the padding mask is checked by its defining
// property: masked keys get exp(lowest float) == 0 weight, so the ids at padded positions
// cannot change the unpadded rows at all, while padded rows are kept (not zeroed).
TEST(WanT5Encoder, PaddingMaskHidesPaddedKeys) {
  auto pipe = tio::load_safetensors(fixture() + "/golden/pipeline.safetensors");
  auto enc = T5Encoder::load(t5_weights(), golden_json().at("t5").at("num_heads").get<int64_t>());
  auto ids = pipe.at("neg_ids").to(torch::kInt64), mask = pipe.at("neg_mask").to(torch::kInt64);
  const int64_t n = mask.sum().item<int64_t>();
  ASSERT_LT(n, ids.size(1));
  auto other = ids.clone();
  other.slice(1, n) = (torch::arange(ids.size(1) - n, torch::kInt64) * 7 + 3) % enc.config().vocab;
  auto a = enc.forward(ids, mask), b = enc.forward(other, mask);
  EXPECT_TRUE(torch::equal(a.slice(1, 0, n), b.slice(1, 0, n)));
  EXPECT_GT(a.slice(1, n).abs().max().item<double>(), 0.0);
  // Without the mask the padded keys do matter.
  auto c = enc.forward(ids, torch::Tensor());
  EXPECT_FALSE(torch::allclose(a.slice(1, 0, n), c.slice(1, 0, n)));
}

// The official file stores bf16. Kept in bf16 (half the RAM) and upcast one block at a
// time, or upcast at load: a bf16 copy of the fixture's weights must give exactly what
// fp32 weights rounded to bf16 give, either way.
TEST(WanT5Encoder, Bf16CheckpointIsUpcast) {
  tio::TensorMap bf16, rounded;
  for (const auto& [name, t] : t5_weights().all()) {
    bf16[name] = t.to(torch::kBFloat16);
    rounded[name] = bf16[name].to(torch::kFloat32);
  }
  const int64_t heads = golden_json().at("t5").at("num_heads").get<int64_t>();
  auto a = T5Encoder::load(tio::Weights(std::move(bf16), "bf16"), heads);
  auto b = T5Encoder::load(tio::Weights(std::move(rounded), "rounded"), heads);
  auto io = tio::load_safetensors(fixture() + "/golden/t5_io.safetensors");
  auto out = a.forward(io.at("ids"), io.at("mask"));
  EXPECT_EQ(out.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(out, b.forward(io.at("ids"), io.at("mask"))));

  tio::TensorMap kept;
  for (const auto& [name, t] : t5_weights().all()) kept[name] = t.to(torch::kBFloat16);
  auto c = T5Encoder::load(tio::Weights(std::move(kept), "bf16 kept"), heads, torch::kBFloat16);
  EXPECT_EQ(c.bytes() * 2, b.bytes()) << "stored in bf16: half the bytes of fp32";
  EXPECT_TRUE(torch::equal(c.forward(io.at("ids"), io.at("mask")), out));
}

TEST(WanT5Encoder, MissingTensorNamesFileAndTensor) {
  const std::string victim = "blocks.1.ffn.fc2.weight";
  tio::TensorMap m = t5_weights().all();
  ASSERT_EQ(m.erase(victim), 1u);
  tio::Weights w(std::move(m), t5_pth());
  try {
    T5Encoder::load(w, golden_json().at("t5").at("num_heads").get<int64_t>());
    FAIL() << "expected a WeightError";
  } catch (const tio::WeightError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(t5_pth()), std::string::npos) << msg;
    EXPECT_NE(msg.find(victim), std::string::npos) << msg;
  }
}

TEST(WanT5Encoder, WrongHeadCountIsRejected) {
  // A head count that disagrees with the position tables must not load silently.
  const int64_t heads = golden_json().at("t5").at("num_heads").get<int64_t>();
  EXPECT_THROW(T5Encoder::load(t5_weights(), heads * 2), tio::WeightError);
}

}  // namespace
