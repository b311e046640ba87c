#include "models/tp_group.h"

#include <csignal>
#include <cstring>
#include <map>

#include "core/error.h"
#include "models/decoder.h"

namespace lowbit {

TpCompression parse_tp_compression(const std::string& text) {
  if (text == "off" || text == "false" || text == "0") return TpCompression::Off;
  if (text == "on" || text == "true" || text == "1" || text == "int8-allgather") return TpCompression::AllGather;
  if (text == "int8-rs-ag") return TpCompression::ReduceScatter;
  if (text == "auto") return TpCompression::Auto;
  fail("--quantize-tp-communications: '{}' is not one of on, off, auto, int8-allgather, int8-rs-ag", text);
}

const char* tp_compression_name(TpCompression c) {
  switch (c) {
    case TpCompression::Off: return "off";
    case TpCompression::AllGather: return "int8-allgather";
    case TpCompression::ReduceScatter: return "int8-rs-ag";
    case TpCompression::Auto: return "auto";
  }
  return "?";
}

// On the wire: a fixed header, then (Load: the path and method; Forward: per chunk 7 int64
// fields, then every chunk's tokens and pages as int32) in one second broadcast.
enum class Op : int64_t { Load = 1, Unload, MakeCache, DropCache, Forward, Heartbeat, Stop };

struct TpGroup::Message {
  Op op = Op::Heartbeat;
  int64_t model = 0, cache = 0;
  int64_t args[3] = {0, 0, 0};  // MakeCache: slots, capacity, recurrent slots
  std::string text[2];          // Load: folder, quantization
  std::vector<int64_t> chunk_fields;
  std::vector<int32_t> ids;     // tokens then pages, chunk by chunk
};

namespace {
constexpr int kChunkFields = 7;  // slot, start_pos, tokens, all_logits, pages, recurrent_slot, verify
struct Header {
  int64_t op, model, cache, args[3], text0, text1, chunks, ids;
};
}  // namespace

TpGroup::TpGroup(std::shared_ptr<dist::Communicator> comm, TpCompression compression, bool heartbeats)
    : comm_(std::move(comm)), compression_(compression), heartbeats_(heartbeats) {
  if (compression_ != TpCompression::Off && comm_->size() < 2)
    fail("--quantize-tp-communications needs --tp-size of at least 2 (there is no all-reduce to compress)");
}

TpGroup::~TpGroup() = default;

void TpGroup::send(const Message& m) {
  // After a failed collective there is nobody to tell (and destructors announce too): the next
  // collective of a forward step throws instead.
  if (comm_->failed()) return;
  Header h{int64_t(m.op), m.model, m.cache, {m.args[0], m.args[1], m.args[2]}, int64_t(m.text[0].size()),
           int64_t(m.text[1].size()), int64_t(m.chunk_fields.size() / kChunkFields), int64_t(m.ids.size())};
  comm_->broadcast(&h, sizeof h, 0);
  std::vector<char> payload(m.text[0].begin(), m.text[0].end());
  payload.insert(payload.end(), m.text[1].begin(), m.text[1].end());
  const auto* f = reinterpret_cast<const char*>(m.chunk_fields.data());
  payload.insert(payload.end(), f, f + m.chunk_fields.size() * sizeof(int64_t));
  const auto* ids = reinterpret_cast<const char*>(m.ids.data());
  payload.insert(payload.end(), ids, ids + m.ids.size() * sizeof(int32_t));
  if (!payload.empty()) comm_->broadcast(payload.data(), int64_t(payload.size()), 0);
}

TpGroup::Message TpGroup::receive() {
  Header h{};
  comm_->broadcast(&h, sizeof h, 0);
  Message m;
  m.op = Op(h.op);
  m.model = h.model;
  m.cache = h.cache;
  for (int i = 0; i < 3; ++i) m.args[i] = h.args[i];
  const size_t bytes = size_t(h.text0 + h.text1) + size_t(h.chunks * kChunkFields) * sizeof(int64_t) +
                       size_t(h.ids) * sizeof(int32_t);
  if (bytes == 0) return m;
  std::vector<char> payload(bytes);
  comm_->broadcast(payload.data(), int64_t(bytes), 0);
  const char* p = payload.data();
  m.text[0].assign(p, size_t(h.text0));
  p += h.text0;
  m.text[1].assign(p, size_t(h.text1));
  p += h.text1;
  m.chunk_fields.resize(size_t(h.chunks * kChunkFields));
  // Copies only when non-empty: an empty vector's data() may be null, which memcpy forbids.
  if (!m.chunk_fields.empty()) std::memcpy(m.chunk_fields.data(), p, m.chunk_fields.size() * sizeof(int64_t));
  p += m.chunk_fields.size() * sizeof(int64_t);
  m.ids.resize(size_t(h.ids));
  if (!m.ids.empty()) std::memcpy(m.ids.data(), p, m.ids.size() * sizeof(int32_t));
  return m;
}

int64_t TpGroup::announce_load(const std::filesystem::path& dir, std::string_view quantization) {
  Message m;
  m.op = Op::Load;
  m.model = next_id_++;
  m.text[0] = dir.string();
  m.text[1] = std::string(quantization);
  send(m);
  return m.model;
}

void TpGroup::announce_unload(int64_t model) {
  if (stopped_) return;
  Message m;
  m.op = Op::Unload;
  m.model = model;
  send(m);
}

int64_t TpGroup::announce_make_cache(int64_t model, int64_t num_slots, int64_t capacity, int64_t recurrent_slots) {
  Message m;
  m.op = Op::MakeCache;
  m.model = model;
  m.cache = next_id_++;
  m.args[0] = num_slots;
  m.args[1] = capacity;
  m.args[2] = recurrent_slots;
  send(m);
  return m.cache;
}

void TpGroup::announce_drop_cache(int64_t model, int64_t cache) {
  if (stopped_) return;
  Message m;
  m.op = Op::DropCache;
  m.model = model;
  m.cache = cache;
  send(m);
}

void TpGroup::announce_forward(int64_t model, int64_t cache, std::span<const SequenceChunk> batch) {
  Message m;
  m.op = Op::Forward;
  m.model = model;
  m.cache = cache;
  for (const SequenceChunk& ch : batch) {
    m.chunk_fields.insert(m.chunk_fields.end(),
                          {ch.slot, ch.start_pos, int64_t(ch.tokens.size()), int64_t(ch.all_logits),
                           int64_t(ch.pages.size()), ch.recurrent_slot, int64_t(ch.verify)});
    m.ids.insert(m.ids.end(), ch.tokens.begin(), ch.tokens.end());
    m.ids.insert(m.ids.end(), ch.pages.begin(), ch.pages.end());
  }
  send(m);
}

void TpGroup::heartbeat() {
  if (stopped_) return;
  Message m;
  m.op = Op::Heartbeat;
  send(m);
}

void TpGroup::stop() {
  if (stopped_) return;
  Message m;
  m.op = Op::Stop;
  send(m);
  stopped_ = true;
}

void TpGroup::run_follower(ThreadPool& pool) {
  // Rank 0 alone decides when the job ends (mpirun passes a SIGINT/SIGTERM to every rank: a
  // server then drains its requests, which needs these ranks until it says stop).
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGUSR1, SIG_IGN);  // the launcher's stop signal, for rank 0
  std::map<int64_t, std::unique_ptr<DecoderModel>> models;
  std::map<int64_t, KvCache> caches;
  std::vector<SequenceChunk> batch;
  std::vector<float> logits;
  auto model_of = [&](int64_t id) -> DecoderModel& {
    auto it = models.find(id);
    if (it == models.end()) comm_->abort(fmt::format("tp follower {}: no model {}", rank(), id));
    return *it->second;
  };
  // Waiting for the next call may take longer than a collective (rank 0 measures bandwidth,
  // reads a file, tokenizes), up to 6 deadlines; a serving rank 0 sends heartbeats when idle.
  const auto deadline = comm_->timeout();
  const auto wait = heartbeats_ ? deadline : deadline * 6;
  for (;;) {
    if (deadline.count() > 0) comm_->set_timeout(wait);
    Message m = receive();
    if (deadline.count() > 0) comm_->set_timeout(deadline);
    switch (m.op) {
      case Op::Load:
        models[m.model] = DecoderModel::load(m.text[0], {}, m.text[1], {}, this);
        models[m.model]->set_tp_id(m.model);
        break;
      case Op::Unload:
        models.erase(m.model);
        break;
      case Op::MakeCache:
        caches.insert_or_assign(m.cache, model_of(m.model).make_cache(m.args[0], m.args[1], m.args[2]));
        break;
      case Op::DropCache:
        caches.erase(m.cache);
        break;
      case Op::Forward: {
        auto it = caches.find(m.cache);
        if (it == caches.end()) comm_->abort(fmt::format("tp follower {}: no cache {}", rank(), m.cache));
        batch.clear();
        size_t id = 0;
        for (size_t c = 0; c + kChunkFields <= m.chunk_fields.size(); c += kChunkFields) {
          const int64_t* f = m.chunk_fields.data() + c;
          SequenceChunk ch;
          ch.slot = f[0];
          ch.start_pos = f[1];
          ch.tokens = std::span<const int32_t>(m.ids.data() + id, size_t(f[2]));
          id += size_t(f[2]);
          ch.all_logits = f[3] != 0;
          ch.pages = std::span<const int32_t>(m.ids.data() + id, size_t(f[4]));
          id += size_t(f[4]);
          ch.recurrent_slot = f[5];
          ch.verify = f[6] != 0;
          batch.push_back(ch);
        }
        model_of(m.model).forward(batch, it->second, pool, logits);
        break;
      }
      case Op::Heartbeat:
        break;
      case Op::Stop:
        caches.clear();
        models.clear();
        stopped_ = true;
        return;
      default:
        comm_->abort(fmt::format("tp follower {}: unknown call {}", rank(), int64_t(m.op)));
    }
  }
}

}  // namespace lowbit
