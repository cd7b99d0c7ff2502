#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qtune {

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "constant") return ScheduleKind::constant;
  if (name == "linear") return ScheduleKind::linear;
  if (name == "cosine") return ScheduleKind::cosine;
  fail("--schedule: unknown schedule '{}' (use constant, linear or cosine)", name);
}

const char* schedule_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::linear: return "linear";
    case ScheduleKind::cosine: return "cosine";
  }
  return "?";
}

float LrSchedule::at(int64_t step) const {
  // Computed in double so the value for a step never depends on how we got there (resume).
  const double base = lr, lo = min_lr;
  if (step <= warmup && warmup > 0) return static_cast<float>(base * static_cast<double>(step) / warmup);
  if (kind == ScheduleKind::constant || total <= warmup) return lr;
  double p = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
  p = std::clamp(p, 0.0, 1.0);  // steps past `total` (an extended run) stay at min_lr
  if (kind == ScheduleKind::linear) return static_cast<float>(base + (lo - base) * p);
  return static_cast<float>(lo + (base - lo) * 0.5 * (1.0 + std::cos(M_PI * p)));
}

}  // namespace qtune
