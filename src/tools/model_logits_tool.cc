// Test-only driver for the transformers oracle: runs sequences through DecoderModel and
// writes their logits to a safetensors file.
//
//   model_logits_tool MODEL_DIR SPEC.json OUT.safetensors
// SPEC: {"mode": "separate"|"ragged", "threads": 2, "greedy_steps": 32,
//        "sequences": [{"prompt": [ids], "forced": [ids], "chunks": [sizes]}],
//        "quantization": "w8a8_int8"}   (optional: online quantization at load)
// Output per sequence i:
//   seq{i}.prompt_logits [T, V]   logits at every prompt position
//   seq{i}.decode_logits [S, V]   S = len(forced)+1: row 0 is the last prompt position's, row
//                                 j the logits after feeding forced[0..j-1] (teacher forcing)
//   seq{i}.greedy_ids    [G]      free-running greedy continuation ("separate" mode only)
// "ragged" runs all sequences in shared forward calls: each step takes every unfinished
// sequence's next prompt chunk (sizes from "chunks", default: the whole prompt) or its next
// forced token, so prefills and decodes of different lengths mix in one batch.
// "mtp" (Qwen3-Next with its MTP head) writes, beside prompt_logits and decode_logits:
//   seq{i}.mtp_logits  [T-1, V]   the MTP head over positions 0..T-2 with ids prompt[1..T-1]
//                                 and the prompt's hidden rows (predicting prompt[p+2])
//   seq{i}.spec_logits [S, V]     decode_logits recomputed by 2-token verify steps whose drafts
//                                 are alternately right (forced[j+1]) and wrong, rolling the
//                                 recurrent state back after each wrong one
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/thread_pool.h"
#include "models/decoder.h"

namespace lowbit {
namespace {

struct Seq {
  std::vector<int32_t> prompt, forced, chunks;
  std::vector<float> prompt_logits, decode_logits;
  std::vector<int64_t> greedy;
  size_t fed = 0, chunk_index = 0;  // tokens fed so far (prompt then forced)
};

int32_t argmax(const float* l, int64_t v) { return int32_t(std::max_element(l, l + v) - l); }

void run_ragged(DecoderModel& model, std::vector<Seq>& seqs, ThreadPool& pool) {
  const int64_t V = model.config().vocab_size;
  int64_t cap = 0;
  for (auto& s : seqs) cap = std::max<int64_t>(cap, int64_t(s.prompt.size() + s.forced.size()));
  KvCache cache = model.make_cache(int64_t(seqs.size()), cap);
  std::vector<float> logits;
  for (;;) {
    std::vector<SequenceChunk> batch;
    std::vector<std::vector<int32_t>> tokens;
    std::vector<size_t> owners;
    tokens.reserve(seqs.size());
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& s = seqs[i];
      std::vector<int32_t> t;
      if (s.fed < s.prompt.size()) {
        size_t n = s.chunk_index < s.chunks.size() ? size_t(s.chunks[s.chunk_index++]) : s.prompt.size() - s.fed;
        n = std::min(n, s.prompt.size() - s.fed);
        t.assign(s.prompt.begin() + long(s.fed), s.prompt.begin() + long(s.fed + n));
      } else if (s.fed < s.prompt.size() + s.forced.size()) {
        t.push_back(s.forced[s.fed - s.prompt.size()]);
      } else {
        continue;
      }
      tokens.push_back(std::move(t));
      batch.push_back({int64_t(i), int64_t(s.fed), tokens.back(), true, {}});
      owners.push_back(i);
    }
    if (batch.empty()) break;
    model.forward(batch, cache, pool, logits);
    size_t row = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
      Seq& s = seqs[owners[b]];
      for (size_t j = 0; j < batch[b].tokens.size(); ++j, ++row) {
        const float* l = logits.data() + row * size_t(V);
        const size_t pos = s.fed + j;
        if (pos < s.prompt.size()) s.prompt_logits.insert(s.prompt_logits.end(), l, l + V);
        if (pos + 1 >= s.prompt.size()) s.decode_logits.insert(s.decode_logits.end(), l, l + V);
      }
      s.fed += batch[b].tokens.size();
    }
  }
}

void run_separate(DecoderModel& model, std::vector<Seq>& seqs, ThreadPool& pool, int64_t greedy_steps) {
  const int64_t V = model.config().vocab_size;
  for (auto& s : seqs) {
    s.chunks.clear();
    std::vector<Seq> one = {s};
    run_ragged(model, one, pool);
    s.prompt_logits = std::move(one[0].prompt_logits);
    s.decode_logits = std::move(one[0].decode_logits);
    // Free-running greedy continuation.
    KvCache cache = model.make_cache(1, int64_t(s.prompt.size()) + greedy_steps);
    std::vector<float> logits;
    SequenceChunk c{0, 0, s.prompt, false, {}};
    model.forward({&c, 1}, cache, pool, logits);
    for (int64_t step = 0; step < greedy_steps; ++step) {
      const int32_t id = argmax(logits.data(), V);
      s.greedy.push_back(id);
      if (step + 1 == greedy_steps) break;
      SequenceChunk d{0, int64_t(s.prompt.size()) + step, std::span(&id, 1), false, {}};
      model.forward({&d, 1}, cache, pool, logits);
    }
  }
}

// See the header: verify steps against teacher-forced decoding, and the MTP head's logits.
void run_mtp(DecoderModel& model, std::vector<Seq>& seqs, ThreadPool& pool, std::map<size_t, std::vector<float>>& mtp,
             std::map<size_t, std::vector<float>>& spec) {
  const int64_t V = model.config().vocab_size;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Seq& s = seqs[i];
    const int64_t n = int64_t(s.prompt.size()), F = int64_t(s.forced.size());
    KvCache cache = model.make_cache(1, n + F + 2);
    std::vector<float> logits, hidden, draft_logits;
    SequenceChunk c{0, 0, s.prompt, false, {}};
    model.forward({&c, 1}, cache, pool, logits, &hidden);
    std::vector<float>& rows = spec[i];
    rows.assign(logits.begin(), logits.begin() + V);
    if (n > 1) {
      SequenceChunk d{0, 0, std::span(s.prompt).subspan(1), true, {}};
      model.forward_mtp({&d, 1}, std::span(hidden).first(size_t((n - 1) * model.config().hidden_size)), cache, pool,
                        mtp[i]);
      mtp[i].resize(size_t((n - 1) * V));
    }
    bool right = true;
    for (int64_t j = 0; j + 1 < F; right = !right) {
      int32_t ids[2] = {s.forced[size_t(j)], right ? s.forced[size_t(j + 1)] : (s.forced[size_t(j + 1)] + 1) % int32_t(V)};
      SequenceChunk v{0, n + j, std::span(ids, 2), true, {}};
      v.verify = true;
      model.forward({&v, 1}, cache, pool, logits);
      rows.insert(rows.end(), logits.begin(), logits.begin() + V);
      if (right) {
        rows.insert(rows.end(), logits.begin() + V, logits.begin() + 2 * V);
        j += 2;
      } else {
        if (model.has_recurrent_state()) cache.recurrent().rollback(0, n + j + 1);
        j += 1;
      }
    }
  }
}

// Minimal safetensors writer for the test outputs (F32 and I64 only).
void write_safetensors(const std::string& path, const std::map<std::string, std::pair<std::string, std::pair<std::vector<int64_t>, std::vector<uint8_t>>>>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const auto& [dtype, rest] = t;
    header[name] = {{"dtype", dtype}, {"shape", rest.first}, {"data_offsets", {offset, offset + rest.second.size()}}};
    offset += rest.second.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (const auto& [name, t] : tensors) out.write(reinterpret_cast<const char*>(t.second.second.data()), std::streamsize(t.second.second.size()));
  if (!out) fail("{}: write failed", path);
}

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

int main_impl(int argc, char** argv) {
  if (argc != 4) fail("usage: model_logits_tool MODEL_DIR SPEC.json OUT.safetensors");
  std::ifstream spec_in(argv[2]);
  const auto spec = nlohmann::json::parse(spec_in);
  ThreadPool pool(spec.value("threads", 2));
  const std::string mode = spec.value("mode", "separate");
  auto model = DecoderModel::load(argv[1], {}, spec.value("quantization", std::string()),
                                  DraftHeadOptions{.load = mode == "mtp"});
  const int64_t V = model->config().vocab_size;
  std::vector<Seq> seqs;
  for (const auto& js : spec.at("sequences")) {
    Seq s;
    s.prompt = js.at("prompt").get<std::vector<int32_t>>();
    s.forced = js.value("forced", std::vector<int32_t>{});
    s.chunks = js.value("chunks", std::vector<int32_t>{});
    seqs.push_back(std::move(s));
  }
  std::map<size_t, std::vector<float>> mtp, spec_rows;
  if (mode == "ragged") {
    run_ragged(*model, seqs, pool);
  } else if (mode == "mtp") {
    for (auto& s : seqs) s.chunks.clear();
    run_ragged(*model, seqs, pool);
    run_mtp(*model, seqs, pool, mtp, spec_rows);
  } else {
    run_separate(*model, seqs, pool, spec.value("greedy_steps", 32));
  }
  std::map<std::string, std::pair<std::string, std::pair<std::vector<int64_t>, std::vector<uint8_t>>>> out;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto& s = seqs[i];
    const std::string p = "seq" + std::to_string(i) + ".";
    out[p + "prompt_logits"] = {"F32", {{int64_t(s.prompt.size()), V}, bytes_of(s.prompt_logits)}};
    out[p + "decode_logits"] = {"F32", {{int64_t(s.forced.size() + 1), V}, bytes_of(s.decode_logits)}};
    if (!s.greedy.empty()) out[p + "greedy_ids"] = {"I64", {{int64_t(s.greedy.size())}, bytes_of(s.greedy)}};
    if (mtp.count(i)) out[p + "mtp_logits"] = {"F32", {{int64_t(mtp[i].size()) / V, V}, bytes_of(mtp[i])}};
    if (spec_rows.count(i))
      out[p + "spec_logits"] = {"F32", {{int64_t(spec_rows[i].size()) / V, V}, bytes_of(spec_rows[i])}};
  }
  write_safetensors(argv[3], out);
  return 0;
}

}  // namespace
}  // namespace lowbit

int main(int argc, char** argv) {
  try {
    return lowbit::main_impl(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
