// MappedFile: a whole file mapped read-only-shared / copy-on-write into memory (zero-copy tensor views).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace qtune {

class MappedFile {
 public:
  // Maps `path` privately (writes to the pages never reach the file). Throws InputError if it is
  // missing, unreadable or a directory.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::size_t size() const { return size_; }
  std::uint8_t* data() const { return data_; }
  // Drops the pages fully inside [offset, offset + length) from memory (they are read again from the
  // file if touched): keeps host RSS low while a large checkpoint is converted tensor by tensor.
  void release(std::size_t offset, std::size_t length) const;

 private:
  MappedFile(std::string path, std::uint8_t* data, std::size_t size);
  std::string path_;
  std::uint8_t* data_;
  std::size_t size_;
};

}  // namespace qtune
