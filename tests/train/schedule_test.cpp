// Learning-rate schedules at their key steps.
#include <cmath>

#include "core/error.h"
#include "test_util.h"
#include "train/schedule.h"

namespace qtune {
namespace {

LrSchedule make(ScheduleKind k) {
  LrSchedule s;
  s.kind = k;
  s.lr = 1e-3f;
  s.min_lr = 1e-4f;
  s.warmup = 10;
  s.total = 110;
  return s;
}

TEST(Schedule, WarmupIsLinearFromZero) {
  for (auto k : {ScheduleKind::constant, ScheduleKind::linear, ScheduleKind::cosine}) {
    LrSchedule s = make(k);
    EXPECT_FLOAT_EQ(s.at(0), 0.0f);
    EXPECT_FLOAT_EQ(s.at(1), 1e-4f);
    EXPECT_FLOAT_EQ(s.at(5), 5e-4f);
    EXPECT_FLOAT_EQ(s.at(10), 1e-3f);  // peak at the end of warmup
  }
}

TEST(Schedule, DecaysToMinLr) {
  LrSchedule c = make(ScheduleKind::constant), l = make(ScheduleKind::linear), k = make(ScheduleKind::cosine);
  EXPECT_FLOAT_EQ(c.at(60), 1e-3f);
  EXPECT_FLOAT_EQ(c.at(110), 1e-3f);
  EXPECT_FLOAT_EQ(l.at(60), 5.5e-4f);    // halfway: the mean of lr and min_lr
  EXPECT_FLOAT_EQ(l.at(35), 7.75e-4f);   // a quarter of the way
  EXPECT_FLOAT_EQ(l.at(110), 1e-4f);
  EXPECT_FLOAT_EQ(k.at(60), 5.5e-4f);    // cosine also passes the mean halfway
  EXPECT_FLOAT_EQ(k.at(35), static_cast<float>(1e-4 + 9e-4 * 0.5 * (1 + std::cos(M_PI / 4))));
  EXPECT_FLOAT_EQ(k.at(110), 1e-4f);
  EXPECT_FLOAT_EQ(k.at(500), 1e-4f);     // past the end stays at min_lr
  EXPECT_GT(k.at(11), k.at(12));         // strictly decreasing after warmup
}

TEST(Schedule, NoWarmup) {
  LrSchedule s = make(ScheduleKind::cosine);
  s.warmup = 0;
  s.total = 100;
  EXPECT_NEAR(s.at(1), 1e-3f, 1e-6f);
  EXPECT_FLOAT_EQ(s.at(50), 5.5e-4f);
  EXPECT_FLOAT_EQ(s.at(100), 1e-4f);
}

TEST(Schedule, ParsesNames) {
  EXPECT_EQ(parse_schedule("cosine"), ScheduleKind::cosine);
  EXPECT_EQ(parse_schedule("linear"), ScheduleKind::linear);
  EXPECT_STREQ(schedule_name(parse_schedule("constant")), "constant");
  EXPECT_THROW(parse_schedule("step"), Error);
}

}  // namespace
}  // namespace qtune
