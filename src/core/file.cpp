#include "core/file.h"

#include "core/signals.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>

namespace qtune {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail("{}: cannot map: {}", path, std::strerror(errno));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

// Temp files "<path>.tmp.<pid>" left by a writer that was killed (SIGKILL cannot be caught):
// remove those whose process no longer exists, so repeated kills don't pile up litter.
static void remove_stale_temps(const std::string& path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  std::string prefix = (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name.substr(0, prefix.size()) != prefix) continue;
    std::string pid_str(name.substr(prefix.size()));
    char* end = nullptr;
    long pid = std::strtol(pid_str.c_str(), &end, 10);
    if (pid_str.empty() || *end || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      std::remove((slash == std::string::npos ? std::string(name) : dir + std::string(name)).c_str());
  }
  ::closedir(d);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  remove_stale_temps(path_);
  tmp_ = fmt::format("{}.tmp.{}", path_, ::getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail("{}: cannot write: {}", path_, std::strerror(errno));
  signal_slot_ = register_temp_file(tmp_);
}

AtomicFile::~AtomicFile() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
  unregister_temp_file(signal_slot_);
}

void AtomicFile::write(const void* p, size_t n) {
  if (n == 0) return;
  if (std::fwrite(p, 1, n, f_) != n) fail("{}: write failed: {}", path_, std::strerror(errno));
  written_ += n;
}

void AtomicFile::pad_to(size_t alignment) {
  static const uint8_t zeros[64] = {};
  size_t pad = (alignment - written_ % alignment) % alignment;
  while (pad > 0) {
    size_t k = pad < sizeof zeros ? pad : sizeof zeros;
    write(zeros, k);
    pad -= k;
  }
}

void AtomicFile::commit() {
  QT_ASSERT(f_);
  bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  int err = errno;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok) {
    std::remove(tmp_.c_str());
    fail("{}: write failed: {}", path_, std::strerror(err));
  }
  const bool renamed = std::rename(tmp_.c_str(), path_.c_str()) == 0;
  err = errno;
  unregister_temp_file(signal_slot_);
  signal_slot_ = -1;
  if (!renamed) {
    std::remove(tmp_.c_str());
    fail("{}: cannot rename temp file into place: {}", path_, std::strerror(err));
  }
}

std::string read_text_file(const std::string& path) {
  MappedFile f(path);
  return std::string(reinterpret_cast<const char*>(f.data()), f.size());
}

void write_text_file_atomic(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write_str(text);
  f.commit();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace qtune
