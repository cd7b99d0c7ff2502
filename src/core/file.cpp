#include "core/file.h"

#include "core/hash.h"
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
#include <vector>

namespace qtune {

std::string file_kind(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFLNK: return "a symbolic link";
    default: return "not a file";
  }
}

int open_for_reading(const std::string& path, size_t* size) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) fail("{}: no such file", path);
    fail("{}: cannot open: {}", path, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) fail("{}: not a regular file ({})", path, file_kind(st.st_mode));
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int err = errno;
    ::close(fd);
    if (!S_ISREG(st.st_mode)) fail("{}: not a regular file ({})", path, file_kind(st.st_mode));
    fail("{}: cannot open: {}", path, std::strerror(err));
  }
  if (size) *size = static_cast<size_t>(st.st_size);
  return fd;
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = open_for_reading(path, &size_);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail("{}: cannot map: {}", path, std::strerror(err));
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
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    fail("{}: cannot write: it is {}, not a regular file", path_, file_kind(st.st_mode));
  remove_stale_temps(path_);
  tmp_ = fmt::format("{}.tmp.{}", path_, ::getpid());
  // Registered before it exists: a SIGTERM between creating the file and registering it would
  // leave it behind (the handler's unlink of a path not yet created is harmless).
  signal_slot_ = register_temp_file(tmp_);
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) {
    const int err = errno;
    unregister_temp_file(signal_slot_);
    signal_slot_ = -1;
    fail("{}: cannot write: {}", path_, std::strerror(err));
  }
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

namespace {

// Reads up to n bytes from fd into buf (fewer only at the end of the file); on an error the fd
// is closed and the error names the path.
size_t read_up_to(int fd, void* buf, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    const ssize_t k = ::read(fd, static_cast<char*>(buf) + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      const int err = errno;
      ::close(fd);
      fail("{}: cannot read: {}", path, std::strerror(err));
    }
    if (k == 0) break;
    got += size_t(k);
  }
  return got;
}

}  // namespace

std::string read_file_head(const std::string& path, size_t n) {
  const int fd = open_for_reading(path);
  std::string head(n, '\0');
  head.resize(read_up_to(fd, head.data(), n, path));
  ::close(fd);
  return head;
}

void write_text_file_atomic(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write_str(text);
  f.commit();
}

uint64_t fingerprint_file(const std::string& path) {
  size_t size = 0;
  const int fd = open_for_reading(path, &size);
  std::vector<uint8_t> buf(size_t(8) << 20);  // a multiple of 8: only the last piece has a tail
  uint64_t h = 0x9e3779b97f4a7c15ULL, total = 0;
  for (;;) {
    const size_t got = read_up_to(fd, buf.data(), buf.size(), path);
    total += got;
    h = fingerprint_words(buf.data(), got / 8, h);
    if (got < buf.size()) {
      ::close(fd);
      return fingerprint_tail(buf.data() + got / 8 * 8, got % 8, total, h);
    }
  }
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace qtune
