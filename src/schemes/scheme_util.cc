#include "schemes/scheme_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/int4_packing.h"
#include "core/quant_types.h"

namespace lowbit::schemes {

namespace {
std::string shapes_string(std::initializer_list<std::vector<int64_t>> shapes) {
  std::string s;
  for (const auto& shape : shapes) {
    if (!s.empty()) s += " or ";
    s += "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    s += "]";
  }
  return s;
}
}  // namespace

bool is_float_dtype(DType d) { return d == DType::BF16 || d == DType::F16 || d == DType::F32; }

void TensorCheck::fail_tensor(const TensorView& v, std::string_view message) const {
  fail("{}: tensor '{}' ({}): {}", t_.prefix, v.name, scheme_, message);
}

void TensorCheck::fail_layer(std::string_view message) const { fail("{} ({}): {}", t_.prefix, scheme_, message); }

void TensorCheck::check(const TensorView& v, std::initializer_list<DType> dtypes,
                        std::initializer_list<std::vector<int64_t>> shapes) const {
  if (dtypes.size() && std::find(dtypes.begin(), dtypes.end(), v.dtype) == dtypes.end()) {
    std::string names;
    for (DType d : dtypes) names += (names.empty() ? "" : ", ") + std::string(dtype_name(d));
    fail_tensor(v, fmt::format("dtype {} is not one of {}", dtype_name(v.dtype), names));
  }
  if (shapes.size() && std::find(shapes.begin(), shapes.end(), v.shape) == shapes.end())
    fail_tensor(v, fmt::format("shape {}, expected {}", v.shape_str(), shapes_string(shapes)));
}

void TensorCheck::fail_non_finite_row(const TensorView& weight, int64_t row) const {
  fail_tensor(weight, fmt::format("row {} holds a NaN or an infinity, which no quantization scale represents", row));
}

const TensorView* TensorCheck::optional_role(std::string_view role, std::initializer_list<DType> dtypes,
                                             std::initializer_list<std::vector<int64_t>> shapes) const {
  const TensorView* v = t_.find(std::string(role));
  if (v) check(*v, dtypes, shapes);
  return v;
}

const TensorView& TensorCheck::role(std::string_view role, std::initializer_list<DType> dtypes,
                                    std::initializer_list<std::vector<int64_t>> shapes) const {
  const TensorView* v = optional_role(role, dtypes, shapes);
  if (!v) fail_layer(fmt::format("needs a '{}' tensor, which the format did not provide", role));
  return *v;
}

float scalar_f32(const TensorView& t) {
  if (t.numel() != 1) fail("tensor '{}': expected one value, got shape {}", t.name, t.shape_str());
  return tensor_to_f32(t)[0];
}

AlignedArray<float> per_channel_f32(const TensorView& t, int64_t n) {
  AlignedArray<float> out = padded_row_vector(n);
  const std::vector<float> v = tensor_to_f32(t);
  if (v.size() != 1 && int64_t(v.size()) != n)
    fail("tensor '{}': shape {} is neither one value nor one per output channel ({})", t.name, t.shape_str(), n);
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = v.size() == 1 ? v[0] : v[size_t(i)];
  return out;
}

AlignedArray<float> bias_vector(const TensorCheck& c, int64_t n) {
  if (!c.tensors().bias) return {};
  c.check(*c.tensors().bias, kFloatDTypes, {{n}});
  return per_channel_f32(*c.tensors().bias, n);
}

void require_all_zero(const TensorCheck& c, const TensorView& t) {
  // Zero in any dtype is all-zero bytes, except a float -0.0: compare values for floats.
  const std::vector<float> v = is_float_dtype(t.dtype) ? tensor_to_f32(t) : std::vector<float>();
  const auto* bytes = static_cast<const uint8_t*>(t.data);
  const size_t esize = dtype_size(t.dtype);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const bool zero = v.empty() ? std::all_of(bytes + i * esize, bytes + (i + 1) * esize, [](uint8_t b) { return b == 0; })
                                : v[size_t(i)] == 0.0f;
    if (!zero)
      c.fail_tensor(t, fmt::format("element {} is not zero: asymmetric weights are not supported by this scheme "
                                   "(the offset must be all zeros)",
                                   i));
  }
}

CodeRows::CodeRows(const TensorCheck& c, const TensorView& weight, WeightEncoding enc, int64_t n, int64_t k)
    : weight_(weight), enc_(enc), n_(n), k_(k) {
  if (enc == WeightEncoding::Native) {
    c.check(weight, {DType::I8, DType::U8, DType::F8_E4M3}, {{n, k}});
  } else {
    try {
      check_packed_int4(enc, weight, n, k);
    } catch (const Error& e) {
      c.fail_tensor(weight, e.what());
    }
    tmp_.resize(size_t(k));
  }
}

void CodeRows::row(int64_t r, uint8_t* out) const {
  if (enc_ == WeightEncoding::Native) {
    std::memcpy(out, static_cast<const uint8_t*>(weight_.data) + r * k_, size_t(k_));
    return;
  }
  unpack_int4_row(enc_, weight_, r, n_, k_, tmp_.data());
  for (int64_t i = 0; i < k_; ++i) out[i] = uint8_t(tmp_[size_t(i)]) & 0xF;
}

void float_row(const TensorView& weight, int64_t r, int64_t k, float* out) {
  const size_t esize = dtype_size(weight.dtype);
  convert_to_f32(weight.dtype, static_cast<const uint8_t*>(weight.data) + size_t(r * k) * esize, out, size_t(k));
}

const float* code_table(CodeTable t) {
  struct Tables {
    float int4s[16], int4u[16], fp4[16], fp8[256];
    Tables() {
      for (int c = 0; c < 16; ++c) {
        int4s[c] = float(c < 8 ? c : c - 16);
        int4u[c] = float(c);
        fp4[c] = fp4_e2m1_to_f32(uint8_t(c));
      }
      for (int c = 0; c < 256; ++c) fp8[c] = fp8_e4m3_to_f32(uint8_t(c));
    }
  };
  static const Tables tables;
  switch (t) {
    case CodeTable::Int4Signed: return tables.int4s;
    case CodeTable::Int4Unsigned: return tables.int4u;
    case CodeTable::Fp4E2M1: return tables.fp4;
    case CodeTable::Fp8E4M3: return tables.fp8;
  }
  return nullptr;
}

namespace {
template <class T>
T* scratch(int slot, size_t count) {
  thread_local std::vector<T> buffers[4];
  std::vector<T>& b = buffers[slot];
  if (b.size() < count) b.resize(count);
  return b.data();
}
}  // namespace

float* scratch_f32(int slot, size_t count) { return scratch<float>(slot, count); }
int8_t* scratch_i8(int slot, size_t count) { return scratch<int8_t>(slot, count); }
uint8_t* scratch_u8(int slot, size_t count) { return scratch<uint8_t>(slot, count); }
int32_t* scratch_i32(int slot, size_t count) { return scratch<int32_t>(slot, count); }

void copy_padded(const float* x, int64_t ldx, int64_t m, int64_t k, int64_t k_pad, float* dst) {
  for (int64_t i = 0; i < m; ++i) {
    std::memcpy(dst + i * k_pad, x + i * ldx, size_t(k) * sizeof(float));
    std::fill(dst + i * k_pad + k, dst + (i + 1) * k_pad, 0.0f);
  }
}

}  // namespace lowbit::schemes
