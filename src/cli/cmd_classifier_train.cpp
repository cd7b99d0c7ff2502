// qtune classifier-train — train the Fashion-MNIST classifier whose features `qtune fid` uses
// (models/classifier.h: MLP 784 → 256 → 128 → 10, GELU), with AdamW through the generic trainer
// (train/trainer.h), on all 60k training images; then score it on the 10k test (t10k) images.
//
// As in dit-train, a batch is one "token" per image (seq 1): tokens[b] is a training image index
// drawn uniformly (with replacement) from the trainer's Rng, targets[b] its label.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/dit_common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "io/classifier_file.h"
#include "io/idx.h"
#include "models/classifier.h"
#include "train/trainer.h"

namespace qtune::cli {

namespace {

struct ClassifierTrainArgs {
  std::string data = kFashionMnistDir;
  int64_t steps = 4000;
  int batch = 128;
  float lr = 2e-3f;
  float weight_decay = 1e-4f;
  uint64_t seed = 1;
  int threads = 0;
  int64_t train_images = 0;  // 0 = all
  bool quiet = false;
  std::string out, report;
};

class ClassifierTrainModel : public TrainModel {
 public:
  ClassifierTrainModel(MlpClassifier<float>& m, const ImageSet& s) : m_(m), s_(s) {}
  float forward(const int* tokens, const int* targets, int B, int T) override {
    QT_CHECK(T == 1, "classifier-train: one image per row");
    const int64_t n = s_.rows * s_.cols;
    x_.resize(size_t(B) * n);
    for (int b = 0; b < B; ++b)
      std::copy(s_.pixels.begin() + tokens[b] * n, s_.pixels.begin() + (tokens[b] + 1) * n, x_.begin() + b * n);
    return float(m_.forward(x_.data(), targets, B));
  }
  void backward() override { m_.backward(); }
  void zero_grad() override { m_.zero_grad(); }
  std::vector<Param<float>> trainable() override { return m_.trainable(); }

 private:
  MlpClassifier<float>& m_;
  const ImageSet& s_;
  std::vector<float> x_;
};

class LabelledImages : public BatchSource {
 public:
  explicit LabelledImages(const ImageSet& s) : s_(s) {}
  void next(int B, int T, int* tokens, int* targets, Rng& rng) override {
    for (int b = 0; b < B * T; ++b) {
      tokens[b] = int(rng.below(uint64_t(s_.size())));
      targets[b] = s_.labels[tokens[b]];
    }
  }
  std::vector<uint64_t> state() const override { return {uint64_t(s_.size())}; }
  void set_state(const std::vector<uint64_t>& st) override {
    QT_CHECK(st.size() == 1 && st[0] == uint64_t(s_.size()), "the checkpoint was trained on another image set");
  }

 private:
  const ImageSet& s_;
};

}  // namespace

int cmd_classifier_train(int argc, char** argv) {
  CLI::App app{"Train the Fashion-MNIST classifier (MLP 784→256→128→10, GELU) that `qtune fid` takes its features "
               "and labels from; reports its test accuracy.",
               "qtune classifier-train"};
  ClassifierTrainArgs a;
  app.add_option("--data", a.data, "directory of the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--steps", a.steps, "AdamW updates")->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  app.add_option("--batch,-b", a.batch, "images per update")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  app.add_option("--lr", a.lr, "peak learning rate (cosine decay to 0)")->capture_default_str()->check(kPositive);
  app.add_option("--weight-decay", a.weight_decay, "AdamW decoupled weight decay (weights, not biases)")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_option("--seed", a.seed, "seed for the initial weights and the batch order")->capture_default_str();
  app.add_option("--train-images", a.train_images, "train on the first N training images only (0 = all 60k)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  add_threads_flag(app, a.threads);
  app.add_flag("--quiet,-q", a.quiet, "no progress bar");
  app.add_option("--out,-o", a.out, "output: the classifier GGUF (general.architecture = fmnist-classifier)")
      ->required();
  add_report_flag(app, a.report);
  QT_PARSE(app, argc, argv);
  std::vector<NamedPath> out = {{"--out", a.out}};
  if (!a.report.empty()) out.push_back({"--report", a.report});
  check_paths({}, out);
  check_dataset_dir(a.data);

  ImageSet train_set = load_fashion_mnist(a.data, "train");
  const ImageSet test_set = load_fashion_mnist(a.data, "t10k");
  if (a.train_images > 0 && a.train_images < train_set.size()) {
    train_set.labels.resize(a.train_images);
    train_set.pixels.resize(size_t(a.train_images) * train_set.rows * train_set.cols);
  }
  QT_CHECK(train_set.size() > 0 && test_set.size() > 0, "{}: no images", a.data);
  ClassifierConfig cfg;
  QT_CHECK(train_set.rows == cfg.image && train_set.cols == cfg.image, "{}: images are {}×{}, expected {}×{}", a.data,
           train_set.rows, train_set.cols, cfg.image, cfg.image);

  MlpClassifier<float> model(cfg, a.seed);
  TrainOptions t;
  t.steps = a.steps;
  t.lr = a.lr;
  t.schedule = ScheduleKind::cosine;
  t.batch = a.batch;
  t.seq = 1;
  t.clip = 0.0f;  // no clipping
  t.weight_decay = a.weight_decay;
  t.seed = a.seed;
  t.threads = a.threads;
  t.progress = !a.quiet;
  t.method.method = "full";
  ClassifierTrainModel tm(model, train_set);
  LabelledImages source(train_set);
  const TrainResult r = train(tm, source, nullptr, t);

  use_threads(a.threads);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int> pred(test_set.size());
  classifier_features(model, test_set.pixels.data(), test_set.size(), nullptr, pred.data());
  const double eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int K = cfg.num_classes;
  std::vector<int64_t> right(K, 0), total(K, 0);
  int64_t correct = 0;
  for (int64_t i = 0; i < test_set.size(); ++i) {
    const int y = test_set.labels[i];
    ++total[y];
    if (pred[i] == y) ++right[y], ++correct;
  }
  const double acc = double(correct) / double(test_set.size());

  ClassifierFile f = model.to_file();
  f.test_accuracy = float(acc);
  f.train_steps = a.steps;
  save_classifier(a.out, f);

  nlohmann::json per_class = nlohmann::json::array();
  for (int k = 0; k < K; ++k)
    per_class.push_back({{"class", k},
                         {"name", fashion_mnist_class_names()[k]},
                         {"images", total[k]},
                         {"accuracy", total[k] ? double(right[k]) / double(total[k]) : 0.0}});
  nlohmann::json loss = nlohmann::json::array();
  for (const auto& p : r.loss_curve)
    if (p.step % 50 == 0 || p.step == 1 || p.step == a.steps) loss.push_back({{"step", p.step}, {"loss", p.loss}, {"lr", p.lr}});
  write_report(a.report,
               {{"command", "classifier-train"},
                {"data", a.data},
                {"out", a.out},
                {"architecture",
                 fmt::format("MLP {}→{}→{}→{}, GELU (tanh), cross-entropy", cfg.input(), cfg.hidden1, cfg.hidden2,
                             cfg.num_classes)},
                {"parameters", model.num_params()},
                {"optimizer", "AdamW, betas (0.9, 0.999), eps 1e-8, cosine decay to 0, no warmup, no clipping"},
                {"steps", a.steps},
                {"batch", a.batch},
                {"lr", a.lr},
                {"weight_decay", a.weight_decay},
                {"seed", a.seed},
                {"threads", a.threads},
                {"train_images", train_set.size()},
                {"test_images", test_set.size()},
                {"test_accuracy", acc},
                {"per_class", per_class},
                {"final_train_loss", r.loss_curve.empty() ? 0.0 : r.loss_curve.back().loss},
                {"loss_curve", loss},
                {"train_seconds", r.wall_seconds},
                {"eval_seconds", eval_seconds}});
  std::printf("test accuracy %.2f%% (%lld t10k images), %lld steps × %d images in %.1f s → %s\n", 100.0 * acc,
              static_cast<long long>(test_set.size()), static_cast<long long>(a.steps), a.batch, r.wall_seconds,
              a.out.c_str());
  return 0;
}

}  // namespace qtune::cli
