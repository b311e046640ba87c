#include "quantize/quantize_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/runtime_options.h"
#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "io/json_util.h"
#include "io/model_config.h"
#include "quantize/calibration.h"
#include "quantize/extra_gemm_ref.h"
#include "quantize/format_writer.h"
#include "quantize/gptq_output.h"
#include "quantize/gptq_sequential.h"
#include "quantize/linear_source.h"
#include "quantize/scheme_search.h"

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

// The integer grid of every layer GPTQ quantizes; Errors, before any work, for a layer whose
// scheme GPTQ cannot drive or whose act-order the format cannot store.
std::map<std::string, IntGrid> gptq_grids(const QuantPlan& plan, const Checkpoint& ckpt, const GptqOptions& g) {
  std::map<std::string, IntGrid> grids;
  for (const LayerPlan& l : plan.layers) {
    if (l.scheme == "FLOAT") continue;
    std::string why;
    const DType dt = linear_weight(ckpt, l.layer.prefix, l.layer.out_features, l.layer.in_features).dtype;
    auto grid = int_grid_for(plan.format, l, dt, &why);
    if (!grid) fail("--algorithm gptq: layer '{}' ({}, {}): {}", l.layer.prefix, l.scheme, l.why, why);
    const bool grouped = grid->group_size > 0 && grid->group_size < l.layer.in_features;
    const bool ct_packed = plan.format == OutFormat::CompressedTensors && l.scheme.starts_with("W4A16");
    if (g.act_order == ActOrder::Group && grouped && !ct_packed)
      fail("--act-order: layer '{}' is {} with groups of {} in --format {}, which cannot store the column "
           "permutation (g_idx; only compressed-tensors W4A16 can). Add --gptq-static-groups (act-order with the "
           "checkpoint's own groups, no g_idx) or use --group-size 0",
           l.layer.prefix, l.scheme, grid->group_size, format_name(plan.format));
    grids[l.layer.prefix] = *grid;
  }
  return grids;
}

// --smooth's checks, before any work, and its groups (s chosen after calibration).
SmoothPlan smoothing_plan(const QuantizeOptions& o, const ModelConfig& config, const Checkpoint& ckpt,
                          const QuantPlan& plan, bool have_calib) {
  if (!have_calib)
    fail("--smooth needs calibration data (per-channel activation ranges and sample rows): pass --calib FILE (text) "
         "or --calib-ids FILE (JSON token ids)");
  if (o.algorithm == Algorithm::Gptq)
    fail("--smooth with --algorithm gptq is not supported: GPTQ's sequential pass runs the checkpoint's own "
         "(unsmoothed) weights and norms; use --smooth with --algorithm rtn");
  if (config.arch != Architecture::Llama && config.arch != Architecture::Qwen3)
    fail("--smooth: {} is not supported (dense Llama and Qwen3 only: the fold needs plain RMSNorm weights before "
         "q/k/v and gate/up)",
         config.architecture_name);
  SmoothPlan sp = smoothing_groups(plan, config, [&](const std::string& p) { return ckpt.has(p + ".bias"); });
  if (sp.groups.empty())
    fail("--smooth applies to int8 schemes with static activation scales (msmodelslim W8A8, compressed-tensors "
         "W8A8_STATIC, W8A8_STATIC_ASYM); dynamic-activation schemes need no smoothing of a static range{}",
         sp.skipped.empty() ? std::string() : fmt::format(" ({})", sp.skipped.front()));
  return sp;
}

// --algorithm awq's checks, before any work, and its groups (s chosen after calibration).
AwqPlan awq_plan(const QuantizeOptions& o, const ModelConfig& config, const Checkpoint& ckpt, const QuantPlan& plan,
                 bool have_calib) {
  if (!have_calib)
    fail("--algorithm awq needs calibration data (mean activation per input channel, sample rows for the search): "
         "pass --calib FILE (text) or --calib-ids FILE (JSON token ids)");
  if (config.arch != Architecture::Llama && config.arch != Architecture::Qwen3)
    fail("--algorithm awq: {} is not supported (dense Llama and Qwen3 only: the fold needs plain RMSNorm weights "
         "before q/k/v and gate/up)",
         config.architecture_name);
  if (o.awq.grid < 1 || o.awq.clip_grid < 1 || !(o.awq.max_shrink >= 0 && o.awq.max_shrink < 1))
    fail("AWQ search grid {} / clip grid {} / max shrink {}: need grids ≥ 1 and 0 ≤ shrink < 1", o.awq.grid,
         o.awq.clip_grid, o.awq.max_shrink);
  AwqPlan p;
  p.scales = awq_groups(plan, config, [&](const std::string& l) { return ckpt.has(l + ".bias"); });
  if (p.scales.groups.empty())
    fail("--algorithm awq applies to integer-weight schemes with unscaled or per-token activations (awq W4A16, "
         "compressed-tensors W4A16, W4A16_ASYM, W8A8, msmodelslim W8A8_DYNAMIC, W4A8_DYNAMIC, W4A4_DYNAMIC){}",
         p.scales.skipped.empty() ? std::string() : fmt::format(" ({})", p.scales.skipped.front()));
  return p;
}

// What a Qwen3-MoE model cannot get yet, before any work: the calibration and search passes
// observe the model's plain linear layers, and the experts live inside their MoE layer.
void check_moe_plan(const QuantizeOptions& o, const ModelConfig& config, const QuantPlan& plan) {
  if (config.moe.num_experts <= 0) return;
  if (o.search)
    fail("{}: the scheme search (--target-kld / --target-bits) handles dense models only; {} is a mixture-of-experts "
         "model (choose schemes with --scheme and --override)",
         o.input.string(), config.architecture_name);
  for (const LayerPlan& l : plan.layers)
    if (l.layer.prefix.find(".mlp.experts.") != std::string::npos && scheme_needs_calibration(plan.format, l.scheme))
      fail("layer '{}' ({}, {}): static activation scales for MoE experts would need each expert's own calibration "
           "inputs, which lowbit quantize does not collect; give the experts a dynamic scheme, e.g. --override "
           "'.*\\.experts\\..*={}' (attention may stay static, as in msmodelslim's mixed Qwen3-MoE files)",
           l.layer.prefix, l.scheme, l.why, plan.format == OutFormat::MsModelSlim ? "W8A8_DYNAMIC" : "W8A8");
}

bool uses_g_idx(const QuantizeOptions& o, const QuantPlan& plan, const LayerPlan& l) {
  return o.algorithm == Algorithm::Gptq && o.gptq.act_order == ActOrder::Group && !o.gptq.static_groups &&
         plan.format == OutFormat::CompressedTensors && l.scheme.starts_with("W4A16") && l.group_size > 0 &&
         l.group_size < l.layer.in_features;
}

}  // namespace

QuantReport quantize_model(const QuantizeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (fs::exists(o.output) && !fs::is_directory(o.output)) fail("-o {}: exists and is not a folder", o.output.string());
  if (fs::exists(o.output) && fs::equivalent(o.input, o.output)) fail("-o must differ from -m ({})", o.input.string());
  if (!o.calib_text.empty() && !o.calib_ids.empty()) fail("--calib and --calib-ids are exclusive");

  const ModelConfig config = load_model_config(o.input);
  // One mapping of the checkpoint, shared with every float model loaded below (calibration,
  // GPTQ's pipeline, the scheme search's probe): two mappings would count each page twice in
  // the process's resident set.
  const auto ckpt_ptr = std::make_shared<const Checkpoint>(o.input);
  const Checkpoint& ckpt = *ckpt_ptr;
  // Those models read their float weights in place from that mapping, for the same reason: a
  // copy into huge pages (RuntimeOptions::float_weights "copy") would hold each one twice.
  struct MappedFloatWeights {
    std::string saved = std::exchange(runtime_options().float_weights, "mapped");
    ~MappedFloatWeights() { runtime_options().float_weights = saved; }
  } mapped_float_weights;
  const DType model_dtype = config.torch_dtype;
  PlanOptions po = o.plan;
  po.tied_lm_head = config.tie_word_embeddings;
  if (!config.quantization_config.is_null() || fs::exists(o.input / "quant_model_description.json"))
    fail("{}: the input is already quantized; lowbit quantize needs a float checkpoint", o.input.string());
  if (config.arch == Architecture::Qwen3Next)
    fail("{}: lowbit quantize handles Llama, Qwen3 and Qwen3-MoE; Qwen3-Next (Gated DeltaNet layers, shared "
         "experts) is not supported yet",
         o.input.string());
  QuantPlan plan = make_plan(po, linear_layers(config));
  check_moe_plan(o, config, plan);
  const bool have_calib = !o.calib_text.empty() || !o.calib_ids.empty();
  std::string search_note;
  if (o.search) {
    check_search_options(*o.search);
    const std::string flag = o.search->target_kld ? "--target-kld" : "--target-bits";
    if (!have_calib)
      fail("{} measures each layer's KL divergence on calibration data: pass --calib FILE (text) or --calib-ids FILE "
           "(JSON token ids)",
           flag);
    if (o.smooth) fail("{} with --smooth: the search's candidates have no static activation scales to smooth", flag);
    SearchInputs si;
    si.ckpt = ckpt_ptr;
    si.config = &config;
    si.tokens = load_calibration_tokens(o.input, o.calib_text, o.calib_ids, o.search->tokens);
    si.threads = o.threads;
    if (o.progress) si.progress = [&](int64_t d, int64_t t) { o.progress("searching", d, t); };
    const SchemeSearchReport sr = search_schemes(plan, *o.search, si);
    if (o.on_search) o.on_search(sr);
    if (o.algorithm != Algorithm::Rtn)
      search_note = fmt::format(
          "{}: the layers' sensitivities and the verified KLD ({:.5f}) are round-to-nearest's; --algorithm {} then "
          "quantizes the chosen schemes, which usually lowers the KLD further but is not re-measured",
          flag, sr.measured_kld, o.algorithm == Algorithm::Gptq ? "gptq" : "awq");
  }
  if (o.smooth && o.algorithm == Algorithm::Awq)
    fail("--algorithm awq with --smooth: both rescale the same input channels; choose one");
  SmoothPlan smooth;  // SmoothQuant's or AWQ's s, folded the same way
  if (o.smooth) smooth = smoothing_plan(o, config, ckpt, plan, have_calib);
  AwqPlan awq;
  const bool use_awq = o.algorithm == Algorithm::Awq;
  if (use_awq) awq = awq_plan(o, config, ckpt, plan, have_calib);
  if (plan.needs_calibration() && !have_calib)
    fail("scheme {} uses static activation scales, which need calibration data: pass --calib FILE (text) or "
         "--calib-ids FILE (JSON token ids)",
         scheme_list(plan));

  QuantReport report;
  report.format = std::string(format_name(plan.format));
  report.input = o.input.string();
  report.output = o.output.string();
  if (!search_note.empty()) report.notes.push_back(search_note);

  const bool gptq = o.algorithm == Algorithm::Gptq;
  if (gptq && !have_calib)
    fail("--algorithm gptq needs calibration data (its Hessians come from each layer's inputs): pass --calib FILE "
         "(text) or --calib-ids FILE (JSON token ids)");
  GptqOptions gopt = o.gptq;
  if (gptq && (!(gopt.damp >= 0) || !std::isfinite(gopt.damp)))
    fail("--gptq-damp {} must be a finite number >= 0", gopt.damp);
  if (gptq && gopt.block <= 0) fail("--gptq-block {} must be positive", gopt.block);
  if (gopt.act_order == ActOrder::Group && gopt.static_groups) gopt.act_order = ActOrder::Static;
  std::map<std::string, IntGrid> grids;
  if (gptq) grids = gptq_grids(plan, ckpt, gopt);

  std::vector<int32_t> calib_tokens;
  std::map<std::string, LayerCalib> calib;
  if (have_calib) {
    calib_tokens = load_calibration_tokens(o.input, o.calib_text, o.calib_ids, o.calib_tokens);
    report.calibration_tokens = int64_t(calib_tokens.size());
    if (int64_t(calib_tokens.size()) < o.calib_tokens) {
      const std::string src = (o.calib_text.empty() ? o.calib_ids : o.calib_text).string();
      if (gptq)
        fail("--calib-tokens {}: {} has only {} tokens; GPTQ's Hessians would silently rest on less data than asked "
             "for: pass a longer file or --calib-tokens {}",
             o.calib_tokens, src, calib_tokens.size(), calib_tokens.size());
      report.notes.push_back(fmt::format("calibration: {} has only {} of the {} tokens asked for (--calib-tokens)", src,
                                         calib_tokens.size(), o.calib_tokens));
    }
  }
  // After a scheme search with round-to-nearest and no static scales, a calibration pass would
  // only feed the per-layer output-error columns (~40 s on SmolLM2): the search already
  // measured each unit's effect on the model's output distribution instead.
  const bool report_only_calib = o.search && o.algorithm == Algorithm::Rtn && !plan.needs_calibration();
  if (report_only_calib)
    report.notes.push_back("output errors not measured: the scheme search's per-unit KLD stands in for them");
  if (have_calib && !gptq && !report_only_calib) {
    CalibOptions co;
    co.tokens = calib_tokens;
    co.seq_len = o.calib_seq_len;
    co.max_rows = o.calib_rows;
    co.threads = o.threads;
    if (o.progress) co.progress = [&](int64_t d, int64_t t) { o.progress("calibrating", d, t); };
    calib = run_calibration(ckpt_ptr, co);
  }
  auto writer = make_format_writer(plan, model_dtype);
  if (o.smooth || use_awq) {
    ThreadPool pool(o.threads);
    auto load = [&](const std::string& prefix) {
      const TensorView v = ckpt.get(prefix + ".weight");
      std::vector<float> w(size_t(v.numel()));
      convert_to_f32(v.dtype, v.data, w.data(), w.size());
      return w;
    };
    const char* stage = use_awq ? "awq" : "smoothing";
    std::function<void(int64_t, int64_t)> progress;
    if (o.progress) progress = [&](int64_t d, int64_t t) { o.progress(stage, d, t); };
    if (use_awq) {
      auto quantize = [&](const LayerPlan& l, std::vector<float> w) {
        LinearInput in;
        in.plan = &l;
        in.dtype = ckpt.get(l.layer.prefix + ".weight").dtype;
        in.w = std::move(w);
        return writer->quantize(in);
      };
      choose_awq(awq, plan, calib, load, quantize, o.awq, pool, progress);
      smooth = awq.scales;
      for (std::string& note : awq_notes(awq)) report.notes.push_back(std::move(note));
    } else {
      choose_smoothing(smooth, calib, load, *o.smooth, pool, progress);
      for (std::string& note : smoothing_notes(smooth, *o.smooth)) report.notes.push_back(std::move(note));
    }
  }
  // Every output tensor, declared before any data: copied source tensors, then each layer's.
  std::set<std::string> replaced;  // source tensors a quantized layer replaces
  std::map<std::string, std::string> scheme_of;
  std::vector<TensorDecl> decls;
  for (const LayerPlan& l : plan.layers) {
    const TensorView v = linear_weight(ckpt, l.layer.prefix, l.layer.out_features, l.layer.in_features);
    if (l.scheme == "FLOAT") continue;
    const bool has_bias = ckpt.has(l.layer.prefix + ".bias");
    // A fused expert tensor is replaced by its experts' per-expert tensors (every expert of a
    // MoE layer shares one scheme: make_plan's fused-group check).
    for (const std::string& src : linear_weight_sources(ckpt, l.layer.prefix)) replaced.insert(src);
    if (has_bias) replaced.insert(l.layer.prefix + ".bias");
    std::vector<TensorDecl> layer_decls = writer->declare(l, v.dtype, has_bias);
    if (uses_g_idx(o, plan, l)) layer_decls.push_back(g_idx_decl(l));
    for (TensorDecl& d : layer_decls) {
      scheme_of[d.name] = l.scheme;
      decls.push_back(std::move(d));
    }
  }
  std::vector<std::string> copied;
  for (const std::string& name : ckpt.names()) {
    if (replaced.count(name)) continue;
    const TensorView v = ckpt.get(name);
    // A norm that takes SmoothQuant's or AWQ's 1/s is written F32: BF16 would round the fold.
    decls.push_back({name, smooth.norm_divisor(name) ? DType::F32 : v.dtype, v.shape});
    scheme_of[name] = "FLOAT";
    copied.push_back(name);
  }

  fs::create_directories(o.output);
  SafetensorsWriter out(o.output / writer->weights_file(), decls);
  for (const std::string& name : copied) {
    const TensorView v = ckpt.get(name);
    if (const std::vector<float>* s = smooth.norm_divisor(name)) {
      std::vector<float> w(size_t(v.numel()));
      convert_to_f32(v.dtype, v.data, w.data(), w.size());
      w = fold_norm(std::move(w), *s);
      out.write(name, w.data(), w.size() * sizeof(float));
    } else {
      out.write(name, v.data, v.nbytes());
    }
  }

  std::vector<LayerReport> layer_reports(plan.layers.size());
  std::set<std::string> gptq_done;
  if (gptq) {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < plan.layers.size(); ++i) index[plan.layers[i].layer.prefix] = i;
    GptqSequentialOptions so;
    so.tokens = calib_tokens;
    so.seq_len = o.calib_seq_len;
    so.max_rows = o.calib_rows;
    so.threads = o.threads;
    so.gptq = gopt;
    so.grids = grids;
    if (o.progress) so.progress = [&](int64_t d, int64_t t) { o.progress("gptq", d, t); };
    int64_t forced = 0, mismatched = 0, dead = 0;
    ThreadPool report_pool(o.threads);  // layers are measured one at a time here: each on every thread
    nlohmann::ordered_json dump = nlohmann::ordered_json::array();
    auto emit = [&](const LayerPlan& l, GptqResult&& r, const LayerCalib& seen, const std::vector<double>& h) {
      const TensorView v = linear_weight(ckpt, l.layer.prefix, l.layer.out_features, l.layer.in_features);
      LinearInput in;
      in.plan = &l;
      in.dtype = v.dtype;
      in.w = r.writer_w;
      if (ckpt.has(l.layer.prefix + ".bias")) in.bias = ckpt.get(l.layer.prefix + ".bias");
      if (seen.rows_seen > 0) {
        in.input_range = std::make_pair(seen.min, seen.max);
        in.input_range_mean = std::make_pair(seen.mean_min, seen.mean_max);
      }
      GptqLayerStats st{l.layer.prefix, r.loss, r.forced, r.dead_columns, 0};
      const QuantizedLinear q = write_gptq_layer(*writer, in, r, st.writer_mismatches);
      for (const OutTensor& t : q.tensors) out.write(t.decl.name, t.bytes.data(), t.bytes.size());
      std::vector<float> w(size_t(l.layer.out_features * l.layer.in_features));
      convert_to_f32(v.dtype, v.data, w.data(), w.size());
      layer_reports[index.at(l.layer.prefix)] =
          measure_layer(l, w, q, seen.sample_rows() ? seen.sample.data() : nullptr, seen.sample_rows(), &report_pool);
      if (!o.gptq_dump.empty()) dump.push_back(dump_gptq_layer(o.gptq_dump, l, grids.at(l.layer.prefix), gopt, w, h, r));
      forced += r.forced;
      mismatched += st.writer_mismatches;
      dead += r.dead_columns;
      gptq_done.insert(l.layer.prefix);
      if (o.on_gptq_layer) o.on_gptq_layer(st);
    };
    calib = run_gptq_sequential(ckpt_ptr, plan, so, emit);
    if (!o.gptq_dump.empty()) write_gptq_dump_index(o.gptq_dump, dump);
    report.notes.push_back(fmt::format(
        "GPTQ on {} layers (damp {}, block {}, act-order {}, {} group scales{}), sequential: each layer's Hessian "
        "from {} calibration tokens through the already-quantized layers before it; {} codes forced to a group "
        "extreme, {} dead input columns",
        gptq_done.size(), gopt.damp, gopt.block,
        gopt.act_order == ActOrder::None ? "off" : gopt.act_order == ActOrder::Group ? "with g_idx" : "static",
        gopt.static_groups || gopt.act_order == ActOrder::Static ? "static" : "group-start",
        gopt.scale_search ? ", range search" : "", calib_tokens.size(),
        forced, dead));
    if (mismatched > 0)
      report.notes.push_back(fmt::format("GPTQ: the writer re-derived {} codes differently from GPTQ's (a bug; the "
                                         "written codes are the writer's)",
                                         mismatched));
  }

  // Layers in parallel: each worker takes the next layer, quantizes it, writes its tensors at
  // their offsets and measures it; only `threads` layers are in memory at once.
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::string first_error;
  auto work = [&]() {
    for (size_t i = next++; i < plan.layers.size(); i = next++) {
      try {
        const LayerPlan& l = plan.layers[i];
        if (gptq_done.count(l.layer.prefix)) continue;
        const int64_t n = l.layer.out_features, k = l.layer.in_features;
        const TensorView v = linear_weight(ckpt, l.layer.prefix, n, k);
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
        const std::vector<float> smoothed_x = smooth_layer(smooth, l.layer.prefix, c, in);
        if (use_awq) apply_awq_clip(awq, l.layer.prefix, in.w);
        const float* x = c ? (smoothed_x.empty() ? c->sample.data() : smoothed_x.data()) : nullptr;
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
        layer_reports[i] = measure_layer(l, in.w, q, x, c ? c->sample_rows() : 0);
        const int64_t d = ++done;
        std::lock_guard<std::mutex> g(mu);
        if (o.progress) o.progress("quantizing", d, int64_t(plan.layers.size() - gptq_done.size()));
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
  if (std::any_of(plan.layers.begin(), plan.layers.end(), [&](const LayerPlan& l) { return uses_g_idx(o, plan, l); }))
    mark_actorder_group(o.output / "config.json");
  for (const auto& entry : fs::directory_iterator(o.input))
    if (entry.is_regular_file() && copy_through(entry.path()))
      fs::copy_file(entry.path(), o.output / entry.path().filename(), fs::copy_options::overwrite_existing);

  report.layers = std::move(layer_reports);
  if (plan.format == OutFormat::Awq && !use_awq)
    report.notes.push_back(gptq ? "AWQ format with GPTQ-chosen codes: no activation-aware scale search is done "
                                  "(--algorithm awq does it)"
                                : "AWQ weights are plain round-to-nearest (quantize_weight_awq): no activation-aware "
                                  "scale search or clipping is done (--algorithm awq does it), only AWQ's storage "
                                  "format");
  for (const LayerPlan& l : plan.layers)
    if (l.layer.prefix == "lm_head" && l.scheme != "FLOAT")
      report.notes.push_back("lm_head is quantized: lowbit's own loader reads lm_head as a float weight only");
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace lowbit::quantize
