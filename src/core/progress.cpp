#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "core/system.h"

namespace qtune {

Progress::Progress(int64_t total, std::string label, bool enabled)
    : total_(total), label_(std::move(label)), enabled_(enabled), tty_(::isatty(2)), start_(now_seconds()) {}

void Progress::update(int64_t done, const std::string& extra) {
  if (!enabled_) return;
  double now = now_seconds();
  bool last = done >= total_;
  if (!last && now - last_print_ < (tty_ ? 0.1 : 5.0)) return;
  last_print_ = now;
  double el = now - start_;
  double eta = done > 0 ? el / done * (total_ - done) : -1;
  const int width = 20;
  int fill = total_ > 0 ? static_cast<int>(width * done / total_) : 0;
  std::string bar(fill, '#');
  bar.resize(width, '.');
  std::string line = fmt::format("{} [{}] {}/{}  {}  ETA {}  mem {}", label_, bar, done, total_, extra,
                                 human_seconds(eta), human_bytes(peak_rss_bytes()));
  if (tty_)
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  if (!enabled_) return;
  double el = now_seconds() - start_;
  std::string line = fmt::format("{} done in {}  {}  peak mem {}", label_, human_seconds(el), extra,
                                 human_bytes(peak_rss_bytes()));
  if (tty_)
    std::fprintf(stderr, "\r%s\033[K\n", line.c_str());
  else
    std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace qtune
