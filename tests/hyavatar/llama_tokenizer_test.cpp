// Llama3Tokenizer's byte-level BPE path (plugins/hyavatar/llama_tokenizer.hpp) on a small
// hand-written tokenizer.json with the official file's layout. The golden fixture cannot
// cover it (its ids come from a word-level stand-in), so this checks the mechanics the
// real tokenizer.json relies on: added tokens split out first, BOS prepended, bytes
// mapped to GPT-2's printable characters (space -> "Ġ", newline -> "Ċ"), ignore_merges
// (a piece that is itself in the vocabulary is one token), and merges applied by rank.
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "llama_tokenizer.hpp"

namespace reel::hyavatar {
namespace {

std::string write_tokenizer_json(bool ignore_merges) {
  nlohmann::json j;
  j["added_tokens"] = {{{"id", 100}, {"content", "<|begin_of_text|>"}, {"special", true}},
                       {{"id", 101}, {"content", "<|eot_id|>"}, {"special", true}}};
  j["model"] = {{"type", "BPE"},
                {"ignore_merges", ignore_merges},
                {"vocab",
                 {{"a", 0}, {"b", 1}, {"c", 2}, {"x", 3}, {"Ġ", 4}, {"Ċ", 5}, {"ab", 6}, {"Ġa", 7}, {"abc", 8}, {"bc", 9}}},
                // Rank order: "a b" before "Ġ a"; "bc" is in the vocabulary but no merge makes it.
                {"merges", {"a b", "Ġ a", "ab c"}}};
  const std::string path = ::testing::TempDir() + "/llama3_tokenizer_" + (ignore_merges ? "im" : "m") + ".json";
  std::ofstream(path) << j.dump();
  return path;
}

TEST(HyAvatarLlama3Tokenizer, ByteLevelBpeFromTokenizerJson) {
  auto tok = Llama3Tokenizer::from_tokenizer_json(write_tokenizer_json(true));
  // "abc" | " abx" | "\n" | "bc", then <|eot_id|>: " abx" -> Ġ a b x -> "a b" (rank 0)
  // first -> Ġ ab x ("Ġ ab" is no merge); "bc" is whole in the vocabulary.
  EXPECT_EQ(tok.tokens("abc abx\nbc<|eot_id|>"),
            (std::vector<std::string>{"<|begin_of_text|>", "abc", "Ġ", "ab", "x", "Ċ", "bc", "<|eot_id|>"}));
  EXPECT_EQ(tok.encode("abc abx\nbc<|eot_id|>"), (std::vector<int64_t>{100, 8, 4, 6, 3, 5, 9, 101}));
  // Without ignore_merges "bc" is split (no merge joins b and c), "abc" merges a b, ab c.
  auto strict = Llama3Tokenizer::from_tokenizer_json(write_tokenizer_json(false));
  EXPECT_EQ(strict.tokens("abc bc"), (std::vector<std::string>{"<|begin_of_text|>", "abc", "Ġ", "b", "c"}));
  // A symbol outside the vocabulary (no unk in Llama-3) is an error, not a silent id.
  EXPECT_THROW(tok.encode("q"), std::invalid_argument);
}

TEST(HyAvatarLlama3Tokenizer, PretokenizerUsesUnicodeClasses) {
  // Greek letters are \p{L}; Devanagari digits are \p{N} (in groups of three, without the
  // space); contractions split off case-insensitively.
  EXPECT_EQ(llama3_pretokenize("Ελληνικά \u0966\u0967\u0968\u0969 IT'S"),
            (std::vector<std::string>{"Ελληνικά", " ", "\u0966\u0967\u0968", "\u0969", " IT", "'S"}));
  EXPECT_EQ(llama3_pretokenize("12345"), (std::vector<std::string>{"123", "45"}));
}

TEST(HyAvatarLlama3Tokenizer, PaddingAndErrors) {
  LlavaTokens t = pad_llava_tokens({5, 6, 7}, 5, 9);
  EXPECT_EQ(t.ids, (std::vector<int64_t>{5, 6, 7, 9, 9}));
  EXPECT_EQ(t.mask, (std::vector<int64_t>{1, 1, 1, 0, 0}));
  EXPECT_EQ(t.n_valid, 3);
  EXPECT_THROW(Llama3Tokenizer::from_tokenizer_json(::testing::TempDir() + "/no_such_tokenizer.json"), std::runtime_error);
}

}  // namespace
}  // namespace reel::hyavatar
