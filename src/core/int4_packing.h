// Decoding (and, for writers and tests, encoding) of every WeightEncoding in
// schemes/scheme_spec.h into plain one-code-per-byte matrices in Hugging Face orientation
// [N, K] (N = out_features). Codes come out exactly as stored, minus the storage offset:
//   Int4InInt8, Int4PackedRowPairs : signed int4 in [-8, 7]
//   Int4PackedInt32K               : signed int4 in [-8, 7] (the stored +8 removed)
//   Int4AwqGemm                    : unsigned 0..15 (AWQ zero points are separate, also 0..15)
//   Fp4PackedK                     : E2M1 codes 0..15 (sign<<3 | index), see core/quant_types.h
// Layouts are in shared/spec/quantization.md ("Formats"); the AWQ nibble order was checked
// against AutoAWQ awq/utils/packing_utils.py (AWQ_ORDER / AWQ_REVERSE_ORDER) and the int32
// packing against compressed_tensors/compressors/pack_quantized/helpers.py (pack_to_int32).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "schemes/scheme_spec.h"

namespace lowbit {

// The packed tensor shape (and dtype set) a [N, K] weight has under `enc`:
//   Int4InInt8 [N, K] I8 · RowPairs [ceil(N/2), K] I8|U8 · Int32K [N, ceil(K/8)] I32 ·
//   AwqGemm [K, N/8] I32 (N % 8 == 0) · Fp4PackedK [N, ceil(K/2)] U8|I8.
std::vector<int64_t> packed_int4_shape(WeightEncoding enc, int64_t n, int64_t k);
// Throws lowbit::Error naming packed.name unless its dtype and shape fit `enc` for [N, K].
void check_packed_int4(WeightEncoding enc, const TensorView& packed, int64_t n, int64_t k);

// Writes logical row `row` (0 <= row < N) of the [N, K] code matrix into out[0..K). Call
// check_packed_int4 once first; this does no shape checks beyond the row index. Native is
// not accepted (it has no 4-bit codes).
void unpack_int4_row(WeightEncoding enc, const TensorView& packed, int64_t row, int64_t n,
                     int64_t k, int8_t* out);
// The whole matrix: checks, then unpacks every row into out[N·K].
void unpack_int4(WeightEncoding enc, const TensorView& packed, int64_t n, int64_t k, int8_t* out);

// ---- Packers (inverse of the above), from codes [N, K] row-major in the same value ranges.
// Values outside the encoding's range throw lowbit::Error (nothing is silently masked).
// Odd N (row pairs) and K % 8 != 0 / odd K (Int32K, Fp4) are allowed; the unused nibbles are
// 0 (compressed-tensors pads with 0 *after* adding its +8 offset, so its padding is 0 too).
std::vector<int8_t> pack_int4_row_pairs(const int8_t* codes, int64_t n, int64_t k);
std::vector<int32_t> pack_int4_int32_k(const int8_t* codes, int64_t n, int64_t k);
std::vector<int32_t> pack_int4_awq_gemm(const uint8_t* codes, int64_t n, int64_t k);
std::vector<uint8_t> pack_fp4_k(const uint8_t* codes, int64_t n, int64_t k);

// compressed-tensors asymmetric zero points: signed [-8, 7] of shape [N, G] (G = groups
// along K), packed +8 along the *output* dimension into int32 [ceil(N/8), G].
std::vector<int32_t> pack_int4_zero_points_n(const int8_t* zp, int64_t n, int64_t g);
void unpack_int4_zero_points_n(const TensorView& packed, int64_t n, int64_t g, int8_t* out);
// AWQ qzeros: unsigned 0..15 [N, G] ↔ int32 [G, N/8] in AWQ nibble order (same packing as
// qweight with G in place of K).
inline std::vector<int32_t> pack_awq_zeros(const uint8_t* zeros, int64_t n, int64_t g) {
  return pack_int4_awq_gemm(zeros, n, g);
}
void unpack_awq_zeros(const TensorView& packed, int64_t n, int64_t g, uint8_t* out);

}  // namespace lowbit
