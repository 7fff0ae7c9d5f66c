// AtomicFile: writes a file under a temporary name in the same folder and renames it into place on
// commit(), so a crash never leaves a half-written file.
#pragma once

#include <cstddef>
#include <string>

namespace qtune {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates "<path>.tmp.<pid>"
  ~AtomicFile();                          // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t size);
  void write_zeros(std::size_t size);
  std::size_t bytes_written() const { return written_; }
  void commit();  // flushes, fsyncs and renames over `path`

  // Writes a whole small file (JSON, text) atomically.
  static void write_all(const std::string& path, const std::string& content);

 private:
  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  std::size_t written_ = 0;
  bool committed_ = false;
};

}  // namespace qtune
