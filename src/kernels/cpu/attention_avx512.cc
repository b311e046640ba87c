// AVX-512 decode tiles, the bandwidth-bound case of attention (prefill tiles are in
// attention_prefill_avx512.cc; shared helpers in attention_avx512.h).
//
// One tile = one KV head × one key partition for all G query heads of its GQA group (up to 8
// per pass), so every key and value row is read from memory exactly once per token. Keys go
// 32 at a time: each key row is widened to fp32 once in registers and multiplied into G
// accumulators (one per query head), the 32 × G partial vectors are summed lane-wise by a
// shuffle tree into G × 2 vectors of 16 scores, an online softmax (base 2) turns them into
// weights, and the same value rows are accumulated into G output rows with the weights
// broadcast. Everything stays fp32; q is not rounded.
//
// GCC 12 reports -W(maybe-)uninitialized inside AVX-512 intrinsics that start from
// _mm512_undefined_*() (shuffles, extracts, conversions: GCC PR 105593, fixed in 13); the
// pragmas must precede <immintrin.h> to cover those locations.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_avx512.h"

namespace lowbit::attention_avx512 {

namespace {

constexpr int kMaxRows = 8;    // query heads per pass: 2 accumulators each in the value loop
// Keys per tile: two 16-way lane reductions; the per-tile softmax bookkeeping is amortised
// over 32 keys.
constexpr int64_t kKeys = kKvPageMinTokens;

// Lane j = Σ of the 16 floats at v + 16·j (j < 16): a 4-level shuffle-add tree, then one
// permute back to key order.
inline __m512 sum_rows16(const float* v) {
  __m512 w[8], x[4], y[2];
  for (int k = 0; k < 8; ++k) {
    const __m512 a = _mm512_loadu_ps(v + 32 * k), b = _mm512_loadu_ps(v + 32 * k + 16);
    w[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  }
  for (int k = 0; k < 4; ++k)
    x[k] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * k], w[2 * k + 1], 0x88),
                         _mm512_shuffle_f32x4(w[2 * k], w[2 * k + 1], 0xDD));
  for (int k = 0; k < 2; ++k)
    y[k] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * k], x[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(x[2 * k], x[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
  // z lane 4q + k holds row 4k + q.
  const __m512i to_keys = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(to_keys, z);
}

struct DecodeScratch {
  std::vector<float> qp, o, sums, w;
};

DecodeScratch& decode_scratch() {
  thread_local DecodeScratch s;
  return s;
}

// Scores of keys [k0, k0 + nj) for G query rows: one lane-partial vector per (row, key) into
// sums[(row·kKeys + j)·16], reduced to scores by sum_rows16 later. A group past the last key
// repeats the last key (its lanes are masked off later).
// NCH > 0: head_dim fits NCH chunks of 32 known at compile time; q stays in registers and each
// key is read with full-row loads. NCH == 0: any head_dim; q chunks are reloaded per key group.
// While scoring, the K and V rows of the keys kKeys ahead are prefetched (vr0: this tile's
// first value row): the hardware prefetchers alone left decode at ~55 % of the streaming
// bandwidth on the 2-core Xeon, the software prefetch at ~75 % (noisy, shared machine).
template <class R, int G, int NCH>
inline void score_tile(const float* qp, int64_t dpad, int64_t nch, __mmask32 tail, const typename R::Elem* kr0,
                       const typename R::Elem* vr0, int64_t stride, int64_t row_bytes, int64_t nj, float* sums) {
  const __mmask32 full = ~__mmask32(0);
  // Keys per group: kGroup × G independent FMA chains keep both FMA ports busy.
  constexpr int kGroup = NCH > 0 ? (G <= 2 ? 2 : 1) : (G <= 2 ? 4 : G <= 4 ? 2 : 1);
  constexpr int kQ = NCH > 0 ? NCH : 1;
  __m512 qa[G][kQ], qb[G][kQ];
  if constexpr (NCH > 0)
    for (int r = 0; r < G; ++r)
      for (int c = 0; c < NCH; ++c) {
        qa[r][c] = _mm512_load_ps(qp + r * dpad + c * 32);
        qb[r][c] = _mm512_load_ps(qp + r * dpad + c * 32 + 16);
      }
  for (int64_t j0 = 0; j0 < nj; j0 += kGroup) {
    for (int x = 0; x < kGroup; ++x) {
      // Prefetches never fault, so rows past the cache's end are harmless (addresses are
      // formed as integers: no out-of-range pointer arithmetic).
      const uintptr_t ahead = uintptr_t((j0 + x + kKeys) * stride) * sizeof(typename R::Elem);
      const uintptr_t pk = reinterpret_cast<uintptr_t>(kr0) + ahead, pv = reinterpret_cast<uintptr_t>(vr0) + ahead;
      for (int64_t b = 0; b < row_bytes; b += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(pk + uintptr_t(b)), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(pv + uintptr_t(b)), _MM_HINT_T0);
      }
    }
    const typename R::Elem* kr[kGroup];
    for (int x = 0; x < kGroup; ++x) kr[x] = kr0 + std::min<int64_t>(j0 + x, nj - 1) * stride;
    __m512 acc[kGroup][G];
    for (int x = 0; x < kGroup; ++x)
      for (int r = 0; r < G; ++r) acc[x][r] = _mm512_setzero_ps();
    if constexpr (NCH > 0) {
      for (int x = 0; x < kGroup; ++x)
        for (int c = 0; c < NCH; ++c) {
          __m512 a, b;
          R::load(kr[x] + c * 32, c + 1 == NCH ? tail : full, a, b);
          for (int r = 0; r < G; ++r)
            acc[x][r] = _mm512_fmadd_ps(qb[r][c], b, _mm512_fmadd_ps(qa[r][c], a, acc[x][r]));
        }
    } else {
      for (int64_t ch = 0; ch < nch; ++ch) {
        for (int r = 0; r < G; ++r) {
          qa[r][0] = _mm512_load_ps(qp + r * dpad + ch * 32);
          qb[r][0] = _mm512_load_ps(qp + r * dpad + ch * 32 + 16);
        }
        for (int x = 0; x < kGroup; ++x) {
          __m512 a, b;
          R::load(kr[x] + ch * 32, ch + 1 == nch ? tail : full, a, b);
          for (int r = 0; r < G; ++r)
            acc[x][r] = _mm512_fmadd_ps(qb[r][0], b, _mm512_fmadd_ps(qa[r][0], a, acc[x][r]));
        }
      }
    }
    for (int x = 0; x < kGroup; ++x)
      for (int r = 0; r < G; ++r) _mm512_store_ps(sums + (r * kKeys + j0 + x) * 16, acc[x][r]);
  }
}

// o[r] = o[r]·alpha[r] + Σ_j wt[r·kKeys + j] · V[j] over keys [k0, k0 + nj).
// NCH > 0: all G rows' accumulators stay in registers and each value row is read once, in
// order. NCH == 0: chunk by chunk, with even and odd keys in separate accumulators when G
// alone gives too few FMA chains.
template <class R, int G, int NCH>
inline void value_tile(float* o, int64_t dpad, int64_t nch, __mmask32 tail, const typename R::Elem* vr0,
                       int64_t stride, int64_t nj, const float* wt, const float* alpha) {
  const __mmask32 full = ~__mmask32(0);
  if constexpr (NCH > 0) {
    __m512 oa[G][NCH], ob[G][NCH];
    for (int r = 0; r < G; ++r) {
      const __m512 al = _mm512_set1_ps(alpha[r]);
      for (int c = 0; c < NCH; ++c) {
        oa[r][c] = _mm512_mul_ps(_mm512_load_ps(o + r * dpad + c * 32), al);
        ob[r][c] = _mm512_mul_ps(_mm512_load_ps(o + r * dpad + c * 32 + 16), al);
      }
    }
    for (int64_t j = 0; j < nj; ++j) {
      const typename R::Elem* vr = vr0 + j * stride;
      __m512 w[G];
      for (int r = 0; r < G; ++r) w[r] = _mm512_set1_ps(wt[r * kKeys + j]);
      for (int c = 0; c < NCH; ++c) {
        __m512 a, b;
        R::load(vr + c * 32, c + 1 == NCH ? tail : full, a, b);
        for (int r = 0; r < G; ++r) {
          oa[r][c] = _mm512_fmadd_ps(w[r], a, oa[r][c]);
          ob[r][c] = _mm512_fmadd_ps(w[r], b, ob[r][c]);
        }
      }
    }
    for (int r = 0; r < G; ++r)
      for (int c = 0; c < NCH; ++c) {
        _mm512_store_ps(o + r * dpad + c * 32, oa[r][c]);
        _mm512_store_ps(o + r * dpad + c * 32 + 16, ob[r][c]);
      }
  } else {
    constexpr int kSets = G <= 4 ? 2 : 1;
    for (int64_t ch = 0; ch < nch; ++ch) {
      const __mmask32 mask = ch + 1 == nch ? tail : full;
      __m512 oa[kSets][G], ob[kSets][G];
      for (int r = 0; r < G; ++r) {
        const __m512 al = _mm512_set1_ps(alpha[r]);
        oa[0][r] = _mm512_mul_ps(_mm512_load_ps(o + r * dpad + ch * 32), al);
        ob[0][r] = _mm512_mul_ps(_mm512_load_ps(o + r * dpad + ch * 32 + 16), al);
        for (int x = 1; x < kSets; ++x) oa[x][r] = ob[x][r] = _mm512_setzero_ps();
      }
      const typename R::Elem* vr = vr0 + ch * 32;
      int64_t j = 0;
      for (; j + 2 <= nj; j += 2) {
        __m512 a0, b0, a1, b1;
        R::load(vr + j * stride, mask, a0, b0);
        R::load(vr + (j + 1) * stride, mask, a1, b1);
        for (int r = 0; r < G; ++r) {
          const __m512 w0 = _mm512_set1_ps(wt[r * kKeys + j]), w1 = _mm512_set1_ps(wt[r * kKeys + j + 1]);
          oa[0][r] = _mm512_fmadd_ps(w0, a0, oa[0][r]);
          ob[0][r] = _mm512_fmadd_ps(w0, b0, ob[0][r]);
          oa[1 % kSets][r] = _mm512_fmadd_ps(w1, a1, oa[1 % kSets][r]);
          ob[1 % kSets][r] = _mm512_fmadd_ps(w1, b1, ob[1 % kSets][r]);
        }
      }
      if (j < nj) {
        __m512 a0, b0;
        R::load(vr + j * stride, mask, a0, b0);
        for (int r = 0; r < G; ++r) {
          const __m512 w0 = _mm512_set1_ps(wt[r * kKeys + j]);
          oa[0][r] = _mm512_fmadd_ps(w0, a0, oa[0][r]);
          ob[0][r] = _mm512_fmadd_ps(w0, b0, ob[0][r]);
        }
      }
      for (int r = 0; r < G; ++r) {
        for (int x = 1; x < kSets; ++x) {
          oa[0][r] = _mm512_add_ps(oa[0][r], oa[x][r]);
          ob[0][r] = _mm512_add_ps(ob[0][r], ob[x][r]);
        }
        _mm512_store_ps(o + r * dpad + ch * 32, oa[0][r]);
        _mm512_store_ps(o + r * dpad + ch * 32 + 16, ob[0][r]);
      }
    }
  }
}

// Query heads [i0, i0 + G) of the tile's group over its key range (NCH: see score_tile).
template <DType DT, int G, int NCH>
void decode_rows(const AttentionShape& sh, const AttentionTile& t, int64_t i0) {
  using R = Row32<DT>;
  using Elem = typename R::Elem;
  constexpr bool kFp8 = DT == DType::F8_E4M3;
  const int64_t d = sh.head_dim, nch = (d + 31) / 32, dpad = nch * 32;
  const __mmask32 tail = d % 32 ? __mmask32((1u << (d % 32)) - 1) : ~__mmask32(0);

  DecodeScratch& sc = decode_scratch();
  float* qp = aligned(sc.qp, G * dpad);
  float* o = aligned(sc.o, G * dpad);
  float* sums = aligned(sc.sums, G * kKeys * 16);
  float* wt = aligned(sc.w, G * kKeys);

  // q in the rows' element order, zero past head_dim.
  for (int r = 0; r < G; ++r)
    for (int64_t ch = 0; ch < nch; ++ch)
      to_row_order<R::kEvenOdd>(t.q + (i0 + r) * d + ch * 32, d - ch * 32, qp + r * dpad + ch * 32);
  std::fill_n(o, G * dpad, 0.0f);
  float m[G], l[G], alpha[G];
  for (int r = 0; r < G; ++r) m[r] = -INFINITY, l[r] = 0.0f;

  const KvView& kv = t.kv;
  const Elem* kbase = static_cast<const Elem*>(kv.k);
  const Elem* vbase = static_cast<const Elem*>(kv.v);
  alignas(64) float kfac[kKeys], vfac[kKeys];

  for (int64_t k0 = t.key_begin; k0 < t.key_end; k0 += kKeys) {
    const int64_t nj = std::min(kKeys, t.key_end - k0);
    const __mmask16 valid[2] = {lanes(nj), lanes(nj - 16)};
    // A block of kKeys = kKvPageMinTokens keys from a multiple of it lies in one page.
    const int64_t row0 = kv.row(k0, t.kv_head);
    score_tile<R, G, NCH>(qp, dpad, nch, tail, kbase + row0, vbase + row0, kv.pos_stride,
                          d * int64_t(sizeof(Elem)), nj, sums);

    __m512 kf[2], vf[2];
    for (int hf = 0; hf < 2; ++hf) {
      kf[hf] = _mm512_set1_ps(sh.scale_log2e);
      vf[hf] = _mm512_set1_ps(kFp8Unbias);
    }
    if constexpr (kFp8) {
      for (int64_t j = 0; j < kKeys; ++j) {
        const int64_t at = kv.scale_at(k0 + std::min(j, nj - 1), t.kv_head);
        kfac[j] = kv.k_scale[at];
        vfac[j] = kv.v_scale[at];
      }
      for (int hf = 0; hf < 2; ++hf) {
        kf[hf] = _mm512_mul_ps(kf[hf], _mm512_mul_ps(_mm512_load_ps(kfac + 16 * hf), _mm512_set1_ps(kFp8Unbias)));
        vf[hf] = _mm512_mul_ps(vf[hf], _mm512_load_ps(vfac + 16 * hf));
      }
    }

    // Online softmax, base 2.
    for (int r = 0; r < G; ++r) {
      __m512 s[2];
      for (int hf = 0; hf < 2; ++hf) {
        s[hf] = _mm512_mul_ps(sum_rows16(sums + (r * kKeys + 16 * hf) * 16), kf[hf]);
        s[hf] = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), valid[hf], s[hf]);
      }
      const float m_new = std::max(m[r], _mm512_reduce_max_ps(_mm512_max_ps(s[0], s[1])));
      alpha[r] = std::exp2(m[r] - m_new);
      const __m512 p0 = exp2_nonpositive(_mm512_sub_ps(s[0], _mm512_set1_ps(m_new)));
      const __m512 p1 = exp2_nonpositive(_mm512_sub_ps(s[1], _mm512_set1_ps(m_new)));
      l[r] = l[r] * alpha[r] + _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
      m[r] = m_new;
      _mm512_storeu_ps(wt + r * kKeys, kFp8 ? _mm512_mul_ps(p0, vf[0]) : p0);
      _mm512_storeu_ps(wt + r * kKeys + 16, kFp8 ? _mm512_mul_ps(p1, vf[1]) : p1);
    }

    value_tile<R, G, NCH>(o, dpad, nch, tail, vbase + row0, kv.pos_stride, nj, wt, alpha);
  }

  for (int r = 0; r < G; ++r) {
    const int64_t i = i0 + r;
    float* dst;
    float mul = 1.0f;
    if (t.partial) {
      float* part = t.partial + i * (d + 2);
      part[0] = m[r];
      part[1] = l[r];
      dst = part + 2;
    } else {
      dst = t.out + i * d;
      mul = 1.0f / l[r];
    }
    for (int64_t ch = 0; ch < nch; ++ch)
      from_row_order<R::kEvenOdd>(o + r * dpad + ch * 32, mul, d - ch * 32, dst + ch * 32);
  }
}

// Registers allow the unrolled paths while G rows × NCH chunks ≤ 8 (16 accumulators).
template <DType DT, int G>
void decode_group(const AttentionShape& sh, const AttentionTile& t, int64_t i0) {
  const int64_t nch = (sh.head_dim + 31) / 32;
  if constexpr (G <= 4)
    if (nch == 2) return decode_rows<DT, G, 2>(sh, t, i0);
  if constexpr (G <= 2)
    if (nch == 4) return decode_rows<DT, G, 4>(sh, t, i0);
  decode_rows<DT, G, 0>(sh, t, i0);
}

template <DType DT>
void decode_dtype(const AttentionShape& sh, const AttentionTile& t) {
  for (int64_t i0 = 0; i0 < sh.group; i0 += kMaxRows) {
    switch (std::min<int64_t>(kMaxRows, sh.group - i0)) {
      case 1: decode_group<DT, 1>(sh, t, i0); break;
      case 2: decode_group<DT, 2>(sh, t, i0); break;
      case 3: decode_group<DT, 3>(sh, t, i0); break;
      case 4: decode_group<DT, 4>(sh, t, i0); break;
      case 5: decode_group<DT, 5>(sh, t, i0); break;
      case 6: decode_group<DT, 6>(sh, t, i0); break;
      case 7: decode_group<DT, 7>(sh, t, i0); break;
      default: decode_group<DT, 8>(sh, t, i0); break;
    }
  }
}

void attend_decode(const AttentionShape& sh, const AttentionTile& t) {
  switch (t.kv.dtype) {
    case DType::F32: return decode_dtype<DType::F32>(sh, t);
    case DType::BF16: return decode_dtype<DType::BF16>(sh, t);
    case DType::F8_E4M3: return decode_dtype<DType::F8_E4M3>(sh, t);
    default: fail("KV cache dtype {} is not supported (F32, BF16, F8_E4M3)", dtype_name(t.kv.dtype));
  }
}

}  // namespace

}  // namespace lowbit::attention_avx512

namespace lowbit {
void attention_prefill_avx512(const AttentionShape& shape, const AttentionTile& tile);  // attention_prefill_avx512.cc

const AttentionKernels kAttentionAvx512 = {"attention_avx512", Isa::Avx512, nullptr, attention_prefill_avx512,
                                           attention_avx512::attend_decode};
}  // namespace lowbit
