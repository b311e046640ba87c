// Safetensors writer that streams tensor data straight to disk: every tensor's name, dtype
// and shape is declared up front (so the header, which comes first, can be written at
// once), then each tensor's bytes are written at its offset, in any order, one tensor at a
// time. Nothing but the header is held in memory.
//
// The file is laid out as the reference implementation (huggingface/safetensors, used by
// torch's save_file and transformers' save_pretrained) lays it out, so a file we write is
// byte-identical to theirs for the same tensors: compact JSON header with "__metadata__"
// first and tensors in data order, padded with spaces to a multiple of 8 bytes; tensors
// sorted by dtype, widest first (I64 > F64 > F32 > I32 > BF16 > F16 > I16 > F8 > I8 > U8 >
// BOOL), then by name, so every tensor starts 8-byte aligned relative to the data section.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace lowbit {

struct TensorDecl {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t nbytes() const;
};

class SafetensorsWriter {
 public:
  // Creates (truncates) `path` and writes the header. Duplicate names or negative dims throw.
  SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorDecl> tensors,
                    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  // Closes the file; a writer destroyed before finish() leaves an incomplete file behind
  // and says so nowhere (finish() is where completeness is checked).
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Writes a declared tensor's bytes. `nbytes` must equal the declared size and each tensor
  // is written once; both are checked. Thread-safe (positional writes, locked bookkeeping).
  void write(const std::string& name, const void* data, size_t nbytes);
  // Checks that every declared tensor was written, then closes. Errors name the missing ones.
  void finish();

  const std::filesystem::path& path() const { return path_; }

 private:
  struct Slot {
    uint64_t offset = 0, size = 0;  // absolute file offset
    bool written = false;
  };
  std::filesystem::path path_;
  int fd_ = -1;
  std::map<std::string, Slot> slots_;
  struct Lock;
  std::unique_ptr<Lock> lock_;
};

// The order the reference implementation stores tensors in (see the file comment).
void sort_like_safetensors(std::vector<TensorDecl>& tensors);

}  // namespace lowbit
