// A tensor-parallel job's processes as the model layer sees them: rank 0 (the leader) runs the
// command (generate, serve, bench, eval) and decides everything; the other ranks (followers)
// only mirror the leader's model calls, which it broadcasts before making them: load a model,
// make or drop a KV cache, run a forward step. Every rank then runs the same forward with the
// same batch, meeting in the row-parallel all-reduces. Followers keep no scheduler, sampler or
// tokenizer: rank 0's decisions are the only ones (a sampler seeded per process, or a clock,
// could never make two ranks disagree about a batch).
//
// A follower waits for the next call up to one deadline (10 s) when rank 0 is a server, which
// sends a heartbeat every second while idle (DecoderModel::idle), else up to six. A leader or follower that dies ends the job: mpirun takes the others
// down, or the next collective's watchdog does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace lowbit {

struct SequenceChunk;
class ThreadPool;

// --quantize-tp-communications: how the all-reduces of prefill/extend batches travel. Decode
// batches (one token per sequence) always stay fp32, as in SGLang.
enum class TpCompression {
  Off,            // fp32 all-reduce
  AllGather,      // "on" / "int8-allgather": per-token INT8, all-gather, sum in rank order
  ReduceScatter,  // "int8-rs-ag": per-token INT8 reduce-scatter over tokens, re-quantized all-gather
  Auto,           // "auto": measure the link at load, compress a batch when predicted faster
};
// Error naming --quantize-tp-communications for anything else.
TpCompression parse_tp_compression(const std::string& text);
const char* tp_compression_name(TpCompression c);

class TpGroup {
 public:
  // `heartbeats`: rank 0 is a server, idle at most a second between calls (DecoderModel::idle),
  // so the other ranks wait for a call no longer than one deadline; otherwise up to six (rank 0
  // of a command may measure bandwidth or read files between calls).
  TpGroup(std::shared_ptr<dist::Communicator> comm, TpCompression compression, bool heartbeats = false);
  ~TpGroup();

  dist::Communicator& comm() { return *comm_; }
  int rank() const { return comm_->rank(); }
  int size() const { return comm_->size(); }
  bool leader() const { return comm_->rank() == 0; }
  TpCompression compression() const { return compression_; }

  // Leader side: announce a call before making it. Ids are the leader's, handed out here.
  int64_t announce_load(const std::filesystem::path& dir, std::string_view quantization);
  void announce_unload(int64_t model);
  int64_t announce_make_cache(int64_t model, int64_t num_slots, int64_t capacity, int64_t recurrent_slots);
  void announce_drop_cache(int64_t model, int64_t cache);
  void announce_forward(int64_t model, int64_t cache, std::span<const SequenceChunk> batch);
  void heartbeat();
  // Ends every follower's run_follower(); sent once, by the leader's command when it is done.
  void stop();

  // Leader side, after an error: the leader is about to exit non-zero (mpirun then ends the
  // followers), so no further call is announced (a follower in a collective would not answer).
  void abandon() { stopped_ = true; }

  // Follower side: mirrors the leader's calls until stop(), on `pool` (as many threads as the
  // leader's). Models are loaded with this group.
  void run_follower(ThreadPool& pool);

 private:
  struct Message;
  void send(const Message& m);
  Message receive();

  std::shared_ptr<dist::Communicator> comm_;
  TpCompression compression_;
  bool heartbeats_;
  int64_t next_id_ = 1;
  bool stopped_ = false;
};

}  // namespace lowbit
