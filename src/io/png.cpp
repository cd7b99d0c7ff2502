// io/png.cpp — see png.h.
//
// libpng reports errors by longjmp() back to a setjmp() point. Jumping over a C++ frame with a
// live object that has a destructor is undefined, so the setjmp lives in encode(), whose only
// locals are trivial, and every callback (error, write, flush) records what went wrong in the
// plain-C Sink and longjmps only after any C++ exception it caught is gone. write_png() then
// turns the recorded message into a qtune::Error naming the file.
#include "io/png.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/file.h"

namespace qtune {

namespace {

struct Sink {
  AtomicFile* file;
  char message[512];  // the first error, for the Error thrown after the longjmp
};

void note(Sink* s, const char* what) {
  if (s->message[0] == 0) std::snprintf(s->message, sizeof s->message, "%s", what);
}

[[noreturn]] void on_error(png_structp png, png_const_charp msg) {
  note(static_cast<Sink*>(png_get_error_ptr(png)), msg ? msg : "libpng error");
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // one-line contract: warnings stay quiet

void on_write(png_structp png, png_bytep data, png_size_t n) {
  Sink* s = static_cast<Sink*>(png_get_io_ptr(png));
  bool ok = true;
  try {
    s->file->write(data, n);
  } catch (const std::exception& e) {  // AtomicFile: "<path>: short write ..." — keep it
    note(s, e.what());
    ok = false;
  }
  if (!ok) png_error(png, "write failed");  // longjmps; no C++ object is alive in this frame
}

void on_flush(png_structp) {}  // AtomicFile::commit() flushes and fsyncs

// Returns false (with s->message set) when libpng fails.
bool encode(png_structp png, png_infop info, Sink* s, const uint8_t* pixels, int width, int height, int channels) {
  if (setjmp(png_jmpbuf(png))) return false;
  static const int kColor[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                               PNG_COLOR_TYPE_RGB_ALPHA};
  png_set_write_fn(png, s, on_write, on_flush);
  png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), 8, kColor[channels], PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t stride = size_t(width) * channels;
  for (int y = 0; y < height; ++y) png_write_row(png, const_cast<png_bytep>(pixels + size_t(y) * stride));
  png_write_end(png, info);
  return true;
}

}  // namespace

uint64_t write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels) {
  QT_CHECK(channels >= 1 && channels <= 4, "{}: a PNG has 1 to 4 channels, not {}", path, channels);
  // PNG allows 2^31−1 per side; libpng's default user limit is 1,000,000 (png_set_user_limits)
  QT_CHECK(width >= 1 && height >= 1 && width <= 1000000 && height <= 1000000,
           "{}: a {}×{} image cannot be written as a PNG (1 to 1000000 pixels per side)", path, width, height);
  AtomicFile file(path);
  Sink sink{&file, {0}};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
  QT_CHECK(png != nullptr, "{}: cannot start libpng", path);
  png_infop info = png_create_info_struct(png);
  bool ok = info != nullptr && encode(png, info, &sink, pixels, width, height, channels);
  png_destroy_write_struct(&png, info ? &info : nullptr);
  if (!ok) fail("{}: cannot write PNG: {}", path, sink.message[0] ? sink.message : "out of memory");
  const uint64_t size = file.tell();
  file.commit();
  return size;
}

}  // namespace qtune
