// Stop strings over streamed text: text is released only once no stop string can still begin
// inside it, and generation ends at the first occurrence (which is not emitted).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);
  // Appends decoded text; returns the part that is now safe to emit. Sets stopped() when a
  // stop string was completed (the text before it is returned, the rest dropped).
  std::string push(std::string_view text);
  // Releases whatever is held back (at the end of generation).
  std::string flush();
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }  // the stop string found, once stopped
  const std::string& text() const { return text_; }  // everything emitted or held, up to a stop

 private:
  std::vector<std::string> stops_;
  std::string text_;
  std::string matched_;
  size_t emitted_ = 0;
  bool stopped_ = false;
};

}  // namespace lowbit
