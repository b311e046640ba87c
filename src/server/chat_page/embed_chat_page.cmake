# cmake -DINPUT=chat_page.html -DOUTPUT=chat_page_data.cc -P embed_chat_page.cmake
# Writes a C++ source defining lowbit::chat_page_html() with INPUT's bytes as a char array (a
# byte array, not a string literal: no length limits, no escaping, any encoding). OUTPUT is only
# rewritten when its text changes, so an unchanged page does not recompile.
if(NOT INPUT OR NOT OUTPUT)
  message(FATAL_ERROR "embed_chat_page.cmake: pass -DINPUT=<html file> -DOUTPUT=<.cc file>")
endif()
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
if(hex_length EQUAL 0)
  message(FATAL_ERROR "embed_chat_page.cmake: ${INPUT} is empty")
endif()
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 24 bytes a line (CMake regexes have no {n} repetition, hence the repeated pattern).
string(REPEAT "0x[0-9a-f][0-9a-f]," 24 line_of_bytes)
string(REGEX REPLACE "(${line_of_bytes})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp" "// Generated from ${INPUT} by embed_chat_page.cmake: edit the HTML, not this file.
#include \"server/chat_page/chat_page.h\"

namespace lowbit {
namespace {

// unsigned: UTF-8 bytes over 0x7f would be narrowing conversions into a char initializer.
constexpr unsigned char kChatPageHtml[] = {
    ${bytes}
};

}  // namespace

std::string_view chat_page_html() {
  return {reinterpret_cast<const char*>(kChatPageHtml), sizeof(kChatPageHtml)};
}

}  // namespace lowbit
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
