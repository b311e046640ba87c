#include "quantize/calibration.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "models/decoder.h"
#include "tokenizer/tokenizer.h"

namespace lowbit::quantize {

ObservingLinear::ObservingLinear(std::unique_ptr<LinearMethod> inner, LayerCalib& stats, int64_t stride,
                                 int64_t max_rows)
    : inner_(std::move(inner)), stats_(stats), stride_(std::max<int64_t>(1, stride)), max_rows_(max_rows) {
  stats_.k = inner_->in_features();
  stats_.ch_min.assign(size_t(stats_.k), std::numeric_limits<float>::infinity());
  stats_.ch_max.assign(size_t(stats_.k), -std::numeric_limits<float>::infinity());
  stats_.ch_abs_sum.assign(size_t(stats_.k), 0.0);
  stats_.sample.reserve(size_t(max_rows_ * stats_.k));
}

void ObservingLinear::apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const int64_t k = stats_.k;
  float call_min = std::numeric_limits<float>::infinity(), call_max = -call_min;
  float* ch_min = stats_.ch_min.data();
  float* ch_max = stats_.ch_max.data();
  double* ch_abs = stats_.ch_abs_sum.data();
  for (int64_t r = 0; r < m; ++r) {
    const float* row = x + r * ldx;
    for (int64_t i = 0; i < k; ++i) {
      call_min = std::min(call_min, row[i]);
      call_max = std::max(call_max, row[i]);
      ch_min[i] = std::min(ch_min[i], row[i]);
      ch_max[i] = std::max(ch_max[i], row[i]);
      ch_abs[i] += std::fabs(double(row[i]));
    }
    if (stats_.rows_seen % stride_ == 0 && stats_.sample_rows() < max_rows_)
      stats_.sample.insert(stats_.sample.end(), row, row + k);
    ++stats_.rows_seen;
  }
  if (m > 0) {
    stats_.min = std::min(stats_.min, call_min);
    stats_.max = std::max(stats_.max, call_max);
    ++stats_.calls;
    stats_.mean_min += (call_min - stats_.mean_min) / float(stats_.calls);
    stats_.mean_max += (call_max - stats_.mean_max) / float(stats_.calls);
  }
  inner_->apply(x, ldx, m, y, ldy, pool);
}

std::map<std::string, LayerCalib> run_calibration(std::shared_ptr<const Checkpoint> ckpt, const CalibOptions& o) {
  if (o.tokens.empty()) fail("calibration: no tokens");
  if (o.seq_len <= 0) fail("calibration: sequence length must be positive");
  auto model = DecoderModel::load(std::move(ckpt));
  const int64_t vocab = model->config().vocab_size;
  for (size_t i = 0; i < o.tokens.size(); ++i)
    if (o.tokens[i] < 0 || o.tokens[i] >= vocab)
      fail("calibration token #{} is id {}, outside the model's vocabulary of {} (use --calib-ids with ids < {})", i,
           o.tokens[i], vocab, vocab);
  const int64_t total = int64_t(o.tokens.size());
  // Every layer but lm_head sees every token (the head only sees each chunk's last one).
  const int64_t stride = (total + o.max_rows - 1) / std::max<int64_t>(1, o.max_rows);
  std::map<std::string, LayerCalib> stats;
  model->for_each_linear([&](const std::string& prefix, std::unique_ptr<LinearMethod>& m) {
    m = std::make_unique<ObservingLinear>(std::move(m), stats[prefix], prefix == "lm_head" ? 1 : stride, o.max_rows);
  });
  ThreadPool pool(o.threads);
  std::vector<float> logits;
  for (int64_t begin = 0; begin < total; begin += o.seq_len) {
    const int64_t len = std::min(o.seq_len, total - begin);
    KvCache cache = model->make_cache(1, len);
    SequenceChunk chunk{0, 0, std::span<const int32_t>(o.tokens.data() + begin, size_t(len)), false, {}};
    model->forward({&chunk, 1}, cache, pool, logits);
    if (o.progress) o.progress(begin + len, total);
  }
  return stats;  // the observers hold references into `stats`; the model dies here first
}

std::vector<int32_t> load_calibration_tokens(const std::filesystem::path& model_dir, const std::filesystem::path& text_file,
                                             const std::filesystem::path& ids_file, int64_t count) {
  if (count <= 0) fail("--calib-tokens {} must be positive", count);
  auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) fail("{}: cannot read", p.string());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  std::vector<int32_t> ids;
  if (!ids_file.empty()) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read(ids_file));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not JSON: {}", ids_file.string(), e.what());
    }
    if (!j.is_array()) fail("{}: expected a JSON array of token ids", ids_file.string());
    for (const auto& v : j) {
      if (!v.is_number_integer()) fail("{}: expected integer token ids, got {}", ids_file.string(), v.dump());
      ids.push_back(v.get<int32_t>());
    }
  } else {
    ids = Tokenizer::from_dir(model_dir).encode(read(text_file), false);
  }
  if (ids.empty()) fail("calibration data is empty");
  if (int64_t(ids.size()) > count) ids.resize(size_t(count));
  return ids;
}

}  // namespace lowbit::quantize
