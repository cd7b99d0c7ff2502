// cli/commands.h — one function per subcommand, each in its own file (cmd_<name>.cpp).
// argv[0] is the command name. Return the exit code; throw qtune::Error for bad input.
#pragma once

namespace qtune::cli {

int cmd_info(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_finetune(int argc, char** argv);
int cmd_dit_train(int argc, char** argv);
int cmd_dit_eval(int argc, char** argv);
int cmd_distill(int argc, char** argv);
int cmd_sample(int argc, char** argv);
int cmd_classifier_train(int argc, char** argv);
int cmd_fid(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_merge(int argc, char** argv);
int cmd_export_lora(int argc, char** argv);
int cmd_init(int argc, char** argv);

}  // namespace qtune::cli
