// CLIP's BPE tokenizer; see clip_tokenizer.hpp. The steps follow transformers 4.45
// CLIPTokenizer (slow) and BasicTokenizer in the same order.
#include "clip_tokenizer.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "unicode_text.hpp"

namespace reel::hyavatar {

namespace {

using unicode::append_utf8;
using unicode::decode_utf8;
using unicode::encode_utf8;
using unicode::is_letter;
using unicode::is_number;
using unicode::to_lower;

// ---- Unicode classes -----------------------------------------------------------------

// BasicTokenizer._is_whitespace: space, \t \n \r, and category Zs.
bool is_whitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// BasicTokenizer._is_control: category C* except \t \n \r (Cc, the common Cf, Co).
bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  if (c < 0x20 || (c >= 0x7F && c <= 0x9F)) return true;
  if (c == 0xAD || (c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x180E ||
      (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x2064) ||
      (c >= 0x2066 && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB))
    return true;
  return (c >= 0xE000 && c <= 0xF8FF) || (c >= 0xD800 && c <= 0xDFFF);
}

bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// ---- files -----------------------------------------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path + " (the CLIP tokenizer needs vocab.json and merges.txt)");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// A special token in tokenizer_config.json is a string or an AddedToken dict.
std::string token_text(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content")) return j["content"].get<std::string>();
  return {};
}

constexpr const char* kEndOfWord = "</w>";
// CLIPTokenizer reads merges.txt lines [1, 49152 - 256 - 2 + 1): at most 48894 merges.
constexpr size_t kMaxMerges = 49152 - 256 - 2;

}  // namespace

std::string clip_basic_clean(const std::string& utf8_text) {
  // _clean_text: drop NUL, U+FFFD and control characters; whitespace -> ' '.
  // _tokenize_chinese_chars: spaces around CJK ideographs.
  std::vector<char32_t> cleaned;
  for (char32_t c : decode_utf8(utf8_text)) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      cleaned.push_back(' ');
    } else if (is_cjk(c)) {
      cleaned.push_back(' ');
      cleaned.push_back(c);
      cleaned.push_back(' ');
    } else {
      cleaned.push_back(c);
    }
  }
  // whitespace_tokenize, lower-case each piece (accents kept), join with one space.
  std::string out;
  std::vector<char32_t> word;
  auto flush = [&]() {
    if (word.empty()) return;
    if (!out.empty()) out += ' ';
    for (char32_t& c : word) c = to_lower(c);
    out += encode_utf8(word);
    word.clear();
  };
  for (char32_t c : cleaned) {
    if (c == ' ') {
      flush();
    } else {
      word.push_back(c);
    }
  }
  flush();
  return out;
}

ClipTokenizer ClipTokenizer::byte_level(int64_t max_length) {
  if (max_length < 2) throw std::invalid_argument("CLIP tokenizer max_length must be at least 2 (bos and eos)");
  ClipTokenizer t;
  t.max_length_ = max_length;
  t.byte_to_unicode_ = unicode::byte_to_unicode();
  for (const std::string& symbol : t.byte_to_unicode_) t.vocab_.emplace(symbol, static_cast<int64_t>(t.vocab_.size()));
  for (const std::string& symbol : t.byte_to_unicode_) t.vocab_.emplace(symbol + "</w>", static_cast<int64_t>(t.vocab_.size()));
  t.bos_ = "<|startoftext|>";
  t.eos_ = "<|endoftext|>";
  t.bos_id_ = t.vocab_.emplace(t.bos_, static_cast<int64_t>(t.vocab_.size())).first->second;
  t.eos_id_ = t.vocab_.emplace(t.eos_, static_cast<int64_t>(t.vocab_.size())).first->second;
  t.pad_id_ = t.unk_id_ = t.eos_id_;
  return t;
}

ClipTokenizer ClipTokenizer::load(const std::string& dir, int64_t max_length) {
  if (max_length < 2) throw std::invalid_argument("CLIP tokenizer max_length must be at least 2 (bos and eos)");
  ClipTokenizer t;
  t.max_length_ = max_length;
  t.byte_to_unicode_ = unicode::byte_to_unicode();

  const std::string vocab_path = dir + "/vocab.json";
  try {
    auto vocab = nlohmann::json::parse(read_file(vocab_path));
    for (auto it = vocab.begin(); it != vocab.end(); ++it) t.vocab_[it.key()] = it.value().get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(vocab_path + ": not a token -> id JSON object (" + e.what() + ")");
  }

  const std::string merges_path = dir + "/merges.txt";
  std::string merges = read_file(merges_path);
  // Python's str.strip() then split("\n"); the first line is the "#version" header.
  const auto first = merges.find_first_not_of(" \t\r\n"), last = merges.find_last_not_of(" \t\r\n");
  merges = first == std::string::npos ? "" : merges.substr(first, last - first + 1);
  std::istringstream lines(merges);
  std::string line;
  size_t line_no = 0;
  while (std::getline(lines, line)) {
    if (line_no++ == 0) continue;
    if (t.merge_rank_.size() >= kMaxMerges) break;
    std::istringstream parts(line);
    std::string a, b, extra;
    if (!(parts >> a >> b) || (parts >> extra))
      throw std::runtime_error(merges_path + ": line " + std::to_string(line_no) + " is not a pair of symbols: \"" + line +
                               "\"");
    t.merge_rank_.emplace(std::make_pair(a, b), static_cast<int64_t>(t.merge_rank_.size()));
  }

  // Special tokens: tokenizer_config.json, then special_tokens_map.json, then CLIP's own.
  std::string bos = "<|startoftext|>", eos = "<|endoftext|>", pad = "<|endoftext|>", unk = "<|endoftext|>";
  for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {
    std::ifstream f(dir + "/" + name);
    if (!f) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(dir + "/" + name + ": invalid JSON (" + e.what() + ")");
    }
    auto take = [&](const char* key, std::string& into) {
      if (j.contains(key) && !token_text(j[key]).empty()) into = token_text(j[key]);
    };
    take("bos_token", bos);
    take("eos_token", eos);
    take("pad_token", pad);
    take("unk_token", unk);
  }
  auto id = [&](const std::string& tok, const char* role) {
    auto it = t.vocab_.find(tok);
    if (it == t.vocab_.end())
      throw std::runtime_error(vocab_path + ": the " + std::string(role) + " token \"" + tok + "\" is not in the vocabulary");
    return it->second;
  };
  t.bos_ = bos;
  t.eos_ = eos;
  t.bos_id_ = id(bos, "bos");
  t.eos_id_ = id(eos, "eos");
  t.pad_id_ = id(pad, "pad");
  t.unk_id_ = id(unk, "unk");
  return t;
}

int64_t ClipTokenizer::id_of(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? unk_id_ : it->second;
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& piece) const {
  if (piece == bos_ || piece == eos_) return {piece};  // CLIPTokenizer's bpe cache holds them as they are
  std::vector<std::string> word;
  for (char32_t c : decode_utf8(piece)) {
    std::string s;
    append_utf8(s, c);
    word.push_back(s);
  }
  if (word.empty()) return {};
  word.back() += kEndOfWord;
  while (word.size() > 1) {
    // The lowest-ranked adjacent pair; stop when no pair is a merge.
    int64_t best = std::numeric_limits<int64_t>::max();
    std::pair<std::string, std::string> best_pair;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = merge_rank_.find({word[i], word[i + 1]});
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        best_pair = it->first;
      }
    }
    if (best == std::numeric_limits<int64_t>::max()) break;
    // Merge every occurrence, left to right, without overlaps.
    std::vector<std::string> merged;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == best_pair.first && word[i + 1] == best_pair.second) {
        merged.push_back(word[i] + word[i + 1]);
        i += 2;
      } else {
        merged.push_back(word[i]);
        ++i;
      }
    }
    word.swap(merged);
  }
  return word;
}

std::vector<std::string> ClipTokenizer::tokenize(const std::string& utf8_text) const {
  std::vector<std::string> tokens;
  // Step 1: split out the literal special tokens (PreTrainedTokenizer's added-token trie).
  std::vector<std::pair<std::string, bool>> spans;  // (text, is_special)
  size_t pos = 0;
  while (pos <= utf8_text.size()) {
    size_t hit = std::string::npos;
    const std::string* which = nullptr;
    for (const std::string* s : {&bos_, &eos_}) {
      const size_t at = utf8_text.find(*s, pos);
      if (at != std::string::npos && (hit == std::string::npos || at < hit || (at == hit && s->size() > which->size()))) {
        hit = at;
        which = s;
      }
    }
    if (hit == std::string::npos) {
      spans.emplace_back(utf8_text.substr(pos), false);
      break;
    }
    spans.emplace_back(utf8_text.substr(pos, hit - pos), false);
    spans.emplace_back(*which, true);
    pos = hit + which->size();
  }

  static const char* const kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  for (const auto& span : spans) {
    if (span.second) {
      tokens.push_back(span.first);
      continue;
    }
    if (span.first.empty()) continue;
    // Step 2, then step 3's pattern over the cleaned text.
    const std::vector<char32_t> text = decode_utf8(clip_basic_clean(span.first));
    const std::vector<char32_t> specials[] = {decode_utf8(bos_), decode_utf8(eos_)};
    for (size_t i = 0; i < text.size();) {
      size_t end = i;
      // <|startoftext|> / <|endoftext|> typed in another case were lower-cased into them.
      for (const std::vector<char32_t>& sc : specials) {
        if (end == i && i + sc.size() <= text.size() && std::equal(sc.begin(), sc.end(), text.begin() + i))
          end = i + sc.size();
      }
      if (end == i && text[i] == '\'') {
        for (const char* c : kContractions) {
          const std::string cs(c);
          size_t k = 0;
          while (k < cs.size() && i + k < text.size() && to_lower(text[i + k]) == static_cast<char32_t>(cs[k])) ++k;
          if (k == cs.size()) {
            end = i + k;
            break;
          }
        }
      }
      if (end == i && is_letter(text[i])) {
        end = i;
        while (end < text.size() && is_letter(text[end])) ++end;
      } else if (end == i && is_number(text[i])) {
        end = i + 1;
      } else if (end == i && text[i] != ' ') {
        end = i;
        while (end < text.size() && text[end] != ' ' && !is_letter(text[end]) && !is_number(text[end])) ++end;
      }
      if (end == i) {  // a space between pieces
        ++i;
        continue;
      }
      const std::string raw = encode_utf8(std::vector<char32_t>(text.begin() + i, text.begin() + end));
      i = end;
      std::string mapped;
      if (raw == bos_ || raw == eos_) {
        mapped = raw;
      } else {
        for (unsigned char b : raw) mapped += byte_to_unicode_[b];
      }
      for (std::string& s : bpe(mapped)) tokens.push_back(std::move(s));
    }
  }
  return tokens;
}

ClipTokens ClipTokenizer::encode(const std::string& utf8_text) const {
  std::vector<std::string> pieces = tokenize(utf8_text);
  const size_t room = static_cast<size_t>(max_length_ - 2);
  if (pieces.size() > room) pieces.resize(room);  // truncation=True cuts on the right
  ClipTokens t;
  t.ids.push_back(bos_id_);
  for (const std::string& p : pieces) t.ids.push_back(id_of(p));
  t.ids.push_back(eos_id_);
  t.n_valid = static_cast<int64_t>(t.ids.size());
  t.mask.assign(t.ids.size(), 1);
  t.ids.resize(static_cast<size_t>(max_length_), pad_id_);
  t.mask.resize(static_cast<size_t>(max_length_), 0);
  return t;
}

}  // namespace reel::hyavatar
