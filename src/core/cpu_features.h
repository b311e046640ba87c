// What this CPU (and the OS, via XGETBV and arch_prctl) lets us run. Kernels are chosen from
// this once, at load. LOWBIT_MAX_ISA=amx|avx512|avx2|scalar caps it so tests can exercise every
// path on one host; `rejected` says why each faster path is not in use (for --version and bench).
#pragma once

#include <string>
#include <vector>

namespace lowbit {

// Ordered levels: a kernel registered at level L runs when max_isa() >= L and its own extra
// feature test (e.g. avx512_vnni) passes.
//   Avx512: F+BW+VL+DQ (+FMA, F16C). VNNI and BF16 are separate flags (Zen4 and SPR have both).
//   Amx:    Avx512 + AMX-TILE/INT8/BF16 with Linux's XTILEDATA permission granted.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Amx = 3 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx512_fp16 = false, avx512_vbmi = false, avx_vnni = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool amx_permitted = false;  // arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) succeeded
  std::vector<std::string> rejected;  // "amx: ...", why a faster path is off

  // Best ISA level the kernels may use.
  Isa max_isa() const;
  bool vnni() const { return max_isa() >= Isa::Avx512 && avx512_vnni; }
  bool bf16() const { return max_isa() >= Isa::Avx512 && avx512_bf16; }
  // "amx (avx512+vnni+bf16+amx-int8+amx-bf16)"
  std::string describe() const;
  // describe() plus one line per rejected path.
  std::string report() const;
};

// Detected once per process; the LOWBIT_MAX_ISA cap is applied here, and AMX permission is
// requested here (once) when the CPU has AMX and the cap allows it.
const CpuFeatures& cpu_features();
std::string isa_name(Isa isa);

}  // namespace lowbit
