// qtune distill — EfficientDM (docs/METHODS.md §10): quantize a float DiT to W-b A-b and fine-tune
// it data-free, distilling the float teacher along its own DDIM trajectories; writes the deployed
// integer model (exact QALoRA merge + the per-step activation tables), ready for sample / fid.
//
//   student   models/efficientdm.h (QALoRA + TALSQ on the block slots; 8-bit first/last layers)
//   training  train/distill.h (calibration on the teacher's trajectories, then one AdamW step per
//             sampling step), scale-aware LoRA learning rates unless --no-scale-aware-lr
// --iters 0 writes the calibrated, untrained model: post-training quantization with the same
// per-step activation scales (the PTQ baseline). --objective real and --qat are the ablation and
// the QAT baseline: the same schedule on real training images (they read --data; distillation
// reads no image).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/dit_common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "io/dit_file.h"
#include "io/idx.h"
#include "models/efficientdm.h"
#include "train/distill.h"

namespace qtune::cli {

namespace {

struct DistillArgs {
  std::string teacher, out, report, classes = "0-7", objective = "distill", data = kFashionMnistDir;
  EfficientDmOptions edm;
  DistillOptions run;
  float act_lr = 5e-4f;
  bool no_scale_aware_lr = false, one_act_scale = false, quiet = false;
  int threads = 0, save_every = 0;
};

void add_flags(CLI::App& app, DistillArgs& a) {
  app.add_option("--teacher", a.teacher, "the float DiT GGUF to quantize and distill from")->required();
  app.add_option("--out,-o", a.out, "the deployed student GGUF (integer weights, per-step activation tables)")
      ->required();
  app.add_option("--bits", a.edm.bits, "weight bits of the block slots (QALoRA)")->capture_default_str()
      ->check(CLI::Range(2, 8));
  app.add_option("--act-bits", a.edm.act_bits, "activation bits of the block slots (TALSQ, asymmetric)")
      ->capture_default_str()->check(CLI::Range(2, 8));
  app.add_option("--edge-bits", a.edm.edge_bits, "weight and activation bits of the first and last layers "
                                                 "(patch and timestep embedders, final adaLN and output)")
      ->capture_default_str()->check(CLI::Range(2, 8));
  app.add_option("--rank,-r", a.edm.rank, "QALoRA rank")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  app.add_option("--steps", a.run.steps, "DDIM steps of the trajectories, and entries of every activation table")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--iters", a.run.iters, "trajectories to train on (each is --steps optimizer steps); 0 = the "
                                         "calibrated model untrained (PTQ)")
      ->capture_default_str()->check(CLI::Range(0, 1 << 24));
  app.add_option("--batch,-b", a.run.batch, "images per trajectory")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--classes", a.classes, "classes drawn for the trajectories (the teacher's), e.g. 0-7")
      ->capture_default_str();
  app.add_option("--cfg", a.run.guidance, "classifier-free guidance w, teacher and student alike")
      ->capture_default_str()->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--eta", a.run.eta, "DDIM eta of the trajectories (1 = DDPM-like)")->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--lr", a.run.lr, "peak learning rate of the LoRA factors (linear decay to 0); scale-aware: the "
                                   "mean over layers")
      ->capture_default_str()->check(kPositive);
  app.add_option("--act-lr", a.act_lr, "learning rate of the activation step sizes (trained as multipliers of their calibrated values) and zero points (in code units)")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--scale-lr", a.edm.scale_lr, "learning rate of the learned weight scales as a fraction of --lr "
                                               "(trained as multipliers of their initial values)")
      ->capture_default_str()->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--weight-decay", a.run.weight_decay, "AdamW weight decay of the LoRA factors")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  app.add_flag("--no-scale-aware-lr", a.no_scale_aware_lr, "one learning rate for every layer (ablation)");
  app.add_flag("--one-act-scale", a.one_act_scale, "one activation scale for all steps instead of one per step "
                                                   "(ablation: no TALSQ)");
  app.add_option("--calib", a.run.calib, "images whose trajectories calibrate the activation ranges")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--objective", a.objective, "distill: the teacher's noise on its trajectories (data-free); real: "
                                             "the DDPM loss on real training images (ablation)")
      ->capture_default_str()->check(CLI::IsMember({"distill", "real"}));
  app.add_flag("--qat", a.edm.qat, "train every block weight behind its fake quantizer (QAT baseline) instead of "
                                   "QALoRA; usually with --objective real");
  app.add_option("--data", a.data, "Fashion-MNIST IDX directory, read by --objective real only")
      ->capture_default_str();
  app.add_option("--save-every", a.save_every, "also write the deployed model every N iterations, to "
                                               "<out>.iter<K>.gguf (for time-to-quality curves)")
      ->capture_default_str()->check(CLI::Range(0, 1 << 24));
  app.add_option("--seed", a.run.seed, "seed of classes, noise and adapters")->capture_default_str();
  app.add_flag("--quiet,-q", a.quiet, "no progress bars");
  app.add_option("--threads", a.threads, "worker threads (0 = all cores)")->capture_default_str()
      ->check(CLI::Range(0, 1024));
  add_report_flag(app, a.report);
}

}  // namespace

int cmd_distill(int argc, char** argv) {
  CLI::App app{"EfficientDM: quantize a float DiT (QALoRA weights, per-step activation quantizers) and fine-tune it "
               "data-free by distilling the float teacher along its DDIM trajectories; writes the deployed integer "
               "model.",
               "qtune distill"};
  DistillArgs a;
  add_flags(app, a);
  QT_PARSE(app, argc, argv);
  std::vector<NamedPath> outs{{"--out", a.out}};
  if (!a.report.empty()) outs.push_back({"--report", a.report});
  check_paths({{"--teacher", a.teacher}}, outs);
  use_threads(a.threads);

  DitFile tf = load_dit(a.teacher);
  QT_CHECK(tf.quantized.empty() && tf.act.bits == 0 && tf.act.tables.empty(),
           "{}: the teacher must be a float DiT (this one is deployed with integer weights or activations)",
           a.teacher);
  a.run.classes = parse_class_list(a.classes, tf.config.num_classes);
  a.run.real = a.objective == "real";
  a.run.progress = !a.quiet;
  a.edm.steps = a.one_act_scale ? 1 : a.run.steps;
  a.edm.stride = a.one_act_scale ? 1000 : std::max(1, 1000 / a.run.steps);
  a.edm.act_lr = a.act_lr / a.run.lr;

  ImageSet train;
  if (a.run.real) {
    check_dataset_dir(a.data);
    train = load_fashion_mnist(a.data, "train", a.run.classes);
    QT_CHECK(train.size() > 0, "--classes {}: no training images in {}", a.classes, a.data);
    const int64_t n = int64_t(train.rows) * train.cols;
    QT_CHECK(n == tf.config.image_numel(), "{}: the DiT takes {} pixels per image, the dataset has {}", a.teacher,
             tf.config.image_numel(), n);
    a.run.real_images = [&train, n](int B, Rng& rng, std::vector<float>& x0, std::vector<int>& y) {
      x0.resize(size_t(B) * n);
      y.resize(size_t(B));
      for (int b = 0; b < B; ++b) {
        const int64_t i = int64_t(rng.next_u64() % uint64_t(train.size()));
        std::copy(train.pixels.begin() + i * n, train.pixels.begin() + (i + 1) * n, x0.begin() + b * n);
        y[b] = train.labels[i];
      }
    };
  }

  MethodOptions frozen;
  frozen.frozen = true;
  Dit<float> teacher(tf, frozen, 0);
  auto scales = std::make_shared<std::map<std::string, double>>();
  Dit<float> student(tf, efficientdm_method(a.edm), a.run.seed, false, efficientdm_slots<float>(a.edm, scales));
  std::vector<Param<float>> params = student.trainable();
  std::pair<double, double> lr_range{1, 1};
  if (!a.no_scale_aware_lr && !a.edm.qat) lr_range = apply_scale_aware_lr(params, *scales);
  int64_t n_train = 0;
  for (const auto& p : params) n_train += p.numel;
  std::fprintf(stderr,
               "distill: W%dA%d (first/last layers W%dA%d), %s, %d-step activation tables; %lld trainable values; "
               "LoRA lr x%.3g..%.3g\n",
               a.edm.bits, a.edm.act_bits, a.edm.edge_bits, a.edm.edge_bits,
               a.edm.qat ? "QAT" : fmt::format("QALoRA rank {}", a.edm.rank).c_str(), a.edm.steps,
               static_cast<long long>(n_train), lr_range.first, lr_range.second);

  const auto c0 = std::chrono::steady_clock::now();
  const int slots = calibrate_student(teacher, student, a.run);
  const double calib_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
  std::fprintf(stderr, "calibrated %d activation quantizers on %d images' trajectories in %.1f s\n", slots,
               a.run.calib, calib_s);
  std::vector<std::string> saved;
  if (a.save_every > 0)
    a.run.after_iter = [&](int done) {
      if (done % a.save_every != 0 || done == a.run.iters) return;
      const std::string p = fmt::format("{}.iter{}.gguf", a.out, done);
      save_dit(p, student.merged());
      saved.push_back(p);
    };
  DistillResult r = distill(teacher, student, params, a.run);
  save_dit(a.out, student.merged());

  nlohmann::json j{{"command", "distill"},
                   {"teacher", a.teacher},
                   {"out", a.out},
                   {"objective", a.objective},
                   {"method", a.edm.qat ? "qat" : "qalora"},
                   {"bits", a.edm.bits},
                   {"act_bits", a.edm.act_bits},
                   {"edge_bits", a.edm.edge_bits},
                   {"rank", a.edm.qat ? 0 : a.edm.rank},
                   {"steps", a.run.steps},
                   {"act_table_steps", a.edm.steps},
                   {"iters", a.run.iters},
                   {"batch", a.run.batch},
                   {"classes", a.run.classes},
                   {"cfg", a.run.guidance},
                   {"eta", a.run.eta},
                   {"lr", a.run.lr},
                   {"act_lr", a.act_lr},
                   {"scale_lr", a.edm.scale_lr},
                   {"weight_decay", a.run.weight_decay},
                   {"scale_aware_lr", !a.no_scale_aware_lr && !a.edm.qat},
                   {"calib_images", a.run.calib},
                   {"seed", a.run.seed},
                   {"trainable", n_train},
                   {"quantized_slots", slots},
                   {"optimizer_steps", r.optimizer_steps},
                   {"calib_seconds", calib_s},
                   {"train_seconds", r.train_seconds},
                   {"iter_loss", r.iter_loss},
                   {"iter_seconds", r.iter_seconds},
                   {"saved", saved}};
  write_report(a.report, j);
  std::printf("%s: %lld optimizer steps in %.1f s (+ %.1f s calibration)%s\n", a.out.c_str(),
              static_cast<long long>(r.optimizer_steps), r.train_seconds, calib_s,
              r.iter_loss.empty() ? "" : fmt::format(", last loss {:.5f}", r.iter_loss.back()).c_str());
  return 0;
}

}  // namespace qtune::cli
