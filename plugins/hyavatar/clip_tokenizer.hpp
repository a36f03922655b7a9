// The CLIP-L prompt tokenizer of HunyuanVideo-Avatar's second text encoder
// (ckpts/text_encoder_2: vocab.json, merges.txt, tokenizer_config.json /
// special_tokens_map.json), as transformers' slow CLIPTokenizer runs it without ftfy:
//   1. the literal special-token strings (<|startoftext|>, <|endoftext|>) are split out
//      and map to their ids;
//   2. every other span goes through BERT's BasicTokenizer(lower case, accents kept, no
//      punctuation split): control characters dropped, whitespace runs -> one space,
//      spaces around CJK ideographs, lower-cased; pieces joined with one space;
//   3. CLIP's pre-tokenizer pattern ('s 't 're 've 'm 'll 'd | letter runs | single
//      digits | runs of other non-space characters), each piece mapped byte -> unicode
//      (GPT-2's byte table) and split by byte-level BPE with "</w>" ending a word's last
//      symbol; unknown symbols become the unk token;
//   4. bos + ids (truncated to max_length - 2) + eos, padded with the pad token to
//      max_length (padding="max_length", truncation=True); mask 1 on bos..eos.
// Unicode classes (letter, number, lower case) are ICU's (unicode_text.hpp);
// NFC normalisation is not applied (prompts are normally NFC).
//
// No LibTorch here: clip_text_encoder.hpp turns ClipTokens into tensors.
// Invariants: ClipTokens::ids/mask have exactly max_length entries; mask is 1 on the
// first n_valid entries. Thread-safety: a loaded ClipTokenizer is immutable; encode()
// and bpe() may run concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace reel::hyavatar {

struct ClipTokens {
  std::vector<int64_t> ids;   // [max_length]
  std::vector<int64_t> mask;  // [max_length]
  int64_t n_valid = 0;        // bos + pieces + eos
};

class ClipTokenizer {
 public:
  // Reads vocab.json, merges.txt and the special tokens (tokenizer_config.json, else
  // special_tokens_map.json, else CLIP's defaults) from `dir`. Throws std::runtime_error
  // naming the file when one is missing or malformed, or a special token is not in the
  // vocabulary.
  static ClipTokenizer load(const std::string& dir, int64_t max_length);
  // A vocabulary of single bytes and no merges (every byte its own symbol, then the
  // special tokens): the tiny smoke-test model's, which has no tokenizer files. Ids:
  // byte symbols 0..255, the same with "</w>" 256..511, <|startoftext|> 512, <|endoftext|> 513.
  static ClipTokenizer byte_level(int64_t max_length);

  ClipTokens encode(const std::string& utf8_text) const;
  // Steps 1-3 alone: the token strings (for checks and debugging), without bos/eos.
  std::vector<std::string> tokenize(const std::string& utf8_text) const;
  // One pre-tokenised piece (already byte-mapped) -> its BPE symbols.
  std::vector<std::string> bpe(const std::string& piece) const;

  int64_t id_of(const std::string& token) const;  // unk id when absent
  int64_t max_length() const { return max_length_; }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }

 private:
  std::unordered_map<std::string, int64_t> vocab_;
  std::map<std::pair<std::string, std::string>, int64_t> merge_rank_;
  std::vector<std::string> byte_to_unicode_;  // 256 UTF-8 strings
  std::string bos_, eos_;
  int64_t bos_id_ = 0, eos_id_ = 0, pad_id_ = 0, unk_id_ = 0, max_length_ = 0;
};

// The BasicTokenizer stage (step 2) alone, exposed for tests.
std::string clip_basic_clean(const std::string& utf8_text);

}  // namespace reel::hyavatar
