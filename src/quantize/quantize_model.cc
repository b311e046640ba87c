#include "quantize/quantize_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/json_util.h"
#include "io/model_config.h"
#include "quantize/calibration.h"
#include "quantize/extra_gemm_ref.h"
#include "quantize/format_writer.h"

namespace lowbit::quantize {

namespace fs = std::filesystem;

namespace {

// Files of the source folder that are not weights: tokenizer, generation config, chat
// template, ... copied as they are (config.json is rewritten by the format writer).
bool copy_through(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name == "config.json" || name == "quant_model_description.json" || name.ends_with(".safetensors") ||
      name.ends_with(".safetensors.index.json") || name.ends_with(".bin") || name.ends_with(".pt"))
    return false;
  return true;
}

std::string scheme_list(const QuantPlan& plan) {
  std::set<std::string> s;
  for (const LayerPlan& l : plan.layers)
    if (scheme_needs_calibration(plan.format, l.scheme)) s.insert(l.scheme);
  return fmt::format("{}", fmt::join(s, ", "));
}

}  // namespace

QuantReport quantize_model(const QuantizeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (fs::exists(o.output) && !fs::is_directory(o.output)) fail("-o {}: exists and is not a folder", o.output.string());
  if (fs::exists(o.output) && fs::equivalent(o.input, o.output)) fail("-o must differ from -m ({})", o.input.string());
  if (!o.calib_text.empty() && !o.calib_ids.empty()) fail("--calib and --calib-ids are exclusive");

  const ModelConfig config = load_model_config(o.input);
  const Checkpoint ckpt(o.input);
  const DType model_dtype = config.torch_dtype;
  PlanOptions po = o.plan;
  po.tied_lm_head = config.tie_word_embeddings;
  const QuantPlan plan = make_plan(po, linear_layers(config));
  const bool have_calib = !o.calib_text.empty() || !o.calib_ids.empty();
  if (plan.needs_calibration() && !have_calib)
    fail("scheme {} uses static activation scales, which need calibration data: pass --calib FILE (text) or "
         "--calib-ids FILE (JSON token ids)",
         scheme_list(plan));
  if (!config.quantization_config.is_null() || fs::exists(o.input / "quant_model_description.json"))
    fail("{}: the input is already quantized; lowbit quantize needs a float checkpoint", o.input.string());

  QuantReport report;
  report.format = std::string(format_name(plan.format));
  report.input = o.input.string();
  report.output = o.output.string();

  std::map<std::string, LayerCalib> calib;
  if (have_calib) {
    CalibOptions co;
    co.tokens = load_calibration_tokens(o.input, o.calib_text, o.calib_ids, o.calib_tokens);
    co.seq_len = o.calib_seq_len;
    co.max_rows = o.calib_rows;
    co.threads = o.threads;
    if (o.progress) co.progress = [&](int64_t d, int64_t t) { o.progress("calibrating", d, t); };
    report.calibration_tokens = int64_t(co.tokens.size());
    calib = run_calibration(o.input, co);
  }

  auto writer = make_format_writer(plan, model_dtype);
  // Every output tensor, declared before any data: copied source tensors, then each layer's.
  std::set<std::string> replaced;  // source tensors a quantized layer replaces
  std::map<std::string, std::string> scheme_of;
  std::vector<TensorDecl> decls;
  for (const LayerPlan& l : plan.layers) {
    const std::string w = l.layer.prefix + ".weight";
    const TensorView v = ckpt.get(w, {DType::BF16, DType::F16, DType::F32}, {l.layer.out_features, l.layer.in_features});
    if (l.scheme == "FLOAT") continue;
    const bool has_bias = ckpt.has(l.layer.prefix + ".bias");
    replaced.insert(w);
    if (has_bias) replaced.insert(l.layer.prefix + ".bias");
    for (TensorDecl& d : writer->declare(l, v.dtype, has_bias)) {
      scheme_of[d.name] = l.scheme;
      decls.push_back(std::move(d));
    }
  }
  std::vector<std::string> copied;
  for (const std::string& name : ckpt.names()) {
    if (replaced.count(name)) continue;
    const TensorView v = ckpt.get(name);
    decls.push_back({name, v.dtype, v.shape});
    scheme_of[name] = "FLOAT";
    copied.push_back(name);
  }

  fs::create_directories(o.output);
  SafetensorsWriter out(o.output / writer->weights_file(), decls);
  for (const std::string& name : copied) {
    const TensorView v = ckpt.get(name);
    out.write(name, v.data, v.nbytes());
  }

  // Layers in parallel: each worker takes the next layer, quantizes it, writes its tensors at
  // their offsets and measures it; only `threads` layers are in memory at once.
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<LayerReport> layer_reports(plan.layers.size());
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::string first_error;
  auto work = [&]() {
    for (size_t i = next++; i < plan.layers.size(); i = next++) {
      try {
        const LayerPlan& l = plan.layers[i];
        const int64_t n = l.layer.out_features, k = l.layer.in_features;
        const TensorView v = ckpt.get(l.layer.prefix + ".weight");
        LinearInput in;
        in.plan = &l;
        in.dtype = v.dtype;
        in.w.resize(size_t(n * k));
        convert_to_f32(v.dtype, v.data, in.w.data(), in.w.size());
        if (ckpt.has(l.layer.prefix + ".bias")) in.bias = ckpt.get(l.layer.prefix + ".bias");
        const LayerCalib* c = nullptr;
        if (auto it = calib.find(l.layer.prefix); it != calib.end() && it->second.rows_seen > 0) {
          c = &it->second;
          in.input_range = std::make_pair(c->min, c->max);
          in.input_range_mean = std::make_pair(c->mean_min, c->mean_max);
        }
        QuantizedLinear q;
        if (l.scheme == "FLOAT") {
          q.dequant = in.w;  // copied through unchanged
        } else {
          q = writer->quantize(in);
          for (const OutTensor& t : q.tensors) out.write(t.decl.name, t.bytes.data(), t.bytes.size());
        }
        if (l.scheme == "FLOAT" && c) {
          const std::vector<float>* wp = &in.w;
          q.gemm = [wp, n, k](const float* x, int64_t m, float* y) { gemm_float_ref(x, m, wp->data(), n, k, y); };
        }
        layer_reports[i] = measure_layer(l, in.w, q, c ? c->sample.data() : nullptr, c ? c->sample_rows() : 0);
        const int64_t d = ++done;
        std::lock_guard<std::mutex> g(mu);
        if (o.progress) o.progress("quantizing", d, int64_t(plan.layers.size()));
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> g(mu);
        if (first_error.empty()) first_error = e.what();
        next = plan.layers.size();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (!first_error.empty()) throw Error(first_error);
  out.finish();

  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(read_text_file(o.input / "config.json"));
  writer->finish(o.output, cfg, decls, [&](const std::string& name) { return scheme_of.at(name); });
  for (const auto& entry : fs::directory_iterator(o.input))
    if (entry.is_regular_file() && copy_through(entry.path()))
      fs::copy_file(entry.path(), o.output / entry.path().filename(), fs::copy_options::overwrite_existing);

  report.layers = std::move(layer_reports);
  if (plan.format == OutFormat::Awq)
    report.notes.push_back("AWQ weights are plain round-to-nearest (quantize_weight_awq): no activation-aware scale "
                           "search or clipping is done, only AWQ's storage format");
  for (const LayerPlan& l : plan.layers)
    if (l.layer.prefix == "lm_head" && l.scheme != "FLOAT")
      report.notes.push_back("lm_head is quantized: lowbit's own loader reads lm_head as a float weight only");
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace lowbit::quantize
