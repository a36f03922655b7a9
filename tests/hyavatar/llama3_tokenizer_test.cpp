// Llama3Tokenizer (plugins/hyavatar/llama3_tokenizer.hpp). The official tokenizer.json is
// not in the fixtures, so: the pre-tokenizer is checked against the pieces the reference
// run split the LLaVA prompt into (hyavatar-enc-tiny-a golden.json `llava.tokens_pos`,
// made with Llama-3's own regex), the special ids against the Llama-3 ids golden.json
// lists, and byte-level BPE (merge ranks, ignore_merges, byte fallback, decoding) on
// small tokenizer.json files written here.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "llama3_tokenizer.hpp"
#include "wan/golden.hpp"

namespace reel::hyavatar {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// GPT-2's byte-to-character table, written out independently of the tokenizer's: the
// printable ranges map to themselves, the rest to U+0100.. in byte order.
std::string byte_char(int b) {
  static std::vector<int> table = [] {
    std::vector<int> t(256, -1);
    for (int c = '!'; c <= '~'; ++c) t[c] = c;
    for (int c = 0xA1; c <= 0xAC; ++c) t[c] = c;
    for (int c = 0xAE; c <= 0xFF; ++c) t[c] = c;
    int n = 256;
    for (int c = 0; c < 256; ++c)
      if (t[c] < 0) t[c] = n++;
    return t;
  }();
  const int cp = table[static_cast<size_t>(b)];
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

struct TokenizerFile {
  fs::path dir = fs::temp_directory_path() / ("reel-llama3-" + std::to_string(::getpid()));
  std::string path = (dir / "tokenizer.json").string();
  // Every byte is a token (ids 0..255), plus `extra` tokens and `merges`.
  TokenizerFile(const json& extra, const json& merges, const json& added, bool ignore_merges = false) {
    fs::create_directories(dir);
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
    int64_t next = 256;
    for (const auto& t : extra) vocab[t.get<std::string>()] = next++;
    json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", ignore_merges}}},
              {"added_tokens", added},
              {"pre_tokenizer", {{"type", "Sequence"},
                                 {"pretokenizers", json::array({{{"type", "Split"},
                                                                 {"pattern", {{"Regex", Llama3Tokenizer::kLlama3Pattern}}},
                                                                 {"behavior", "Isolated"}}})}}},
              {"post_processor", {{"type", "TemplateProcessing"}, {"single", json::array({{{"SpecialToken", {{"id", "<|begin_of_text|>"}}}}})}}}};
    std::ofstream(path) << j.dump();
  }
  ~TokenizerFile() { fs::remove_all(dir); }
};

json specials_from_fixture(const json& g) {
  json added = json::array();
  for (auto it = g["llava"]["tokenizer"]["special_ids_llama3_xtuner"].begin();
       it != g["llava"]["tokenizer"]["special_ids_llama3_xtuner"].end(); ++it)
    added.push_back({{"id", it.value()}, {"content", it.key()}, {"special", true}});
  return added;
}

TEST(Llama3Tokenizer, SplitsTheLlavaPromptLikeTheReference) {
  const std::string dir = golden::fixture_dir("REEL_HYAVATAR_ENC_GOLDEN", "hyavatar-enc-tiny-a");
  const json g = golden::read_json(dir + "/golden.json");
  TokenizerFile file(json::array(), json::array(), specials_from_fixture(g));
  auto tok = Llama3Tokenizer::load(file.path);
  std::string text = g["llava"]["template"].get<std::string>();
  text.replace(text.find("{}"), 2, g["inputs"]["csv"]["prompt_fed_to_encoders"].get<std::string>());
  text += g["llava"]["suffix"].get<std::string>();
  auto expected = g["llava"]["tokens_pos"].get<std::vector<std::string>>();
  ASSERT_EQ(expected.front(), "<|begin_of_text|>");   // added by the post-processor, not in the text
  expected.erase(expected.begin());
  EXPECT_EQ(tok.pre_tokenize(text), expected);
  // The specials keep their Llama-3 ids; the prefix up to the prompt is crop_start tokens
  // long when every piece is one token (as with the real vocabulary).
  auto ids = tok.encode(text);
  const auto& real = g["llava"]["tokenizer"]["special_ids_llama3_xtuner"];
  EXPECT_EQ(ids.front(), real["<|begin_of_text|>"].get<int64_t>());
  EXPECT_EQ(ids.back(), real["<image>"].get<int64_t>());
  EXPECT_EQ(tok.id_of("<|eot_id|>"), real["<|eot_id|>"].get<int64_t>());
  const auto pieces = tok.pre_tokenize(text);
  const auto user = std::find(pieces.begin(), pieces.end(), "user");
  EXPECT_EQ(1 + (user - pieces.begin()) + 3, g["llava"]["crop_start"].get<int64_t>())
      << "BOS + the pieces through \"user<|end_header_id|>\\n\\n\"";
}

TEST(Llama3Tokenizer, MergesFollowRankNotPosition) {
  // "b c" outranks "a b": abc -> a + bc (left to right would give ab + c).
  TokenizerFile file(json::array({"ab", "bc"}), json::array({"b c", "a b"}), json::array());
  auto tok = Llama3Tokenizer::load(file.path);
  EXPECT_EQ(tok.encode("abc"), (std::vector<int64_t>{'a', tok.id_of("bc")}));
  // Merges given as pairs work the same.
  TokenizerFile pairs(json::array({"ab", "bc"}), json::array({json::array({"a", "b"}), json::array({"b", "c"})}),
                      json::array());
  auto tok2 = Llama3Tokenizer::load(pairs.path);
  EXPECT_EQ(tok2.encode("abc"), (std::vector<int64_t>{tok2.id_of("ab"), 'c'}));
}

TEST(Llama3Tokenizer, IgnoreMergesTakesWholePiecesAndSpacesAreByteMapped) {
  const std::string space_hello = byte_char(' ') + "hello";   // "Ġhello"
  EXPECT_EQ(byte_char(' '), "\xC4\xA0");                      // U+0120, GPT-2's space
  TokenizerFile file(json::array({space_hello}), json::array(), json::array(), /*ignore_merges=*/true);
  auto tok = Llama3Tokenizer::load(file.path);
  EXPECT_EQ(tok.encode("hi hello"), (std::vector<int64_t>{'h', 'i', tok.id_of(space_hello)}));
  TokenizerFile strict(json::array({space_hello}), json::array(), json::array(), /*ignore_merges=*/false);
  EXPECT_EQ(Llama3Tokenizer::load(strict.path).encode(" hello").size(), 6u) << "no merges: one token per byte";
}

TEST(Llama3Tokenizer, ByteFallbackRoundTrips) {
  TokenizerFile file(json::array(), json::array(), json::array({{{"id", 300}, {"content", "<|eot_id|>"}}}));
  auto tok = Llama3Tokenizer::load(file.path);
  const std::string text = "Crème brûlée 🔥\n\tx<|eot_id|>12345 it's";
  auto ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 300), ids.end());
  // Numbers split in groups of three, contractions apart (Llama-3's regex).
  auto pieces = tok.pre_tokenize("12345 it's");
  EXPECT_EQ(pieces, (std::vector<std::string>{"123", "45", " it", "'s"}));
}

TEST(Llama3Tokenizer, BrokenFilesAreClearErrors) {
  TokenizerFile file(json::array(), json::array(), json::array());
  auto expect_error = [](const std::string& path, const std::string& part) {
    try {
      Llama3Tokenizer::load(path);
      ADD_FAILURE() << "expected an error mentioning " << part;
    } catch (const TokenizerError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error((file.dir / "missing.json").string(), "cannot be read");
  std::ofstream((file.dir / "bad.json").string()) << "{ not json";
  expect_error((file.dir / "bad.json").string(), "not valid JSON");
  std::ofstream((file.dir / "wordpiece.json").string()) << R"({"model": {"type": "WordPiece", "vocab": {}}})";
  expect_error((file.dir / "wordpiece.json").string(), "not BPE");
}

}  // namespace
}  // namespace reel::hyavatar
