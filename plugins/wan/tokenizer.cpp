// Wan 2.1 prompt cleaning and SentencePiece tokenization; see tokenizer.hpp.
#include "tokenizer.hpp"

#include <dlfcn.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <stdexcept>
#include <unordered_map>

namespace reel::wan {
namespace {

// ---- UTF-8 <-> code points (invalid bytes become U+FFFD, as Python's "replace") ----

std::u32string decode_utf8(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    int len = (c >= 0xF0 && c <= 0xF4) ? 4 : (c >= 0xE0) && c < 0xF0 ? 3 : (c >= 0xC2 && c < 0xE0) ? 2 : 0;
    char32_t cp = len == 4 ? (c & 0x07) : len == 3 ? (c & 0x0F) : (c & 0x1F);
    bool ok = len > 0 && i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
      ok = false;
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

// ---- the entity table ----

struct EntityTable {
  // Keys are names as Python's html.entities.html5 spells them: "amp;" always, and
  // also "amp" for the legacy entities HTML5 accepts without the semicolon.
  std::unordered_map<std::string, std::u32string> names;

  EntityTable() {
    // Latin-1 (U+00A0..U+00FF): all are legacy, so valid with and without ';'.
    static const char* latin1[96] = {
        "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",    "copy",
        "ordf",   "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn", "sup2",   "sup3",
        "acute",  "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",   "raquo",  "frac14", "frac12",
        "frac34", "iquest", "Agrave", "Aacute", "Acirc",  "Atilde", "Auml",   "Aring",  "AElig",  "Ccedil",
        "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave", "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde",
        "Ograve", "Oacute", "Ocirc",  "Otilde", "Ouml",   "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",
        "Uuml",   "Yacute", "THORN",  "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",
        "aelig",  "ccedil", "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",
        "eth",    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave",
        "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};
    for (int i = 0; i < 96; ++i) legacy(latin1[i], std::u32string(1, static_cast<char32_t>(0xA0 + i)));
    legacy("amp", U"&");
    legacy("AMP", U"&");
    legacy("lt", U"<");
    legacy("LT", U"<");
    legacy("gt", U">");
    legacy("GT", U">");
    legacy("quot", U"\"");
    legacy("QUOT", U"\"");
    legacy("COPY", U"\u00A9");
    legacy("REG", U"\u00AE");
    // Semicolon-only names (HTML5 table values).
    const std::pair<const char*, char32_t> others[] = {
        {"apos", 0x27},    {"Tab", 0x09},     {"NewLine", 0x0A}, {"excl", 0x21},    {"num", 0x23},
        {"dollar", 0x24},  {"percnt", 0x25},  {"lpar", 0x28},    {"rpar", 0x29},    {"ast", 0x2A},
        {"plus", 0x2B},    {"comma", 0x2C},   {"period", 0x2E},  {"sol", 0x2F},     {"colon", 0x3A},
        {"semi", 0x3B},    {"equals", 0x3D},  {"quest", 0x3F},   {"commat", 0x40},  {"lsqb", 0x5B},
        {"lbrack", 0x5B},  {"bsol", 0x5C},    {"rsqb", 0x5D},    {"rbrack", 0x5D},  {"Hat", 0x5E},
        {"lowbar", 0x5F},  {"grave", 0x60},   {"lcub", 0x7B},    {"lbrace", 0x7B},  {"verbar", 0x7C},
        {"vert", 0x7C},    {"rcub", 0x7D},    {"rbrace", 0x7D},  {"OElig", 0x152},  {"oelig", 0x153},
        {"Scaron", 0x160}, {"scaron", 0x161}, {"Yuml", 0x178},   {"fnof", 0x192},   {"circ", 0x2C6},
        {"tilde", 0x2DC},  {"ensp", 0x2002},  {"emsp", 0x2003},  {"thinsp", 0x2009}, {"zwnj", 0x200C},
        {"zwj", 0x200D},   {"lrm", 0x200E},   {"rlm", 0x200F},   {"ndash", 0x2013}, {"mdash", 0x2014},
        {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"sbquo", 0x201A}, {"ldquo", 0x201C}, {"rdquo", 0x201D},
        {"bdquo", 0x201E}, {"dagger", 0x2020}, {"Dagger", 0x2021}, {"bull", 0x2022}, {"hellip", 0x2026},
        {"permil", 0x2030}, {"prime", 0x2032}, {"Prime", 0x2033}, {"lsaquo", 0x2039}, {"rsaquo", 0x203A},
        {"oline", 0x203E}, {"frasl", 0x2044}, {"euro", 0x20AC},  {"trade", 0x2122}, {"TRADE", 0x2122},
        {"larr", 0x2190},  {"uarr", 0x2191},  {"rarr", 0x2192},  {"darr", 0x2193},  {"harr", 0x2194},
        {"minus", 0x2212}, {"infin", 0x221E}, {"ne", 0x2260},    {"le", 0x2264},    {"ge", 0x2265},
        {"asymp", 0x2248}, {"sum", 0x2211},   {"prod", 0x220F},  {"radic", 0x221A}, {"deg", 0xB0},
        {"hearts", 0x2665}, {"spades", 0x2660}, {"clubs", 0x2663}, {"diams", 0x2666}, {"star", 0x2606},
        {"starf", 0x2605}, {"check", 0x2713}, {"cross", 0x2717}, {"Alpha", 0x391},  {"alpha", 0x3B1},
        {"Beta", 0x392},   {"beta", 0x3B2},   {"Gamma", 0x393},  {"gamma", 0x3B3},  {"Delta", 0x394},
        {"delta", 0x3B4},  {"epsilon", 0x3B5}, {"theta", 0x3B8}, {"lambda", 0x3BB}, {"mu", 0x3BC},
        {"pi", 0x3C0},     {"Pi", 0x3A0},     {"sigma", 0x3C3},  {"Sigma", 0x3A3},  {"tau", 0x3C4},
        {"phi", 0x3C6},    {"omega", 0x3C9},  {"Omega", 0x3A9}};
    for (const auto& [name, cp] : others) names[std::string(name) + ";"] = std::u32string(1, cp);
  }

  void legacy(const std::string& name, const std::u32string& value) {
    names[name] = value;
    names[name + ";"] = value;
  }

  const std::u32string* find(const std::string& key) const {
    auto it = names.find(key);
    return it == names.end() ? nullptr : &it->second;
  }
};

const EntityTable& entities() {
  static const EntityTable table;
  return table;
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex(char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_alnum(char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Python html._replace_charref for a numeric reference's value.
std::u32string charref(bool overflow, uint64_t num) {
  // html._invalid_charrefs: NUL, CR and the cp1252 remapping of the C1 range.
  static const char32_t cp1252[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                      0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                      0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                      0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  if (overflow || num > 0x10FFFF || (num >= 0xD800 && num <= 0xDFFF) || num == 0) return U"\uFFFD";
  if (num == 0x0D) return U"\r";
  if (num >= 0x80 && num <= 0x9F) return std::u32string(1, cp1252[num - 0x80]);
  // html._invalid_codepoints are dropped.
  if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || (num >= 0x7F && num <= 0x9F) ||
      (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
    return U"";
  return std::u32string(1, static_cast<char32_t>(num));
}

// Parses a numeric reference at s[i] == '&', s[i+1] == '#'. Python's pattern:
// '#[0-9]+;?' or '#[xX][0-9a-fA-F]+;?'. Returns the end index, or i if no match.
size_t parse_numeric(const std::u32string& s, size_t i, std::u32string& value) {
  size_t j = i + 2;
  bool hex = j < s.size() && (s[j] == 'x' || s[j] == 'X');
  if (hex) ++j;
  size_t start = j;
  uint64_t num = 0;
  bool overflow = false;
  while (j < s.size() && (hex ? is_hex(s[j]) : is_digit(s[j]))) {
    char32_t c = s[j];
    uint64_t d = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
    num = num * (hex ? 16 : 10) + d;
    if (num > 0x10FFFF) overflow = true, num = 0x110000;  // keep it bounded
    ++j;
  }
  if (j == start) return i;
  if (j < s.size() && s[j] == ';') ++j;
  value = charref(overflow, num);
  return j;
}

// One pass of Python's html.unescape.
std::u32string unescape_once(const std::u32string& s) {
  const EntityTable& table = entities();
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    if (i + 1 < s.size() && s[i + 1] == '#') {
      std::u32string value;
      size_t end = parse_numeric(s, i, value);
      if (end != i) {
        out += value;
        i = end;
        continue;
      }
      // '&#' not followed by digits matches none of Python's alternatives ('#' is
      // excluded from names): kept literally.
      out.push_back(s[i++]);
      continue;
    }
    // Named: '[^\t\n\f <&#;]{1,32};?'
    size_t j = i + 1;
    while (j < s.size() && j - (i + 1) < 32) {
      char32_t c = s[j];
      if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';') break;
      ++j;
    }
    if (j == i + 1) {
      out.push_back(s[i++]);
      continue;
    }
    if (j < s.size() && s[j] == ';') ++j;
    std::u32string name32 = s.substr(i + 1, j - (i + 1));
    std::string name = encode_utf8(name32);
    if (const auto* v = table.find(name)) {
      out += *v;
      i = j;
      continue;
    }
    // The longest legacy prefix (names accepted without ';'), as Python does.
    bool found = false;
    for (size_t x = name32.size() - 1; x > 1; --x) {
      if (const auto* v = table.find(encode_utf8(name32.substr(0, x)))) {
        out += *v;
        out += name32.substr(x);
        found = true;
        break;
      }
    }
    if (!found) {
      out.push_back('&');
      out += name32;
    }
    i = j;
  }
  return out;
}

// ftfy's unescape_html: only '&#?[0-9A-Za-z]{1,24};' references, semicolon required.
std::u32string ftfy_unescape(const std::u32string& s) {
  const EntityTable& table = entities();
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '&') {
      size_t j = i + 1;
      bool numeric = j < s.size() && s[j] == '#';
      if (numeric) ++j;
      size_t start = j;
      while (j < s.size() && j - start < 24 && is_alnum(s[j])) ++j;
      if (j > start && j < s.size() && s[j] == ';') {
        std::u32string ref = s.substr(i, j + 1 - i);
        if (!numeric) {
          if (const auto* v = table.find(encode_utf8(ref.substr(1)))) {
            out += *v;
            i = j + 1;
            continue;
          }
        } else {
          std::u32string v = unescape_once(ref);
          if (v.find(U';') == std::u32string::npos) {  // ftfy keeps references that did not resolve
            out += v;
            i = j + 1;
            continue;
          }
        }
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

// The parts of ftfy.fix_text (default config) that change well-formed text.
std::u32string ftfy_fix(const std::u32string& in) {
  std::u32string s = in;
  // unescape_html="auto": only when the text has no '<' (looks like it is not HTML).
  if (s.find(U'<') == std::u32string::npos) s = ftfy_unescape(s);
  // remove_terminal_escapes: ESC '[' [0-9;]* [A-Za-z]
  {
    std::u32string t;
    t.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == 0x1B && i + 1 < s.size() && s[i + 1] == '[') {
        size_t j = i + 2;
        while (j < s.size() && (is_digit(s[j]) || s[j] == ';')) ++j;
        if (j < s.size() && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z'))) {
          i = j;
          continue;
        }
      }
      t.push_back(s[i]);
    }
    s.swap(t);
  }
  // fix_c1_controls: C1 characters are read as the windows-1252 bytes they usually were
  // ("sloppy": the five undefined ones stay); html's cp1252 table is the same mapping.
  for (char32_t& c : s)
    if (c >= 0x80 && c <= 0x9F) c = charref(false, c)[0];
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    // remove_control_chars
    if ((c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
        c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC))
      continue;
    // fix_line_breaks: \r\n, \r, U+2028, U+2029, U+0085 -> \n
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out.push_back('\n');
      continue;
    }
    if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back('\n');
      continue;
    }
    // uncurl_quotes
    if (c == 0x2018 || c == 0x2019 || c == 0x201A || c == 0x201B) {
      out.push_back('\'');
      continue;
    }
    if (c == 0x201C || c == 0x201D || c == 0x201E || c == 0x201F) {
      out.push_back('"');
      continue;
    }
    // fix_latin_ligatures
    switch (c) {
      case 0xFB00: out += U"ff"; continue;
      case 0xFB01: out += U"fi"; continue;
      case 0xFB02: out += U"fl"; continue;
      case 0xFB03: out += U"ffi"; continue;
      case 0xFB04: out += U"ffl"; continue;
      case 0xFB05: out += U"\u017Ft"; continue;
      case 0xFB06: out += U"st"; continue;
      case 0x0132: out += U"IJ"; continue;
      case 0x0133: out += U"ij"; continue;
      case 0x0149: out += U"\u02BCn"; continue;
      case 0x01C7: out += U"LJ"; continue;
      case 0x01C8: out += U"Lj"; continue;
      case 0x01C9: out += U"lj"; continue;
      case 0x01CA: out += U"NJ"; continue;
      case 0x01CB: out += U"Nj"; continue;
      case 0x01CC: out += U"nj"; continue;
      default: break;
    }
    out.push_back(c);
  }
  return out;
}

// Unicode White_Space, which the `regex` module's \s and str.strip() match.
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 ||
         (c >= 0x1C && c <= 0x1F);  // str.isspace() also counts these (ftfy removed them already)
}

std::u32string strip(const std::u32string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}


// ---- SentencePiece, loaded in isolation ----
//
// Debian's libsentencepiece.so.0 carries its own protobuf 3.14 and exports those symbols,
// while LibTorch pulls in the system libprotobuf (3.21). Linked normally into one process,
// whichever loads first interposes the other: the process crashes in libprotobuf's static
// initialisers, or sentencepiece's version check throws. So the library is dlopen'ed with
// RTLD_LOCAL (its symbols stay out of the global scope) and RTLD_DEEPBIND (it binds to its
// own protobuf first), and this file references no sentencepiece symbol at link time: the
// object is built by the constructor found with dlsym, methods are called through the
// vtable (they are virtual), and the two non-virtual util::Status members are dlsym'ed.
struct SpLib {
  void (*construct)(void* self) = nullptr;          // SentencePieceProcessor::SentencePieceProcessor()
  void (*status_destroy)(void* self) = nullptr;     // util::Status::~Status()
  std::string (*status_string)(const void* self) = nullptr;  // util::Status::ToString()
  std::string error;
};

const SpLib& sp_lib() {
  static const SpLib lib = [] {
    SpLib l;
    void* h = nullptr;
    for (const char* name : {"libsentencepiece.so.0", "libsentencepiece.so"}) {
      h = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (h) break;
    }
    if (!h) {
      const char* err = dlerror();
      l.error = std::string("cannot load libsentencepiece: ") + (err ? err : "unknown error");
      return l;
    }
    // Member functions take `this` first (Itanium C++ ABI), so plain function pointers fit.
    l.construct = reinterpret_cast<void (*)(void*)>(dlsym(h, "_ZN13sentencepiece22SentencePieceProcessorC1Ev"));
    l.status_destroy = reinterpret_cast<void (*)(void*)>(dlsym(h, "_ZN13sentencepiece4util6StatusD1Ev"));
    l.status_string =
        reinterpret_cast<std::string (*)(const void*)>(dlsym(h, "_ZNK13sentencepiece4util6Status8ToStringB5cxx11Ev"));
    if (!l.construct || !l.status_destroy || !l.status_string)
      l.error = "libsentencepiece lacks the expected SentencePieceProcessor/Status symbols";
    return l;  // the handle stays open for the life of the process
  }();
  return lib;
}

// A util::Status returned by value, held in raw storage so that this file never names its
// out-of-line destructor (C++17 elision constructs the result directly in the storage).
class SpStatus {
 public:
  template <typename F>
  explicit SpStatus(F&& call) {
    new (storage_) sentencepiece::util::Status(call());
  }
  ~SpStatus() { sp_lib().status_destroy(storage_); }
  SpStatus(const SpStatus&) = delete;
  SpStatus& operator=(const SpStatus&) = delete;
  bool ok() const { return get().ok(); }
  std::string message() const { return sp_lib().status_string(storage_); }

 private:
  const sentencepiece::util::Status& get() const {
    return *std::launder(reinterpret_cast<const sentencepiece::util::Status*>(storage_));
  }
  alignas(sentencepiece::util::Status) unsigned char storage_[sizeof(sentencepiece::util::Status)];
};

sentencepiece::SentencePieceProcessor* new_processor() {
  const SpLib& lib = sp_lib();
  if (!lib.error.empty()) throw std::runtime_error(lib.error);
  void* mem = ::operator new(sizeof(sentencepiece::SentencePieceProcessor));
  lib.construct(mem);
  return static_cast<sentencepiece::SentencePieceProcessor*>(mem);
}

}  // namespace

std::string html_unescape(const std::string& utf8) { return encode_utf8(unescape_once(decode_utf8(utf8))); }

std::string clean_prompt(const std::string& utf8) {
  // basic_clean: ftfy.fix_text, html.unescape(html.unescape(.)), strip
  std::u32string s = ftfy_fix(decode_utf8(utf8));
  s = strip(unescape_once(unescape_once(s)));
  // whitespace_clean: re.sub(r'\s+', ' ', .), strip
  std::u32string out;
  out.reserve(s.size());
  bool in_space = false;
  for (char32_t c : s) {
    if (is_space(c)) {
      if (!in_space) out.push_back(' ');
      in_space = true;
    } else {
      out.push_back(c);
      in_space = false;
    }
  }
  return encode_utf8(strip(out));
}

T5Tokenizer::T5Tokenizer(const std::string& spiece_model_path, int64_t text_len)
    : path_(spiece_model_path), text_len_(text_len) {
  if (text_len < 1) throw std::runtime_error("T5Tokenizer: text_len must be >= 1");
  sp_.reset(new_processor());  // deleted through its virtual destructor
  SpStatus status([&] { return sp_->Load(spiece_model_path); });
  if (!status.ok())
    throw std::runtime_error("cannot load SentencePiece model " + spiece_model_path + ": " + status.message());
}

T5Tokenizer::~T5Tokenizer() = default;
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;

Tokens T5Tokenizer::encode(const std::string& prompt) const { return encode_clean(clean_prompt(prompt)); }

Tokens T5Tokenizer::encode_clean(const std::string& cleaned) const {
  std::vector<int> pieces;
  SpStatus status([&] { return sp_->Encode(cleaned, &pieces); });
  if (!status.ok()) throw std::runtime_error("SentencePiece (" + path_ + ") failed: " + status.message());
  // Truncation keeps room for the eos the tokenizer appends (add_special_tokens=True).
  const size_t keep = std::min(pieces.size(), static_cast<size_t>(text_len_ - 1));
  Tokens t;
  t.ids.assign(text_len_, kPadId);
  t.mask.assign(text_len_, 0);
  for (size_t i = 0; i < keep; ++i) t.ids[i] = pieces[i];
  t.ids[keep] = kEosId;
  for (size_t i = 0; i <= keep; ++i) t.mask[i] = 1;
  t.seq_len = static_cast<int64_t>(keep) + 1;
  return t;
}

}  // namespace reel::wan
