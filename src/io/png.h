// io/png.h — writing 8-bit PNG images (libpng), atomically.
#pragma once
#include <cstdint>
#include <string>

namespace qtune {

// Writes an 8-bit image of `height` rows × `width` columns × `channels` interleaved samples
// (row-major [h, w, c]; 1 = grayscale, 2 = gray + alpha, 3 = RGB, 4 = RGBA) as a PNG at `path`,
// atomically (core/file.h AtomicFile: a failed write leaves neither a partial file nor the temp
// file). No timestamp or other metadata is written, so equal pixels give byte-identical files.
// Throws Error naming `path` for a bad shape, a libpng failure or a failed write.
// Returns the file size in bytes.
uint64_t write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels);

}  // namespace qtune
