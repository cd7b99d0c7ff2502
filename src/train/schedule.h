// train/schedule.h — learning-rate schedules: linear warmup from 0, then a decay to min_lr.
//
// Steps are counted from 1 (the first optimizer update is step 1):
//   step ≤ warmup:  lr · step / warmup
//   after warmup:   p = (step − warmup) / (total − warmup) ∈ (0, 1]
//     constant  lr
//     linear    lr + (min_lr − lr) · p
//     cosine    min_lr + (lr − min_lr) · ½(1 + cos(π p))
// so the last step (step == total) of linear/cosine uses exactly min_lr.
#pragma once
#include <cstdint>
#include <string>

namespace qtune {

enum class ScheduleKind { constant, linear, cosine };

// "constant" | "linear" | "cosine"; throws Error naming the flag otherwise.
ScheduleKind parse_schedule(const std::string& name);
const char* schedule_name(ScheduleKind k);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::cosine;
  float lr = 1e-3f, min_lr = 0.0f;
  int64_t warmup = 0, total = 1;
  float at(int64_t step) const;  // the learning rate of update `step` (1-based)
};

}  // namespace qtune
