// Small Unicode helpers the prompt tokenizers share (UTF-8 <-> code points and the
// character classes their pre-tokenizer patterns use). The classes are Unicode's general
// categories from ICU's character database (\p{L}: L*, \p{N}: N*), as the reference's
// regex engines define them; lower-casing is ICU's simple case mapping.
// Pure functions; reentrant.
#pragma once

#include <string>
#include <vector>

namespace reel::hyavatar::unicode {

// Malformed bytes decode to U+FFFD, one per byte.
std::vector<char32_t> decode_utf8(const std::string& s);
void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(const std::vector<char32_t>& cps);

bool is_letter(char32_t c);  // \p{L}
bool is_number(char32_t c);  // \p{N}
bool is_space(char32_t c);   // \s (Python regex / Unicode White_Space)
char32_t to_lower(char32_t c);

// GPT-2's bytes_to_unicode table: byte -> UTF-8 of the printable stand-in character.
const std::vector<std::string>& byte_to_unicode();

}  // namespace reel::hyavatar::unicode
