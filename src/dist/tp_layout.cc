#include "dist/tp_layout.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace lowbit::dist {

Range balanced_range(int64_t total, int64_t unit, int rank, int size, const std::string& what) {
  if (unit < 1) unit = 1;
  const int64_t units = (total + unit - 1) / unit;
  if (units < size)
    fail("tp-size {}: {} has {} element(s) in units of {} ({} unit(s)), fewer than the ranks", size, what, total, unit,
         units);
  auto start = [&](int64_t r) {
    const int64_t per = units / size, extra = units % size;
    return std::min(total, (r * per + std::min<int64_t>(r, extra)) * unit);
  };
  return {start(rank), start(rank + 1)};
}

namespace {
void split_heads(const TpDims& d, TpLayout& L) {
  const int64_t nq = d.num_heads, nkv = d.num_kv_heads, size = L.size, r = L.rank;
  if (nq % nkv != 0) fail("tp: {} query heads do not form groups over {} KV heads", nq, nkv);
  const int64_t g = nq / nkv;
  if (nkv >= size) {
    const Range kv = balanced_range(nkv, 1, L.rank, L.size, "the KV heads");
    L.kv_heads = kv;
    L.q_heads = {kv.begin * g, kv.end * g};
  } else {
    // Ranks over groups: group j gets ranks_of(j) consecutive ranks.
    const int64_t per = size / nkv, extra = size % nkv;
    int64_t first_rank = 0;
    for (int64_t j = 0; j < nkv; ++j) {
      const int64_t ranks = per + (j < extra ? 1 : 0);
      if (r < first_rank + ranks) {
        if (g < ranks)
          fail("tp-size {}: KV head {} serves {} query heads, fewer than the {} ranks that would share it", size, j, g,
               ranks);
        const Range in_group = balanced_range(g, 1, int(r - first_rank), int(ranks), "a GQA group");
        L.kv_heads = {j, j + 1};
        L.q_heads = {j * g + in_group.begin, j * g + in_group.end};
        break;
      }
      first_rank += ranks;
    }
  }
  const int64_t unit = std::max<int64_t>(1, d.head_unit);
  const int64_t kv_unit = std::max<int64_t>(1, d.kv_head_unit);
  for (int64_t b : {L.kv_heads.begin, L.kv_heads.end})
    if ((b * d.head_dim) % kv_unit != 0 && b != nkv)
      fail("tp-size {}: rank {} would start or end at KV head {} (row {} of k_proj/v_proj), which splits a "
           "quantization group or block of {} rows",
           size, r, b, b * d.head_dim, kv_unit);
  for (int64_t b : {L.q_heads.begin, L.q_heads.end})
    if ((b * d.head_dim) % unit != 0 && b != nq)
      fail("tp-size {}: rank {} would start or end at query head {} (column {} of o_proj), which splits a "
           "quantization group or block of {} columns; use a tp-size whose head boundaries fall on groups",
           size, r, b, b * d.head_dim, unit);
}
}  // namespace

namespace {
TpLayout layout_of(const TpDims& d, int rank, int size) {
  TpLayout L;
  L.rank = rank;
  L.size = size;
  L.head_dim = d.head_dim;
  split_heads(d, L);
  if (d.intermediate > 0)
    L.intermediate = balanced_range(d.intermediate, d.intermediate_unit, rank, size, "intermediate_size");
  if (d.moe_intermediate > 0)
    L.moe_intermediate = balanced_range(d.moe_intermediate, d.moe_intermediate_unit, rank, size,
                                        "moe_intermediate_size");
  L.vocab = balanced_range(d.vocab, d.vocab_unit, rank, size, "the vocabulary");
  return L;
}
}  // namespace

TpLayout make_tp_layout(const TpDims& d, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size) fail("tp: rank {} of {} is not a valid rank", rank, size);
  // Every rank checks every rank's boundaries, so a split one rank cannot take fails on all of
  // them with the same message (instead of one rank waiting for the others forever).
  for (int r = 0; r < size; ++r) layout_of(d, r, size);
  return layout_of(d, rank, size);
}

std::string TpLayout::describe() const {
  std::string s = fmt::format("rank {}/{}: heads {}-{} (kv {}-{})", rank, size, q_heads.begin, q_heads.end - 1,
                              kv_heads.begin, kv_heads.end - 1);
  if (intermediate.size() > 0) s += fmt::format(", mlp {}-{}", intermediate.begin, intermediate.end - 1);
  if (moe_intermediate.size() > 0)
    s += fmt::format(", expert mlp {}-{}", moe_intermediate.begin, moe_intermediate.end - 1);
  return s + fmt::format(", vocab {}-{}", vocab.begin, vocab.end - 1);
}

}  // namespace lowbit::dist
