// core/buffer.h — 64-byte aligned, zero-initialised owned arrays, and the two ways the code
// hands out memory from them:
//   carve()       many tensors out of one Buffer (llm.c's malloc_and_point_parameters): models
//                 carve their parameters, activations and decoding state this way;
//   scratch<>()   the calling thread's reusable working memory (kernels, adapters).
// A Buffer never reallocates behind a pointer that was handed out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <utility>

#include "core/error.h"

namespace qtune {

template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n) { resize(n); }
  Buffer(const Buffer& o) { *this = o; }
  Buffer& operator=(const Buffer& o) {
    if (this != &o) {
      resize(o.n_);
      if (n_) std::memcpy(p_, o.p_, n_ * sizeof(T));
    }
    return *this;
  }
  Buffer(Buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~Buffer() { std::free(p_); }

  // Discards the contents; the new array is zeroed.
  void resize(size_t n) {
    std::free(p_);
    p_ = nullptr;
    n_ = n;
    if (n == 0) return;
    size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    p_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!p_) throw std::bad_alloc();
    std::memset(p_, 0, bytes);
  }
  void zero() {
    if (n_) std::memset(p_, 0, n_ * sizeof(T));
  }

  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }
  T* begin() { return p_; }
  T* end() { return p_ + n_; }
  const T* begin() const { return p_; }
  const T* end() const { return p_ + n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// One tensor carved out of a Buffer: where its pointer goes, and how many elements it has.
template <class T>
struct Slice {
  T** ptr;
  int64_t n;
};

// Resizes buf (zeroed) to hold every slice and points each *ptr at its own slice, in order.
// Every slice starts on a 64-byte boundary (the vector loops' loads never split a cache line
// at a tensor's start), so buf.size() may exceed the sum of the n; that sum is returned.
template <class T>
int64_t carve(Buffer<T>& buf, std::initializer_list<Slice<T>> slices) {
  static_assert(64 % sizeof(T) == 0, "carve: element size must divide 64");
  constexpr int64_t kAlign = 64 / sizeof(T);  // elements per 64 bytes
  auto padded = [](int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; };
  int64_t total = 0, used = 0;
  for (const Slice<T>& s : slices) {
    QT_ASSERT(s.n >= 0);
    total += padded(s.n);
    used += s.n;
  }
  buf.resize(static_cast<size_t>(total));
  int64_t off = 0;
  for (const Slice<T>& s : slices) {
    *s.ptr = buf.data() + off;
    off += padded(s.n);
  }
  return used;
}

// The calling thread's scratch number `slot` (0..3) of type T, at least n elements, 64-byte
// aligned; kept between calls and grown on demand (contents: whatever the last use left,
// zeros when just grown). `Owner` is a tag type of the module that uses it (any type, e.g.
// a struct declared in its anonymous namespace): modules never share, so a caller holding
// its scratch can call another module that grows its own. Within one Owner, slots that are
// live at the same time must differ.
template <class T, class Owner>
T* scratch(int slot, int64_t n) {
  static thread_local Buffer<T> bufs[4];
  QT_ASSERT(slot >= 0 && slot < 4 && n >= 0);
  Buffer<T>& b = bufs[slot];
  if (b.size() < static_cast<size_t>(n)) b.resize(static_cast<size_t>(n));
  return b.data();
}

}  // namespace qtune
