// Roofline loops for AVX-512 (F, VNNI, BF16): a streaming read with 512-bit loads and
// register-only peaks. Compiled with AVX-512 flags only (kernels/CMakeLists.txt); called only
// when cpu_features() allows it (kernels/roofline.cc).
#include <immintrin.h>

#include <cstring>

#include "kernels/roofline.h"

namespace lowbit::roofline {

namespace {
// Lane sums through memory: GCC 12's _mm512_reduce_add_* trip -Wuninitialized in its own header.
template <class T, class V>
T sum_lanes(V v) {
  alignas(64) T lanes[64 / sizeof(T)];
  std::memcpy(lanes, &v, 64);
  T s = 0;
  for (T x : lanes) s += x;
  return s;
}
}  // namespace

// Four independent 512-bit loads per 256 bytes, folded with XOR: one cheap ALU op per load,
// so the loop is limited by memory, never by the core.
uint64_t read_avx512(const uint8_t* p, size_t bytes) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < bytes; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
  }
  const __m512i x = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  return sum_lanes<uint64_t>(x);
}

// 16 accumulators: FMA latency is 4 cycles on 2 ports (SPR), so ≥ 8 chains keep both busy;
// 16 also covers Zen4. acc = acc·a + b with a < 1 converges to b/(1−a): no overflow, no
// denormals (which would slow the FMA units on some parts).
double fp32_fma_avx512(int64_t iters, float* sink) {
  constexpr int kAcc = 16;
  __m512 acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_set1_ps(float(j));
  const __m512 a = _mm512_set1_ps(*sink * 0.0f + 0.999f), b = _mm512_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_ps(s, acc[j]);
  *sink += sum_lanes<float>(s);
  return double(iters) * kAcc * 16 * 2;
}

// vpdpbusd: 64 u8×s8 products summed into 16 int32 lanes per instruction = 128 operations.
double int8_vnni_avx512(int64_t iters, int32_t* sink) {
  constexpr int kAcc = 16;
  __m512i acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_set1_epi32(j);
  const __m512i a = _mm512_set1_epi8(char(1 + (*sink & 1))), b = _mm512_set1_epi8(3);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
  }
  __m512i s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_epi32(s, acc[j]);
  // Unsigned: the int32 lanes wrap over a long run, and only the bits matter to the sink.
  *sink = int32_t(uint32_t(*sink) + sum_lanes<uint32_t>(s));
  return double(iters) * kAcc * 64 * 2;
}

// vdpbf16ps: 32 bf16 products summed pairwise into 16 fp32 lanes = 64 operations. Small
// operands keep the accumulators far from overflow over any run we time.
double bf16_dot_avx512(int64_t iters, float* sink) {
  constexpr int kAcc = 16;
  __m512 acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_set1_ps(float(j));
  const __m512 one = _mm512_set1_ps(1.0f + *sink * 0.0f), small = _mm512_set1_ps(1e-3f);
  const __m512bh a = _mm512_cvtne2ps_pbh(one, one), b = _mm512_cvtne2ps_pbh(small, small);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_ps(s, acc[j]);
  *sink += sum_lanes<float>(s);
  return double(iters) * kAcc * 32 * 2;
}

}  // namespace lowbit::roofline
