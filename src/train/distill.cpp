// train/distill.cpp — see distill.h.
#include "train/distill.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "models/diffusion.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace qtune {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One trajectory's inputs: [x | y] for B images, doubled with the null class when guided.
struct GuidedBatch {
  int B = 0, rows = 0;  // rows = 2B when guided, else B
  std::vector<float> x;
  std::vector<int> t, y;
  void fill(const std::vector<float>& xt, int tk, const std::vector<int>& classes, int null_class, bool guided,
            int64_t n) {
    B = int(classes.size());
    rows = guided ? 2 * B : B;
    x.assign(xt.begin(), xt.end());
    if (guided) x.insert(x.end(), xt.begin(), xt.end());
    t.assign(size_t(rows), tk);
    y.assign(classes.begin(), classes.end());
    if (guided) y.resize(size_t(rows), null_class);
    QT_ASSERT(int64_t(x.size()) == rows * n);
  }
};

// ε = ε_u + w·(ε_c − ε_u) of a [rows, n] prediction (rows = B: ε_c alone).
void combine(const float* pred, int B, int64_t n, bool guided, float w, std::vector<float>& eps) {
  eps.resize(size_t(B) * n);
  if (!guided) {
    std::memcpy(eps.data(), pred, eps.size() * sizeof(float));
    return;
  }
  cfg_combine(pred, pred + B * n, w, B * n, eps.data());
}

std::vector<int> draw_classes(const std::vector<int>& classes, int B, Rng& rng) {
  std::vector<int> y(static_cast<size_t>(B));
  for (int& c : y) c = classes[rng.next_u64() % classes.size()];
  return y;
}

void check(const DistillOptions& o, const DitConfig& c) {
  QT_CHECK(o.batch >= 1 && o.steps >= 1 && o.iters >= 0 && o.calib >= 0, "distill: invalid batch/steps/iters/calib");
  QT_CHECK(!o.classes.empty(), "distill: no classes to draw from");
  for (int k : o.classes) QT_CHECK(k >= 0 && k < c.num_classes, "distill: class {} is outside 0..{}", k, c.num_classes - 1);
  QT_CHECK(!o.real || o.real_images, "distill: the real-image objective needs images");
}

}  // namespace

namespace {

// The teacher's guided DDIM trajectory of the B images x (Gaussian noise) of classes y: at each
// step i, at_step(batch, ε_T) with the guided inputs the teacher saw and its combined ε; then x
// moves to the next timestep by ε_T (η's noise drawn from rng).
template <class F>
void walk_trajectory(Dit<float>& teacher, const DistillOptions& o, const NoiseSchedule& sched, const std::vector<int>& ts,
                     const std::vector<int>& y, std::vector<float>& x, Rng& rng, F&& at_step) {
  const DitConfig& c = teacher.config();
  const int64_t n = c.image_numel();
  const int B = int(y.size());
  const bool guided = o.guidance != 1.0f;
  GuidedBatch gb;
  std::vector<float> eps;
  for (size_t i = 0; i < ts.size(); ++i) {
    gb.fill(x, ts[i], y, c.null_class(), guided, n);
    teacher.forward(gb.x.data(), gb.t.data(), gb.y.data(), nullptr, gb.rows);
    combine(teacher.prediction(), B, n, guided, o.guidance, eps);
    at_step(gb, eps);
    const double ap = i + 1 < ts.size() ? sched.alpha_bar[ts[i + 1]] : 1.0;
    ddim_step(x.data(), eps.data(), int64_t(x.size()), sched.alpha_bar[ts[i]], ap, o.eta, true, rng);
  }
}

std::vector<float> gaussian(int64_t count, Rng& rng) {
  std::vector<float> x(static_cast<size_t>(count));
  for (float& v : x) v = float(rng.normal());
  return x;
}

}  // namespace

int calibrate_student(Dit<float>& teacher, Dit<float>& student, const DistillOptions& o) {
  const DitConfig& c = teacher.config();
  check(o, c);
  const NoiseSchedule sched = NoiseSchedule::linear();
  const std::vector<int> ts = ddim_timesteps(sched.steps, o.steps);
  const int slots = student.set_act_calibration(true);
  Rng rng(o.seed ^ 0xca1b7a7e5ULL);
  Progress bar(o.calib, "calibrate", o.progress);
  for (int done = 0; done < o.calib; done += o.batch) {
    const int B = std::min(o.batch, o.calib - done);
    const std::vector<int> y = draw_classes(o.classes, B, rng);
    std::vector<float> x = gaussian(B * c.image_numel(), rng);
    walk_trajectory(teacher, o, sched, ts, y, x, rng, [&](const GuidedBatch& gb, const std::vector<float>&) {
      student.forward(gb.x.data(), gb.t.data(), gb.y.data(), nullptr, gb.rows);
    });
    bar.update(done + B, "images");
  }
  bar.finish();
  student.set_act_calibration(false);
  return slots;
}

DistillResult distill(Dit<float>& teacher, Dit<float>& student, std::vector<Param<float>> params,
                      const DistillOptions& o) {
  const DitConfig& c = teacher.config();
  check(o, c);
  const int64_t n = c.image_numel();
  const NoiseSchedule sched = NoiseSchedule::linear();
  const std::vector<int> ts = ddim_timesteps(sched.steps, o.steps);
  const bool guided = o.guidance != 1.0f;
  DistillResult r;
  AdamWOptions ao;
  ao.weight_decay = o.weight_decay;
  AdamW opt(params, ao);
  LrSchedule lr;
  lr.kind = ScheduleKind::linear;
  lr.lr = o.lr;
  lr.total = std::max<int64_t>(1, int64_t(o.iters) * o.steps);
  Rng rng(o.seed);
  std::vector<float> eps_s, dpred, x0, xt, noise;
  std::vector<int> labels;
  double loss_sum = 0;
  // after the student's backward: the update of every trainable tensor
  auto update = [&](double loss) {
    const double norm = clip_grad_norm(params, 0.0);
    check_finite(loss, norm, params, r.optimizer_steps);
    ++r.optimizer_steps;
    opt.step(lr.at(r.optimizer_steps));
    loss_sum += loss;
  };
  auto zero_grads = [&] {
    for (const auto& p : params) zero_grad(p);
  };
  // distillation: the student's guided ε against the teacher's on the same inputs
  auto distill_step = [&](const GuidedBatch& gb, const std::vector<float>& eps_t) {
    const int B = gb.B;
    zero_grads();
    student.forward(gb.x.data(), gb.t.data(), gb.y.data(), nullptr, gb.rows);
    combine(student.prediction(), B, n, guided, o.guidance, eps_s);
    dpred.assign(size_t(gb.rows) * n, 0.0f);
    const float w = guided ? o.guidance : 1.0f, scale = 2.0f / float(B * n);
    double loss = 0;
    for (int64_t j = 0; j < B * n; ++j) {
      const float d = eps_s[j] - eps_t[j];
      loss += double(d) * d;
      dpred[j] = w * scale * d;
      if (guided) dpred[B * n + j] = (1.0f - w) * scale * d;
    }
    student.backward(dpred.data());
    update(loss / double(B * n));
  };
  // the ablation: the DDPM loss at t_k on real images
  auto real_step = [&](int B, int tk) {
    zero_grads();
    const double a = sched.alpha_bar[tk];
    xt.resize(size_t(B) * n);
    noise.resize(xt.size());
    for (size_t j = 0; j < xt.size(); ++j) {
      noise[j] = float(rng.normal());
      xt[j] = float(std::sqrt(a) * x0[j] + std::sqrt(1 - a) * noise[j]);
    }
    std::vector<int> yd(labels), tv(size_t(B), tk);
    for (int& k : yd)
      if (rng.uniform() < 0.1f) k = c.null_class();
    const double loss = student.forward(xt.data(), tv.data(), yd.data(), noise.data(), B);
    student.backward();
    update(loss);
  };
  Progress bar(o.iters, o.real ? "train (real images)" : "distill", o.progress);
  const auto t0 = std::chrono::steady_clock::now();
  for (int it = 0; it < o.iters; ++it) {
    const std::vector<int> y = draw_classes(o.classes, o.batch, rng);
    std::vector<float> x = gaussian(o.batch * n, rng);
    loss_sum = 0;
    if (o.real) {
      o.real_images(o.batch, rng, x0, labels);
      for (int tk : ts) real_step(o.batch, tk);
    } else {
      walk_trajectory(teacher, o, sched, ts, y, x, rng, distill_step);
    }
    r.iter_loss.push_back(loss_sum / double(ts.size()));
    r.iter_seconds.push_back(seconds_since(t0));
    if (o.after_iter) o.after_iter(it + 1);
    bar.update(it + 1, fmt::format("loss {:.5f}", r.iter_loss.back()));
  }
  bar.finish();
  r.train_seconds = seconds_since(t0);
  return r;
}

}  // namespace qtune
