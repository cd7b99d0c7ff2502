// core/file.h — reading and writing files safely.
//
// MappedFile: read-only mmap of a whole file; readers take bounds-checked views with
// Reader, which throws qtune::Error naming the file and the field on any overrun.
// Every input is opened through open_for_reading(): only regular files are read, so a FIFO with
// no writer, a directory or a device is an Error naming the path rather than a hang, a
// misleading "file is empty" or an endless read.
// AtomicFile: writes go to "<path>.tmp.<pid>" and are renamed over <path> on commit(); a
// destroyed-but-uncommitted AtomicFile removes its temp file, so a failed write never leaves
// a half-written output.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace qtune {

// What a path that is not a regular file is ("a directory", "a FIFO", "a socket", ...).
std::string file_kind(unsigned mode);

// Opens a regular file read-only and returns its descriptor (the caller closes it). Throws
// Error "<path>: no such file", "<path>: not a regular file (a FIFO)" etc., or "<path>: cannot
// open: <reason>". A stat() first means a device or FIFO is never opened (opening one can block
// or have side effects); the open is O_NONBLOCK and re-checked with fstat(), so a path swapped
// for a FIFO in between cannot block either. *size receives the file size when given.
int open_for_reading(const std::string& path, size_t* size = nullptr);

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error (open_for_reading)
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Sequential little-endian reader over a byte range, with file-naming errors.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, std::string path) : d_(data), n_(size), path_(std::move(path)) {}
  explicit Reader(const MappedFile& f) : Reader(f.data(), f.size(), f.path()) {}

  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, d_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  const uint8_t* bytes(size_t n, const char* what) {
    need(n, what);
    const uint8_t* p = d_ + pos_;
    pos_ += n;
    return p;
  }
  std::string string(size_t n, const char* what) {
    const uint8_t* p = bytes(n, what);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  void need(size_t n, const char* what) const {
    if (n > n_ - pos_)
      fail("{}: file is truncated: {} needs {} bytes at offset {}, only {} left", path_, what, n, pos_,
           n_ - pos_);
  }
  void seek(size_t pos) {
    QT_CHECK(pos <= n_, "{}: offset {} is past the end of the file ({} bytes)", path_, pos, n_);
    pos_ = pos;
  }
  size_t pos() const { return pos_; }
  size_t size() const { return n_; }
  size_t left() const { return n_ - pos_; }
  const uint8_t* base() const { return d_; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
  std::string path_;
};

class AtomicFile {
 public:
  // Opens the temp file; throws Error naming path, also when path exists and is not a regular
  // file (renaming over a directory fails late, over a device would replace the device node).
  explicit AtomicFile(std::string path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();
  void write(const void* p, size_t n);  // throws Error on a short write (e.g. disk full)
  void write_str(std::string_view s) { write(s.data(), s.size()); }
  template <class T>
  void put(const T& v) {
    write(&v, sizeof(T));
  }
  void pad_to(size_t alignment);  // zero bytes up to the next multiple of alignment
  size_t tell() const { return written_; }
  void commit();  // flush, fsync, close and rename over the final path

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  int signal_slot_ = -1;  // the temp file is removed if SIGINT/SIGTERM ends the process (core/signals.h)
  size_t written_ = 0;
};

std::string read_text_file(const std::string& path);  // whole file; throws Error (open_for_reading)
// The first n bytes of a file (fewer if it is shorter); throws Error (open_for_reading).
std::string read_file_head(const std::string& path, size_t n);
void write_text_file_atomic(const std::string& path, std::string_view text);
bool file_exists(const std::string& path);
// fingerprint() (core/hash.h) of a whole file, read in pieces: a mapping would leave every page
// of a multi-GB model resident while it is hashed.
uint64_t fingerprint_file(const std::string& path);

}  // namespace qtune
