// The all-reduce after a row-parallel layer (o_proj, down_proj), in full precision or with the
// per-token symmetric INT8 compression of ../shared/spec/tp-compression.md:
//   - Int8AllGather: each rank quantizes its partial sum p[M, H] (one fp32 scale per token),
//     all ranks all-gather codes + scales, and every rank dequantizes and sums all
//     contributions in fp32 in rank order 0, 1, …, p−1 (the seed's exchange).
//   - Int8ReduceScatter: rank j owns a contiguous slice of the M tokens (rows; the first M % p
//     ranks one more). Each rank quantizes per token and sends every owner its rows
//     (all-to-all), the owner dequantizes and sums them in rank order, re-quantizes its rows
//     per token, and the re-quantized rows are all-gathered. Slices of M, not of H: the scale
//     is per token, so a row slice keeps one scale per token in both phases (the wire format of
//     the all-gather variant, 4 bytes per row) and sends contiguous memory; any H works, and
//     M < p just leaves ranks with no rows. Two quantizations: a larger error bound.
// Both leave every rank with bit-identical output. The caller adds the result to the residual
// stream afterwards (residual + Σ partials, the uncompressed path's order), or passes
// `residual` to have it done here in that same order.
//
// Error bound per element (m, j), p ranks, s_r[m] = max|p_r[m,:]| / 127:
//   Int8AllGather:     |out − Σ_r p_r| ≤ Σ_r s_r[m] / 2                + fp32 rounding
//   Int8ReduceScatter: |out − Σ_r p_r| ≤ Σ_r s_r[m] / 2 + s'[m] / 2    + fp32 rounding,
//   s'[m] = max_j |Σ_r deq_r[m,j]| / 127 (the owner's re-quantization scale).
#pragma once

#include <cstdint>
#include <vector>

#include "dist/communicator.h"

namespace lowbit::dist {

enum class TpReduce { Fp32, Int8AllGather, Int8ReduceScatter };
const char* tp_reduce_name(TpReduce how);  // "fp32", "int8-allgather", "int8-rs-ag"

// Bytes each rank sends for one all-reduce of an M×H fp32 partial sum over p ranks, as the
// spec counts them (ring algorithms): fp32 2·(p−1)/p·4·M·H; all-gather (p−1)·(M·H + 4M);
// reduce-scatter + all-gather 2·(p−1)/p·(M·H + 4M).
double tp_reduce_bytes_per_rank(TpReduce how, int64_t m, int64_t h, int p);

// First row and row count owned by `rank` in the reduce-scatter variant.
struct RowSlice {
  int64_t begin = 0, count = 0;
};
RowSlice owned_rows(int64_t m, int rank, int ranks);

// Keeps its exchange buffers between calls (one per call site or per thread: not thread-safe).
class TpAllReduce {
 public:
  explicit TpAllReduce(Communicator& comm) : comm_(comm) {}

  // x[M][H] (rows contiguous) holds this rank's partial sum; on return it holds the sum over
  // ranks, identical on every rank. With `residual` ([M][H]), residual += that sum as well.
  // Every rank must call with the same how, M and H.
  void run(TpReduce how, float* x, int64_t m, int64_t h, float* residual = nullptr);

  void all_gather_int8(float* x, int64_t m, int64_t h);
  void reduce_scatter_int8(float* x, int64_t m, int64_t h);

  Communicator& communicator() { return comm_; }

 private:
  Communicator& comm_;
  std::vector<char> send_, recv_;  // 64-byte padded packets: [scales][codes]
  std::vector<float> owned_;       // reduce-scatter: this rank's rows summed in fp32
};

// Packet for `rows` rows of width h: rows fp32 scales then rows·h int8 codes, padded to 64
// bytes so the next packet's scales stay aligned.
int64_t int8_packet_bytes(int64_t rows, int64_t h);

}  // namespace lowbit::dist
