// Llama-3 tokenization; see llama_tokenizer.hpp.
#include "llama_tokenizer.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "unicode_text.hpp"

namespace reel::hyavatar {

using namespace unicode;

namespace {
bool is_newline(char32_t c) { return c == '\r' || c == '\n'; }
}  // namespace

LlavaTokens pad_llava_tokens(std::vector<int64_t> ids, int64_t max_length, int64_t pad_id) {
  if (static_cast<int64_t>(ids.size()) > max_length) ids.resize(static_cast<size_t>(max_length));
  LlavaTokens t;
  t.n_valid = static_cast<int64_t>(ids.size());
  t.mask.assign(ids.size(), 1);
  t.ids = std::move(ids);
  t.ids.resize(static_cast<size_t>(max_length), pad_id);
  t.mask.resize(static_cast<size_t>(max_length), 0);
  return t;
}

std::vector<std::string> llama3_pretokenize(const std::string& utf8_text) {
  const std::vector<char32_t> t = decode_utf8(utf8_text);
  const size_t n = t.size();
  std::vector<std::string> out;
  static const char* const kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  auto letters_from = [&](size_t i) {
    while (i < n && is_letter(t[i])) ++i;
    return i;
  };
  auto other = [&](char32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); };
  for (size_t i = 0; i < n;) {
    size_t end = i;
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (t[i] == '\'') {
      for (const char* c : kContractions) {
        const std::string cs(c);
        size_t k = 0;
        while (k < cs.size() && i + k < n && to_lower(t[i + k]) == static_cast<char32_t>(cs[k])) ++k;
        if (k == cs.size()) {
          end = i + k;
          break;
        }
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (end == i) {
      if (is_letter(t[i])) {
        end = letters_from(i);
      } else if (!is_newline(t[i]) && !is_number(t[i]) && i + 1 < n && is_letter(t[i + 1])) {
        end = letters_from(i + 1);
      }
    }
    // \p{N}{1,3}
    if (end == i && is_number(t[i])) {
      end = i;
      while (end < n && end - i < 3 && is_number(t[end])) ++end;
    }
    // ' '?[^\s\p{L}\p{N}]+[\r\n]*
    if (end == i) {
      size_t j = i + (t[i] == ' ' ? 1 : 0);
      if (j < n && other(t[j])) {
        while (j < n && other(t[j])) ++j;
        while (j < n && is_newline(t[j])) ++j;
        end = j;
      }
    }
    if (end == i && is_space(t[i])) {
      size_t run = i;
      while (run < n && is_space(t[run])) ++run;
      // \s*[\r\n]+ : up to the last newline of the whitespace run.
      size_t last_nl = run;
      for (size_t k = i; k < run; ++k)
        if (is_newline(t[k])) last_nl = k;
      if (last_nl != run) {
        end = last_nl + 1;
      } else if (run == n) {  // \s+(?!\S) at the end of the text
        end = run;
      } else if (run - i > 1) {  // \s+(?!\S): leave the last space to the next piece
        end = run - 1;
      } else {  // \s+
        end = run;
      }
    }
    if (end == i) end = i + 1;  // cannot happen with the classes above; never loop forever
    out.push_back(encode_utf8(std::vector<char32_t>(t.begin() + i, t.begin() + end)));
    i = end;
  }
  return out;
}

Llama3Tokenizer Llama3Tokenizer::from_tokenizer_json(const std::string& path, const std::string& bos) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path + " (the Llama-3 tokenizer.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": invalid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.contains("model") || j["model"].value("type", std::string()) != "BPE")
    throw std::runtime_error(path + ": not a BPE tokenizer.json (model.type must be \"BPE\")");
  const nlohmann::json& m = j["model"];
  Llama3Tokenizer t;
  t.bpe_ = true;
  t.ignore_merges_ = m.value("ignore_merges", false);
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) t.vocab_[it.key()] = it.value().get<int64_t>();
  int64_t rank = 0;
  for (const auto& merge : m["merges"]) {
    std::string a, b;
    if (merge.is_string()) {  // "a b"
      const std::string s = merge.get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos) throw std::runtime_error(path + ": merge \"" + s + "\" is not a pair");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {  // ["a", "b"]
      a = merge.at(0).get<std::string>();
      b = merge.at(1).get<std::string>();
    }
    t.merge_rank_.emplace(std::make_pair(a, b), rank++);
  }
  if (j.contains("added_tokens"))
    for (const auto& a : j["added_tokens"]) {
      const std::string content = a.at("content").get<std::string>();
      t.vocab_[content] = a.at("id").get<int64_t>();
      t.specials_.push_back(content);
    }
  std::sort(t.specials_.begin(), t.specials_.end(), [](const std::string& x, const std::string& y) { return x.size() > y.size(); });
  t.bos_ = bos;
  if (!t.vocab_.count(bos)) throw std::runtime_error(path + ": the BOS token \"" + bos + "\" is not in the vocabulary");
  return t;
}

Llama3Tokenizer Llama3Tokenizer::word_level(const std::vector<std::string>& vocab, const std::vector<std::string>& specials,
                                            const std::string& bos, const std::string& unk) {
  Llama3Tokenizer t;
  for (size_t i = 0; i < vocab.size(); ++i) t.vocab_.emplace(vocab[i], static_cast<int64_t>(i));
  t.specials_ = specials;
  std::sort(t.specials_.begin(), t.specials_.end(), [](const std::string& x, const std::string& y) { return x.size() > y.size(); });
  t.bos_ = bos;
  t.unk_ = unk;
  for (const std::string& s : specials)
    if (!t.vocab_.count(s)) throw std::invalid_argument("word-level tokenizer: special token \"" + s + "\" not in the vocabulary");
  if (!t.vocab_.count(bos)) throw std::invalid_argument("word-level tokenizer: BOS \"" + bos + "\" not in the vocabulary");
  return t;
}

int64_t Llama3Tokenizer::id_of(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it != vocab_.end()) return it->second;
  if (!unk_.empty()) return vocab_.at(unk_);
  throw std::invalid_argument("Llama-3 tokenizer: token \"" + token + "\" is not in the vocabulary");
}

std::vector<std::string> Llama3Tokenizer::piece_tokens(const std::string& piece) const {
  if (!bpe_) return {piece};
  std::string mapped;
  for (unsigned char b : piece) mapped += byte_to_unicode()[b];
  if (ignore_merges_ && vocab_.count(mapped)) return {mapped};
  std::vector<std::string> word;
  for (char32_t c : decode_utf8(mapped)) {
    std::string s;
    append_utf8(s, c);
    word.push_back(s);
  }
  while (word.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    size_t at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = merge_rank_.find({word[i], word[i + 1]});
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == std::numeric_limits<int64_t>::max()) break;
    // The leftmost occurrence of the best pair first, then the next ones to its right.
    const std::string a = word[at], b = word[at + 1];
    std::vector<std::string> merged(word.begin(), word.begin() + static_cast<std::ptrdiff_t>(at));
    for (size_t i = at; i < word.size();) {
      if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
        merged.push_back(a + b);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word.swap(merged);
  }
  return word;
}

std::vector<std::string> Llama3Tokenizer::tokens(const std::string& text) const {
  std::vector<std::string> out{bos_};
  std::string plain;
  auto flush = [&]() {
    for (const std::string& piece : llama3_pretokenize(plain))
      for (std::string& tok : piece_tokens(piece)) out.push_back(std::move(tok));
    plain.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const std::string* hit = nullptr;
    for (const std::string& s : specials_)
      if (text.compare(i, s.size(), s) == 0) {
        hit = &s;
        break;
      }
    if (hit) {
      flush();
      out.push_back(*hit);
      i += hit->size();
    } else {
      plain += text[i++];
    }
  }
  flush();
  return out;
}

std::vector<int64_t> Llama3Tokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& t : tokens(text)) ids.push_back(id_of(t));
  return ids;
}

}  // namespace reel::hyavatar
