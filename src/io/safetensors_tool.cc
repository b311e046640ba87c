// Test-only: prints what the C++ reader sees, as JSON, so tests/python can compare it with
// the `safetensors` package.
//   safetensors_tool dump FILE|DIR   {"tensors": {name: {dtype, shape, file, sha256}}, ...}
//   safetensors_tool config DIR      the parsed ModelConfig
// Exit status 1 (and the message on stderr) on a lowbit::Error.
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace lowbit {
namespace {

using nlohmann::json;

// FIPS 180-4 SHA-256, small and slow; fine for test tensors.
std::string sha256_hex(const uint8_t* data, size_t size) {
  static constexpr uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
      0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
      0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
      0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
      0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
      0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
      0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
      0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  std::string msg(reinterpret_cast<const char*>(data), size);
  msg += char(0x80);
  while (msg.size() % 64 != 56) msg += char(0);
  const uint64_t bits = uint64_t(size) * 8;
  for (int i = 7; i >= 0; --i) msg += char((bits >> (8 * i)) & 0xff);
  for (size_t off = 0; off < msg.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const uint8_t*>(msg.data() + off + 4 * i);
      w[i] = uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 =
          hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  char hex[65];
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 8 * i, 9, "%08x", h[i]);
  return std::string(hex, 64);
}

json describe(const TensorView& v, const std::string& file) {
  return {{"dtype", dtype_name(v.dtype)},
          {"shape", v.shape},
          {"file", file},
          {"sha256", sha256_hex(static_cast<const uint8_t*>(v.data), v.nbytes())}};
}

json dump(const std::filesystem::path& path) {
  json out = {{"tensors", json::object()}};
  if (std::filesystem::is_directory(path)) {
    Checkpoint ckpt(path);
    for (const auto& name : ckpt.names())
      out["tensors"][name] = describe(ckpt.get(name), ckpt.file_of(name));
    out["total_tensor_bytes"] = ckpt.total_tensor_bytes();
  } else {
    SafetensorsFile file(path);
    for (const auto& entry : file.header().tensors)
      out["tensors"][entry.name] = describe(file.view(entry), path.filename().string());
    out["metadata"] = file.header().metadata;
  }
  return out;
}

json config(const std::filesystem::path& dir) {
  ModelConfig c = load_model_config(dir);
  const RopeScaling& r = c.rope_scaling;
  json rope = {{"type", r.type},
               {"factor", r.factor},
               {"low_freq_factor", r.low_freq_factor},
               {"high_freq_factor", r.high_freq_factor},
               {"original_max_position_embeddings", r.original_max_position_embeddings},
               {"beta_fast", r.beta_fast},
               {"beta_slow", r.beta_slow},
               {"truncate", r.truncate}};
  auto opt = [](const auto& v) { return v ? json(*v) : json(nullptr); };
  rope["attention_factor"] = opt(r.attention_factor);
  rope["mscale"] = opt(r.mscale);
  rope["mscale_all_dim"] = opt(r.mscale_all_dim);
  return {{"architecture", c.architecture_name},
          {"hidden_size", c.hidden_size},
          {"num_hidden_layers", c.num_hidden_layers},
          {"num_attention_heads", c.num_attention_heads},
          {"num_key_value_heads", c.num_key_value_heads},
          {"head_dim", c.head_dim},
          {"intermediate_size", c.intermediate_size},
          {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_position_embeddings},
          {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope", rope},
          {"tie_word_embeddings", c.tie_word_embeddings},
          {"attention_bias", c.attention_bias},
          {"mlp_bias", c.mlp_bias},
          {"dtype", dtype_name(c.torch_dtype)},
          {"bos_token_id", opt(c.bos_token_id)},
          {"eos_token_ids", c.eos_token_ids}};
}

}  // namespace
}  // namespace lowbit

int main(int argc, char** argv) {
  if (argc != 3 || (std::strcmp(argv[1], "dump") != 0 && std::strcmp(argv[1], "config") != 0)) {
    std::fprintf(stderr, "usage: %s dump FILE|DIR | config DIR\n", argv[0]);
    return 2;
  }
  try {
    const nlohmann::json out =
        std::strcmp(argv[1], "dump") == 0 ? lowbit::dump(argv[2]) : lowbit::config(argv[2]);
    std::printf("%s\n", out.dump(1).c_str());
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
