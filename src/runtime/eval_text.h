// How `lowbit eval` cuts a tokenized text into windows and which predictions it scores, and
// the file that carries a base model's compact log-probs from one run to the next.
//
// Windows follow llama.cpp's perplexity tool: the text is cut into non-overlapping windows of
// `ctx` tokens (a trailing partial window is dropped); the first token of each window is the
// tokenizer's BOS when its add_special_tokens adds one (SmolLM2 and Qwen3 do not); each window
// is run from an empty cache, and only the predictions made with at least ctx/2 tokens of
// context are scored: logits at positions first = ctx/2 … ctx−2 against the tokens at
// first+1 … ctx−1, i.e. ctx − 1 − ctx/2 scored tokens per window. Early positions, which see
// almost no context, would otherwise dominate and make numbers depend on the window size.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "models/decoder.h"

namespace lowbit {

class ThreadPool;

class EvalWindows {
 public:
  // Uses at most max_tokens tokens of `tokens` (0: all). Errors when not even one window fits.
  EvalWindows(std::vector<int32_t> tokens, int64_t ctx, int64_t max_tokens, std::optional<int32_t> bos);

  int64_t ctx() const { return ctx_; }
  int64_t count() const { return int64_t(tokens_.size()) / ctx_; }
  int64_t first_scored() const { return ctx_ / 2; }  // position of the first scored logits row
  int64_t scored_per_window() const { return ctx_ - 1 - first_scored(); }
  int64_t tokens_used() const { return int64_t(tokens_.size()); }

  // The `ctx` tokens model input of window w (BOS already substituted).
  std::span<const int32_t> window(int64_t w) const;
  // Target token of scored row r (0 ≤ r < scored_per_window) of window w.
  int32_t target(int64_t w, int64_t r) const { return window(w)[first_scored() + 1 + r]; }

 private:
  std::vector<int32_t> tokens_;
  int64_t ctx_;
};

// Runs windows through one model, each from an empty one-slot cache. Only the scored rows
// logits are computed: the first ctx/2 + 1 tokens go in one chunk that yields a single row,
// the rest in a second chunk with every row, so lm_head never runs on unscored positions.
class WindowRunner {
 public:
  WindowRunner(DecoderModel& model, ThreadPool& pool, int64_t ctx);
  // scored_per_window × vocab logits of window w, valid until the next call.
  std::span<const float> run(const EvalWindows& windows, int64_t w);
  int64_t vocab() const { return vocab_; }

 private:
  DecoderModel& model_;
  ThreadPool& pool_;
  KvCache cache_;
  int64_t vocab_;
  std::vector<float> scratch_, rows_;
};

// The base file: a header (magic "LBKLBASE", version, vocab, ctx, windows, scored rows per
// window) and then, window by window, one compact row per scored token (kl_divergence.h).
// Size: ≈ 2·vocab bytes per scored token (≈ 2.5 GB for 25k tokens at a 49k vocabulary, as in
// llama.cpp). Written and read strictly in order, one window at a time.
struct BaseFileHeader {
  char magic[8] = {'L', 'B', 'K', 'L', 'B', 'A', 'S', 'E'};
  uint32_t version = 1;
  uint32_t vocab = 0;
  uint64_t ctx = 0, windows = 0, scored_per_window = 0;
};

class BaseFileWriter {
 public:
  BaseFileWriter(const std::filesystem::path& path, const BaseFileHeader& header);
  ~BaseFileWriter();
  // Appends one window: scored_per_window compact rows.
  void write_window(std::span<const std::byte> rows);
  // Flushes and checks every window was written; the destructor of an unfinished writer
  // deletes the partial file so a failed run never leaves a truncated base behind.
  void finish();

 private:
  std::filesystem::path path_;
  BaseFileHeader header_;
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
};

class BaseFileReader {
 public:
  explicit BaseFileReader(const std::filesystem::path& path);
  ~BaseFileReader();
  const BaseFileHeader& header() const { return header_; }
  // Reads the next window's rows into `rows` (resized).
  void read_window(std::vector<std::byte>& rows);

 private:
  std::filesystem::path path_;
  BaseFileHeader header_;
  std::FILE* file_ = nullptr;
};

}  // namespace lowbit
