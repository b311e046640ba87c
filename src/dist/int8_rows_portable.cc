// Portable row kernels: plain loops the compiler may vectorise, and the definition the
// AVX-512 set must match bit for bit. Built with -ffp-contract=off (acc + q·s stays two
// roundings).
#include <algorithm>
#include <cmath>

#include "dist/int8_rows.h"

namespace lowbit::dist {

namespace {

void quantize(const float* x, int64_t ld, int64_t m, int64_t h, int8_t* q, float* scale) {
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * ld;
    int8_t* out = q + i * h;
    float amax = 0.0f;
    for (int64_t j = 0; j < h; ++j) amax = std::max(amax, std::fabs(row[j]));
    const float s = amax / kInt8Max;
    scale[i] = s;
    if (s == 0.0f) {
      std::fill(out, out + h, int8_t(0));
      continue;
    }
    for (int64_t j = 0; j < h; ++j) {
      const float v = std::clamp(row[j] / s, -kInt8Max, kInt8Max);
      // Default rounding mode: half to even. NaN → 0, as vcvtps2dq's 0x80000000 truncated.
      out[j] = v == v ? int8_t(std::nearbyint(v)) : int8_t(0);
    }
  }
}

void dequant_sum(const int8_t* const* q, const float* const* scale, int ranks, int64_t m, int64_t h, float* out,
                 int64_t ld) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = out + i * ld;
    for (int r = 0; r < ranks; ++r) {
      const int8_t* codes = q[r] + i * h;
      const float s = scale[r][i];
      if (r == 0) {
        for (int64_t j = 0; j < h; ++j) row[j] = float(codes[j]) * s;
      } else {
        for (int64_t j = 0; j < h; ++j) row[j] = row[j] + float(codes[j]) * s;
      }
    }
  }
}

}  // namespace

const Int8RowKernels kInt8RowsPortable = {"int8_rows_portable", Isa::Scalar, quantize, dequant_sum};

const Int8RowKernels& int8_row_kernels() {
  static const Int8RowKernels& chosen = *int8_row_kernel_list(cpu_features()).front();
  return chosen;
}

std::vector<const Int8RowKernels*> int8_row_kernel_list(const CpuFeatures& cpu) {
  std::vector<const Int8RowKernels*> out;
  if (cpu.max_isa() >= Isa::Avx512) out.push_back(&kInt8RowsAvx512);
  out.push_back(&kInt8RowsPortable);
  return out;
}

}  // namespace lowbit::dist
