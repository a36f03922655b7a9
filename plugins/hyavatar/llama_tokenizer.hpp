// Llama-3 prompt tokenization for the LLaVA-LLaMA-3 encoder (llava_encoder.hpp): the
// LlamaTokenizer interface, the padding of its ids, and Llama3Tokenizer (no LibTorch
// here). Added/special tokens (<|begin_of_text|>, <|eot_id|>, <image>, ...) are split
// out of the text first as written; the rest goes through Llama-3's pre-tokenizer pattern
//   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3} |
//   ' '?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
// and each piece becomes ids through a model; BOS is prepended (the post-processor of
// Llama-3's tokenizer.json). Two models:
//   - Byte-level BPE from the official tokenizer.json (model.vocab, model.merges,
//     ignore_merges: a piece that is itself in the vocabulary is one token) -- the real
//     tokenizer. Not covered by the golden fixture (its ids come from a stand-in).
//   - Word level: one id per pre-tokenised piece from a given vocabulary -- the stand-in
//     the hyavatar-enc-tiny-a fixture was made with (golden.json llava.tokenizer).
// Unicode classes: see unicode_text.hpp.
// Thread-safety: a loaded Llama3Tokenizer is immutable; encode() may run concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace reel::hyavatar {

// Turns text into Llama-3 ids: BOS first, special tokens (<|eot_id|>, <image>, ...)
// recognised as written, no padding. The real one reads tokenizer.json; the test
// fixture's is a word-level stand-in. Implementations must be immutable after load.
class LlamaTokenizer {
 public:
  virtual ~LlamaTokenizer() = default;
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
};

struct LlavaTokens {
  std::vector<int64_t> ids;   // [max_length]
  std::vector<int64_t> mask;  // [max_length]: 1 on the first n_valid
  int64_t n_valid = 0;
};
// padding="max_length", truncation=True (right side) as the reference's tokenizer call.
LlavaTokens pad_llava_tokens(std::vector<int64_t> ids, int64_t max_length, int64_t pad_id);

// The pre-tokenizer pattern above, over text without special tokens.
std::vector<std::string> llama3_pretokenize(const std::string& utf8_text);

class Llama3Tokenizer : public LlamaTokenizer {
 public:
  // tokenizer.json of a Llama-3 model (BPE). Throws std::runtime_error naming the file.
  static Llama3Tokenizer from_tokenizer_json(const std::string& path, const std::string& bos = "<|begin_of_text|>");
  // The word-level stand-in: vocab[i] has id i; `specials` are split out first.
  static Llama3Tokenizer word_level(const std::vector<std::string>& vocab, const std::vector<std::string>& specials,
                                    const std::string& bos, const std::string& unk);

  std::vector<int64_t> encode(const std::string& text) const override;
  // Token strings before the id lookup (BOS included), for checks.
  std::vector<std::string> tokens(const std::string& text) const;
  int64_t id_of(const std::string& token) const;  // throws for an unknown token without unk

 private:
  std::vector<std::string> piece_tokens(const std::string& piece) const;

  bool bpe_ = false;
  bool ignore_merges_ = true;
  std::unordered_map<std::string, int64_t> vocab_;
  std::map<std::pair<std::string, std::string>, int64_t> merge_rank_;
  std::vector<std::string> specials_;  // longest first
  std::string bos_, unk_;
};

}  // namespace reel::hyavatar
