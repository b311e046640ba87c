// AVX-512 prefill tile: the query rows of one GQA group (n_tokens × group rows) against keys
// [0, key_end), flash style: keys in blocks of kBlock aligned to absolute positions, each
// block's K and V widened to fp32 once and reused by every row of the tile, and an online
// softmax (base 2) per row.
//
// Scores are computed transposed, S^T[key][row], with rows in vector lanes: q is transposed
// once per tile (Q^T[elem][row]) and each key element is broadcast, so the score microkernel
// is 16 FMAs per 2 vector loads + 8 broadcasts with no horizontal sums, and the softmax
// statistics of 16 rows are vertical max/add over keys. P·V then broadcasts P^T[key][row] into
// row-major output blocks of 4 rows × 64 elements. q, K, V and the output use the even/odd
// element order of attention_avx512.h (a permutation of head_dim the dot products ignore).
//
// A row's result depends only on its position and the cache: keys past its position get
// weight exactly 0 (and a block it cannot see leaves its state unchanged, alpha = 2^0 = 1),
// and every sum runs in a fixed order, so rows do not depend on the tile they are cut into.
//
// GCC 12 -W(maybe-)uninitialized false positives in the intrinsics headers: see
// attention_avx512.cc.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_avx512.h"

namespace lowbit {

namespace {

using namespace attention_avx512;

constexpr int64_t kBlock = 32;  // keys per block

struct PrefillScratch {
  std::vector<float> qt, kf, vf, st, o, m, l, alpha;
  std::vector<int32_t> pos;
};

PrefillScratch& prefill_scratch() {
  thread_local PrefillScratch s;
  return s;
}

// Keys [kb, kb + nb) of the tile's KV head as fp32 rows in Row32 order (kf, vf: [kBlock][dpad],
// FP8 times its row scale); rows past nb are zero.
template <DType DT>
void widen_block(const AttentionTile& t, int64_t kb, int64_t nb, int64_t d, int64_t dpad, float* kf, float* vf) {
  using R = Row32<DT>;
  using Elem = typename R::Elem;
  const KvView& kv = t.kv;
  const int64_t nch = dpad / 32;
  const __mmask32 full = ~__mmask32(0), tail = d % 32 ? __mmask32((1u << (d % 32)) - 1) : full;
  for (int64_t j = 0; j < nb; ++j) {
    const int64_t pos = kb + j;
    const Elem* kr = static_cast<const Elem*>(kv.k) + kv.row(pos, t.kv_head);
    const Elem* vr = static_cast<const Elem*>(kv.v) + kv.row(pos, t.kv_head);
    __m512 ks = _mm512_set1_ps(1.0f), vs = ks;
    if constexpr (DT == DType::F8_E4M3) {
      const int64_t at = kv.scale_at(pos, t.kv_head);
      ks = _mm512_set1_ps(kv.k_scale[at] * kFp8Unbias);
      vs = _mm512_set1_ps(kv.v_scale[at] * kFp8Unbias);
    }
    for (int64_t ch = 0; ch < nch; ++ch) {
      const __mmask32 mask = ch + 1 == nch ? tail : full;
      __m512 a, b;
      R::load(kr + ch * 32, mask, a, b);
      _mm512_store_ps(kf + j * dpad + ch * 32, DT == DType::F8_E4M3 ? _mm512_mul_ps(a, ks) : a);
      _mm512_store_ps(kf + j * dpad + ch * 32 + 16, DT == DType::F8_E4M3 ? _mm512_mul_ps(b, ks) : b);
      R::load(vr + ch * 32, mask, a, b);
      _mm512_store_ps(vf + j * dpad + ch * 32, DT == DType::F8_E4M3 ? _mm512_mul_ps(a, vs) : a);
      _mm512_store_ps(vf + j * dpad + ch * 32 + 16, DT == DType::F8_E4M3 ? _mm512_mul_ps(b, vs) : b);
    }
  }
  if (nb < kBlock) {
    std::fill(kf + nb * dpad, kf + kBlock * dpad, 0.0f);
    std::fill(vf + nb * dpad, vf + kBlock * dpad, 0.0f);
  }
}

// st[j·ldr + r] = Σ_e kf[j·dpad + e] · qt[e·ldr + r] for keys j in [0, kBlock) and the RV·16
// rows from r0: 8 keys × RV row vectors of accumulators, k-loop over dpad in order.
template <int RV>
void scores(const float* qt, int64_t ldr, int64_t r0, const float* kf, int64_t dpad, float* st) {
  for (int64_t j0 = 0; j0 < kBlock; j0 += 8) {
    __m512 acc[8][RV];
    for (int x = 0; x < 8; ++x)
      for (int v = 0; v < RV; ++v) acc[x][v] = _mm512_setzero_ps();
    const float* kj = kf + j0 * dpad;
    for (int64_t e = 0; e < dpad; ++e) {
      __m512 q[RV];
      for (int v = 0; v < RV; ++v) q[v] = _mm512_load_ps(qt + e * ldr + r0 + 16 * v);
      for (int x = 0; x < 8; ++x) {
        const __m512 k = _mm512_set1_ps(kj[x * dpad + e]);
        for (int v = 0; v < RV; ++v) acc[x][v] = _mm512_fmadd_ps(k, q[v], acc[x][v]);
      }
    }
    for (int x = 0; x < 8; ++x)
      for (int v = 0; v < RV; ++v) _mm512_store_ps(st + (j0 + x) * ldr + r0 + 16 * v, acc[x][v]);
  }
}

// o[r] = o[r]·alpha[r] + Σ_{j<nb} pt[j·ldr + r] · vf[j] for RB rows from r0 and CB·16 elements
// from c0 (o: [rows][dpad]).
template <int RB, int CB>
void values(float* o, int64_t dpad, int64_t r0, int64_t c0, const float* alpha, const float* pt, int64_t ldr,
            const float* vf, int64_t nb) {
  __m512 acc[RB][CB];
  for (int i = 0; i < RB; ++i) {
    const __m512 al = _mm512_set1_ps(alpha[r0 + i]);
    for (int c = 0; c < CB; ++c) acc[i][c] = _mm512_mul_ps(_mm512_load_ps(o + (r0 + i) * dpad + c0 + 16 * c), al);
  }
  for (int64_t j = 0; j < nb; ++j) {
    __m512 v[CB];
    for (int c = 0; c < CB; ++c) v[c] = _mm512_load_ps(vf + j * dpad + c0 + 16 * c);
    for (int i = 0; i < RB; ++i) {
      const __m512 p = _mm512_set1_ps(pt[j * ldr + r0 + i]);
      for (int c = 0; c < CB; ++c) acc[i][c] = _mm512_fmadd_ps(p, v[c], acc[i][c]);
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int c = 0; c < CB; ++c) _mm512_store_ps(o + (r0 + i) * dpad + c0 + 16 * c, acc[i][c]);
}

template <int RB>
void values_rows(float* o, int64_t dpad, int64_t r0, const float* alpha, const float* pt, int64_t ldr, const float* vf,
                 int64_t nb) {
  int64_t c0 = 0;
  for (; c0 + 64 <= dpad; c0 += 64) values<RB, 4>(o, dpad, r0, c0, alpha, pt, ldr, vf, nb);
  if (c0 < dpad) values<RB, 2>(o, dpad, r0, c0, alpha, pt, ldr, vf, nb);  // dpad is a multiple of 32
}

template <DType DT>
void prefill(const AttentionShape& sh, const AttentionTile& t) {
  using R = Row32<DT>;
  const int64_t g = sh.group, d = sh.head_dim, nch = (d + 31) / 32, dpad = nch * 32;
  const int64_t rows = t.n_tokens * g, ldr = (rows + 15) / 16 * 16;
  PrefillScratch& sc = prefill_scratch();
  float* qt = aligned(sc.qt, dpad * ldr);
  float* kf = aligned(sc.kf, kBlock * dpad);
  float* vf = aligned(sc.vf, kBlock * dpad);
  float* st = aligned(sc.st, kBlock * ldr);
  float* o = aligned(sc.o, rows * dpad);
  float* m = aligned(sc.m, ldr);
  float* l = aligned(sc.l, ldr);
  float* alpha = aligned(sc.alpha, ldr);
  if (int64_t(sc.pos.size()) < ldr + 16) sc.pos.resize(size_t(ldr + 16));
  int32_t* pos = sc.pos.data();

  // Q^T in Row32 order; padding rows are zero and take the last row's position (they see
  // keys, so their softmax state stays finite, and are never written out).
  float* row = o;  // o is free until the first block
  for (int64_t r = 0; r < ldr; ++r) {
    const int64_t rr = std::min(r, rows - 1);
    pos[r] = int32_t(t.first_pos + rr / g);
    if (r < rows) {
      for (int64_t ch = 0; ch < nch; ++ch)
        to_row_order<R::kEvenOdd>(t.q + (r / g) * t.ldq + (r % g) * d + ch * 32, d - ch * 32, row + ch * 32);
      for (int64_t e = 0; e < dpad; ++e) qt[e * ldr + r] = row[e];
    } else {
      for (int64_t e = 0; e < dpad; ++e) qt[e * ldr + r] = 0.0f;
    }
  }
  std::fill_n(o, rows * dpad, 0.0f);
  std::fill_n(m, ldr, -INFINITY);
  std::fill_n(l, ldr, 0.0f);

  const __m512 scale = _mm512_set1_ps(sh.scale_log2e), neg_inf = _mm512_set1_ps(-INFINITY);
  for (int64_t kb = t.key_begin; kb < t.key_end; kb += kBlock) {
    const int64_t nb = std::min(kBlock, t.key_end - kb);
    widen_block<DT>(t, kb, nb, d, dpad, kf, vf);
    int64_t r0 = 0;
    for (; r0 + 32 <= ldr; r0 += 32) scores<2>(qt, ldr, r0, kf, dpad, st);
    if (r0 < ldr) scores<1>(qt, ldr, r0, kf, dpad, st);

    // Online softmax, 16 rows per vector; keys past a row's position (and past nb) get -inf.
    for (int64_t r = 0; r < ldr; r += 16) {
      const __m512i rp = _mm512_loadu_si512(pos + r);
      __m512 mb = neg_inf;
      for (int64_t j = 0; j < kBlock; ++j) {
        const __mmask16 seen = _mm512_cmp_epi32_mask(_mm512_set1_epi32(int32_t(kb + j)), rp, _MM_CMPINT_LE);
        const __m512 s = _mm512_mask_mul_ps(neg_inf, seen, _mm512_load_ps(st + j * ldr + r), scale);
        _mm512_store_ps(st + j * ldr + r, s);
        mb = _mm512_max_ps(mb, s);
      }
      const __m512 m_old = _mm512_load_ps(m + r), m_new = _mm512_max_ps(m_old, mb);
      const __m512 al = exp2_nonpositive(_mm512_sub_ps(m_old, m_new));
      __m512 sum = _mm512_setzero_ps();
      for (int64_t j = 0; j < kBlock; ++j) {
        const __m512 p = exp2_nonpositive(_mm512_sub_ps(_mm512_load_ps(st + j * ldr + r), m_new));
        _mm512_store_ps(st + j * ldr + r, p);
        sum = _mm512_add_ps(sum, p);
      }
      _mm512_store_ps(l + r, _mm512_fmadd_ps(_mm512_load_ps(l + r), al, sum));
      _mm512_store_ps(m + r, m_new);
      _mm512_store_ps(alpha + r, al);
    }

    int64_t i0 = 0;
    for (; i0 + 4 <= rows; i0 += 4) values_rows<4>(o, dpad, i0, alpha, st, ldr, vf, nb);
    switch (rows - i0) {
      case 3: values_rows<3>(o, dpad, i0, alpha, st, ldr, vf, nb); break;
      case 2: values_rows<2>(o, dpad, i0, alpha, st, ldr, vf, nb); break;
      case 1: values_rows<1>(o, dpad, i0, alpha, st, ldr, vf, nb); break;
      default: break;
    }
  }

  for (int64_t r = 0; r < rows; ++r) {
    float* dst = t.out + (r / g) * t.ldo + (r % g) * d;
    for (int64_t ch = 0; ch < nch; ++ch)
      from_row_order<R::kEvenOdd>(o + r * dpad + ch * 32, 1.0f / l[r], d - ch * 32, dst + ch * 32);
  }
}

}  // namespace

void attention_prefill_avx512(const AttentionShape& sh, const AttentionTile& t) {
  LOWBIT_CHECK(t.partial == nullptr, "prefill tiles write normalised rows");
  switch (t.kv.dtype) {
    case DType::F32: return prefill<DType::F32>(sh, t);
    case DType::BF16: return prefill<DType::BF16>(sh, t);
    case DType::F8_E4M3: return prefill<DType::F8_E4M3>(sh, t);
    default: fail("KV cache dtype {} is not supported (F32, BF16, F8_E4M3)", dtype_name(t.kv.dtype));
  }
}

}  // namespace lowbit
