// io/idx.h — the IDX format of (Fashion-)MNIST, raw or gzip-compressed, and the Fashion-MNIST
// image sets the DiT trains on.
//
// IDX: u8 0, u8 0, u8 type (0x08 = unsigned byte, the only one read here), u8 ndims, then
// ndims big-endian u32 dimensions, then the data row-major. A file starting with the gzip
// magic (1f 8b) is inflated in memory first (zlib). Anything inconsistent — wrong magic, a
// truncated or corrupt stream, a data size that does not match the dimensions — is an Error
// naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qtune {

struct IdxArray {
  std::vector<int64_t> dims;  // outermost first
  std::vector<uint8_t> data;  // row-major, product(dims) bytes
};

IdxArray read_idx(const std::string& path);

// Fashion-MNIST's ten classes, by label id.
const std::vector<std::string>& fashion_mnist_class_names();

// "0-7", "2", "0,3,5-9": sorted, distinct class ids in 0..num_classes−1. Throws Error
// ("--classes: class 12 is outside 0..9") for an id out of range, an empty or reversed range,
// a repeated id, or anything that is not a number.
std::vector<int> parse_class_list(const std::string& spec, int num_classes);

// Images [n, rows·cols] scaled from 0..255 to [−1, 1] (p/127.5 − 1), and their labels.
struct ImageSet {
  int rows = 0, cols = 0;
  std::vector<float> pixels;
  std::vector<int> labels;
  int64_t size() const { return int64_t(labels.size()); }
};

// <dir>/<split>-images-idx3-ubyte.gz and <dir>/<split>-labels-idx1-ubyte.gz (split "train" or
// "t10k"; an uncompressed file without ".gz" is used when the .gz is absent), keeping only the
// images of `classes` (empty = all ten). Throws Error when the two files disagree on the count,
// a label is not 0..9, or the files are not 3-D images and 1-D labels.
ImageSet load_fashion_mnist(const std::string& dir, const std::string& split, const std::vector<int>& classes = {});

}  // namespace qtune
