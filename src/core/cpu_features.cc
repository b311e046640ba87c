#include "core/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "core/error.h"

namespace lowbit {

namespace {

constexpr int kArchReqXcompPerm = 0x1023;  // linux/arch/x86/include/uapi/asm/prctl.h
constexpr int kXfeatureXtiledata = 18;

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
  const bool amx_ok = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG + XTILEDATA enabled by the OS
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
    f.avx512_vbmi = c & (1u << 1);
    f.avx512_vnni = c & (1u << 11);
    f.avx512_fp16 = d & (1u << 23);
  }
  if (amx_ok) {
    f.amx_bf16 = d & (1u << 22);
    f.amx_tile = d & (1u << 24);
    f.amx_int8 = d & (1u << 25);
  }
  __cpuid_count(7, 1, a, b, c, d);
  f.avx_vnni = a & (1u << 4);
  if (zmm_ok) f.avx512_bf16 = a & (1u << 5);
  return f;
}

// Linux keeps AMX tile data off until a process asks (it enlarges every signal frame).
bool request_amx_permission(std::string& why) {
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0) return true;
  why = fmt::format("Linux refused the XTILEDATA permission ({})", std::strerror(errno));
  return false;
}

CpuFeatures capped(CpuFeatures f) {
  const char* cap = std::getenv("LOWBIT_MAX_ISA");
  std::string_view s = cap ? cap : "";
  if (!s.empty() && s != "amx" && s != "avx512" && s != "avx2" && s != "scalar")
    fail("LOWBIT_MAX_ISA={}: expected amx, avx512, avx2 or scalar", s);
  const bool has_amx = f.amx_tile && f.amx_int8 && f.amx_bf16;
  if (!has_amx) {
    f.rejected.push_back(f.amx_int8 || f.amx_tile ? "amx: AMX-INT8/AMX-BF16 incomplete or not enabled by the OS"
                                                  : "amx: this CPU has no AMX");
  } else if (!s.empty() && s != "amx") {
    f.rejected.push_back(fmt::format("amx: capped by LOWBIT_MAX_ISA={}", s));
  } else {
    std::string why;
    f.amx_permitted = request_amx_permission(why);
    if (!f.amx_permitted) f.rejected.push_back("amx: " + why);
  }
  if (s == "avx2" || s == "scalar") {
    if (f.avx512f) f.rejected.push_back(fmt::format("avx512: capped by LOWBIT_MAX_ISA={}", s));
    f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512_vnni = f.avx512_bf16 = f.avx512_fp16 =
        f.avx512_vbmi = false;
  }
  if (s == "scalar") {
    if (f.avx2) f.rejected.push_back("avx2: capped by LOWBIT_MAX_ISA=scalar");
    f.avx2 = f.fma = f.f16c = f.avx_vnni = false;
  }
  if (!f.amx_permitted) f.amx_tile = f.amx_int8 = f.amx_bf16 = false;
  if (f.max_isa() >= Isa::Avx512) {
    if (!f.avx512_vnni) f.rejected.push_back("avx512-vnni: not on this CPU (int8 dot products use the portable tiles)");
    if (!f.avx512_bf16) f.rejected.push_back("avx512-bf16: not on this CPU (BF16 converted to fp32 instead)");
  } else if (f.max_isa() < Isa::Avx512 && !f.avx512f && (s.empty() || s == "amx")) {
    f.rejected.push_back("avx512: this CPU (or OS) has no AVX-512 F/BW/VL/DQ");
  }
  return f;
}

}  // namespace

Isa CpuFeatures::max_isa() const {
  const bool avx512 = avx512f && avx512bw && avx512vl && avx512dq && fma && f16c;
  if (avx512 && amx_permitted && amx_tile && amx_int8 && amx_bf16 && avx512_vnni && avx512_bf16) return Isa::Amx;
  if (avx512) return Isa::Avx512;
  if (avx2 && fma && f16c) return Isa::Avx2;
  return Isa::Scalar;
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::Amx: return "amx";
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Scalar: return "scalar";
  }
  return "?";
}

std::string CpuFeatures::describe() const {
  std::string s = isa_name(max_isa());
  std::string extra;
  if (max_isa() >= Isa::Avx512) extra += "avx512";
  else if (max_isa() == Isa::Avx2) extra += "avx2+fma";
  if (avx512_vnni) extra += "+vnni";
  if (avx512_bf16) extra += "+bf16";
  if (avx_vnni && max_isa() == Isa::Avx2) extra += "+avx-vnni";
  if (amx_permitted) extra += "+amx-int8+amx-bf16";
  return extra.empty() ? s : s + " (" + extra + ")";
}

std::string CpuFeatures::report() const {
  std::string s = "kernels: " + describe();
  for (const auto& r : rejected) s += "\n  not used: " + r;
  return s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = capped(detect());
  return f;
}

}  // namespace lowbit
