#include "runtime/eval_text.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "runtime/kl_divergence.h"

namespace lowbit {

EvalWindows::EvalWindows(std::vector<int32_t> tokens, int64_t ctx, int64_t max_tokens, std::optional<int32_t> bos)
    : tokens_(std::move(tokens)), ctx_(ctx) {
  if (ctx < 4) fail("--ctx {} is too small: at least 4 tokens", ctx);
  if (max_tokens > 0 && int64_t(tokens_.size()) > max_tokens) tokens_.resize(size_t(max_tokens));
  if (int64_t(tokens_.size()) < ctx)
    fail("the text has {} tokens, fewer than one window of --ctx {}", tokens_.size(), ctx);
  tokens_.resize(size_t(count() * ctx));
  if (bos)
    for (int64_t w = 0; w < count(); ++w) tokens_[size_t(w * ctx)] = *bos;
}

std::span<const int32_t> EvalWindows::window(int64_t w) const {
  LOWBIT_CHECK(w >= 0 && w < count(), "window {} of {}", w, count());
  return std::span<const int32_t>(tokens_).subspan(size_t(w * ctx_), size_t(ctx_));
}

WindowRunner::WindowRunner(DecoderModel& model, ThreadPool& pool, int64_t ctx)
    : model_(model), pool_(pool), cache_(model.make_cache(1, ctx)), vocab_(model.config().vocab_size) {}

std::span<const float> WindowRunner::run(const EvalWindows& windows, int64_t w) {
  const std::span<const int32_t> tokens = windows.window(w);
  const int64_t first = windows.first_scored(), n = windows.scored_per_window();
  rows_.resize(size_t(n * vocab_));
  // Positions 0..first: one logits row, that of `first`. Then first+1..ctx-2, all rows; the
  // window's last token is only ever a target, so it is not fed.
  const SequenceChunk head{
      .slot = 0, .start_pos = 0, .tokens = tokens.first(size_t(first + 1)), .all_logits = false, .pages = {}};
  model_.forward({&head, 1}, cache_, pool_, scratch_);
  std::copy_n(scratch_.begin(), vocab_, rows_.begin());
  if (n > 1) {
    const SequenceChunk tail{.slot = 0,
                             .start_pos = first + 1,
                             .tokens = tokens.subspan(size_t(first + 1), size_t(n - 1)),
                             .all_logits = true,
                             .pages = {}};
    model_.forward({&tail, 1}, cache_, pool_, scratch_);
    std::copy_n(scratch_.begin(), (n - 1) * vocab_, rows_.begin() + vocab_);
  }
  return rows_;
}

namespace {
size_t window_bytes(const BaseFileHeader& h) { return size_t(h.scored_per_window) * compact_row_bytes(h.vocab); }
}  // namespace

BaseFileWriter::BaseFileWriter(const std::filesystem::path& path, const BaseFileHeader& header)
    : path_(path), header_(header) {
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) fail("{}: cannot create: {}", path.string(), std::strerror(errno));
  if (std::fwrite(&header_, sizeof(header_), 1, file_) != 1) fail("{}: write failed", path.string());
}

BaseFileWriter::~BaseFileWriter() {
  if (!file_) return;
  std::fclose(file_);
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void BaseFileWriter::write_window(std::span<const std::byte> rows) {
  LOWBIT_CHECK(file_ && rows.size() == window_bytes(header_), "window of {} bytes", rows.size());
  if (written_ == header_.windows) fail("{}: more windows than the {} announced", path_.string(), header_.windows);
  if (std::fwrite(rows.data(), 1, rows.size(), file_) != rows.size())
    fail("{}: write failed (disk full?): {}", path_.string(), std::strerror(errno));
  ++written_;
}

void BaseFileWriter::finish() {
  if (written_ != header_.windows) fail("{}: {} of {} windows written", path_.string(), written_, header_.windows);
  const bool ok = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok) fail("{}: close failed: {}", path_.string(), std::strerror(errno));
}

BaseFileReader::BaseFileReader(const std::filesystem::path& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
  const BaseFileHeader want;
  if (std::fread(&header_, sizeof(header_), 1, file_) != 1 || std::memcmp(header_.magic, want.magic, 8) != 0)
    fail("{}: not a lowbit base log-prob file (written by `lowbit eval kld --save-base`)", path.string());
  if (header_.version != want.version)
    fail("{}: version {}, expected {}", path.string(), header_.version, want.version);
  if (header_.vocab == 0 || header_.ctx < 4 || header_.scored_per_window + 1 + header_.ctx / 2 != header_.ctx)
    fail("{}: inconsistent header (vocab {}, ctx {}, {} scored per window)", path.string(), header_.vocab, header_.ctx,
         header_.scored_per_window);
  const auto size = std::filesystem::file_size(path);
  if (size != sizeof(header_) + header_.windows * window_bytes(header_))
    fail("{}: {} bytes, expected {} for {} windows: truncated?", path.string(), size,
         sizeof(header_) + header_.windows * window_bytes(header_), header_.windows);
}

BaseFileReader::~BaseFileReader() {
  if (file_) std::fclose(file_);
}

void BaseFileReader::read_window(std::vector<std::byte>& rows) {
  rows.resize(window_bytes(header_));
  if (std::fread(rows.data(), 1, rows.size(), file_) != rows.size()) fail("{}: read failed", path_.string());
}

}  // namespace lowbit
