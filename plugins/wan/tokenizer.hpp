// Wan 2.1's prompt tokenizer: the reference's text cleaning (wan/modules/tokenizers.py,
// clean='whitespace': ftfy.fix_text, html.unescape twice, strip, whitespace runs -> one
// space, strip) followed by UMT5's SentencePiece model with T5's conventions (pad 0,
// eos 1, no bos), truncated to text_len - 1 pieces, then eos, then padded with 0 to
// text_len -- what the reference's Hugging Face tokenizer does with
// padding='max_length', truncation=True, max_length=text_len.
//
// This header and tokenizer.cpp deliberately do not include LibTorch (compile time, and
// so a caller can tokenize without it); t5_encoder.hpp turns Tokens into tensors.
//
// Invariants: Tokens::ids and ::mask have exactly text_len entries; mask is 1 for the
// pieces and the eos, 0 for padding; seq_len is the number of 1s.
// Thread-safety: a loaded T5Tokenizer is immutable; encode() may be called concurrently
// (SentencePieceProcessor::Encode is const and reentrant).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace reel::wan {

// Python's html.unescape (HTML5 rules: numeric references with or without ';', the
// cp1252 remapping of &#128;..&#159;, named references with the legacy no-';' forms)
// over a table of the entities prompts actually contain (all Latin-1 ones, typographic
// punctuation, arrows, a few math signs). Unknown names are left as they are, as Python
// does for names not in its table.
std::string html_unescape(const std::string& utf8);

// The reference's clean='whitespace' text cleaning, see the header comment. ftfy.fix_text
// is approximated by the parts of it that change well-formed prompts: terminal escapes and
// control characters removed, C1 characters read as windows-1252, line-break and
// curly-quote normalisation, Latin ligatures, and its extra HTML unescape (only when the
// text has no '<', as ftfy's "auto" mode: so "&amp;amp;amp;" ends as "&"). Mojibake repair
// (fix_encoding) is not done: it only matters for text that was already mis-decoded.
// NFC/width normalisation is left to SentencePiece's own NFKC normaliser.
std::string clean_prompt(const std::string& utf8);

struct Tokens {
  std::vector<int64_t> ids;   // [text_len]
  std::vector<int64_t> mask;  // [text_len], 1 = token, 0 = padding
  int64_t seq_len = 0;        // number of tokens including eos (the reference's seq_lens)
};

class T5Tokenizer {
 public:
  static constexpr int64_t kPadId = 0;
  static constexpr int64_t kEosId = 1;

  // Loads spiece.model; throws std::runtime_error naming the file when it cannot.
  T5Tokenizer(const std::string& spiece_model_path, int64_t text_len);
  ~T5Tokenizer();
  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;

  // Cleans `prompt` (clean_prompt) and tokenizes it.
  Tokens encode(const std::string& prompt) const;
  // Tokenizes text that is already cleaned (no cleaning step).
  Tokens encode_clean(const std::string& cleaned) const;

  int64_t text_len() const { return text_len_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  int64_t text_len_ = 0;
};

}  // namespace reel::wan
