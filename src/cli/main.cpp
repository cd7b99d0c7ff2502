// cli/main.cpp — `qtune <command> [flags]`: dispatch, and the one place errors become exit codes.
//
// Exit codes: 0 success, 2 bad input (one line "error: ..." on stderr), 1 internal failure.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <unistd.h>

#include "cli/commands.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/signals.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

const std::vector<Command>& commands() {
  static const std::vector<Command> cmds = {
      {"info", "describe a model file: architecture, shapes, parameter count, tensor types", qtune::cli::cmd_info},
      {"generate", "generate text (or token ids) from a model", qtune::cli::cmd_generate},
      {"eval", "perplexity of a model on a data file", qtune::cli::cmd_eval},
      {"init", "write a randomly initialised model of a given shape (no training), streamed to disk",
       qtune::cli::cmd_init},
      {"finetune", "fine-tune (full, lora, qlora, qalora, intlora-mul, intlora-shift): progress, JSON report, "
                   "checkpoints, resume", qtune::cli::cmd_finetune},
      {"dit-train", "train a diffusion transformer (DiT) on Fashion-MNIST: pretrain or fine-tune with any method",
       qtune::cli::cmd_dit_train},
      {"dit-eval", "the held-out loss of a DiT (float or deployed integer) on Fashion-MNIST test images",
       qtune::cli::cmd_dit_eval},
      {"distill", "EfficientDM: quantize a DiT to W4A4 / W8A8 and fine-tune it data-free from the float model, "
                  "deployed in integers", qtune::cli::cmd_distill},
      {"sample", "generate images with a class-conditional DiT and write them as a PNG grid", qtune::cli::cmd_sample},
      {"classifier-train", "train the Fashion-MNIST classifier that scores generated images (qtune fid)",
       qtune::cli::cmd_classifier_train},
      {"fid", "image quality of a DiT: FID against the test images and conditional accuracy",
       qtune::cli::cmd_fid},
      {"quantize", "post-training quantization to GGUF Q8_0 / Q4_1 / Q4_0", qtune::cli::cmd_quantize},
      {"merge", "merge an adapter into its base model: the integer methods exactly into integers, lora/qlora "
                "into float (or --bits b by PTQ)", qtune::cli::cmd_merge},
      {"export-lora", "a llama.cpp-loadable LoRA adapter GGUF from an adapter or checkpoint", qtune::cli::cmd_export_lora},
  };
  return cmds;
}

void usage(std::FILE* out) {
  std::fprintf(out, "qtune — fine-tune quantized LLaMA-family models on CPU\n\nusage: qtune <command> [options]\n\ncommands:\n");
  for (const auto& c : commands()) std::fprintf(out, "  %-17s %s\n", c.name, c.summary);
  std::fprintf(out, "\nRun `qtune <command> --help` for the options of a command.\n");
}

// OpenMP workers that spin-wait between parallel regions steal the only other core of a small
// machine from the thread doing real work (measured on 2 cores with a second job running:
// eval 12.9 s → 4.3 s). libgomp reads OMP_WAIT_POLICY once, when it is loaded, so we set it
// and re-exec ourselves; a value the user set is respected.
// A passive worker still spins GOMP_SPINCOUNT times before it sleeps: 0 by default, which makes
// every parallel region of token-by-token decoding (a hundred per token) pay a futex wake-up.
// 20000 spins (tens of µs) measured: decode of a stories110M-shaped Q4_0 model 63 → 101 tok/s,
// training tok/s unchanged (2414/2358 vs 2265/2417 at 15M, quiet machine).
void ensure_passive_openmp_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  setenv("GOMP_SPINCOUNT", "20000", 0);  // a value the user set is respected
  execv("/proc/self/exe", argv);  // returns only on failure: then run on with the default policy
}

// An error line. Under several ranks every rank prints its own (a failure may be one rank's
// alone, e.g. a file missing on one host): rank 0's plain, the others' naming their rank.
void print_error(const char* prefix, const char* what) {
  if (qtune::dist::rank() == 0)
    std::fprintf(stderr, "%s: %s\n", prefix, what);
  else
    std::fprintf(stderr, "%s: rank %d: %s\n", prefix, qtune::dist::rank(), what);
}

// The commands a job of several ranks runs data-parallel (the others would run N copies).
bool distributed(const std::string& name) { return name == "finetune" || name == "dit-train"; }

int run(const Command& c, int argc, char** argv) {
  try {
    qtune::dist::init(&argc, &argv);  // only under mpirun (core/dist.h)
    // mpirun ends the job on its own SIGINT but forwards SIGUSR1 to every rank: that one stops
    // the ranks together after a step, with a checkpoint (train/trainer.h)
    if (qtune::dist::size() > 1) qtune::defer_like_sigint(SIGUSR1);
    if (qtune::dist::size() > 1 && !distributed(c.name))
      throw qtune::Error(std::string("qtune ") + c.name + " runs in one process; of the commands, only finetune "
                         "and dit-train run on several MPI ranks (start it without mpirun)");
    const int code = c.run(argc - 1, argv + 1);
    qtune::dist::finalize();
    return code;
  } catch (const qtune::Interrupted& e) {
    print_error("interrupted", e.what());
    return 128 + e.signal;
  } catch (const qtune::Error& e) {
    print_error("error", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    print_error("error", "out of memory");
    return 2;
  } catch (const std::exception& e) {
    print_error("error: internal", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  ensure_passive_openmp_waits(argv);
  qtune::install_signal_handlers();
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(stdout);
    return 0;
  }
  for (const auto& c : commands())
    if (name == c.name) return run(c, argc, argv);
  std::fprintf(stderr, "error: unknown command '%s' (run `qtune --help` for the list)\n", name.c_str());
  return 2;
}
