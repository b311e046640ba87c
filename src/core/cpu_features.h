// What this CPU (and the OS, via XGETBV) lets us run. Kernels are chosen from this once, at
// load. LOWBIT_MAX_ISA=avx2|scalar caps it so tests can exercise every path on one host.
#pragma once

#include <string>

namespace lowbit {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx_vnni = false, amx_int8 = false;

  // Best ISA level the kernels may use: AVX-512 needs F+BW+VL+DQ, AVX2 needs AVX2+FMA+F16C.
  Isa max_isa() const;
  std::string describe() const;
};

// Detected once per process; the LOWBIT_MAX_ISA cap is applied here.
const CpuFeatures& cpu_features();
std::string isa_name(Isa isa);

}  // namespace lowbit
