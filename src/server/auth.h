// API-key checks. The comparison takes the same time wherever the first difference is, so a
// client cannot find the key byte by byte from response times.
#pragma once

#include <string_view>

namespace lowbit {

// True when a and b are equal; the time depends only on the lengths.
bool constant_time_equals(std::string_view a, std::string_view b);

// The key in an "Authorization: Bearer KEY" header value ("" when absent or another scheme).
std::string_view bearer_token(std::string_view authorization_header);

}  // namespace lowbit
