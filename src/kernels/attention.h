// The attention kernel seam: causal GQA attention of a ragged batch (prefill chunks and
// decode tokens of different sequences in one call) over a KV cache in F32, BF16 or FP8 E4M3.
//
//   out[t, h] = Σ_j softmax_j(scale · q[t, h] · K[j, h/group]) · V[j, h/group],  j ≤ pos(t)
//
// The cache is reached only through KvView: base pointers and strides for one (layer, slot),
// so kernels never assume one contiguous buffer (a paged cache can hand out per-page views).
// A backend provides two tile functions (a prefill tile: a block of query tokens of one KV
// head; a decode tile: the whole GQA group of one token over a range of keys). The driver
// (run_attention) splits the batch into tiles, spreads them over threads by cost, and merges
// the split-K partials of long decode contexts by log-sum-exp. Tiles of the same sequence
// are cut the same way whatever else is in the batch and however many threads run, so a
// sequence's output does not depend on batch composition or thread count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"

namespace lowbit {

class ThreadPool;

// One (layer, sequence) of a KV cache. Contiguous (pages == nullptr): element (pos, head, i)
// of K is at k + (head·head_stride + pos·pos_stride + i) elements of `dtype` (V likewise).
// Paged: positions live in pages of 2^page_shift tokens (at least kKvPageMinTokens); position
// pos is row pos mod page size of page pages[pos >> page_shift], whose rows start page_stride
// elements per page id after k (and v). Kernels address rows only through row() / scale_at(),
// and read a run of keys as one strided block only when it starts at a multiple of
// kKvPageMinTokens and holds at most that many keys, so such a run never crosses a page.
// FP8 E4M3 stores codes plus one fp32 scale per (pos, head): value = fp8(code) · scale, the
// scale at k_scale[scale_at(pos, head)].
inline constexpr int64_t kKvPageMinTokens = 32;

struct KvView {
  DType dtype = DType::F32;  // F32, BF16 or F8_E4M3
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t pos_stride = 0, head_stride = 0;
  const float* k_scale = nullptr;
  const float* v_scale = nullptr;
  int64_t scale_pos_stride = 0, scale_head_stride = 0;
  const int32_t* pages = nullptr;  // paged: page id of each run of 2^page_shift positions
  int page_shift = 0;
  int64_t page_stride = 0, scale_page_stride = 0;

  // Element offset of row (pos, head) from k or v.
  int64_t row(int64_t pos, int64_t head) const {
    if (!pages) return head * head_stride + pos * pos_stride;
    const int64_t in_page = pos & ((int64_t(1) << page_shift) - 1);
    return pages[pos >> page_shift] * page_stride + head * head_stride + in_page * pos_stride;
  }
  // Index of row (pos, head)'s FP8 scale in k_scale or v_scale.
  int64_t scale_at(int64_t pos, int64_t head) const {
    if (!pages) return head * scale_head_stride + pos * scale_pos_stride;
    const int64_t in_page = pos & ((int64_t(1) << page_shift) - 1);
    return pages[pos >> page_shift] * scale_page_stride + head * scale_head_stride + in_page * scale_pos_stride;
  }
};

// Encodes n floats into the cache's dtype at dst: F32 copies, BF16 rounds to nearest even,
// F8_E4M3 picks *scale = max|x| / 448 (0 for an all-zero row) and stores e4m3_rne(x / scale).
void kv_encode_row(DType dtype, const float* x, int64_t n, void* dst, float* scale);
// Element i of an encoded row, as every kernel must read it (times the row's scale for FP8).
float kv_decode_element(DType dtype, const void* row, int64_t i);

struct AttentionShape {
  int64_t group = 1;           // query heads per KV head
  int64_t head_dim = 0;
  float scale_log2e = 0.0f;    // softmax scale · log2(e): kernels exponentiate in base 2
};

// One unit of work: query heads [kv_head·group, (kv_head+1)·group) of n_tokens consecutive
// tokens of one sequence against keys [key_begin, key_end) of kv_head.
struct AttentionTile {
  // A tile of a multi-token chunk goes to the prefill kernel even when it holds one token (the
  // last rows of a chunk): a token's rounding then depends only on its sequence, never on how
  // a chunk was cut (the server's outputs do not depend on batching).
  bool prefill = false;
  KvView kv;
  int64_t kv_head = 0;
  // Token t, group head i: q + t·ldq + i·head_dim (q already points at the group's first head).
  const float* q = nullptr;
  int64_t ldq = 0;
  // Token t is at position first_pos + t and sees keys j ≤ first_pos + t.
  int64_t n_tokens = 0, first_pos = 0;
  int64_t key_begin = 0, key_end = 0;  // key_end ≤ first_pos + n_tokens
  // Either the normalised output (token t, group head i at out + t·ldo + i·head_dim) ...
  float* out = nullptr;
  int64_t ldo = 0;
  // ... or, for a split-K decode tile (n_tokens == 1), per group head i at partial + i·(head_dim+2):
  // [m, l, o[0..head_dim)] with m = max_j s_j, l = Σ_j 2^(s_j − m), o = Σ_j 2^(s_j − m)·V[j]
  // and s_j = scale_log2e · q·K[j] (base-2 log-sum-exp state, merged by the driver).
  float* partial = nullptr;
};

using AttentionTileFn = void (*)(const AttentionShape&, const AttentionTile&);

// One backend. prefill takes tiles of any n_tokens with key_begin == 0 that write normalised
// rows (out); decode takes tiles with n_tokens == 1 (no causal mask inside the key range),
// either output form. Usable when max_isa() >= isa and usable(cpu) (if set) holds.
struct AttentionKernels {
  const char* name;
  Isa isa;
  bool (*usable)(const CpuFeatures&);
  AttentionTileFn prefill;
  AttentionTileFn decode;
};

extern const AttentionKernels kAttentionPortable;
extern const AttentionKernels kAttentionAvx2;
extern const AttentionKernels kAttentionAvx512;

// The fastest set this CPU runs (honours LOWBIT_MAX_ISA), chosen once per process.
const AttentionKernels& attention_kernels();
// Every set the CPU runs, portable last: tests compare each with the reference.
std::vector<const AttentionKernels*> attention_kernel_sets(const CpuFeatures& cpu);

// One sequence's chunk: n_tokens new tokens at positions start_pos.., whose K and V are
// already in the cache. q and out hold one row per token (all heads).
struct AttentionSeq {
  KvView kv;
  int64_t start_pos = 0, n_tokens = 0;
  const float* q = nullptr;
  float* out = nullptr;
};

struct AttentionBatch {
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  float scale = 0.0f;        // softmax scale, usually 1/sqrt(head_dim)
  int64_t ldq = 0, ldo = 0;  // floats between token rows of q and of out
  std::span<const AttentionSeq> seqs;
};

// Split-K decode partials of one (sequence, KV head): parts × group × (head_dim + 2) floats,
// merged into the group's output heads.
struct AttentionMerge {
  const float* partial;
  int64_t parts;
  float* out;
};

// Grow-only buffers of the driver, kept by the caller so a forward allocates nothing.
struct AttentionWorkspace {
  std::vector<AttentionTile> tiles;
  std::vector<double> cost;
  std::vector<int64_t> slot_begin;
  std::vector<float> partials;
  std::vector<AttentionMerge> merges;
};

// Keys per split-K partition of a decode token: contexts longer than this are cut into
// partitions computed in parallel and merged by log-sum-exp (flash decoding). A constant, so
// a sequence is cut the same way whatever the batch.
inline constexpr int64_t kAttentionDecodePartition = 256;
static_assert(kAttentionDecodePartition % kKvPageMinTokens == 0, "a decode partition starts on a page boundary");

void run_attention(const AttentionKernels& kernels, const AttentionBatch& batch, ThreadPool& pool,
                   AttentionWorkspace& ws);

// The oracle: softmax(q·kᵀ·scale)·v in double from the cache's decoded values, per token
// and head, no tiling.
void attention_ref(const AttentionBatch& batch);

}  // namespace lowbit
