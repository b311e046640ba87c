// TpAllReduce: the fp32 all-reduce and both INT8-compressed variants (see the header for the
// algorithms and their error bounds).
#include "dist/compressed_allreduce.h"

#include <algorithm>

#include "core/error.h"
#include "dist/int8_rows.h"

namespace lowbit::dist {

const char* tp_reduce_name(TpReduce how) {
  switch (how) {
    case TpReduce::Fp32: return "fp32";
    case TpReduce::Int8AllGather: return "int8-allgather";
    case TpReduce::Int8ReduceScatter: return "int8-rs-ag";
  }
  return "?";
}

double tp_reduce_bytes_per_rank(TpReduce how, int64_t m, int64_t h, int p) {
  const double mh = double(m) * double(h), ring = 2.0 * (p - 1) / p;
  switch (how) {
    case TpReduce::Fp32: return ring * 4.0 * mh;
    case TpReduce::Int8AllGather: return (p - 1) * (mh + 4.0 * double(m));
    case TpReduce::Int8ReduceScatter: return ring * (mh + 4.0 * double(m));
  }
  return 0;
}

RowSlice owned_rows(int64_t m, int rank, int ranks) {
  const int64_t base = m / ranks, extra = m % ranks;
  return {rank * base + std::min<int64_t>(rank, extra), base + (rank < extra ? 1 : 0)};
}

int64_t int8_packet_bytes(int64_t rows, int64_t h) { return (rows * 4 + rows * h + 63) / 64 * 64; }

namespace {

// Quantizes rows x[0, rows) into a packet at `packet`.
void pack(const Int8RowKernels& k, const float* x, int64_t rows, int64_t h, char* packet) {
  auto* scales = reinterpret_cast<float*>(packet);
  k.quantize(x, h, rows, h, reinterpret_cast<int8_t*>(packet + rows * 4), scales);
}

// out rows = Σ over the packets, in their order, of the dequantized rows.
void unpack_sum(const Int8RowKernels& k, const std::vector<const char*>& packets, int64_t rows, int64_t h,
                float* out) {
  std::vector<const int8_t*> codes;
  std::vector<const float*> scales;
  for (const char* p : packets) {
    scales.push_back(reinterpret_cast<const float*>(p));
    codes.push_back(reinterpret_cast<const int8_t*>(p + rows * 4));
  }
  k.dequant_sum(codes.data(), scales.data(), int(packets.size()), rows, h, out, h);
}

}  // namespace

void TpAllReduce::run(TpReduce how, float* x, int64_t m, int64_t h, float* residual) {
  if (m < 0 || h < 0) fail("tp all-reduce: negative shape [{}, {}]", m, h);
  switch (how) {
    case TpReduce::Fp32: comm_.all_reduce_sum(x, m * h); break;
    case TpReduce::Int8AllGather: all_gather_int8(x, m, h); break;
    case TpReduce::Int8ReduceScatter: reduce_scatter_int8(x, m, h); break;
  }
  if (residual)
    for (int64_t i = 0, n = m * h; i < n; ++i) residual[i] = residual[i] + x[i];
}

void TpAllReduce::all_gather_int8(float* x, int64_t m, int64_t h) {
  if (m == 0 || h == 0) return;  // every rank has the same shape: no collective on any
  const Int8RowKernels& k = int8_row_kernels();
  const int p = comm_.size();
  const int64_t packet = int8_packet_bytes(m, h);
  send_.resize(size_t(packet));
  recv_.resize(size_t(packet * p));
  pack(k, x, m, h, send_.data());
  comm_.all_gather(send_.data(), packet, recv_.data());
  std::vector<const char*> packets;
  for (int r = 0; r < p; ++r) packets.push_back(recv_.data() + r * packet);
  unpack_sum(k, packets, m, h, x);
}

void TpAllReduce::reduce_scatter_int8(float* x, int64_t m, int64_t h) {
  if (m == 0 || h == 0) return;
  const Int8RowKernels& k = int8_row_kernels();
  const int p = comm_.size(), me = comm_.rank();
  const RowSlice mine = owned_rows(m, me, p);

  // Phase 1: quantize per token, one packet of its rows to each owner, all-to-all.
  std::vector<int64_t> send_counts(p), send_displs(p), recv_counts(p), recv_displs(p);
  int64_t send_total = 0, recv_total = 0;
  for (int d = 0; d < p; ++d) {
    send_counts[d] = int8_packet_bytes(owned_rows(m, d, p).count, h);
    send_displs[d] = send_total;
    send_total += send_counts[d];
    recv_counts[d] = int8_packet_bytes(mine.count, h);
    recv_displs[d] = recv_total;
    recv_total += recv_counts[d];
  }
  send_.resize(size_t(std::max(send_total, int8_packet_bytes(mine.count, h))));
  recv_.resize(size_t(std::max(recv_total, send_total)));
  for (int d = 0; d < p; ++d) {
    const RowSlice s = owned_rows(m, d, p);
    if (s.count) pack(k, x + s.begin * h, s.count, h, send_.data() + send_displs[d]);
  }
  comm_.all_to_all_v(send_.data(), send_counts, send_displs, recv_.data(), recv_counts, recv_displs);

  // Owner: dequantize and sum in rank order, re-quantize per token.
  owned_.resize(size_t(mine.count * h));
  if (mine.count) {
    std::vector<const char*> packets;
    for (int r = 0; r < p; ++r) packets.push_back(recv_.data() + recv_displs[r]);
    unpack_sum(k, packets, mine.count, h, owned_.data());
    pack(k, owned_.data(), mine.count, h, send_.data());
  }

  // Phase 2: all-gather the re-quantized rows; every rank (owner included) dequantizes them.
  std::vector<int64_t> counts(p), displs(p);
  int64_t total = 0;
  for (int r = 0; r < p; ++r) {
    counts[r] = int8_packet_bytes(owned_rows(m, r, p).count, h);
    displs[r] = total;
    total += counts[r];
  }
  recv_.resize(size_t(total));
  comm_.all_gather_v(send_.data(), recv_.data(), counts, displs);
  for (int r = 0; r < p; ++r) {
    const RowSlice s = owned_rows(m, r, p);
    if (s.count) unpack_sum(k, {recv_.data() + displs[r]}, s.count, h, x + s.begin * h);
  }
}

}  // namespace lowbit::dist
