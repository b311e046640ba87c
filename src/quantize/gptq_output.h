// From a GPTQ result to output tensors through the format's own writer (gptq.h explains why
// the writer's round to nearest reproduces GPTQ's codes), plus what act-order with g_idx adds
// to a compressed-tensors checkpoint, and the --gptq-dump files the reference test reads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "quantize/format_writer.h"
#include "quantize/gptq.h"

namespace lowbit::quantize {

// in.w must be r.writer_w. Returns the writer's tensors with, under g_idx act-order,
// weight_packed rewritten in checkpoint column order and weight_g_idx added; dequant and gemm
// in checkpoint column order. `mismatches` counts codes the writer chose differently from
// GPTQ (0 unless something is wrong; the caller reports it).
QuantizedLinear write_gptq_layer(const FormatWriter& writer, const LinearInput& in, const GptqResult& r,
                                 int64_t& mismatches);

// The extra tensor a g_idx layer declares.
TensorDecl g_idx_decl(const LayerPlan& l);

// Sets weights.actorder = "group" in every group-strategy config group of the written
// config.json (compressed-tensors; the writer leaves it null).
void mark_actorder_group(const std::filesystem::path& config_json);

// --gptq-dump DIR (for tests/python/test_gptq_reference.py): writes
// DIR/<prefix>.{w.f32,h.f64,q.i8,scale.f32,zero.f32,deq.f32[,perm.i32]} raw little-endian and
// returns the layer's entry for DIR/index.json (write_gptq_dump_index).
nlohmann::ordered_json dump_gptq_layer(const std::filesystem::path& dir, const LayerPlan& l, const IntGrid& grid,
                                       const GptqOptions& o, const std::vector<float>& w, const std::vector<double>& h,
                                       const GptqResult& r);
void write_gptq_dump_index(const std::filesystem::path& dir, const nlohmann::ordered_json& entries);

}  // namespace lowbit::quantize
