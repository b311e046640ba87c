// A read-only memory map of a whole file. Checkpoint tensors are views into it: zero copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace lowbit {

class MappedFile {
 public:
  // Throws lowbit::Error naming the path if the file cannot be opened or mapped.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lowbit

namespace lowbit {
// Faults in the pages of [data, data+bytes) (readahead hint, then one read per page), so load
// time is paid at load and not by the first token.
void prefault(const void* data, size_t bytes);
// Drops the whole pages inside [data, data+bytes) of a read-only file mapping from the
// resident set (MADV_DONTNEED): after a weight has been repacked its source pages are dead
// weight in RSS. Touching them again re-reads the file, so this never changes results.
void release_pages(const void* data, size_t bytes);
}  // namespace lowbit
