// What every quantized scheme does the same way at load and at run time: fetching and
// checking its tensors by role (errors name the layer, the tensor and the scheme), turning
// small float tensors into fp32, reading the weight's codes row by row whatever their
// on-disk encoding, and grow-only activation scratch.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "kernels/packed_weights.h"
#include "schemes/scheme_spec.h"

namespace lowbit::schemes {

inline constexpr std::initializer_list<DType> kFloatDTypes = {DType::BF16, DType::F16, DType::F32};

bool is_float_dtype(DType d);

// Checks a layer's tensors on behalf of a scheme: "PREFIX: SCHEME needs ...".
class TensorCheck {
 public:
  TensorCheck(const LinearTensors& t, std::string scheme) : t_(t), scheme_(std::move(scheme)) {}
  const LinearTensors& tensors() const { return t_; }
  const std::string& scheme() const { return scheme_; }
  // The tensor for `role`, which must exist, with one of `dtypes` (empty: any) and, unless
  // `shapes` is empty, one of `shapes`.
  const TensorView& role(std::string_view role, std::initializer_list<DType> dtypes,
                         std::initializer_list<std::vector<int64_t>> shapes = {}) const;
  const TensorView* optional_role(std::string_view role, std::initializer_list<DType> dtypes,
                                  std::initializer_list<std::vector<int64_t>> shapes = {}) const;
  void check(const TensorView& v, std::initializer_list<DType> dtypes,
             std::initializer_list<std::vector<int64_t>> shapes) const;
  [[noreturn]] void fail_tensor(const TensorView& v, std::string_view message) const;
  [[noreturn]] void fail_layer(std::string_view message) const;
  // Online quantization met a NaN or an infinity in `weight`'s row `row`.
  [[noreturn]] void fail_non_finite_row(const TensorView& weight, int64_t row) const;

 private:
  const LinearTensors& t_;
  std::string scheme_;
};

// A float tensor of shape [1], [] or [1, 1] as one value.
float scalar_f32(const TensorView& t);
// Per-channel values [N] or [N, 1], or one value ([1] / [] / [1, 1]) broadcast to N, into
// a tile-padded row vector.
AlignedArray<float> per_channel_f32(const TensorView& t, int64_t n);
// The layer's bias (if any) as a tile-padded vector; empty array when there is none.
AlignedArray<float> bias_vector(const TensorCheck& c, int64_t n);
// Throws naming the tensor unless every value is zero: symmetric schemes whose writers still
// store an offset tensor (msmodelslim weight_offset) must not silently drop a real one.
void require_all_zero(const TensorCheck& c, const TensorView& t);

// Reads row `row` of the [N, K] weight codes, whatever the encoding (int8 / fp8 bytes as
// stored, int4 two's complement as its low nibble, E2M1 and AWQ unsigned 0..15 as-is).
class CodeRows {
 public:
  CodeRows(const TensorCheck& c, const TensorView& weight, WeightEncoding enc, int64_t n, int64_t k);
  void row(int64_t r, uint8_t* out) const;

 private:
  const TensorView& weight_;
  WeightEncoding enc_;
  int64_t n_, k_;
  mutable std::vector<int8_t> tmp_;
};

// Row r of a float [N, K] weight (online quantization) as fp32, into out[0..K).
void float_row(const TensorView& weight, int64_t r, int64_t k, float* out);

// The decoded value of every code: int4 signed (0..7, then -8..-1), unsigned 0..15, E2M1, E4M3.
enum class CodeTable { Int4Signed, Int4Unsigned, Fp4E2M1, Fp8E4M3 };
const float* code_table(CodeTable t);

// Grow-only per-thread buffers for activations: apply() never allocates after the first call
// of the largest batch. `slot` separates buffers used at the same time.
float* scratch_f32(int slot, size_t count);
int8_t* scratch_i8(int slot, size_t count);
uint8_t* scratch_u8(int slot, size_t count);
int32_t* scratch_i32(int slot, size_t count);

// x[m, K] (ldx apart) → dst[m, k_pad] with zeros past K.
void copy_padded(const float* x, int64_t ldx, int64_t m, int64_t k, int64_t k_pad, float* dst);

}  // namespace lowbit::schemes
