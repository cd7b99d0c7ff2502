// io/idx.cpp — IDX reader (raw or gzip through zlib) and the Fashion-MNIST loader (io/idx.h).
#include "io/idx.h"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "core/error.h"
#include "core/file.h"

namespace qtune {

namespace {

// The largest IDX this reader inflates: Fashion-MNIST's train images are 47 MB.
constexpr size_t kMaxIdxBytes = size_t(1) << 31;

// Inflates a whole gzip member held in memory; a stream that ends early or fails its CRC is an
// Error naming the file.
std::vector<uint8_t> gunzip(const std::string& path, const uint8_t* src, size_t n) {
  z_stream zs{};
  QT_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "{}: zlib could not start", path);
  std::vector<uint8_t> out;
  zs.next_in = const_cast<uint8_t*>(src);
  zs.avail_in = static_cast<uInt>(std::min<size_t>(n, UINT32_MAX));
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (out.size() >= kMaxIdxBytes) {
      inflateEnd(&zs);
      fail("{}: inflates to more than {} bytes, not an IDX file this reader accepts", path, kMaxIdxBytes);
    }
    const size_t have = out.size();
    out.resize(have + (size_t(1) << 20));
    zs.next_out = out.data() + have;
    zs.avail_out = 1u << 20;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(out.size() - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // input ended before the stream did
  }
  const std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  QT_CHECK(rc != Z_BUF_ERROR && rc != Z_OK, "{}: truncated gzip stream (ends after {} bytes of data)", path,
           out.size());
  QT_CHECK(rc == Z_STREAM_END, "{}: corrupt gzip stream ({})", path, msg.empty() ? "zlib error" : excerpt(msg));
  return out;
}

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

}  // namespace

IdxArray read_idx(const std::string& path) {
  MappedFile f(path);
  std::vector<uint8_t> inflated;
  const uint8_t* p = f.data();
  size_t n = f.size();
  if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
    inflated = gunzip(path, p, n);
    p = inflated.data();
    n = inflated.size();
  }
  QT_CHECK(n >= 4, "{}: {} bytes, too short for an IDX header", path, n);
  QT_CHECK(p[0] == 0 && p[1] == 0, "{}: not an IDX file (magic {:02x} {:02x}, expected 00 00)", path, p[0], p[1]);
  QT_CHECK(p[2] == 0x08, "{}: IDX element type 0x{:02x} is not supported (only 0x08, unsigned bytes)", path, p[2]);
  const int nd = p[3];
  QT_CHECK(nd >= 1 && nd <= 4, "{}: IDX with {} dimensions (expected 1..4)", path, nd);
  QT_CHECK(n >= 4 + 4 * size_t(nd), "{}: truncated IDX header", path);
  IdxArray a;
  uint64_t count = 1;
  for (int i = 0; i < nd; ++i) {
    const uint32_t d = be32(p + 4 + 4 * i);
    QT_CHECK(d > 0, "{}: IDX dimension {} is 0", path, i);
    count *= d;
    QT_CHECK(count <= kMaxIdxBytes, "{}: IDX dimensions are too large", path);
    a.dims.push_back(d);
  }
  const size_t off = 4 + 4 * size_t(nd), have = n - off;
  QT_CHECK(have >= count, "{}: truncated IDX data: {} bytes for {} elements", path, have, count);
  QT_CHECK(have == count, "{}: {} bytes after the {} elements of the IDX data", path, have - count, count);
  a.data.assign(p + off, p + n);
  return a;
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

std::vector<int> parse_class_list(const std::string& spec, int num_classes) {
  QT_CHECK(!spec.empty(), "--classes: empty list (give ids like 0-7 or 0,2,5)");
  auto number = [&](std::string_view s) {
    int v = -1;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    QT_CHECK(ec == std::errc() && end == s.data() + s.size() && !s.empty(),
             "--classes: '{}' is not a class id (give ids like 0-7 or 0,2,5)", excerpt(s));
    QT_CHECK(v >= 0 && v < num_classes, "--classes: class {} is outside 0..{}", v, num_classes - 1);
    return v;
  };
  std::vector<int> out;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string::npos) comma = spec.size();
    const std::string_view item(spec.data() + start, comma - start);
    const size_t dash = item.find('-');
    const int lo = number(item.substr(0, dash));
    const int hi = dash == std::string_view::npos ? lo : number(item.substr(dash + 1));
    QT_CHECK(lo <= hi, "--classes: range {}-{} is empty", lo, hi);
    for (int c = lo; c <= hi; ++c) {
      QT_CHECK(std::find(out.begin(), out.end(), c) == out.end(), "--classes: class {} is given twice", c);
      out.push_back(c);
    }
    start = comma + 1;
  }
  std::sort(out.begin(), out.end());
  return out;
}

ImageSet load_fashion_mnist(const std::string& dir, const std::string& split, const std::vector<int>& classes) {
  QT_CHECK(split == "train" || split == "t10k", "fashion-mnist: split '{}' (expected train or t10k)", excerpt(split));
  auto pick = [&](const std::string& stem) {
    const std::string gz = dir + "/" + stem + ".gz";
    return file_exists(gz) || !file_exists(dir + "/" + stem) ? gz : dir + "/" + stem;
  };
  const std::string ipath = pick(split + "-images-idx3-ubyte"), lpath = pick(split + "-labels-idx1-ubyte");
  const IdxArray im = read_idx(ipath), lb = read_idx(lpath);
  QT_CHECK(im.dims.size() == 3, "{}: {} dimensions, expected 3 (images, rows, columns)", ipath, im.dims.size());
  QT_CHECK(lb.dims.size() == 1, "{}: {} dimensions, expected 1 (labels)", lpath, lb.dims.size());
  QT_CHECK(im.dims[0] == lb.dims[0], "{}: {} images but {} has {} labels", ipath, im.dims[0], lpath, lb.dims[0]);
  ImageSet s;
  s.rows = int(im.dims[1]);
  s.cols = int(im.dims[2]);
  const int64_t px = im.dims[1] * im.dims[2];
  const int K = int(fashion_mnist_class_names().size());
  std::vector<bool> keep(K, classes.empty());
  for (int c : classes) {
    QT_CHECK(c >= 0 && c < K, "fashion-mnist: class {} is outside 0..{}", c, K - 1);
    keep[c] = true;
  }
  for (int64_t i = 0; i < lb.dims[0]; ++i) {
    const int y = lb.data[i];
    QT_CHECK(y < K, "{}: label {} of image {} is outside 0..{}", lpath, y, i, K - 1);
    if (!keep[y]) continue;
    s.labels.push_back(y);
    for (int64_t j = 0; j < px; ++j) s.pixels.push_back(float(im.data[i * px + j]) / 127.5f - 1.0f);
  }
  return s;
}

}  // namespace qtune
