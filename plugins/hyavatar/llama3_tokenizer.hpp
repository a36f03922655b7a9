// Llama3Tokenizer: the LLaVA-LLaMA-3 text encoder's tokenizer, read from the official
// `tokenizer.json` (Hugging Face format) and applied as LlamaTokenizerFast applies it:
// added (special) tokens are matched literally first; the rest is split by the
// pre-tokenizer's regex (taken from the file; the Llama-3 pattern when it names none),
// each piece's UTF-8 bytes are mapped to the byte-level alphabet (GPT-2's
// bytes_to_unicode), and byte-level BPE merges them by rank (with `ignore_merges`, a
// piece that is itself in the vocabulary is one token, as Llama-3's file asks);
// `<|begin_of_text|>` is prepended. The regex runs on ICU, which knows the Unicode
// classes (\p{L}, \p{N}) it uses.
// Thread-safety: immutable after load(); encode() may be called concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace reel::hyavatar {

struct TokenizerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Llama3Tokenizer {
 public:
  // Throws TokenizerError naming the file and what is wrong with it.
  static Llama3Tokenizer load(const std::string& tokenizer_json_path);
  Llama3Tokenizer(Llama3Tokenizer&&) noexcept;
  Llama3Tokenizer& operator=(Llama3Tokenizer&&) noexcept;
  ~Llama3Tokenizer();

  // Ids of `text`, with the begin-of-text id first when the file's post-processor adds it.
  std::vector<int64_t> encode(const std::string& text) const;
  // The pieces encode() tokenizes, in order: added tokens whole, other text as the regex
  // splits it (UTF-8, not yet byte-mapped).
  std::vector<std::string> pre_tokenize(const std::string& text) const;
  // Text of ids (byte-level decoded; added tokens as written).
  std::string decode(const std::vector<int64_t>& ids) const;
  // The id of a token as written in the vocabulary or among the added tokens; -1 if absent.
  int64_t id_of(const std::string& token) const;

  // The pattern Llama-3's tokenizer.json gives its Split pre-tokenizer.
  static const char* const kLlama3Pattern;

 private:
  struct Impl;
  explicit Llama3Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace reel::hyavatar
