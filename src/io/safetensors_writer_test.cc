// Round trip of SafetensorsWriter through the project's own reader (SafetensorsFile), plus
// its layout promises (reference order, 8-byte padding) and misuse errors. Byte identity
// with the reference implementation is checked in tests/python/test_quantize_roundtrip.py.
#include "io/safetensors_writer.h"

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "io/test_util.h"

namespace lowbit::testing {
namespace {

TEST(SafetensorsWriter, RoundTripThroughReaderInAnyWriteOrder) {
  TempDir dir;
  const auto path = dir.path() / "t.safetensors";
  std::vector<TensorDecl> decls = {{"b.i8", DType::I8, {3, 5}},      {"a.f32", DType::F32, {2, 3}},
                                   {"c.bf16", DType::BF16, {7}},     {"d.i64", DType::I64, {2}},
                                   {"e.u8", DType::U8, {1}},         {"f.empty", DType::F32, {0, 4}},
                                   {"g.i32", DType::I32, {1, 1, 3}}, {"h.fp8", DType::F8_E4M3, {5}}};
  std::map<std::string, std::string> bytes;
  {
    SafetensorsWriter w(path, decls);
    // Written in reverse declaration order: positional writes make order irrelevant.
    for (auto it = decls.rbegin(); it != decls.rend(); ++it) {
      const std::string b = ramp_bytes(it->nbytes(), uint8_t(it->name[0]));
      bytes[it->name] = b;
      w.write(it->name, b.data(), b.size());
    }
    w.finish();
  }
  SafetensorsFile f(path);
  EXPECT_EQ(f.header().metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(f.header().data_offset % 8, 0u);
  ASSERT_EQ(f.header().tensors.size(), decls.size());
  // Reference order: widest dtype first, then name.
  std::vector<std::string> order;
  for (const auto& e : f.header().tensors) order.push_back(e.name);
  EXPECT_EQ(order, (std::vector<std::string>{"d.i64", "a.f32", "f.empty", "g.i32", "c.bf16", "h.fp8", "b.i8",
                                             "e.u8"}));
  for (const TensorDecl& d : decls) {
    const SafetensorsEntry* e = f.find(d.name);
    ASSERT_NE(e, nullptr) << d.name;
    EXPECT_EQ(e->dtype, d.dtype);
    EXPECT_EQ(e->shape, d.shape);
    EXPECT_EQ(e->begin % dtype_size(d.dtype), 0u) << d.name;
    const TensorView v = f.view(*e);
    EXPECT_EQ(std::string(static_cast<const char*>(v.data), v.nbytes()), bytes[d.name]) << d.name;
  }
}

TEST(SafetensorsWriter, RejectsMisuse) {
  TempDir dir;
  const auto path = dir.path() / "t.safetensors";
  expect_error([&] { SafetensorsWriter(path, {{"x", DType::F32, {1}}, {"x", DType::I8, {1}}}); }, {"'x' declared twice"});
  SafetensorsWriter w(path, {{"x", DType::F32, {2}}, {"y", DType::I8, {3}}});
  const float two[2] = {1, 2};
  expect_error([&] { w.write("z", two, 8); }, {"'z' was not declared"});
  expect_error([&] { w.write("x", two, 4); }, {"'x' has 4 bytes, declared 8"});
  w.write("x", two, 8);
  expect_error([&] { w.write("x", two, 8); }, {"'x' written twice"});
  expect_error([&] { w.finish(); }, {"never written", "'y'"});
}

}  // namespace
}  // namespace lowbit::testing
