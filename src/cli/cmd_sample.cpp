// qtune sample — images from a trained class-conditional DiT (models/dit_sampler.h: DDIM with
// classifier-free guidance), written as one PNG grid (io/png.h).
//
// The grid: tiles of the DiT's image size with 2 pixels of white (255) between them and no outer
// border; white, because Fashion-MNIST's backgrounds are black and black gaps would merge the
// tiles. One class: its n images in rows of --cols (default ⌈√n⌉). Several classes: each class
// starts a new row, its n images in rows of --cols (default n: one row per class); the classes
// come in ascending order whatever the order of --class. Cells left over in a class's last row
// are white. A pixel x ∈ [−1, 1] becomes round((x + 1)·127.5) clamped to 0..255; a 1-channel
// DiT gives an 8-bit grayscale PNG, 3 channels RGB.
//
// The same model, flags, seed and --threads give the same PNG byte for byte (with η > 0 too: its
// noise is seeded; models/dit_sampler.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/dit_common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/system.h"
#include "io/idx.h"
#include "io/png.h"
#include "models/dit_sampler.h"

namespace qtune::cli {

namespace {

constexpr int kPad = 2;             // pixels between tiles
constexpr uint8_t kPadValue = 255;  // white gaps (see the top of the file)
constexpr int kMaxImages = 10000;   // per class
constexpr int kMaxSteps = 1000;     // the DiT's noise schedule (NoiseSchedule::linear) has 1000 timesteps

struct SampleArgs {
  std::string model, classes, out, report;
  int n = 64, steps = 50, cols = 0, threads = 0;
  float cfg = 1.0f, eta = 0.0f;
  uint64_t seed = 0;
  bool quiet = false;
};

void add_flags(CLI::App& app, SampleArgs& a) {
  app.add_option("--model,-m", a.model, "the DiT GGUF (dit-train --method full, or merged)")->required();
  app.add_option("--class", a.classes,
                 "class id (0-9 for Fashion-MNIST), a list like 0-9 or 8,9 (one grid row per class), or null "
                 "(unconditional)")
      ->required();
  app.add_option("--n", a.n, fmt::format("images per class (1 to {})", kMaxImages))->capture_default_str();
  app.add_option("--steps", a.steps, fmt::format("DDIM steps (1 to {})", kMaxSteps))->capture_default_str();
  app.add_option("--cfg", a.cfg, "classifier-free guidance weight w (1 = none, 0 = unconditional)")
      ->capture_default_str();
  app.add_option("--eta", a.eta, "DDIM η: 0 = deterministic, 1 = DDPM-like noise")->capture_default_str();
  app.add_option("--seed", a.seed, "the seed of the starting noise (and of η's noise)")->capture_default_str();
  app.add_option("--cols", a.cols, "grid columns (default: ⌈√n⌉ for one class, n for several)");
  app.add_option("--out,-o", a.out, "the PNG grid to write")->required();
  add_report_flag(app, a.report);
  add_threads_flag(app, a.threads);
  app.add_flag("--quiet,-q", a.quiet, "no progress");
}

void check_flags(const SampleArgs& a) {
  QT_CHECK(a.n >= 1 && a.n <= kMaxImages, "--n must be 1 to {} images per class, got {}", kMaxImages, a.n);
  QT_CHECK(a.steps >= 1 && a.steps <= kMaxSteps, "--steps must be 1 to {} (the noise schedule's timesteps), got {}",
           kMaxSteps, a.steps);
  QT_CHECK(std::isfinite(a.cfg) && a.cfg >= 0.0f, "--cfg must be a number >= 0, got {}", a.cfg);
  QT_CHECK(a.eta >= 0.0f && a.eta <= 1.0f, "--eta must be in 0..1, got {}", a.eta);
  QT_CHECK(a.cols >= 0 && a.cols <= kMaxImages, "--cols must be 1 to {} (0 = the default), got {}", kMaxImages,
           a.cols);
}

// "null" → {the null class}; else parse_class_list, its "--classes:" messages said as "--class:"
// (and where they list the forms, with null too).
std::vector<int> parse_classes(const std::string& spec, const DitConfig& c) {
  if (spec == "null") return {c.null_class()};
  try {
    return parse_class_list(spec, c.num_classes);
  } catch (const Error& e) {
    const std::string m = e.what();
    if (!m.starts_with("--classes:")) throw;
    std::string said = "--class:" + m.substr(10);
    const std::string hint = "0-7 or 0,2,5)", more = "0-7 or 0,2,5, or null alone: unconditional)";
    if (const size_t at = said.find(hint); at != std::string::npos) said.replace(at, hint.size(), more);
    throw Error(said);
  }
}

struct Grid {
  int tile = 0, channels = 0;
  int cols = 0, rows_per_class = 0, rows = 0;
  int width = 0, height = 0;
};

Grid plan_grid(const SampleArgs& a, int num_classes, const DitConfig& c, const std::string& model) {
  QT_CHECK(c.channels >= 1 && c.channels <= 4, "{}: the DiT has {} channels; a PNG holds 1 to 4", model, c.channels);
  Grid g;
  g.tile = c.image, g.channels = c.channels;
  g.cols = a.cols > 0 ? a.cols : num_classes == 1 ? int(std::ceil(std::sqrt(double(a.n)))) : a.n;
  g.cols = std::min(g.cols, a.n);
  g.rows_per_class = (a.n + g.cols - 1) / g.cols;
  g.rows = g.rows_per_class * num_classes;
  const int64_t w = int64_t(g.cols) * g.tile + int64_t(g.cols - 1) * kPad;
  const int64_t h = int64_t(g.rows) * g.tile + int64_t(g.rows - 1) * kPad;
  QT_CHECK(w <= 1000000 && h <= 1000000, "--n {} × {} classes: a {}×{} grid of {}-pixel tiles is too large for a PNG "
           "(at most 1000000 pixels per side; try --cols)", a.n, num_classes, g.rows, g.cols, g.tile);
  g.width = int(w), g.height = int(h);
  return g;
}

uint8_t to_byte(float x) {
  const float v = (x + 1.0f) * 127.5f;
  if (!(v > 0.0f)) return 0;  // NaN too
  return v >= 255.0f ? 255 : uint8_t(std::lround(v));
}

// images [classes·n, C·H·W] (channel-major) → the grid [height, width, C].
std::vector<uint8_t> compose(const std::vector<float>& images, int num_classes, int n, const Grid& g) {
  std::vector<uint8_t> out(size_t(g.width) * g.height * g.channels, kPadValue);
  const int64_t plane = int64_t(g.tile) * g.tile, numel = plane * g.channels;
  for (int k = 0; k < num_classes; ++k)
    for (int i = 0; i < n; ++i) {
      const float* img = images.data() + (int64_t(k) * n + i) * numel;
      const int row = k * g.rows_per_class + i / g.cols, col = i % g.cols;
      const int64_t y0 = int64_t(row) * (g.tile + kPad), x0 = int64_t(col) * (g.tile + kPad);
      for (int y = 0; y < g.tile; ++y)
        for (int x = 0; x < g.tile; ++x)
          for (int ch = 0; ch < g.channels; ++ch)
            out[((y0 + y) * g.width + x0 + x) * g.channels + ch] = to_byte(img[ch * plane + y * g.tile + x]);
    }
  return out;
}

// dit_sample's progress is a plain function pointer.
Progress* g_progress = nullptr;
void on_chunk(int64_t done, int64_t total) {
  if (g_progress) g_progress->update(done, "images");
}

nlohmann::json class_json(const std::vector<int>& classes, const DitConfig& c) {
  nlohmann::json ids = nlohmann::json::array(), names = nlohmann::json::array();
  for (int k : classes) {
    const bool null = k == c.null_class();
    ids.push_back(null ? nlohmann::json() : nlohmann::json(k));
    if (null) names.push_back("unconditional");
    else if (c.num_classes == 10) names.push_back(fashion_mnist_class_names()[k]);
    else names.push_back(fmt::format("class {}", k));
  }
  return {{"ids", ids}, {"names", names}};
}

}  // namespace

int cmd_sample(int argc, char** argv) {
  CLI::App app{"Generate images with a class-conditional DiT (DDIM, classifier-free guidance) and write them as one "
               "PNG grid: one class → ⌈√n⌉ columns; several → one row per class.",
               "qtune sample"};
  SampleArgs a;
  add_flags(app, a);
  QT_PARSE(app, argc, argv);
  check_flags(a);
  std::vector<NamedPath> out = {{"--out", a.out}};
  if (!a.report.empty()) out.push_back({"--report", a.report});
  check_paths({{"--model", a.model}}, out);
  use_threads(a.threads);

  InferenceDit dit = load_inference_dit(a.model);
  const std::vector<int> classes = parse_classes(a.classes, dit.config);
  const int K = int(classes.size());
  const Grid g = plan_grid(a, K, dit.config, a.model);

  std::vector<int> per_image;
  for (int k : classes) per_image.insert(per_image.end(), size_t(a.n), k);
  DitSampleOptions o;
  o.steps = a.steps, o.eta = a.eta, o.guidance = a.cfg, o.seed = a.seed;
  const int64_t total = int64_t(per_image.size());
  // progress per chunk, only when there is more than one (core/progress.h throttles off a TTY)
  Progress bar(total, "sample", !a.quiet && total > kSampleChunk);
  g_progress = &bar;
  const double t0 = now_seconds();
  const std::vector<float> images = dit_sample(*dit.model, per_image, o, on_chunk);
  const double seconds = now_seconds() - t0;
  g_progress = nullptr;
  bar.finish(fmt::format("{:.2f} images/s", seconds > 0 ? double(total) / seconds : 0.0));

  const std::vector<uint8_t> grid = compose(images, K, a.n, g);
  const uint64_t bytes = write_png(a.out, grid.data(), g.width, g.height, g.channels);
  const nlohmann::json cls = class_json(classes, dit.config);
  write_report(a.report, {{"command", "sample"},
                          {"model", a.model},
                          {"weights", dit.describe},
                          {"classes", cls["ids"]},
                          {"class_names", cls["names"]},
                          {"n", a.n},
                          {"images", total},
                          {"steps", a.steps},
                          {"cfg", a.cfg},
                          {"eta", a.eta},
                          {"seed", a.seed},
                          {"seconds", seconds},
                          {"grid", {{"rows", g.rows}, {"cols", g.cols}, {"tile", g.tile}, {"padding", kPad},
                                    {"padding_value", kPadValue}}},
                          {"png", {{"path", a.out}, {"width", g.width}, {"height", g.height},
                                   {"channels", g.channels}, {"bytes", bytes}}}});
  std::printf("%lld images (%d×%d grid, %d×%d px) in %.1f s → %s\n", static_cast<long long>(total), g.rows, g.cols,
              g.width, g.height, seconds, a.out.c_str());
  return 0;
}

}  // namespace qtune::cli
