#include "io/checkpoint.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <system_error>

#include "core/error.h"
#include "io/json_util.h"

namespace lowbit {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

bool is_regular(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Shard names come from an untrusted index: they must stay inside the checkpoint folder.
void check_shard_name(const fs::path& index_path, const std::string& tensor,
                      const std::string& shard) {
  const fs::path p(shard);
  bool bad = shard.empty() || p.is_absolute() || p.has_root_name() || p.has_root_directory();
  for (const auto& part : p) bad = bad || part == "..";
  if (bad)
    fail("{}: tensor '{}' refers to shard '{}', which is not a file name inside the folder",
         index_path.string(), tensor, shard);
}

std::string join_dtypes(std::initializer_list<DType> types) {
  std::vector<std::string_view> names;
  for (DType t : types) names.push_back(dtype_name(t));
  return fmt::format("{}", fmt::join(names, " or "));
}

}  // namespace

Checkpoint::Checkpoint(const fs::path& dir) : dir_(dir) {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) fail("{}: checkpoint folder does not exist", dir_.string());
  // transformers' order of preference: the single file, then the sharded index.
  if (is_regular(dir_ / kSingleFile)) {
    load_all({dir_ / kSingleFile});
  } else if (is_regular(dir_ / kIndexFile)) {
    load_index(dir_ / kIndexFile);
  } else {
    std::vector<fs::path> found;
    fs::directory_iterator it(dir_, ec);
    if (ec) fail("{}: cannot list folder: {}", dir_.string(), ec.message());
    for (const auto& item : it) {
      if (item.path().extension() == ".safetensors" && is_regular(item.path()))
        found.push_back(item.path());
    }
    if (found.empty())
      fail("{}: no {}, {} or *.safetensors files", dir_.string(), kSingleFile, kIndexFile);
    std::sort(found.begin(), found.end());
    load_all(found);
  }
}

Checkpoint::Location Checkpoint::open(const std::string& relative) {
  auto it = files_.find(relative);
  if (it == files_.end())
    it = files_.emplace(relative, std::make_unique<SafetensorsFile>(dir_ / relative)).first;
  return Location{it->second.get(), nullptr, &it->first};
}

void Checkpoint::load_all(const std::vector<fs::path>& files) {
  for (const auto& path : files) {
    const Location file = open(path.filename().string());
    for (const auto& entry : file.file->header().tensors) {
      auto [it, inserted] =
          tensors_.emplace(entry.name, Location{file.file, &entry, file.file_name});
      if (!inserted)
        fail("{}: tensor '{}' appears in both {} and {}", dir_.string(), entry.name,
             *it->second.file_name, *file.file_name);
    }
  }
}

void Checkpoint::load_index(const fs::path& index_path) {
  const std::string label = index_path.string();
  const json index = parse_json_unique_keys(read_text_file(index_path), label);
  if (!index.is_object()) fail("{}: must be a JSON object", label);
  auto map_it = index.find("weight_map");
  if (map_it == index.end()) fail("{}: missing 'weight_map'", label);
  if (!map_it->is_object())
    fail("{}: 'weight_map' must be an object, got {}", label, json_type_name(*map_it));
  if (map_it->empty()) fail("{}: 'weight_map' is empty", label);

  for (const auto& [tensor, shard_json] : map_it->items()) {
    if (!shard_json.is_string())
      fail("{}: weight_map['{}'] must be a file name string, got {}", label, tensor,
           json_type_name(shard_json));
    const std::string shard = shard_json.get<std::string>();
    check_shard_name(index_path, tensor, shard);
    if (!is_regular(dir_ / shard))
      fail("{}: shard '{}' (for tensor '{}') is missing", label, (dir_ / shard).string(), tensor);
    Location loc = open(shard);
    loc.entry = loc.file->find(tensor);
    if (!loc.entry)
      fail("{}: tensor '{}' is listed in {} but absent from the shard", loc.file->path().string(),
           tensor, index_path.filename().string());
    tensors_.emplace(tensor, loc);
  }
}

const Checkpoint::Location& Checkpoint::locate(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("{}: tensor '{}' not found", dir_.string(), name);
  return it->second;
}

bool Checkpoint::has(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

TensorView Checkpoint::get(std::string_view name) const {
  const Location& loc = locate(name);
  return loc.file->view(*loc.entry);
}

TensorView Checkpoint::get(std::string_view name, std::initializer_list<DType> allowed,
                           const std::vector<int64_t>& shape) const {
  const Location& loc = locate(name);
  TensorView view = loc.file->view(*loc.entry);
  const std::string where = loc.file->path().string();
  if (allowed.size() > 0 && std::find(allowed.begin(), allowed.end(), view.dtype) == allowed.end())
    fail("{}: tensor '{}': dtype {}, expected {}", where, name, dtype_name(view.dtype),
         join_dtypes(allowed));
  if (view.shape != shape)
    fail("{}: tensor '{}': shape {}, expected [{}]", where, name, view.shape_str(),
         fmt::join(shape, ", "));
  return view;
}

std::string Checkpoint::file_of(std::string_view name) const { return *locate(name).file_name; }

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, loc] : tensors_) out.push_back(name);
  return out;
}

uint64_t Checkpoint::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, loc] : tensors_) total += loc.entry->end - loc.entry->begin;
  return total;
}

}  // namespace lowbit
