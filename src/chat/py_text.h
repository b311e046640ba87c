// Python `str` semantics over UTF-8. Chat templates are Jinja, which runs Python string
// operations (len, slicing, strip, split, upper, repr, float formatting...); lowbit must
// reproduce CPython's results byte for byte, so these helpers work on code points, not bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::jinja::py {

// UTF-8 <-> code points. Invalid bytes decode to U+FFFD (inputs come from validated JSON).
std::u32string decode(std::string_view utf8);
std::string encode(std::u32string_view text);
void append_utf8(std::string& out, char32_t cp);
// Decodes the code point at text[i] and advances i past it.
char32_t next_code_point(std::string_view text, size_t& i);
bool is_ascii(std::string_view text);
// Number of code points, as Python's len(str).
size_t length(std::string_view text);
// Code-point index of a byte offset (for str.find and friends).
size_t code_point_index(std::string_view text, size_t byte_offset);

// str.isspace() for one code point (also what Python's `\s` matches).
bool is_space(char32_t cp);
// str.isprintable() for one code point; decides escaping in repr().
bool is_printable(char32_t cp);
bool is_cased(char32_t cp);

std::string upper(std::string_view text);
std::string lower(std::string_view text);
std::string title(std::string_view text);       // str.title()
std::string capitalize(std::string_view text);  // str.capitalize()
bool is_lower(std::string_view text);           // str.islower()
bool is_upper(std::string_view text);           // str.isupper()

// str.strip / lstrip / rstrip; `chars` unset means whitespace.
std::string strip(std::string_view text, const std::optional<std::string>& chars, bool left,
                  bool right);
// str.split / str.rsplit; `sep` unset means runs of whitespace. maxsplit < 0 means no limit.
std::vector<std::string> split(std::string_view text, const std::optional<std::string>& sep,
                               int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view text, const std::optional<std::string>& sep,
                                int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view text, bool keepends);
// str.replace; count < 0 replaces all occurrences.
std::string replace(std::string_view text, std::string_view old, std::string_view with,
                    int64_t count);

// repr() of a str: quotes and escapes exactly as CPython does.
std::string repr(std::string_view text);
// repr() of a float: shortest round-trip digits, CPython's switch to exponent notation.
std::string float_repr(double value);

// Python's slice.indices(): the positions a[start:stop:step] selects from a sequence of `size`.
std::vector<int64_t> slice_positions(int64_t size, std::optional<int64_t> start,
                                     std::optional<int64_t> stop, std::optional<int64_t> step);

}  // namespace lowbit::jinja::py
