// core/progress.h — one-line progress bar on stderr for long work.
//
//   [#######.......]  120/2000  loss 2.314  1.2k tok/s  ETA 3m10s  mem 41.2 MiB
// Redraws in place on a terminal; when stderr is not a TTY it prints a plain line at most
// every few seconds (so CI logs stay short).
#pragma once
#include <cstdint>
#include <string>

namespace qtune {

class Progress {
 public:
  Progress(int64_t total, std::string label, bool enabled = true);
  // `extra` is free text such as "loss 2.314  1.2k tok/s".
  void update(int64_t done, const std::string& extra);
  void finish(const std::string& extra = "");

 private:
  int64_t total_;
  std::string label_;
  bool enabled_, tty_;
  double start_, last_print_ = -1e9;
};

}  // namespace qtune
