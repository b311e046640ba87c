// A one-line progress bar on stderr, redrawn in place; silent when disabled (not a terminal).
#pragma once

#include <cstdint>
#include <string>

namespace lowbit {

class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled) {}
  void update(int64_t done, int64_t total, const char* unit);
  void finish();

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace lowbit
