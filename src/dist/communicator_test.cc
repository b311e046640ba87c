// The Communicator collectives on whatever ranks mpirun gave (1, 2 or 4), and the single-rank
// implementation; the link model's fit and the agreement of its decisions across ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "core/error.h"
#include "dist/dist_test_util.h"
#include "dist/link_model.h"

namespace lowbit::dist {
namespace {

TEST(Communicator, BroadcastAllGatherBarrier) {
  Communicator& comm = test_comm();
  const int p = comm.size(), me = comm.rank();
  ASSERT_GE(p, 1);
  ASSERT_LT(me, p);
  for (int root = 0; root < p; ++root) {
    std::vector<int> v(37, me == root ? root + 100 : -1);
    comm.broadcast(v.data(), int64_t(v.size() * sizeof(int)), root);
    for (int x : v) EXPECT_EQ(x, root + 100);
  }
  std::vector<int> all(size_t(p) * 3);
  const int mine[3] = {me, me * 10, me * 100};
  comm.all_gather(mine, sizeof(mine), all.data());
  for (int r = 0; r < p; ++r) EXPECT_EQ(all[size_t(r) * 3 + 2], r * 100);
  comm.barrier();
  double t = me + 0.5;
  comm.all_reduce_max(&t, 1);
  EXPECT_EQ(t, p - 0.5);
}

TEST(Communicator, VariableCountCollectives) {
  Communicator& comm = test_comm();
  const int p = comm.size(), me = comm.rank();
  // Rank r contributes r + 1 bytes of value r (rank 0: one byte, so zero counts also occur
  // below in all-to-all for pairs with d == 0 on odd ranks).
  std::vector<int64_t> counts(static_cast<size_t>(p)), displs(static_cast<size_t>(p));
  int64_t total = 0;
  for (int r = 0; r < p; ++r) {
    counts[size_t(r)] = r + 1;
    displs[size_t(r)] = total;
    total += r + 1;
  }
  std::vector<char> send(size_t(me + 1), char(me)), recv(size_t(total), -1);
  comm.all_gather_v(send.data(), recv.data(), counts, displs);
  for (int r = 0; r < p; ++r)
    for (int64_t i = 0; i < counts[size_t(r)]; ++i) EXPECT_EQ(recv[size_t(displs[size_t(r)] + i)], char(r));

  // All-to-all: rank s sends (s + d) % 3 bytes of value 16·s + d to rank d.
  std::vector<int64_t> sc(static_cast<size_t>(p)), sd(static_cast<size_t>(p)), rc(static_cast<size_t>(p)), rd(static_cast<size_t>(p));
  int64_t st = 0, rt = 0;
  for (int d = 0; d < p; ++d) {
    sc[size_t(d)] = (me + d) % 3, sd[size_t(d)] = st, st += sc[size_t(d)];
    rc[size_t(d)] = (d + me) % 3, rd[size_t(d)] = rt, rt += rc[size_t(d)];
  }
  std::vector<char> s2(static_cast<size_t>(st)), r2(static_cast<size_t>(rt), -1);
  for (int d = 0; d < p; ++d) std::fill_n(s2.begin() + sd[size_t(d)], sc[size_t(d)], char(16 * me + d));
  comm.all_to_all_v(s2.data(), sc, sd, r2.data(), rc, rd);
  for (int s = 0; s < p; ++s)
    for (int64_t i = 0; i < rc[size_t(s)]; ++i) EXPECT_EQ(r2[size_t(rd[size_t(s)] + i)], char(16 * s + me));
}

TEST(Communicator, TimeoutIsConfigurable) {
  Communicator& comm = test_comm();
  const auto before = comm.timeout();
  EXPECT_GT(before.count(), 0);
  comm.set_timeout(std::chrono::milliseconds(1234));
  EXPECT_EQ(comm.timeout().count(), 1234);
  comm.set_timeout(before);
}

TEST(SingleRankCommunicator, CollectivesAreCopies) {
  auto comm = make_single_rank_communicator();
  EXPECT_EQ(comm->size(), 1);
  float x[3] = {1, 2, 3};
  comm->all_reduce_sum(x, 3);
  EXPECT_EQ(x[2], 3.0f);
  int in = 7, out = 0;
  comm->all_gather(&in, sizeof(in), &out);
  EXPECT_EQ(out, 7);
  std::vector<float> y = {1.5f, -2.0f, 0.0f, 4.0f};
  TpAllReduce ar(*comm);
  ar.run(TpReduce::Int8AllGather, y.data(), 2, 2);  // one rank: just quantize → dequantize
  const float s0 = 2.0f / 127.0f, s1 = 4.0f / 127.0f;
  EXPECT_EQ(y[0], std::nearbyint(1.5f / s0) * s0);
  EXPECT_EQ(y[1], -127.0f * s0);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], std::nearbyint(4.0f / s1) * s1);
  EXPECT_THROW(comm->broadcast(&in, 4, 1), Error);
}

// A curve through (n, t) points: t = 10 µs + n · k ns/elem sampled at three sizes.
LinkCurve line(double latency, double per_elem) {
  LinkCurve c;
  for (double n : {1e3, 1e5, 1e6}) {
    c.elements.push_back(n);
    c.seconds.push_back(latency + n * per_elem);
  }
  return c;
}

TEST(LinkModel, CurveInterpolatesAndExtends) {
  LinkCurve c;
  c.elements = {100, 1000, 10000};
  c.seconds = {1.0, 2.0, 12.0};
  EXPECT_DOUBLE_EQ(c.predict(10), 1.0);      // below the smallest probe: its time
  EXPECT_DOUBLE_EQ(c.predict(550), 1.5);     // inside a segment: linear
  EXPECT_DOUBLE_EQ(c.predict(20000), 12.0 + 10000.0 * (10.0 / 9000.0));  // beyond: the last slope
  c.seconds = {1.0, 3.0, 2.0};               // noise: a falling segment never predicts less
  EXPECT_DOUBLE_EQ(c.predict(20000), 3.0);
}

TEST(LinkModel, ChoosesByPredictedTime) {
  // fp32: low latency, 4 ns/elem; int8: higher latency, 1 ns/elem. Crossover near 10 000 elements.
  const LinkModel model({line(10e-6, 4e-9), line(40e-6, 1e-9), line(50e-6, 1e-9)});
  EXPECT_EQ(model.choose(1, 2048), TpReduce::Fp32);
  EXPECT_EQ(model.choose(512, 2048), TpReduce::Int8AllGather);
  EXPECT_TRUE(model.compress(8192, 2048));
  EXPECT_EQ(model.best_int8(1, 2048), TpReduce::Int8AllGather);
  // Gains inside the margin do not switch: reduce-scatter 5 % faster than all-gather stays
  // all-gather; int8 5 % faster than fp32 stays fp32.
  const LinkModel close({line(0, 1.00e-9), line(0, 0.96e-9), line(0, 0.91e-9)});
  EXPECT_EQ(close.best_int8(512, 2048), TpReduce::Int8AllGather);
  EXPECT_EQ(close.choose(512, 2048), TpReduce::Fp32);
  const LinkModel rs({line(0, 4e-9), line(0, 2e-9), line(0, 1e-9)});
  EXPECT_EQ(rs.choose(512, 2048), TpReduce::Int8ReduceScatter);
}

TEST(LinkModel, MeasuredDecisionsAgreeOnEveryRank) {
  Communicator& comm = test_comm();
  TpAllReduce ar(comm);
  const LinkModel model = LinkModel::measure(ar, {.hidden = 256, .rows = {4, 32, 128}, .warmup = 1, .reps = 3});
  EXPECT_THROW(LinkModel::measure(ar, {.hidden = 256, .rows = {32, 4}}), Error);  // every rank throws
  int choices[4];
  const int64_t sizes[4] = {1, 64, 512, 8192};
  for (int i = 0; i < 4; ++i) choices[i] = int(model.choose(sizes[i], 2048));
  std::vector<int> all(size_t(comm.size()) * 4);
  comm.all_gather(choices, sizeof(choices), all.data());
  for (int r = 1; r < comm.size(); ++r)
    for (int i = 0; i < 4; ++i) EXPECT_EQ(all[size_t(r) * 4 + size_t(i)], choices[i]) << "rank " << r;
  if (comm.rank() == 0) std::printf("link model (H=256 probe): %s\n", model.describe().c_str());
}

}  // namespace
}  // namespace lowbit::dist
