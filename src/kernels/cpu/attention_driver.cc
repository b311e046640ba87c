// run_attention: cuts a ragged batch into tiles, spreads them over the pool by cost and merges
// split-K decode partials; plus the KV cache's element encoding. No ISA-specific code: the
// tiles run through the chosen backend's function pointers.
//
// Tiling (a function of each sequence alone, never of the batch or the thread count):
//   decode token (n_tokens == 1): one tile per (KV head, partition of kAttentionDecodePartition
//     keys); each reads its KV head's keys once for all query heads of the GQA group. With
//     more than one partition the tiles write base-2 log-sum-exp partials merged here.
//   prefill chunk: one tile per (KV head, block of query tokens), the block sized so a tile
//     holds at most kPrefillRows query rows (tokens × group); each key/value block is decoded once
//     per tile and reused by all its rows.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/quant_types.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"

namespace lowbit {

namespace {

constexpr int64_t kPrefillRows = 64;  // a multiple of 16: whole row vectors in the AVX-512 tile
// Below this much work (cost units ≈ key rows × (query rows + 2)) a second thread costs more
// to wake than it saves.
constexpr double kMinParallelCost = 2048;

// out = Σ_p 2^(m_p − M)·o_p / Σ_p 2^(m_p − M)·l_p, M = max_p m_p, in partition order.
void merge_partials(const AttentionMerge& mg, int64_t group, int64_t d) {
  const int64_t row = d + 2, part = group * row;
  for (int64_t i = 0; i < group; ++i) {
    float mx = -INFINITY;
    for (int64_t p = 0; p < mg.parts; ++p) mx = std::max(mx, mg.partial[p * part + i * row]);
    float* out = mg.out + i * d;
    std::fill_n(out, d, 0.0f);
    float l = 0.0f;
    for (int64_t p = 0; p < mg.parts; ++p) {
      const float* src = mg.partial + p * part + i * row;
      const float w = std::exp2(src[0] - mx);
      l += w * src[1];
      for (int64_t c = 0; c < d; ++c) out[c] += w * src[2 + c];
    }
    const float inv = 1.0f / l;
    for (int64_t c = 0; c < d; ++c) out[c] *= inv;
  }
}

}  // namespace

void kv_encode_row(DType dtype, const float* x, int64_t n, void* dst, float* scale) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, x, size_t(n) * sizeof(float));
      return;
    case DType::BF16: {
      auto* o = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_bf16(x[i]);
      return;
    }
    case DType::F8_E4M3: {
      // One scale per row (per position and KV head): see KvCache for why not per tensor.
      float amax = 0.0f;
      for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
      auto* o = static_cast<uint8_t*>(dst);
      const float s = amax / 448.0f;
      *scale = s;
      for (int64_t i = 0; i < n; ++i) o[i] = s > 0.0f ? f32_to_fp8_e4m3_rne(x[i] / s) : uint8_t(0);
      return;
    }
    default:
      fail("KV cache dtype {} is not supported (F32, BF16, F8_E4M3)", dtype_name(dtype));
  }
}

float kv_decode_element(DType dtype, const void* row, int64_t i) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(row)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(row)[i]);
    case DType::F8_E4M3: return fp8_e4m3_to_f32(static_cast<const uint8_t*>(row)[i]);
    default: fail("KV cache dtype {} is not supported (F32, BF16, F8_E4M3)", dtype_name(dtype));
  }
}

void run_attention(const AttentionKernels& kernels, const AttentionBatch& b, ThreadPool& pool, AttentionWorkspace& ws) {
  LOWBIT_CHECK(b.num_kv_heads > 0 && b.num_heads % b.num_kv_heads == 0 && b.head_dim > 0,
               "attention: {} heads over {} KV heads of dim {}", b.num_heads, b.num_kv_heads, b.head_dim);
  const int64_t group = b.num_heads / b.num_kv_heads, d = b.head_dim, nkv = b.num_kv_heads;
  const AttentionShape shape{group, d, float(double(b.scale) * M_LOG2E)};
  const int64_t partial_floats = group * (d + 2);
  const int64_t q_block = std::max<int64_t>(1, kPrefillRows / group);

  // Partials first, so their buffer is sized before tiles point into it.
  int64_t n_partials = 0;
  for (const AttentionSeq& s : b.seqs) {
    LOWBIT_CHECK(s.n_tokens >= 1 && s.start_pos >= 0, "attention: chunk of {} tokens at {}", s.n_tokens, s.start_pos);
    const int64_t parts = (s.start_pos + kAttentionDecodePartition) / kAttentionDecodePartition;
    if (s.n_tokens == 1 && parts > 1) n_partials += nkv * parts;
  }
  if (int64_t(ws.partials.size()) < n_partials * partial_floats) ws.partials.resize(size_t(n_partials * partial_floats));

  ws.tiles.clear();
  ws.cost.clear();
  auto& merges = ws.merges;
  merges.clear();
  float* partial = ws.partials.data();
  for (const AttentionSeq& s : b.seqs) {
    for (int64_t h = 0; h < nkv; ++h) {
      AttentionTile t;
      t.kv = s.kv;
      t.kv_head = h;
      t.ldq = b.ldq;
      t.ldo = b.ldo;
      if (s.n_tokens == 1) {
        const int64_t n_ctx = s.start_pos + 1;
        const int64_t parts = (n_ctx + kAttentionDecodePartition - 1) / kAttentionDecodePartition;
        t.q = s.q + h * group * d;
        t.n_tokens = 1;
        t.first_pos = s.start_pos;
        if (parts > 1) merges.push_back({partial, parts, s.out + h * group * d});
        for (int64_t p = 0; p < parts; ++p) {
          t.key_begin = p * kAttentionDecodePartition;
          t.key_end = std::min(n_ctx, t.key_begin + kAttentionDecodePartition);
          if (parts > 1) {
            t.partial = partial;
            partial += partial_floats;
          } else {
            t.out = s.out + h * group * d;
          }
          ws.tiles.push_back(t);
          ws.cost.push_back(double(t.key_end - t.key_begin) * double(group + 2));
        }
      } else {
        for (int64_t t0 = 0; t0 < s.n_tokens; t0 += q_block) {
          t.n_tokens = std::min(q_block, s.n_tokens - t0);
          t.first_pos = s.start_pos + t0;
          t.q = s.q + t0 * b.ldq + h * group * d;
          t.out = s.out + t0 * b.ldo + h * group * d;
          t.key_begin = 0;
          t.key_end = t.first_pos + t.n_tokens;
          t.prefill = true;
          ws.tiles.push_back(t);
          ws.cost.push_back(double(t.key_end) * double(t.n_tokens * group + 2));
        }
      }
    }
  }

  if (ws.tiles.empty()) return;
  // Contiguous runs of tiles per thread, balanced by cost (a tile goes to the thread owning
  // the middle of its cost interval).
  double total = 0;
  for (double c : ws.cost) total += c;
  const int64_t n_tiles = int64_t(ws.tiles.size());
  const int64_t slots = std::clamp<int64_t>(int64_t(total / kMinParallelCost), 1, std::min<int64_t>(pool.size(), n_tiles));
  auto& begin = ws.slot_begin;
  begin.assign(size_t(slots + 1), n_tiles);
  begin[0] = 0;
  double before = 0;
  int64_t slot = 0;
  for (int64_t i = 0; i < n_tiles; ++i) {
    const int64_t want = std::min<int64_t>(slots - 1, int64_t(double(slots) * (before + ws.cost[size_t(i)] / 2) / total));
    while (slot < want) begin[size_t(++slot)] = i;
    before += ws.cost[size_t(i)];
  }
  const AttentionTile* tiles = ws.tiles.data();
  const int64_t* slot_begin = begin.data();
  auto run_slots = [&](int64_t s0, int64_t s1, int) {
    for (int64_t i = slot_begin[s0]; i < slot_begin[s1]; ++i)
      (tiles[i].prefill ? kernels.prefill : kernels.decode)(shape, tiles[i]);
  };
  if (slots == 1)
    run_slots(0, 1, 0);
  else
    pool.parallel_for(slots, 1, [&](int64_t a, int64_t e, int th) { run_slots(a, e, th); });

  // Merges are ~1/kAttentionDecodePartition of the tiles' work: one thread unless there are many.
  const int64_t n_merges = int64_t(merges.size());
  const int64_t merge_grain = std::max<int64_t>(1, (n_merges + pool.size() - 1) / pool.size());
  auto run_merges = [&](int64_t m0, int64_t m1, int) {
    for (int64_t i = m0; i < m1; ++i) merge_partials(merges[size_t(i)], group, d);
  };
  if (n_merges == 0) return;
  if (n_merges * merges.front().parts * partial_floats < 65536)
    run_merges(0, n_merges, 0);
  else
    pool.parallel_for(n_merges, merge_grain, [&](int64_t a, int64_t e, int th) { run_merges(a, e, th); });
}

}  // namespace lowbit
