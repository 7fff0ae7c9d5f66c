// AtomicFile implementation: open(O_EXCL) a temporary, write fully, fsync, rename.
#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace qtune {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_path_ = fmt::format("{}.tmp.{}", path_, ::getpid());
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) input_error("{}: cannot create ({}); check that the folder exists and is writable", path_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFile::write(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      input_error("{}: write failed ({}); is the disk full?", path_, std::strerror(errno));
    }
    p += n;
    size -= static_cast<std::size_t>(n);
    written_ += static_cast<std::size_t>(n);
  }
}

void AtomicFile::write_zeros(std::size_t size) {
  std::vector<char> zeros(std::min<std::size_t>(size, 1 << 16), 0);
  while (size > 0) {
    std::size_t n = std::min(size, zeros.size());
    write(zeros.data(), n);
    size -= n;
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) input_error("{}: fsync failed ({})", path_, std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    input_error("{}: cannot rename the temporary file into place ({})", path_, std::strerror(errno));
  committed_ = true;
}

void AtomicFile::write_all(const std::string& path, const std::string& content) {
  AtomicFile file(path);
  file.write(content.data(), content.size());
  file.commit();
}

}  // namespace qtune
