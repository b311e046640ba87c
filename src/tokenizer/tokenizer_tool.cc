// Test and benchmark driver for the tokenizer (not the user-facing CLI).
//
//   tokenizer_tool DIR                 JSON lines on stdin, one answer line each:
//     {"op":"encode","text":"..."|"hex":"e4b8","add_special_tokens":false} -> {"ids":[...]}
//     {"op":"decode","ids":[...],"skip_special_tokens":false}             -> {"text":"..."}
//     {"op":"stream","ids":[...],"skip_special_tokens":false}  -> {"pieces":[...]}
//     {"op":"info"} -> {"vocab_size":N,"bos":id|null,"eos":id|null}
//   tokenizer_tool DIR bench FILE [REPS [paragraphs]]   encode FILE REPS times (as one string,
//       or paragraph by paragraph, cut after each "\n\n"), print MB/s as JSON
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

using nlohmann::json;

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += char(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

json answer(const lowbit::Tokenizer& tok, const json& req) {
  std::string op = req.at("op").get<std::string>();
  if (op == "encode") {
    std::string text = req.contains("hex") ? from_hex(req["hex"].get<std::string>())
                                           : req.at("text").get<std::string>();
    return {{"ids", tok.encode(text, req.value("add_special_tokens", false))}};
  }
  std::vector<int32_t> ids = req.value("ids", std::vector<int32_t>());
  bool skip = req.value("skip_special_tokens", false);
  if (op == "decode") return {{"text", tok.decode(ids, skip)}};
  if (op == "stream") {
    lowbit::Tokenizer::StreamDecoder stream(tok, skip);
    json pieces = json::array();
    for (int32_t id : ids) pieces.push_back(stream.push(id));
    pieces.push_back(stream.flush());
    return {{"pieces", pieces}};
  }
  if (op == "info") {
    json j = {{"vocab_size", tok.vocab_size()}, {"bos", nullptr}, {"eos", nullptr}};
    if (tok.bos_id()) j["bos"] = *tok.bos_id();
    if (tok.eos_id()) j["eos"] = *tok.eos_id();
    return j;
  }
  lowbit::fail("unknown op '{}'", op);
}

int serve(const lowbit::Tokenizer& tok) {
  std::string line;
  while (std::getline(std::cin, line)) {
    json out;
    try {
      out = answer(tok, json::parse(line));
    } catch (const std::exception& e) {
      out = {{"error", e.what()}};
    }
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << '\n' << std::flush;
  }
  return 0;
}

int bench(const lowbit::Tokenizer& tok, const std::string& file, int reps, bool paragraphs) {
  std::ifstream in(file, std::ios::binary);
  if (!in) lowbit::fail("cannot open {}", file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::vector<std::string_view> parts;
  if (paragraphs) {
    for (size_t start = 0; start < text.size();) {
      size_t cut = text.find("\n\n", start);
      size_t end = cut == std::string::npos ? text.size() : cut + 2;
      parts.push_back(std::string_view(text).substr(start, end - start));
      start = end;
    }
  } else {
    parts.push_back(text);
  }
  json rates = json::array();
  size_t tokens = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    tokens = 0;
    for (std::string_view part : parts) tokens += tok.encode(part).size();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(double(text.size()) / 1e6 / s);
  }
  std::cout << json{{"bytes", text.size()}, {"tokens", tokens}, {"mb_per_s", rates}}.dump() << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: tokenizer_tool DIR [bench FILE [REPS]]\n";
    return 2;
  }
  try {
    auto t0 = std::chrono::steady_clock::now();
    lowbit::Tokenizer tok = lowbit::Tokenizer::from_dir(argv[1]);
    double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (argc >= 4 && std::string(argv[2]) == "bench") {
      std::cerr << "load " << load << " s\n";
      return bench(tok, argv[3], argc >= 5 ? std::stoi(argv[4]) : 5,
                   argc >= 6 && std::string(argv[5]) == "paragraphs");
    }
    return serve(tok);
  } catch (const std::exception& e) {
    std::cerr << "tokenizer_tool: " << e.what() << '\n';
    return 1;
  }
}
