// safetensors reading (mmap, validated header, zero-copy tensor views; sharded checkpoints through
// model.safetensors.index.json) and writing (streamed, sharded by size, atomic).
#pragma once

#include "core/torch.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"

namespace qtune {

// The safetensors dtype names qtune reads and writes, and their torch types.
at::ScalarType safetensors_dtype(const std::string& name, const std::string& where);  // InputError if unknown
std::string safetensors_dtype_name(at::ScalarType dtype);  // throws for types safetensors cannot hold

struct TensorInfo {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  std::uint64_t begin = 0;  // absolute byte offsets in the file
  std::uint64_t end = 0;
  std::uint64_t bytes() const { return end - begin; }
  int64_t numel() const;
};

// One .safetensors file, fully validated at open: header length within the file, JSON well-formed,
// known dtypes, non-negative shapes, offsets in range, byte length = numel x element size, no overlaps.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;
  // A CPU tensor over the mapped bytes (copied only if misaligned for its dtype); it keeps the mapping alive.
  torch::Tensor view(const TensorInfo& info) const;
  torch::Tensor view(const std::string& name) const;
  // Drops the tensor's pages from memory once it has been converted (see MappedFile::release).
  void release(const TensorInfo& info) const { file_->release(info.begin, info.bytes()); }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint folder: model.safetensors, or shards listed by model.safetensors.index.json.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir);  // InputError if neither file exists, or a shard is missing/bad

  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return location_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;  // InputError naming the checkpoint if missing
  torch::Tensor view(const std::string& name) const;
  void release(const std::string& name) const;
  const std::string& file_of(const std::string& name) const;
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::size_t> location_;  // tensor name -> index in files_
};

struct TensorSpec {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  std::uint64_t bytes() const;
};

// Writes one .safetensors file: the header from `specs` first, then each tensor as it is given, in
// the order of `specs`, so a model larger than memory can be streamed out. finish() renames into place.
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::string& path, std::vector<TensorSpec> specs,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  void write(const std::string& name, const torch::Tensor& tensor);
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes a checkpoint folder as <prefix>.safetensors, or, if the tensors exceed `max_shard_bytes`,
// as <prefix>-0000i-of-0000n.safetensors shards plus <prefix>.safetensors.index.json. Streamed like
// SafetensorsWriter: write() each tensor in the order of `specs`.
class ShardedWriter {
 public:
  ShardedWriter(const std::string& dir, std::vector<TensorSpec> specs, std::uint64_t max_shard_bytes,
                const std::map<std::string, std::string>& metadata = {}, const std::string& prefix = "model");
  ~ShardedWriter();
  void write(const std::string& name, const torch::Tensor& tensor);
  void finish();
  std::size_t shard_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience: all tensors of a map into one file.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace qtune
