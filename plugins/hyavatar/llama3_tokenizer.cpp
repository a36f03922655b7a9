#include "llama3_tokenizer.hpp"

#include <algorithm>
#include <climits>
#include <fstream>

#include <nlohmann/json.hpp>
#include <unicode/regex.h>
#include <unicode/unistr.h>

namespace reel::hyavatar {

using nlohmann::json;

const char* const Llama3Tokenizer::kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 to
// U+0100 onwards, so every byte is one visible character. As UTF-8 strings.
std::vector<std::string> byte_alphabet() {
  std::vector<int> chars(256, -1);
  auto keep = [&](int lo, int hi) {
    for (int b = lo; b <= hi; ++b) chars[static_cast<size_t>(b)] = b;
  };
  keep('!', '~');
  keep(0xA1, 0xAC);
  keep(0xAE, 0xFF);
  int next = 256;
  for (int b = 0; b < 256; ++b)
    if (chars[static_cast<size_t>(b)] < 0) chars[static_cast<size_t>(b)] = next++;
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) {
    std::string s;
    icu::UnicodeString(static_cast<UChar32>(chars[static_cast<size_t>(b)])).toUTF8String(s);
    out[static_cast<size_t>(b)] = s;
  }
  return out;
}

// Splits a UTF-8 string into its characters (the BPE's initial symbols).
std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace

struct Llama3Tokenizer::Impl {
  std::string path;
  std::unordered_map<std::string, int64_t> vocab;
  std::unordered_map<int64_t, std::string> by_id;
  std::map<std::pair<std::string, std::string>, int> merge_rank;
  bool ignore_merges = false;
  std::vector<std::pair<std::string, int64_t>> added;   // longest first, for literal matching
  std::unique_ptr<icu::RegexPattern> pattern;
  int64_t bos = -1;
  std::vector<std::string> alphabet = byte_alphabet();
  std::unordered_map<std::string, int> byte_of;   // alphabet character -> byte

  [[noreturn]] void fail(const std::string& what) const {
    throw TokenizerError("tokenizer " + path + ": " + what + "; use the tokenizer.json shipped with the model");
  }

  std::vector<int64_t> bpe(const std::string& piece) const {
    std::string mapped;
    for (unsigned char b : piece) mapped += alphabet[b];
    if (ignore_merges)
      if (auto it = vocab.find(mapped); it != vocab.end()) return {it->second};
    std::vector<std::string> symbols = utf8_chars(mapped);
    while (symbols.size() > 1) {
      int best = INT_MAX;
      size_t at = 0;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        auto it = merge_rank.find({symbols[i], symbols[i + 1]});
        if (it != merge_rank.end() && it->second < best) {
          best = it->second;
          at = i;
        }
      }
      if (best == INT_MAX) break;
      symbols[at] += symbols[at + 1];
      symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    }
    std::vector<int64_t> ids;
    for (const auto& s : symbols) {
      auto it = vocab.find(s);
      if (it == vocab.end()) fail("no vocabulary entry for the symbol '" + s + "'");
      ids.push_back(it->second);
    }
    return ids;
  }

  void split_by_regex(const std::string& text, std::vector<std::string>& out) const {
    if (text.empty()) return;
    UErrorCode status = U_ZERO_ERROR;
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(text);
    std::unique_ptr<icu::RegexMatcher> m(pattern->matcher(u, status));
    if (U_FAILURE(status)) fail(std::string("the pre-tokenizer regex cannot run: ") + u_errorName(status));
    int32_t last = 0;
    auto emit = [&](int32_t from, int32_t to) {
      if (to <= from) return;
      std::string s;
      u.tempSubStringBetween(from, to).toUTF8String(s);
      out.push_back(s);
    };
    while (m->find(status) && U_SUCCESS(status)) {
      const int32_t start = m->start(status), end = m->end(status);
      emit(last, start);   // "Isolated" splitting keeps text between matches as pieces too
      emit(start, end);
      last = end;
    }
    emit(last, u.length());
  }
};

Llama3Tokenizer::Llama3Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Llama3Tokenizer::Llama3Tokenizer(Llama3Tokenizer&&) noexcept = default;
Llama3Tokenizer& Llama3Tokenizer::operator=(Llama3Tokenizer&&) noexcept = default;
Llama3Tokenizer::~Llama3Tokenizer() = default;

Llama3Tokenizer Llama3Tokenizer::load(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  std::ifstream f(path);
  if (!f) throw TokenizerError("tokenizer " + path + " cannot be read; check the model folder's tokenizer.json");
  json j;
  try {
    j = json::parse(f);
  } catch (const std::exception& e) {
    impl->fail(std::string("not valid JSON (") + e.what() + ")");
  }
  const json& model = j.value("model", json::object());
  if (model.value("type", "") != "BPE") impl->fail("its model is not BPE");
  if (!model.contains("vocab") || !model["vocab"].is_object()) impl->fail("it has no model.vocab");
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    impl->vocab[it.key()] = it.value().get<int64_t>();
    impl->by_id[it.value().get<int64_t>()] = it.key();
  }
  int rank = 0;
  for (const auto& m : model.value("merges", json::array())) {
    std::string a, b;
    if (m.is_string()) {   // "a b"
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) impl->fail("merge '" + s + "' is not two symbols");
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2) {
      a = m[0].get<std::string>(), b = m[1].get<std::string>();
    } else {
      impl->fail("a merge is neither \"a b\" nor [a, b]");
    }
    impl->merge_rank.emplace(std::make_pair(a, b), rank++);
  }
  impl->ignore_merges = model.value("ignore_merges", false);
  for (const auto& t : j.value("added_tokens", json::array())) {
    impl->added.emplace_back(t.at("content").get<std::string>(), t.at("id").get<int64_t>());
    impl->by_id[t.at("id").get<int64_t>()] = t.at("content").get<std::string>();
  }
  std::sort(impl->added.begin(), impl->added.end(),
            [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
  for (int b = 0; b < 256; ++b) impl->byte_of[impl->alphabet[static_cast<size_t>(b)]] = b;

  // The Split pre-tokenizer's regex, wherever the file nests it.
  std::string regex = kLlama3Pattern;
  const json& pre = j.value("pre_tokenizer", json::object());
  auto find_split = [&](const json& p) {
    if (p.is_object() && p.value("type", "") == "Split" && p.contains("pattern") && p["pattern"].contains("Regex"))
      regex = p["pattern"]["Regex"].get<std::string>();
  };
  find_split(pre);
  for (const auto& p : pre.value("pretokenizers", json::array())) find_split(p);
  UErrorCode status = U_ZERO_ERROR;
  UParseError perr;
  impl->pattern.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(regex), 0, perr, status));
  if (U_FAILURE(status)) impl->fail(std::string("its pre-tokenizer regex does not compile: ") + u_errorName(status));

  // Llama-3's post-processor prepends <|begin_of_text|>.
  const json& post = j.value("post_processor", json::object());
  const std::string dumped = post.dump();
  for (const auto& [content, id] : impl->added)
    if (content == "<|begin_of_text|>" && dumped.find(content) != std::string::npos) impl->bos = id;
  return Llama3Tokenizer(std::move(impl));
}

std::vector<std::string> Llama3Tokenizer::pre_tokenize(const std::string& text) const {
  std::vector<std::string> out;
  size_t plain_from = 0, i = 0;
  while (i < text.size()) {
    bool matched = false;
    for (const auto& [content, id] : impl_->added) {
      if (!content.empty() && text.compare(i, content.size(), content) == 0) {
        impl_->split_by_regex(text.substr(plain_from, i - plain_from), out);
        out.push_back(content);
        i += content.size();
        plain_from = i;
        matched = true;
        break;
      }
    }
    if (!matched) ++i;
  }
  impl_->split_by_regex(text.substr(plain_from), out);
  return out;
}

std::vector<int64_t> Llama3Tokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  if (impl_->bos >= 0) ids.push_back(impl_->bos);
  for (const auto& piece : pre_tokenize(text)) {
    auto special = std::find_if(impl_->added.begin(), impl_->added.end(),
                                [&](const auto& a) { return a.first == piece; });
    if (special != impl_->added.end()) {
      ids.push_back(special->second);
      continue;
    }
    for (int64_t id : impl_->bpe(piece)) ids.push_back(id);
  }
  return ids;
}

std::string Llama3Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) {
    auto it = impl_->by_id.find(id);
    if (it == impl_->by_id.end()) throw TokenizerError("tokenizer " + impl_->path + ": no token has id " + std::to_string(id));
    bool added = std::any_of(impl_->added.begin(), impl_->added.end(), [&](const auto& a) { return a.second == id; });
    if (added) {
      out += it->second;
      continue;
    }
    for (const auto& ch : utf8_chars(it->second)) {
      auto b = impl_->byte_of.find(ch);
      if (b == impl_->byte_of.end()) throw TokenizerError("tokenizer " + impl_->path + ": token " + std::to_string(id) +
                                                          " is not in the byte-level alphabet");
      out += static_cast<char>(b->second);
    }
  }
  return out;
}

int64_t Llama3Tokenizer::id_of(const std::string& token) const {
  for (const auto& [content, id] : impl_->added)
    if (content == token) return id;
  auto it = impl_->vocab.find(token);
  return it == impl_->vocab.end() ? -1 : it->second;
}

}  // namespace reel::hyavatar
