// The chat page served at GET / by `lowbit serve`: chat_page.html beside this header, compiled
// into the binary at build time (CMakeLists.txt), so the page needs no files or network at run
// time.
#pragma once

#include <string_view>

namespace lowbit {

// The whole page as UTF-8 HTML (serve it as text/html; charset=utf-8).
std::string_view chat_page_html();

}  // namespace lowbit
