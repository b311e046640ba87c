#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/test_util.h"

namespace lowbit {
namespace {

using testing::expect_error;
using testing::make_safetensors;
using testing::ramp_bytes;
using testing::raw_safetensors;

constexpr std::string_view kLabel = "dir/model.safetensors";

SafetensorsHeader parse(std::string_view bytes) {
  return parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                  kLabel);
}

// A header with one tensor "w" whose entry JSON is `entry`, followed by `data_size` bytes.
std::string one_tensor(std::string_view entry, size_t data_size = 16) {
  return raw_safetensors(fmt::format(R"({{"w":{}}})", entry), ramp_bytes(data_size));
}

void expect_header_error(std::string_view bytes, std::initializer_list<std::string_view> parts) {
  expect_error([&] { parse(bytes); }, parts);
  expect_error([&] { parse(bytes); }, {kLabel});
}

TEST(SafetensorsHeader, ParsesValidHeader) {
  std::string bytes = make_safetensors(
      {{"b.weight", "BF16", {2, 3}, ramp_bytes(12)}, {"a.bias", "F32", {3}, ramp_bytes(12, 100)}},
      {{"format", "pt"}});
  SafetensorsHeader h = parse(bytes);
  ASSERT_EQ(h.tensors.size(), 2u);
  // Entries come in data order, not name order.
  EXPECT_EQ(h.tensors[0].name, "b.weight");
  EXPECT_EQ(h.tensors[0].dtype, DType::BF16);
  EXPECT_EQ(h.tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h.tensors[0].begin, 0u);
  EXPECT_EQ(h.tensors[0].end, 12u);
  EXPECT_EQ(h.tensors[1].name, "a.bias");
  EXPECT_EQ(h.tensors[1].begin, 12u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.data_offset + 24, bytes.size());
}

TEST(SafetensorsHeader, AcceptsScalarsEmptyTensorsPaddingAndEveryDtype) {
  std::string header =
      R"({"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
      R"("e":{"dtype":"I32","shape":[4,0],"data_offsets":[8,8]},)"
      R"("f8":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[8,10]},)"
      R"("f5":{"dtype":"F8_E5M2","shape":[2],"data_offsets":[10,12]},)"
      R"("b":{"dtype":"BOOL","shape":[1],"data_offsets":[12,13]},)"
      R"("i16":{"dtype":"I16","shape":[1],"data_offsets":[13,15]},)"
      R"("i64":{"dtype":"I64","shape":[1],"data_offsets":[15,23]},)"
      R"("u8":{"dtype":"U8","shape":[1],"data_offsets":[23,24]},)"
      R"("i8":{"dtype":"I8","shape":[1],"data_offsets":[24,25]},)"
      R"("h":{"dtype":"F16","shape":[1],"data_offsets":[25,27]}}   )";  // trailing pad
  SafetensorsHeader h = parse(raw_safetensors(header, ramp_bytes(27)));
  EXPECT_EQ(h.tensors.size(), 10u);
  EXPECT_TRUE(h.metadata.empty());
}

TEST(SafetensorsHeader, RejectsFileShorterThan8Bytes) {
  expect_header_error(std::string(5, '\0'), {"5 bytes", "too short"});
  expect_header_error("", {"0 bytes"});
}

TEST(SafetensorsHeader, RejectsHeaderLengthBeyondFile) {
  std::string bytes = raw_safetensors(R"({"w":{}})");
  bytes[0] = char(200);  // claims 200 bytes of header in a 17-byte file
  expect_header_error(bytes, {"header length 200", "beyond the end of the file"});
}

TEST(SafetensorsHeader, RejectsAbsurdHeaderLength) {
  std::string bytes = raw_safetensors("{}");
  for (int i = 0; i < 8; ++i) bytes[i] = char(0xff);
  expect_header_error(bytes, {"absurd"});
}

TEST(SafetensorsHeader, RejectsInvalidJson) {
  expect_header_error(raw_safetensors(R"({"w": {"dtype": )"), {"invalid JSON"});
  expect_header_error(raw_safetensors(""), {"header is empty"});
}

TEST(SafetensorsHeader, RejectsDeepNesting) {
  // nlohmann's dump (used in error messages) recurses: deep input must stop at the parser.
  const int n = 100000;
  std::string header = R"({"w":{"dtype":"U8","shape":)" + std::string(n, '[') +
                       std::string(n, ']') + R"(,"data_offsets":[0,0]}})";
  expect_header_error(raw_safetensors(header), {"nested deeper than 64"});
}

TEST(SafetensorsHeader, RejectsNonObjectHeader) {
  expect_header_error(raw_safetensors("[1, 2]"), {"must be a JSON object", "array"});
}

TEST(SafetensorsHeader, RejectsNonUtf8Name) {
  expect_header_error(raw_safetensors("{\"w\xff\":{}}"), {"not valid UTF-8"});
  // An escaped lone surrogate is not UTF-8 either.
  expect_header_error(raw_safetensors(R"({"w\ud800":{}})"), {"invalid JSON"});
}

TEST(SafetensorsHeader, RejectsEmptyOrNulName) {
  expect_header_error(raw_safetensors(R"({"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})"),
                      {"empty name"});
  expect_header_error(
      raw_safetensors(R"({"a\u0000b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})"), {"NUL"});
}

TEST(SafetensorsHeader, RejectsDuplicateNames) {
  std::string header = R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})";
  expect_header_error(raw_safetensors(header, "ab"), {"duplicate tensor name 'w'"});
  // Duplicate keys inside an entry are caught too.
  expect_header_error(one_tensor(R"({"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]})"),
                      {"duplicate key 'dtype' in 'w'"});
}

TEST(SafetensorsHeader, RejectsUnknownDtype) {
  expect_header_error(one_tensor(R"({"dtype":"F4","shape":[2],"data_offsets":[0,1]})"),
                      {"tensor 'w'", "unknown dtype 'F4'"});
  expect_header_error(one_tensor(R"({"dtype":"bf16","shape":[2],"data_offsets":[0,4]})"),
                      {"tensor 'w'", "unknown dtype 'bf16'"});
}

TEST(SafetensorsHeader, RejectsMissingFields) {
  expect_header_error(one_tensor(R"({"shape":[2],"data_offsets":[0,2]})"),
                      {"tensor 'w'", "missing 'dtype'"});
  expect_header_error(one_tensor(R"({"dtype":"U8","data_offsets":[0,2]})"),
                      {"tensor 'w'", "missing 'shape'"});
  expect_header_error(one_tensor(R"({"dtype":"U8","shape":[2]})"),
                      {"tensor 'w'", "missing 'data_offsets'"});
}

TEST(SafetensorsHeader, RejectsWrongFieldTypes) {
  expect_header_error(one_tensor(R"("U8")"), {"tensor 'w'", "entry must be an object"});
  expect_header_error(one_tensor(R"({"dtype":7,"shape":[2],"data_offsets":[0,2]})"),
                      {"tensor 'w'", "dtype must be a string"});
  expect_header_error(one_tensor(R"({"dtype":"U8","shape":"2","data_offsets":[0,2]})"),
                      {"tensor 'w'", "shape must be an array"});
  expect_header_error(one_tensor(R"({"dtype":"U8","shape":[2.0],"data_offsets":[0,2]})"),
                      {"tensor 'w'", "shape entries must be integers"});
  expect_header_error(one_tensor(R"({"dtype":"U8","shape":[2],"data_offsets":[0,2,4]})"),
                      {"tensor 'w'", "data_offsets must be [begin, end]"});
  expect_header_error(one_tensor(R"({"dtype":"U8","shape":[2],"data_offsets":[0,"2"]})"),
                      {"tensor 'w'", "data_offsets must be two non-negative integers"});
  expect_header_error(one_tensor(R"({"dtype":"U8","shape":[2],"data_offsets":[-1,1]})"),
                      {"tensor 'w'", "non-negative"});
}

TEST(SafetensorsHeader, RejectsNegativeDims) {
  expect_header_error(one_tensor(R"({"dtype":"U8","shape":[-2, -1],"data_offsets":[0,2]})"),
                      {"tensor 'w'", "negative dimension -2"});
}

TEST(SafetensorsHeader, RejectsOverflowingDims) {
  // Each dim fits int64 but the product does not fit uint64.
  expect_header_error(
      one_tensor(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]})"),
      {"tensor 'w'", "overflows"});
  expect_header_error(
      one_tensor(R"({"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]})"),
      {"tensor 'w'", "overflows int64"});
  // Beyond uint64, JSON numbers become floats.
  expect_header_error(
      one_tensor(R"({"dtype":"U8","shape":[99999999999999999999999],"data_offsets":[0,0]})"),
      {"tensor 'w'", "must be integers"});
}

TEST(SafetensorsHeader, RejectsBeginAfterEnd) {
  expect_header_error(one_tensor(R"({"dtype":"U8","shape":[2],"data_offsets":[4,2]})"),
                      {"tensor 'w'", "begin 4 > end 2"});
}

TEST(SafetensorsHeader, RejectsOffsetsOutOfRange) {
  expect_header_error(one_tensor(R"({"dtype":"U8","shape":[4],"data_offsets":[14,18]})", 16),
                      {"tensor 'w'", "out of range of the 16-byte data section"});
  expect_header_error(
      one_tensor(R"({"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]})"),
      {"tensor 'w'", "out of range"});
}

TEST(SafetensorsHeader, RejectsTruncatedData) {
  std::string bytes = make_safetensors({{"w", "F32", {4}, ramp_bytes(16)}});
  bytes.resize(bytes.size() - 3);
  expect_header_error(bytes, {"tensor 'w'", "out of range of the 13-byte data section"});
}

TEST(SafetensorsHeader, RejectsOverlappingTensors) {
  std::string header = R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})";
  expect_header_error(raw_safetensors(header, ramp_bytes(16)), {"'a'", "'b'", "overlap"});
  // Identical ranges overlap too.
  header = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]},)"
           R"("b":{"dtype":"I8","shape":[4],"data_offsets":[2,6]}})";
  expect_header_error(raw_safetensors(header, ramp_bytes(16)), {"overlap"});
}

TEST(SafetensorsHeader, RejectsByteSizeMismatch) {
  expect_header_error(one_tensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"),
                      {"tensor 'w'", "needs 12 bytes but data_offsets span 8"});
}

TEST(SafetensorsHeader, RejectsNonStringMetadata) {
  expect_header_error(raw_safetensors(R"({"__metadata__":{"format":1}})"),
                      {"__metadata__", "'format'", "must be a string"});
  expect_header_error(raw_safetensors(R"({"__metadata__":["pt"]})"),
                      {"__metadata__ must be an object"});
}

TEST(SafetensorsFile, ViewsPointIntoTheMapping) {
  testing::TempDir dir;
  // Odd header length: the data section (and so the view) is unaligned.
  std::string bytes = make_safetensors(
      {{"x", "I16", {2, 2}, ramp_bytes(8, 1)}, {"y", "U8", {3}, ramp_bytes(3, 50)}}, {{"k", "v "}});
  auto path = dir.write("m.safetensors", bytes);
  SafetensorsFile file(path);
  EXPECT_EQ(file.path(), path);
  const SafetensorsEntry* x = file.find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(file.find("nope"), nullptr);
  TensorView v = file.view(*x);
  EXPECT_EQ(v.name, "x");
  EXPECT_EQ(v.dtype, DType::I16);
  EXPECT_EQ(v.nbytes(), 8u);
  EXPECT_EQ(std::memcmp(v.data, ramp_bytes(8, 1).data(), 8), 0);
  TensorView y = file.view(*file.find("y"));
  EXPECT_EQ(std::memcmp(y.data, ramp_bytes(3, 50).data(), 3), 0);
}

TEST(SafetensorsFile, NamesTheFileOnErrors) {
  testing::TempDir dir;
  auto path = dir.write("bad.safetensors", "abc");
  expect_error([&] { SafetensorsFile f(path); }, {"bad.safetensors", "too short"});
  expect_error([&] { SafetensorsFile f(dir.path() / "missing.safetensors"); },
               {"missing.safetensors", "cannot open"});
}

TEST(Utf8, ValidatesStrictly) {
  EXPECT_TRUE(is_valid_utf8("model.layers.0.ä€😀"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
}

}  // namespace
}  // namespace lowbit
