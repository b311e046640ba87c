#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "io/test_util.h"

namespace lowbit {
namespace {

using testing::expect_error;
using testing::make_safetensors;
using testing::ramp_bytes;
using testing::TempDir;

constexpr std::string_view kIndex = R"({
  "metadata": {"total_size": 40},
  "weight_map": {
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
    "model.norm.weight": "model-00002-of-00002.safetensors",
    "lm_head.weight": "model-00002-of-00002.safetensors"
  }
})";

void write_sharded(const TempDir& dir) {
  dir.write("model-00001-of-00002.safetensors",
            make_safetensors({{"model.embed_tokens.weight", "BF16", {4, 2}, ramp_bytes(16)}}));
  dir.write("model-00002-of-00002.safetensors",
            make_safetensors({{"model.norm.weight", "F32", {2}, ramp_bytes(8, 7)},
                              {"lm_head.weight", "BF16", {4, 2}, ramp_bytes(16, 9)}}));
  dir.write("model.safetensors.index.json", kIndex);
}

TEST(Checkpoint, LoadsSingleFile) {
  TempDir dir;
  dir.write("model.safetensors", make_safetensors({{"b", "F32", {2, 2}, ramp_bytes(16)},
                                                   {"a", "I8", {3}, ramp_bytes(3, 40)}}));
  Checkpoint ckpt(dir.path());
  EXPECT_EQ(ckpt.dir(), dir.path());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(ckpt.has("a"));
  EXPECT_FALSE(ckpt.has("c"));
  EXPECT_EQ(ckpt.file_of("b"), "model.safetensors");
  EXPECT_EQ(ckpt.total_tensor_bytes(), 19u);
  TensorView a = ckpt.get("a");
  EXPECT_EQ(a.dtype, DType::I8);
  EXPECT_EQ(std::memcmp(a.data, ramp_bytes(3, 40).data(), 3), 0);
}

TEST(Checkpoint, LoadsShardsFromIndex) {
  TempDir dir;
  write_sharded(dir);
  Checkpoint ckpt(dir.path());
  EXPECT_EQ(ckpt.num_files(), 2u);
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight",
                                                    "model.norm.weight"}));
  EXPECT_EQ(ckpt.file_of("lm_head.weight"), "model-00002-of-00002.safetensors");
  EXPECT_EQ(ckpt.file_of("model.embed_tokens.weight"), "model-00001-of-00002.safetensors");
  EXPECT_EQ(ckpt.total_tensor_bytes(), 40u);
  TensorView head = ckpt.get("lm_head.weight", {DType::BF16}, {4, 2});
  EXPECT_EQ(std::memcmp(head.data, ramp_bytes(16, 9).data(), 16), 0);
}

TEST(Checkpoint, PrefersSingleFileOverIndex) {
  TempDir dir;
  write_sharded(dir);
  dir.write("model.safetensors", make_safetensors({{"only", "U8", {1}, "x"}}));
  EXPECT_EQ(Checkpoint(dir.path()).names(), std::vector<std::string>{"only"});
}

TEST(Checkpoint, FallsBackToAllSafetensorsFiles) {
  TempDir dir;
  dir.write("part-b.safetensors", make_safetensors({{"y", "U8", {2}, "yy"}}));
  dir.write("part-a.safetensors", make_safetensors({{"x", "U8", {1}, "x"}}));
  dir.write("notes.txt", "not a checkpoint");
  Checkpoint ckpt(dir.path());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(ckpt.file_of("y"), "part-b.safetensors");
}

TEST(Checkpoint, RejectsTensorInTwoFilesWithoutIndex) {
  TempDir dir;
  dir.write("a.safetensors", make_safetensors({{"x", "U8", {1}, "x"}}));
  dir.write("b.safetensors", make_safetensors({{"x", "U8", {1}, "x"}}));
  expect_error([&] { Checkpoint c(dir.path()); }, {"tensor 'x'", "a.safetensors", "b.safetensors"});
}

TEST(Checkpoint, MissingFolderOrWeights) {
  TempDir dir;
  expect_error([&] { Checkpoint c(dir.path() / "nope"); }, {"nope", "does not exist"});
  expect_error([&] { Checkpoint c(dir.path()); },
               {dir.path().string(), "no model.safetensors, model.safetensors.index.json"});
}

TEST(Checkpoint, MissingTensorNamesTheFolder) {
  TempDir dir;
  dir.write("model.safetensors", make_safetensors({{"a", "U8", {1}, "a"}}));
  Checkpoint ckpt(dir.path());
  expect_error([&] { ckpt.get("model.norm.weight"); },
               {dir.path().string() + ": tensor 'model.norm.weight' not found"});
  expect_error([&] { ckpt.file_of("zz"); }, {"tensor 'zz' not found"});
}

TEST(Checkpoint, GetValidatesDtype) {
  TempDir dir;
  write_sharded(dir);
  Checkpoint ckpt(dir.path());
  expect_error(
      [&] {
        ckpt.get("model.norm.weight", {DType::BF16, DType::F16}, {2});
      },
      {"model-00002-of-00002.safetensors", "tensor 'model.norm.weight'", "dtype F32",
       "expected BF16 or F16"});
}

TEST(Checkpoint, GetValidatesShape) {
  TempDir dir;
  write_sharded(dir);
  Checkpoint ckpt(dir.path());
  expect_error(
      [&] {
        ckpt.get("lm_head.weight", {DType::BF16}, {2, 4});
      },
      {"model-00002-of-00002.safetensors", "tensor 'lm_head.weight'", "shape [4, 2]",
       "expected [2, 4]"});
  EXPECT_NO_THROW(ckpt.get("lm_head.weight", {DType::BF16}, {4, 2}));
}

TEST(Checkpoint, TruncatedShardIsAnError) {
  TempDir dir;
  std::string bytes = make_safetensors({{"w", "F32", {8}, ramp_bytes(32)}});
  bytes.resize(bytes.size() - 1);
  dir.write("model.safetensors", bytes);
  expect_error([&] { Checkpoint c(dir.path()); },
               {"model.safetensors", "tensor 'w'", "out of range"});
}

TEST(Checkpoint, IndexNamingMissingShard) {
  TempDir dir;
  write_sharded(dir);
  std::filesystem::remove(dir.path() / "model-00002-of-00002.safetensors");
  expect_error([&] { Checkpoint c(dir.path()); },
               {"model.safetensors.index.json", "model-00002-of-00002.safetensors", "is missing"});
}

TEST(Checkpoint, IndexTensorAbsentFromShard) {
  TempDir dir;
  write_sharded(dir);
  dir.write("model-00002-of-00002.safetensors",
            make_safetensors({{"model.norm.weight", "F32", {2}, ramp_bytes(8)}}));
  expect_error([&] { Checkpoint c(dir.path()); },
               {"model-00002-of-00002.safetensors", "tensor 'lm_head.weight'",
                "listed in model.safetensors.index.json but absent"});
}

TEST(Checkpoint, IndexRejectsPathTraversal) {
  for (std::string shard : {"../x.safetensors", "/etc/passwd", "sub/../../x.safetensors", ""}) {
    TempDir d;
    d.write("model.safetensors.index.json", nlohmann::json{{"weight_map", {{"a", shard}}}}.dump());
    expect_error([&] { Checkpoint c(d.path()); },
                 {"tensor 'a'", "not a file name inside the folder"});
  }
}

TEST(Checkpoint, IndexRejectsMalformedJson) {
  TempDir dir;
  dir.write("model.safetensors.index.json", R"({"metadata": {}})");
  expect_error([&] { Checkpoint c(dir.path()); }, {"index.json", "missing 'weight_map'"});
  dir.write("model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
  expect_error([&] { Checkpoint c(dir.path()); }, {"weight_map['a']", "file name string"});
  dir.write("model.safetensors.index.json",
            R"({"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}})");
  expect_error([&] { Checkpoint c(dir.path()); }, {"duplicate key 'a' in 'weight_map'"});
  dir.write("model.safetensors.index.json", R"({"weight_map": )");
  expect_error([&] { Checkpoint c(dir.path()); }, {"index.json", "invalid JSON"});
}

}  // namespace
}  // namespace lowbit
