#include "quantize/scheme_search.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "quantize/awq_search.h"
#include "quantize/format_writer.h"
#include "quantize/dequant_linear.h"
#include "quantize/dequant_linear.h"
#include "quantize/scheme_probe.h"

namespace lowbit::quantize {

namespace {

constexpr const char* kSearched = "--scheme";  // the `why` of layers the search decides

bool group_wise(OutFormat f, const std::string& scheme) {
  if (f == OutFormat::MsModelSlim) return scheme == "W4A8_DYNAMIC";
  return scheme == "W4A16" || scheme == "W4A16_ASYM";
}

int64_t default_group(OutFormat f, std::optional<int64_t> given) {
  return given.value_or(f == OutFormat::MsModelSlim ? 0 : 128);
}

SearchCandidate parse_candidate(OutFormat f, std::string text, std::optional<int64_t> group_size) {
  text.erase(0, text.find_first_not_of(" \t"));
  text.erase(text.find_last_not_of(" \t") + 1);
  SearchCandidate c;
  const size_t colon = text.find(':');
  c.scheme = text.substr(0, colon);
  const std::string where = fmt::format("--search-schemes '{}'", text);
  check_scheme(f, c.scheme, where);
  if (c.scheme != "FLOAT" && awq_act_bits(f, c.scheme) == 0)
    fail("{}: the search cannot simulate {} (static activation scales come from per-layer calibration ranges, MX "
         "and FP8 activations are not modelled); searchable: FLOAT, weight-only W4A16*, and the per-token dynamic "
         "int schemes (compressed-tensors W8A8, msmodelslim W8A8_DYNAMIC, W4A8_DYNAMIC, W4A4_DYNAMIC)",
         where, c.scheme);
  const bool grouped = group_wise(f, c.scheme);
  if (colon == std::string::npos) {
    if (grouped) c.group_size = default_group(f, group_size);
  } else {
    if (!grouped) fail("{}: {} has no group size (only group-wise schemes take :GROUP)", where, c.scheme);
    const std::string g = text.substr(colon + 1);
    size_t used = 0;
    try {
      c.group_size = std::stoll(g, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (g.empty() || used != g.size() || c.group_size < 0)
      fail("{}: group size '{}' must be a whole number >= 0 (0 = per channel)", where, g);
  }
  if (f == OutFormat::Awq && c.group_size == 0) fail("{}: AWQ is group-wise only (e.g. W4A16:128)", where);
  return c;
}

// Units: the searched layers in plan order, q/k/v and gate/up of one decoder layer together.
struct Unit {
  std::string label;
  std::vector<LayerPlan*> layers;  // into the plan the search rewrites
};

std::vector<Unit> searched_units(QuantPlan& plan) {
  std::vector<Unit> units;
  std::map<std::string, size_t> by_key;
  for (LayerPlan& l : plan.layers) {
    if (l.why != kSearched) continue;
    const std::string& p = l.layer.prefix;
    const size_t dot = p.rfind('.');
    const std::string name = dot == std::string::npos ? p : p.substr(dot + 1);
    const std::string parent = dot == std::string::npos ? std::string() : p.substr(0, dot);
    const size_t pdot = parent.rfind('.');
    const std::string layer = pdot == std::string::npos ? parent : parent.substr(0, pdot);
    std::string key = p, label = p;
    if (name == "q_proj" || name == "k_proj" || name == "v_proj") key = parent + ".qkv", label = layer + " q/k/v";
    if (name == "gate_proj" || name == "up_proj") key = parent + ".gate_up", label = layer + " gate/up";
    if (name == "o_proj") label = layer + " o";
    if (name == "down_proj") label = layer + " down";
    auto [it, fresh] = by_key.emplace(key, units.size());
    if (fresh) units.push_back({label, {}});
    units[it->second].layers.push_back(&l);
  }
  return units;
}

double decl_bytes(const std::vector<TensorDecl>& d) {
  double b = 0;
  for (const TensorDecl& t : d) {
    int64_t n = 1;
    for (int64_t s : t.shape) n *= s;
    b += double(n) * double(dtype_size(t.dtype));
  }
  return b;
}

std::string mib(double bytes) { return fmt::format("{:.2f} MiB", bytes / (1 << 20)); }

}  // namespace

std::string SearchCandidate::label() const {
  return group_size > 0 ? fmt::format("{} g{}", scheme, group_size) : scheme;
}

std::vector<SearchCandidate> search_candidates(OutFormat f, const std::string& list,
                                               std::optional<int64_t> group_size) {
  std::vector<SearchCandidate> c;
  if (list.empty()) {
    if (f == OutFormat::CompressedTensors) {
      if (group_size) {
        c.push_back({"W4A16", *group_size});
      } else {
        c.push_back({"W4A16", 128});
        c.push_back({"W4A16", 32});
      }
      c.push_back({"W8A8", 0});
    } else if (f == OutFormat::MsModelSlim) {
      c.push_back({"W4A8_DYNAMIC", default_group(f, group_size)});
      c.push_back({"W8A8_DYNAMIC", 0});
    } else {
      if (group_size == 0) fail("--group-size 0: AWQ is group-wise only (e.g. --group-size 128)");
      c.push_back({"W4A16", default_group(f, group_size)});
    }
  } else {
    size_t begin = 0;
    while (begin <= list.size()) {
      const size_t end = std::min(list.find(',', begin), list.size());
      const std::string item = list.substr(begin, end - begin);
      if (item.find_first_not_of(" \t") == std::string::npos)
        fail("--search-schemes '{}': empty entry (expected SCHEME[:GROUP],...)", list);
      SearchCandidate one = parse_candidate(f, item, group_size);
      for (const SearchCandidate& o : c)
        if (o.scheme == one.scheme && o.group_size == one.group_size)
          fail("--search-schemes '{}': {} is listed twice", list, one.label());
      c.push_back(std::move(one));
      begin = end + 1;
    }
  }
  if (std::none_of(c.begin(), c.end(), [](const SearchCandidate& x) { return x.scheme == "FLOAT"; }))
    c.push_back({"FLOAT", 0});
  if (f != OutFormat::CompressedTensors) {  // one global group_size in the checkpoint
    std::set<int64_t> groups;
    for (const SearchCandidate& x : c)
      if (group_wise(f, x.scheme)) groups.insert(x.group_size);
    if (groups.size() > 1)
      fail("--search-schemes: --format {} records one global group size, but the candidates use {}", format_name(f),
           fmt::join(groups, " and "));
  }
  return c;
}

void check_search_options(const SearchOptions& o) {
  if (o.target_kld && o.target_bits) fail("--target-kld and --target-bits are exclusive: give one target");
  if (!o.target_kld && !o.target_bits) fail("scheme search needs --target-kld X or --target-bits B");
  if (o.target_kld && !(*o.target_kld > 0 && std::isfinite(*o.target_kld)))
    fail("--target-kld {} must be a positive number (mean KL divergence from the float model, nats per token)",
         *o.target_kld);
  if (o.target_bits && !(*o.target_bits > 0 && std::isfinite(*o.target_bits)))
    fail("--target-bits {} must be a positive number (average bits per weight, scales included)", *o.target_bits);
  if (o.tokens < 16) fail("--search-tokens {} must be at least 16", o.tokens);
  if (o.rounds < 1) fail("scheme search rounds {} must be at least 1", o.rounds);
}

SchemeSearchReport search_schemes(QuantPlan& plan, const SearchOptions& o, const SearchInputs& in) {
  const auto t0 = std::chrono::steady_clock::now();
  check_search_options(o);
  const ModelConfig& config = *in.config;
  const Checkpoint& ckpt = *in.ckpt;
  if (config.arch != Architecture::Llama && config.arch != Architecture::Qwen3)
    fail("scheme search: {} is not supported (dense Llama and Qwen3 only: the measurement replays their residual "
         "stream)",
         config.architecture_name);
  SchemeSearchReport r;
  r.target = o.target_kld ? fmt::format("--target-kld {}", *o.target_kld) : fmt::format("--target-bits {}", *o.target_bits);
  r.candidates = search_candidates(plan.format, o.schemes, o.group_size);
  const std::vector<Unit> units = searched_units(plan);
  if (units.empty()) fail("{}: every layer is fixed by --ignore / --override; nothing to search", r.target);
  if (int64_t(in.tokens.size()) < 16)
    fail("{}: the calibration data has {} tokens; the search needs at least 16", r.target, in.tokens.size());

  auto writer = make_format_writer(plan, config.torch_dtype);
  auto bias_of = [&](const std::string& p) -> std::optional<TensorView> {
    if (ckpt.has(p + ".bias")) return ckpt.get(p + ".bias");
    return std::nullopt;
  };
  // A layer as the writer writes it and its readers dequantize it, ready to swap in.
  auto fake = [&](const LayerPlan& lp) {
    const TensorView v = ckpt.get(lp.layer.prefix + ".weight");
    LinearInput li;
    li.plan = &lp;
    li.dtype = v.dtype;
    li.w.resize(size_t(v.numel()));
    convert_to_f32(v.dtype, v.data, li.w.data(), li.w.size());
    li.bias = bias_of(lp.layer.prefix);
    QuantizedLinear q = writer->quantize(li);
    return make_dequant_linear(lp.layer.prefix, std::move(q.dequant), lp.layer.out_features, lp.layer.in_features,
                                  li.bias, awq_act_bits(plan.format, lp.scheme));
  };
  auto with = [](const LayerPlan& l, const SearchCandidate& c) {
    LayerPlan lp = l;
    lp.scheme = c.scheme;
    lp.group_size = c.group_size;
    return lp;
  };

  // Layers an --override fixes to a quantized scheme are part of every measured mixture.
  std::map<std::string, std::unique_ptr<LinearMethod>> fixed;
  for (const LayerPlan& l : plan.layers) {
    if (l.why == kSearched || l.scheme == "FLOAT") continue;
    if (awq_act_bits(plan.format, l.scheme) == 0)
      fail("{}: layer '{}' is {} ({}), which the search cannot simulate (static activation scales, MX or FP8 "
           "activations); override it to a weight-only or dynamic scheme, or FLOAT",
           r.target, l.layer.prefix, l.scheme, l.why);
  }

  if (plan.format != OutFormat::CompressedTensors) {  // one global group size in the checkpoint
    for (const LayerPlan& l : plan.layers)
      for (const SearchCandidate& c : r.candidates)
        if (l.why != kSearched && l.scheme != "FLOAT" && group_wise(plan.format, l.scheme) &&
            group_wise(plan.format, c.scheme) && l.group_size != c.group_size)
          fail("{}: --format {} records one global group size, but layer '{}' ({}) has {} and candidate {} has {}",
               r.target, format_name(plan.format), l.layer.prefix, l.why, l.group_size, c.label(), c.group_size);
  }

  // Bytes and availability of every (unit, candidate), before any forward pass.
  const size_t nc = r.candidates.size();
  size_t float_index = 0;
  for (size_t c = 0; c < nc; ++c)
    if (r.candidates[c].scheme == "FLOAT") float_index = c;
  int64_t measure_passes = 0;
  for (const Unit& u : units) {
    UnitScores s;
    s.label = u.label;
    s.bytes.assign(nc, 0.0);
    s.dkld.assign(nc, 0.0);
    s.available.assign(nc, true);
    std::vector<std::string> names;
    for (const LayerPlan* l : u.layers) {
      names.push_back(l->layer.prefix);
      s.weights += l->layer.out_features * l->layer.in_features;
      const TensorView w = ckpt.get(l->layer.prefix + ".weight");
      const auto b = bias_of(l->layer.prefix);
      for (size_t c = 0; c < nc; ++c) {
        const SearchCandidate& cand = r.candidates[c];
        if (cand.scheme == "FLOAT") {
          s.bytes[c] += double(w.nbytes()) + (b ? double(b->nbytes()) : 0.0);
          continue;
        }
        if (cand.group_size > 0 && l->layer.in_features % cand.group_size != 0) {
          s.available[c] = false;
          continue;
        }
        try {
          s.bytes[c] += decl_bytes(writer->declare(with(*l, cand), w.dtype, b.has_value()));
        } catch (const Error& e) {
          s.available[c] = false;
          r.notes.push_back(fmt::format("{} does not fit {}: {}", cand.label(), l->layer.prefix, e.what()));
        }
      }
    }
    for (size_t c = 0; c < nc; ++c) measure_passes += c != float_index && s.available[c];
    r.weights += s.weights;
    r.units.push_back(std::move(s));
    r.layers.push_back(std::move(names));
  }
  for (size_t c = 0; c < nc; ++c) {
    if (c == float_index) continue;
    std::vector<std::string> skipped;
    for (const UnitScores& s : r.units)
      if (!s.available[c]) skipped.push_back(s.label);
    if (!skipped.empty())
      r.notes.push_back(fmt::format("{} does not fit {} of {} units (group size does not divide in_features), e.g. {}",
                                    r.candidates[c].label(), skipped.size(), r.units.size(), skipped.front()));
  }

  if (o.target_bits) {  // bytes are known exactly before any measurement
    double least = 0;
    for (const UnitScores& s : r.units) {
      double m = INFINITY;
      for (size_t c = 0; c < nc; ++c)
        if (s.available[c]) m = std::min(m, s.bytes[c]);
      least += m;
    }
    if (least > *o.target_bits / 8.0 * double(r.weights))
      fail("--target-bits {}: the cheapest candidates need {:.3f} bits per weight on the searched layers",
           *o.target_bits, 8.0 * least / double(r.weights));
  }

  const int64_t ctx = std::min<int64_t>(o.ctx, int64_t(in.tokens.size()));
  const int64_t total_passes = measure_passes + (fixed.empty() ? 0 : 1) + int64_t(nc - 1) + (o.target_kld ? o.rounds : 1);
  KldProbe probe(in.ckpt, in.tokens, ctx, in.threads);
  r.tokens = int64_t(in.tokens.size() / size_t(ctx)) * ctx;
  r.scored = probe.scored_tokens();
  auto tick = [&] {
    if (in.progress) in.progress(probe.passes(), total_passes);
  };
  auto swaps_of = [&](const std::map<std::string, std::unique_ptr<LinearMethod>>& own) {
    std::map<std::string, const LinearMethod*> s;
    for (const auto& [p, m] : fixed) s[p] = m.get();
    for (const auto& [p, m] : own) s[p] = m.get();
    return s;
  };
  for (const LayerPlan& l : plan.layers)
    if (l.why != kSearched && l.scheme != "FLOAT") fixed[l.layer.prefix] = fake(l);
  if (!fixed.empty()) {
    r.fixed_kld = probe.kld(swaps_of({}));
    tick();
  }

  // ΔKLD of every unit and candidate, the unit alone quantized.
  for (size_t u = 0; u < units.size(); ++u) {
    for (size_t c = 0; c < nc; ++c) {
      if (c == float_index || !r.units[u].available[c]) continue;
      std::map<std::string, std::unique_ptr<LinearMethod>> own;
      for (const LayerPlan* l : units[u].layers) own[l->layer.prefix] = fake(with(*l, r.candidates[c]));
      std::map<std::string, const LinearMethod*> s;
      for (const auto& [p, m] : own) s[p] = m.get();
      r.units[u].dkld[c] = probe.kld(s);
      tick();
    }
  }

  // The KLD of a choice, every chosen layer quantized at once (memoised per choice).
  std::map<std::vector<int>, double> measured;
  auto measure = [&](const std::vector<int>& pick) {
    if (auto it = measured.find(pick); it != measured.end()) return it->second;
    std::map<std::string, std::unique_ptr<LinearMethod>> own;
    for (size_t u = 0; u < units.size(); ++u)
      if (size_t(pick[u]) != float_index)
        for (const LayerPlan* l : units[u].layers) own[l->layer.prefix] = fake(with(*l, r.candidates[size_t(pick[u])]));
    const double k = own.empty() ? r.fixed_kld : probe.kld(swaps_of(own));
    tick();
    return measured[pick] = k;
  };
  for (size_t c = 0; c < nc; ++c) {
    if (c == float_index) continue;
    std::vector<int> pick;
    for (const UnitScores& s : r.units) pick.push_back(s.available[c] ? int(c) : int(float_index));
    r.uniform.push_back({r.candidates[c].label(), total_bytes(r.units, pick), total_dkld(r.units, pick), measure(pick)});
  }
  const std::vector<int> all_float(units.size(), int(float_index));
  r.uniform.push_back({"FLOAT", total_bytes(r.units, all_float), 0.0, r.fixed_kld});

  if (o.target_kld) {
    const double target = *o.target_kld;
    // Bracketed search on the ΔKLD budget: `lo` the largest budget whose choice met the target,
    // `hi` the smallest that did not. The next budget scales the choice's predicted ΔKLD by how
    // far the measurement was off (the additive model is biased, not random: it overestimated
    // by ~1.6x on SmolLM2 W8A8), kept strictly inside the bracket, else its midpoint.
    double budget = target - r.fixed_kld, lo = 0, hi = INFINITY;
    int best = -1;
    for (int round = 0; round < o.rounds && budget > 0; ++round) {
      const SchemeChoice ch = choose_for_kld(r.units, budget);
      const double k = measure(ch.pick);
      r.rounds.push_back({budget, ch.predicted_kld, k, ch.bytes});
      const bool met = k <= target;
      if (met && (best < 0 || ch.bytes < r.rounds[size_t(best)].bytes)) {
        best = round;
        r.pick = ch.pick;
      }
      if (met) lo = std::max(lo, budget); else hi = std::min(hi, budget);
      if (met && k >= 0.95 * target) break;  // within 5 %: another round buys little
      double next = std::max(ch.predicted_kld, 1e-12) * (target - r.fixed_kld) / std::max(k - r.fixed_kld, 1e-12);
      if (!(next > lo * 1.001 && next < hi * 0.999)) next = std::isfinite(hi) ? 0.5 * (lo + hi) : 2 * lo;
      if (std::isfinite(hi) && hi - lo < 0.01 * hi) break;  // bracket closed
      budget = next;
    }
    if (best < 0) {
      r.pick = all_float;
      r.reached = r.fixed_kld <= target;
      r.notes.push_back(fmt::format(
          "warning: {}: no choice met the target on the search tokens{}; every searched layer stays FLOAT", r.target,
          r.fixed_kld > target ? fmt::format(" (the --override layers alone measure {:.5f})", r.fixed_kld) : ""));
    }
    r.measured_kld = best < 0 ? r.fixed_kld : r.rounds[size_t(best)].measured;
  } else {
    const double max_bytes = *o.target_bits / 8.0 * double(r.weights);
    const SchemeChoice ch = choose_for_bytes(r.units, max_bytes);
    if (!ch.reached)
      fail("--target-bits {}: the cheapest candidates need {:.3f} bits per weight on the searched layers", *o.target_bits,
           8.0 * ch.bytes / double(r.weights));
    r.pick = ch.pick;
    r.measured_kld = measure(ch.pick);
    r.rounds.push_back({max_bytes, ch.predicted_kld, r.measured_kld, ch.bytes});
  }
  r.bytes = total_bytes(r.units, r.pick);
  r.passes = probe.passes();

  // The choice becomes the plan the writer follows.
  bool any_quantized = !fixed.empty();
  for (size_t u = 0; u < units.size(); ++u) {
    const SearchCandidate& c = r.candidates[size_t(r.pick[u])];
    any_quantized |= c.scheme != "FLOAT";
    for (LayerPlan* l : units[u].layers) {
      l->scheme = c.scheme;
      l->group_size = c.group_size;
      l->why = r.target;
    }
  }
  if (!any_quantized) {
    double least = 0;
    for (const UnitScores& s : r.units)
      for (size_t c = 0; c < nc; ++c)
        if (c != float_index && s.available[c] && (least == 0 || s.dkld[c] < least)) least = s.dkld[c];
    fail("{}: every layer stays FLOAT, nothing to quantize (the least ΔKLD of any single unit is {:.6f} on {} scored "
         "tokens); raise the target",
         r.target, least, r.scored);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::string format_search_report(const SchemeSearchReport& r) {
  std::string out = fmt::format(
      "scheme search ({}): {} units, candidates {}; KLD on {} calibration tokens ({} scored), {} forward passes, "
      "{:.1f} s\n",
      r.target, r.units.size(), fmt::join([&] {
        std::vector<std::string> l;
        for (const auto& c : r.candidates) l.push_back(c.label());
        return l;
      }(), ", "),
      r.tokens, r.scored, r.passes, r.seconds);
  size_t width = 4;
  for (const UnitScores& u : r.units) width = std::max(width, u.label.size());
  out += fmt::format("{:<{}}  {:<13}", "unit", width, "choice");
  for (const auto& c : r.candidates)
    if (c.scheme != "FLOAT") out += fmt::format(" {:>13}", "ΔKLD " + c.label());
  out += fmt::format(" {:>11}\n", "bytes");
  for (size_t u = 0; u < r.units.size(); ++u) {
    const UnitScores& s = r.units[u];
    out += fmt::format("{:<{}}  {:<13}", s.label, width, r.candidates[size_t(r.pick[u])].label());
    for (size_t c = 0; c < r.candidates.size(); ++c)
      if (r.candidates[c].scheme != "FLOAT")
        out += s.available[c] ? fmt::format(" {:>13.6f}", s.dkld[c]) : fmt::format(" {:>13}", "-");
    out += fmt::format(" {:>11.0f}\n", s.bytes[size_t(r.pick[u])]);
  }
  for (size_t i = 0; i < r.rounds.size(); ++i) {
    const SearchRound& x = r.rounds[i];
    out += fmt::format("round {}: budget {}, predicted KLD {:.5f}, measured {:.5f}, {} ({:.3f} bits/weight)\n", i + 1,
                       r.target.starts_with("--target-kld") ? fmt::format("{:.5f}", x.budget) : mib(x.budget),
                       x.predicted, x.measured, mib(x.bytes), 8.0 * x.bytes / double(r.weights));
  }
  out += "uniform alternatives (units a scheme does not fit stay FLOAT):\n";
  for (const UniformAlternative& a : r.uniform)
    out += fmt::format("  {:<14} {:>11} {:7.3f} bits/weight, predicted KLD {:.5f}, measured {:.5f}\n", a.label,
                       mib(a.bytes), 8.0 * a.bytes / double(r.weights), a.predicted, a.measured);
  std::map<std::string, int> counts;
  for (int p : r.pick) counts[r.candidates[size_t(p)].label()]++;
  std::vector<std::string> mix;
  for (const auto& [l, n] : counts) mix.push_back(fmt::format("{} × {}", n, l));
  out += fmt::format("chosen: {} ({}), {} for {} weights = {:.3f} bits/weight; measured KLD {:.5f}{}\n",
                     fmt::join(mix, ", "), r.reached ? "target met" : "TARGET NOT MET", mib(r.bytes), r.weights,
                     r.bits_per_weight(), r.measured_kld,
                     r.fixed_kld > 0 ? fmt::format(" (--override layers alone {:.5f})", r.fixed_kld) : "");
  for (const std::string& n : r.notes) out += "note: " + n + "\n";
  return out;
}

nlohmann::ordered_json search_report_json(const SchemeSearchReport& r) {
  nlohmann::ordered_json j;
  j["target"] = r.target;
  nlohmann::ordered_json cands = nlohmann::ordered_json::array();
  for (const auto& c : r.candidates) cands.push_back(c.label());
  j["candidates"] = cands;
  nlohmann::ordered_json units = nlohmann::ordered_json::array();
  for (size_t u = 0; u < r.units.size(); ++u) {
    const UnitScores& s = r.units[u];
    nlohmann::ordered_json d = nlohmann::ordered_json::object();
    for (size_t c = 0; c < r.candidates.size(); ++c)
      if (s.available[c]) d[r.candidates[c].label()] = {{"dkld", s.dkld[c]}, {"bytes", s.bytes[c]}};
    units.push_back({{"unit", s.label},
                     {"layers", r.layers[u]},
                     {"choice", r.candidates[size_t(r.pick[u])].label()},
                     {"weights", s.weights},
                     {"candidates", d}});
  }
  j["units"] = units;
  nlohmann::ordered_json rounds = nlohmann::ordered_json::array();
  for (const auto& x : r.rounds)
    rounds.push_back({{"budget", x.budget}, {"predicted", x.predicted}, {"measured", x.measured}, {"bytes", x.bytes}});
  j["rounds"] = rounds;
  nlohmann::ordered_json uni = nlohmann::ordered_json::array();
  for (const auto& a : r.uniform)
    uni.push_back({{"scheme", a.label}, {"bytes", a.bytes}, {"predicted", a.predicted}, {"measured", a.measured}});
  j["uniform"] = uni;
  j["bytes"] = r.bytes;
  j["weights"] = r.weights;
  j["bits_per_weight"] = r.bits_per_weight();
  j["measured_kld"] = r.measured_kld;
  j["fixed_kld"] = r.fixed_kld;
  j["reached"] = r.reached;
  j["tokens"] = r.tokens;
  j["scored_tokens"] = r.scored;
  j["passes"] = r.passes;
  j["seconds"] = r.seconds;
  j["notes"] = r.notes;
  return j;
}

}  // namespace lowbit::quantize
