// A model folder's weights: one model.safetensors, shards listed by
// model.safetensors.index.json, or (with neither) every *.safetensors file in the folder.
// All files are mmap'd at construction and their headers validated; tensor data is only
// touched when a caller reads a view. With an index, the index is authoritative: only the
// tensors it lists are visible, each from the shard it names.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "io/safetensors.h"

namespace lowbit {

class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& dir);

  bool has(std::string_view name) const;
  // Error "DIR: tensor 'NAME' not found" when absent.
  TensorView get(std::string_view name) const;
  // get + validation: dtype must be one of `allowed`, shape must equal `shape`; the error
  // names file, tensor, got vs expected.
  TensorView get(std::string_view name, std::initializer_list<DType> allowed,
                 const std::vector<int64_t>& shape) const;
  // The file name (relative to dir()) holding the tensor.
  std::string file_of(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted
  const std::filesystem::path& dir() const { return dir_; }
  uint64_t total_tensor_bytes() const;
  size_t num_files() const { return files_.size(); }

 private:
  struct Location {
    const SafetensorsFile* file;
    const SafetensorsEntry* entry;
    const std::string* file_name;  // key in files_, relative to dir_
  };
  void load_index(const std::filesystem::path& index_path);
  void load_all(const std::vector<std::filesystem::path>& files);
  // Opens (once) a file relative to dir_; the returned location has no entry yet.
  Location open(const std::string& relative);
  const Location& locate(std::string_view name) const;

  std::filesystem::path dir_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;  // by name relative to dir_
  std::map<std::string, Location, std::less<>> tensors_;
};

}  // namespace lowbit
