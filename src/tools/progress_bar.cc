#include "tools/progress_bar.h"

#include <cstdio>
#include <string>

namespace lowbit {

void ProgressBar::update(int64_t done, int64_t total, const char* unit) {
  if (!enabled_ || total <= 0) return;
  constexpr int kWidth = 30;
  const int filled = int(done * kWidth / total);
  std::string bar(size_t(filled), '#');
  bar.append(size_t(kWidth - filled), '.');
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %s", label_.c_str(), bar.c_str(), (long long)done, (long long)total, unit);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace lowbit
