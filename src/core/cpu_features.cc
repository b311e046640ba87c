#include "core/cpu_features.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace lowbit {

namespace {

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  if (!osxsave) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_ok = (xcr0 & 0x6) == 0x6;          // SSE + AVX state
  const bool zmm_ok = (xcr0 & 0xe6) == 0xe6;        // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool amx_ok = (xcr0 & (3ull << 17)) == (3ull << 17);
  if (!ymm_ok) {
    f.fma = f.f16c = false;
    return f;
  }
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = b & (1u << 5);
  if (zmm_ok) {
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512_vnni = c & (1u << 11);
  }
  f.amx_int8 = amx_ok && (d & (1u << 25));
  __cpuid_count(7, 1, a, b, c, d);
  f.avx_vnni = a & (1u << 4);
  if (zmm_ok) f.avx512_bf16 = a & (1u << 5);
  return f;
}

CpuFeatures capped(CpuFeatures f) {
  const char* cap = std::getenv("LOWBIT_MAX_ISA");
  if (!cap || !*cap) return f;
  std::string_view s(cap);
  if (s == "avx512") return f;
  if (s != "avx2" && s != "scalar") fail("LOWBIT_MAX_ISA={}: expected avx512, avx2 or scalar", s);
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512_vnni = f.avx512_bf16 = false;
  f.amx_int8 = false;
  if (s == "scalar") f.avx2 = f.fma = f.f16c = f.avx_vnni = false;
  return f;
}

}  // namespace

Isa CpuFeatures::max_isa() const {
  if (avx512f && avx512bw && avx512vl && avx512dq && fma && f16c) return Isa::Avx512;
  if (avx2 && fma && f16c) return Isa::Avx2;
  return Isa::Scalar;
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Scalar: return "scalar";
  }
  return "?";
}

std::string CpuFeatures::describe() const {
  std::string s = isa_name(max_isa());
  if (avx512_vnni) s += "+vnni";
  if (avx512_bf16) s += "+bf16";
  if (amx_int8) s += "+amx";
  return s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = capped(detect());
  return f;
}

}  // namespace lowbit
