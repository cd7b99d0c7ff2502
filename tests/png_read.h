// tests/png_read.h — decoding a PNG with libpng's own reader, independently of io/png.cpp, so
// the tests check the files qtune writes against the decoder everyone else uses.
#pragma once
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <string>
#include <vector>

namespace qtune::test {

struct DecodedPng {
  bool ok = false;
  std::string error;
  int width = 0, height = 0, bit_depth = 0, color_type = -1, channels = 0;
  std::vector<unsigned char> pixels;  // [height, width, channels], rows without padding
  unsigned char at(int y, int x, int c = 0) const { return pixels[(size_t(y) * width + x) * channels + c]; }
};

namespace png_detail {
inline void on_error(png_structp png, png_const_charp msg) {
  *static_cast<std::string*>(png_get_error_ptr(png)) = msg ? msg : "libpng error";
  png_longjmp(png, 1);
}
inline void on_warning(png_structp, png_const_charp) {}
// Only trivial locals here: libpng longjmps back into this frame.
inline bool read_into(png_structp png, png_infop info, std::FILE* f, DecodedPng* d) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, f);
  png_read_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
  d->width = int(png_get_image_width(png, info));
  d->height = int(png_get_image_height(png, info));
  d->bit_depth = png_get_bit_depth(png, info);
  d->color_type = png_get_color_type(png, info);
  d->channels = png_get_channels(png, info);
  png_bytepp rows = png_get_rows(png, info);
  const size_t stride = png_get_rowbytes(png, info);
  d->pixels.resize(stride * d->height);
  for (int y = 0; y < d->height; ++y) std::copy(rows[y], rows[y] + stride, d->pixels.begin() + y * stride);
  return true;
}
}  // namespace png_detail

inline DecodedPng read_png(const std::string& path) {
  DecodedPng d;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    d.error = "cannot open " + path;
    return d;
  }
  unsigned char sig[8] = {};
  if (std::fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
    std::fclose(f);
    d.error = path + ": not a PNG";
    return d;
  }
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d.error, png_detail::on_error, png_detail::on_warning);
  png_infop info = png_create_info_struct(png);
  png_set_sig_bytes(png, 8);
  d.ok = png_detail::read_into(png, info, f, &d);
  png_destroy_read_struct(&png, &info, nullptr);
  std::fclose(f);
  return d;
}

}  // namespace qtune::test
