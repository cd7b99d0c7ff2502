// IDX reader and Fashion-MNIST loader (io/idx.h): hand-made small files — good (raw and gzip),
// truncated, corrupt, wrong magic, wrong count — and, where Debian's dataset-fashion-mnist is
// installed, the real files.
#include <zlib.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/idx.h"
#include "test_util.h"

using namespace qtune;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes idx_bytes(std::vector<uint32_t> dims, const Bytes& data) {
  Bytes b = {0, 0, 0x08, uint8_t(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Bytes gzip(const Bytes& raw) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, raw.size()) + 64);
  zs.next_in = const_cast<uint8_t*>(raw.data());
  zs.avail_in = uInt(raw.size());
  zs.next_out = out.data();
  zs.avail_out = uInt(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string write(const std::string& path, const Bytes& b) {
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(b.data(), 1, b.size(), f);
  std::fclose(f);
  return path;
}

// 5 images of 2×3 pixels, labels 0, 3, 9, 3, 1.
Bytes images() {
  Bytes px;
  for (int i = 0; i < 5 * 6; ++i) px.push_back(uint8_t(i * 8));
  return idx_bytes({5, 2, 3}, px);
}
Bytes labels(Bytes l = {0, 3, 9, 3, 1}) { return idx_bytes({uint32_t(l.size())}, l); }

bool has(const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; }

}  // namespace

TEST(Idx, ReadsRawAndGzip) {
  const std::string d = test::scratch_dir();
  for (bool gz : {false, true}) {
    const std::string p = write(d + (gz ? "/a.gz" : "/a"), gz ? gzip(images()) : images());
    IdxArray a = read_idx(p);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{5, 2, 3}));
    ASSERT_EQ(a.data.size(), 30u);
    EXPECT_EQ(a.data[29], 29 * 8);
  }
}

TEST(Idx, BadFilesAreOneLineErrorsNamingTheFile) {
  const std::string d = test::scratch_dir();
  const Bytes good = images(), gz = gzip(good);
  auto err = [&](const std::string& name, const Bytes& b) {
    const std::string p = write(d + "/" + name, b);
    const std::string m = test::error_of([&] { read_idx(p); });
    EXPECT_TRUE(has(m, p)) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  };
  EXPECT_TRUE(has(err("trunc_raw", Bytes(good.begin(), good.end() - 4)), "truncated IDX data: 26 bytes for 30"));
  EXPECT_TRUE(has(err("trunc.gz", Bytes(gz.begin(), gz.begin() + gz.size() / 2)), "truncated gzip stream"));
  Bytes corrupt = gz;
  corrupt[corrupt.size() - 6] ^= 0xff;  // the CRC32 of the trailer
  EXPECT_TRUE(has(err("crc.gz", corrupt), "corrupt gzip stream"));
  Bytes magic = good;
  magic[0] = 0x42;
  EXPECT_TRUE(has(err("magic", magic), "not an IDX file (magic 42 00"));
  Bytes type = good;
  type[2] = 0x0d;
  EXPECT_TRUE(has(err("type", type), "element type 0x0d is not supported"));
  Bytes extra = good;
  extra.push_back(7);
  EXPECT_TRUE(has(err("extra", extra), "1 bytes after the 30 elements"));
  EXPECT_TRUE(has(err("short", Bytes{0, 0}), "too short for an IDX header"));
  EXPECT_TRUE(has(err("hdr", Bytes{0, 0, 8, 3, 0, 0}), "truncated IDX header"));
  EXPECT_TRUE(has(test::error_of([&] { read_idx(d + "/absent"); }), d + "/absent"));
}

TEST(Idx, FashionMnistLoaderChecksCountsLabelsAndClasses) {
  const std::string d = test::scratch_dir();
  write(d + "/train-images-idx3-ubyte.gz", gzip(images()));
  write(d + "/train-labels-idx1-ubyte", labels());  // uncompressed is accepted too
  ImageSet all = load_fashion_mnist(d, "train");
  EXPECT_EQ(all.size(), 5);
  EXPECT_EQ(all.rows, 2);
  EXPECT_EQ(all.cols, 3);
  EXPECT_FLOAT_EQ(all.pixels[0], -1.0f);
  EXPECT_FLOAT_EQ(all.pixels[29], 232 / 127.5f - 1);
  ImageSet sub = load_fashion_mnist(d, "train", parse_class_list("3", 10));
  EXPECT_EQ(sub.labels, (std::vector<int>{3, 3}));
  EXPECT_FLOAT_EQ(sub.pixels[0], 6 * 8 / 127.5f - 1) << "first pixel of image 1";

  write(d + "/train-labels-idx1-ubyte", labels({0, 3, 9, 3}));
  EXPECT_TRUE(has(test::error_of([&] { load_fashion_mnist(d, "train"); }), "5 images but"));
  write(d + "/train-labels-idx1-ubyte", labels({0, 3, 10, 3, 1}));
  EXPECT_TRUE(has(test::error_of([&] { load_fashion_mnist(d, "train"); }), "label 10 of image 2 is outside 0..9"));
  write(d + "/train-labels-idx1-ubyte", images());
  EXPECT_TRUE(has(test::error_of([&] { load_fashion_mnist(d, "train"); }), "3 dimensions, expected 1"));
  EXPECT_TRUE(has(test::error_of([&] { load_fashion_mnist(d, "valid"); }), "split 'valid'"));
}

TEST(Idx, ClassListParser) {
  EXPECT_EQ(parse_class_list("0-7", 10), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(parse_class_list("9,0,3-4", 10), (std::vector<int>{0, 3, 4, 9}));
  EXPECT_EQ(parse_class_list("5", 10), (std::vector<int>{5}));
  EXPECT_TRUE(has(test::error_of([] { parse_class_list("0-12", 10); }), "--classes: class 12 is outside 0..9"));
  EXPECT_TRUE(has(test::error_of([] { parse_class_list("7-3", 10); }), "range 7-3 is empty"));
  EXPECT_TRUE(has(test::error_of([] { parse_class_list("1,1", 10); }), "class 1 is given twice"));
  EXPECT_TRUE(has(test::error_of([] { parse_class_list("a", 10); }), "'a' is not a class id"));
  EXPECT_TRUE(has(test::error_of([] { parse_class_list("1,", 10); }), "'' is not a class id"));
  EXPECT_TRUE(has(test::error_of([] { parse_class_list("-1", 10); }), "'' is not a class id"));
  EXPECT_TRUE(has(test::error_of([] { parse_class_list("", 10); }), "empty list"));
}

// The real files of Debian's dataset-fashion-mnist.
TEST(FashionMnist, RealFilesLoad) {
  const std::string dir = test::fashion_mnist_dir();
  QT_REQUIRE_DATASET(dir + "/train-images-idx3-ubyte.gz");
  ImageSet test = load_fashion_mnist(dir, "t10k");
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(test.rows, 28);
  EXPECT_EQ(test.cols, 28);
  std::vector<int> per(10);
  for (int y : test.labels) ++per[y];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per[c], 1000) << "class " << c;
  ImageSet train = load_fashion_mnist(dir, "train", parse_class_list("0-7", 10));
  EXPECT_EQ(train.size(), 48000);
  EXPECT_EQ(train.pixels.size(), size_t(48000) * 784);
}
