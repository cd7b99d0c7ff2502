// qtune dit-train — train a class-conditional DiT (models/dit.h) on Fashion-MNIST: pretraining
// a fresh model (--init-config, --method full) or fine-tuning one (--model) with any --method.
//
// Images reach the generic trainer as cli/dit_batches.h encodes them: a resume is bit-exact and
// the held-out loss is the same fixed (t, ε) for every run.
//
// Output (--out): full → the trained DiT GGUF; adapter methods → the adapter file, as finetune.
// Under `mpirun -np N` it trains data-parallel as finetune does (train/trainer.h): --batch is per
// rank, the global batch of N·batch images is the one-process run's, rank 0 alone writes.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/adapter_file.h"
#include "cli/commands.h"
#include "cli/dit_batches.h"
#include "cli/dit_common.h"
#include "cli/common.h"
#include "core/dist.h"
#include "cli/flags.h"
#include "core/error.h"
#include "core/file.h"
#include "core/hash.h"
#include "io/dit_file.h"
#include "io/idx.h"
#include "models/diffusion.h"
#include "models/dit.h"
#include "train/trainer.h"

namespace qtune::cli {

namespace {

struct DitTrainArgs {
  std::string model, init_config;
  DitConfig init;  // --init-config parsed
  std::string data = kFashionMnistDir;
  std::string classes = "0-9";
  int batch = 16;
  int val_images = 256;
  float cfg_dropout = 0.1f;
  std::string class_embedding = "train";
  MethodOptions method;
  MethodFlags method_flags;
  TrainOptions train;
  std::string schedule = "cosine";
  std::string out, report;
};

void add_flags(CLI::App& app, DitTrainArgs& a) {
  app.add_option("--model,-m", a.model, "a DiT GGUF to fine-tune");
  app.add_option("--init-config", a.init_config,
                 "pretrain a fresh DiT instead (--method full), e.g. patch=4,dim=64,depth=4,heads=4 "
                 "(also mlp_ratio, freq_dim; image 28×28, 1 channel, 10 classes)");
  app.add_option("--data", a.data, "directory of the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--classes", a.classes, "the classes trained on, e.g. 0-7 or 8,9")->capture_default_str();
  app.add_option("--batch,-b", a.batch, "images per micro-batch")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  app.add_option("--val-images", a.val_images,
                 "held-out images: the first N test (t10k) images of --classes, in file order")
      ->capture_default_str()->check(kPositive);
  app.add_option("--cfg-dropout", a.cfg_dropout, "probability a training image's class becomes the null class")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--class-embedding", a.class_embedding,
                 "adapter methods: train the float class embedding (K+1 rows of dim; how the frozen base learns "
                 "new classes apart; in the adapter and the merged model) or keep it frozen")
      ->capture_default_str()->check(CLI::IsMember({"train", "frozen"}));
  a.method_flags = add_method_flags(app, a.method);
  add_train_flags(app, a.train, a.schedule);
  app.add_option("--out,-o", a.out, "output: the DiT GGUF (full) or the adapter file")->required();
  add_report_flag(app, a.report);
}

// "patch=4,dim=64,depth=4,heads=4" over the defaults of DitConfig.
DitConfig parse_dit_spec(const std::string& spec) {
  DitConfig c;
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t end = std::min(spec.find(',', pos), spec.size());
    const std::string kv = spec.substr(pos, end - pos);
    const size_t eq = kv.find('=');
    QT_CHECK(eq != std::string::npos, "--init-config: '{}' is not key=value", kv);
    const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    int x = 0;
    try {
      size_t used = 0;
      x = std::stoi(v, &used);
      QT_CHECK(used == v.size() && x > 0, "--init-config: {} must be a positive integer, got '{}'", k, v);
    } catch (const std::logic_error&) {
      fail("--init-config: {} must be a positive integer, got '{}'", k, v);
    }
    if (k == "patch") c.patch = x;
    else if (k == "dim") c.dim = x;
    else if (k == "depth") c.depth = x;
    else if (k == "heads") c.heads = x;
    else if (k == "mlp_ratio") c.mlp_ratio = x;
    else if (k == "freq_dim") c.freq_dim = x;
    else fail("--init-config: unknown key '{}' (patch, dim, depth, heads, mlp_ratio, freq_dim)", k);
    pos = end + 1;
  }
  validate(c);
  return c;
}

void finish_options(const CLI::App& app, DitTrainArgs& a) {
  QT_CHECK(a.model.empty() != a.init_config.empty(), "give exactly one of --model and --init-config");
  if (!a.init_config.empty()) {
    QT_CHECK(a.method.method == "full", "--init-config pretrains all weights: use --method full, not '{}'",
             a.method.method);
    a.init = parse_dit_spec(a.init_config);
  }
  QT_CHECK(a.method.method != "full" || app.get_option("--class-embedding")->count() == 0,
           "--class-embedding is for the adapter methods (--method full trains every weight)");
  QT_CHECK(!a.method.recompute, "--recompute (activation checkpointing) is implemented for the LLaMA models of "
           "finetune, not for dit-train");
  finish_method_and_train(app, a.method_flags, a.method, a.train, a.schedule);
  a.train.batch = a.batch;
  a.train.seq = 1;  // one image per "token" (see the top of the file)
  if (a.train.checkpoint.empty()) a.train.checkpoint = a.out + ".ckpt.gguf";
  std::vector<NamedPath> in;
  if (!a.model.empty()) in.push_back({"--model", a.model});
  if (!a.train.resume.empty()) in.push_back({"--resume", a.train.resume});
  std::vector<NamedPath> out = {{"--out", a.out}, {"--checkpoint", a.train.checkpoint}};
  if (!a.report.empty()) out.push_back({"--report", a.report});
  check_paths(in, out, {{"--checkpoint", "--resume"}});
}

uint64_t images_fingerprint(const ImageSet& s, uint64_t h) {
  h = fingerprint(s.pixels.data(), s.pixels.size() * sizeof(float), h);
  return fingerprint(s.labels.data(), s.labels.size() * sizeof(int), h);
}

TensorMap to_map(const std::vector<Param<float>>& ps, bool skip_weights) {
  TensorMap out;
  for (const auto& p : ps) {
    if (skip_weights && p.name.ends_with(".weight") && p.name != "y_embd.weight") continue;  // slot weights
    Tensor t(p.shape);
    std::memcpy(t.ptr(), p.value, p.numel * sizeof(float));
    out.emplace(p.name, std::move(t));
  }
  return out;
}

nlohmann::json report_json(const DitTrainArgs& a, const std::vector<int>& classes, const ImageSet& train,
                           const ImageSet& held, const TrainResult& r) {
  nlohmann::json loss = nlohmann::json::array(), val = nlohmann::json::array();
  for (const auto& p : r.loss_curve) loss.push_back({{"step", p.step}, {"loss", p.loss}, {"lr", p.lr}});
  for (const auto& p : r.val_curve) val.push_back({{"step", p.step}, {"loss", p.loss}, {"images", p.windows}});
  return {{"command", "dit-train"},
          {"model", a.init_config.empty() ? a.model : "init:" + a.init_config},
          {"data", a.data},
          {"classes", classes},
          {"out", a.out},
          {"method", options_json(a.method)},
          {"steps", a.train.steps},
          {"batch", a.train.batch},
          {"lr", a.train.lr},
          {"seed", a.train.seed},
          {"cfg_dropout", a.cfg_dropout},
          {"class_embedding", a.method.method == "full" ? "train" : a.class_embedding},
          {"train_images", train.size()},
          {"heldout", heldout_json(held, a.classes)},
          {"val_loss", r.final_val_loss ? nlohmann::json(*r.final_val_loss) : nlohmann::json()},
          {"loss_curve", loss},
          {"val_curve", val},
          {"images_per_second", r.tokens_per_second},  // the job's: over every rank
          {"ranks", r.ranks},
          {"global_batch", a.train.batch * r.ranks},
          {"allreduce_seconds", r.allreduce_seconds},
          {"allreduce_share", r.train_seconds > 0 ? r.allreduce_seconds / r.train_seconds : 0.0},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"trainable_params", r.trainable_params},
          {"wall_seconds", r.wall_seconds},
          {"resumed_from_step", r.first_step - 1}};
}

}  // namespace

int cmd_dit_train(int argc, char** argv) {
  CLI::App app{"Train a class-conditional DiT on Fashion-MNIST: pretrain (--init-config, --method full) or "
               "fine-tune a DiT GGUF (--model) with any --method.",
               "qtune dit-train"};
  DitTrainArgs a;
  add_flags(app, a);
  QT_PARSE(app, argc, argv);
  finish_options(app, a);
  // int8 calibration reduces a max over ranks inside each forward, and a rank whose held-out
  // shard is only padding runs no forward (cli/dit_batches.h): the collectives would not match.
  // its conditioning products run all images' rows in one call: no per-image exactness to offer
  QT_CHECK(!a.method.exact_sums, "dit-train: --exact-sums is an option of finetune (the DiT's conditioning products "
           "take all of a batch's images at once)");
  QT_CHECK(dist::size() == 1 || a.method.act_bits != 8,
           "dit-train --act-bits 8 runs in one process, not on {} MPI ranks", dist::size());

  const std::vector<int> classes = parse_class_list(a.classes, 10);
  check_dataset_dir(a.data);
  const ImageSet train_set = load_fashion_mnist(a.data, "train", classes);
  const ImageSet held = first_images(load_fashion_mnist(a.data, "t10k", classes), a.val_images);
  QT_CHECK(train_set.size() > 0 && held.size() > 0, "--classes {}: no images in {}", a.classes, a.data);

  DitFile f;
  if (a.init_config.empty()) {
    f = load_dit(a.model);
    MappedFile mf(a.model);
    a.train.model_fingerprint = fingerprint_hex(fingerprint(mf.data(), mf.size()));
  } else {
    f = dit_init(a.init, a.train.seed);
    a.train.model_fingerprint = fingerprint_hex(fingerprint(a.init_config.data(), a.init_config.size()));
  }
  QT_CHECK(f.config.image == train_set.rows && f.config.image == train_set.cols && f.config.channels == 1,
           "{}: the DiT takes {}×{}×{} images, Fashion-MNIST's are 28×28×1", a.model, f.config.channels,
           f.config.image, f.config.image);
  QT_CHECK(f.config.num_classes == 10, "{}: the DiT has {} classes, Fashion-MNIST 10", a.model,
           f.config.num_classes);
  a.train.data_fingerprint = fingerprint_hex(images_fingerprint(held, images_fingerprint(train_set, 0x9e3779b97f4a7c15ULL)));

  Dit<float> dit(f, a.method, a.train.seed, a.method.method != "full" && a.class_embedding == "train");
  DitTrainModel model(dit, train_set, held, a.cfg_dropout);
  ImageSource source(train_set.size());
  HeldOut val(held.size());
  const TrainResult r = train(model, source, &val, a.train);
  if (!dist::is_root()) return 0;  // every rank holds the same model: rank 0 writes and reports

  if (a.method.method == "full")
    save_dit(a.out, dit.merged());
  else
    write_trained_adapter(a.out, to_map(dit.trainable(), true), to_map(dit.state(), false), a.method, a.train.seed,
                          {std::filesystem::path(a.model).filename().string(), a.train.model_fingerprint}, "dit");
  write_report(a.report, report_json(a, classes, train_set, held, r));
  if (r.first_step > 1)
    std::printf("resumed from step %lld of %s\n", static_cast<long long>(r.first_step - 1), a.train.resume.c_str());
  std::printf("final loss %.4f  held-out loss %.4f (%lld images)  %lld trainable params  → %s\n",
              r.loss_curve.empty() ? 0.0 : r.loss_curve.back().loss, r.final_val_loss.value_or(0.0),
              static_cast<long long>(held.size()), static_cast<long long>(r.trainable_params), a.out.c_str());
  return 0;
}

}  // namespace qtune::cli
