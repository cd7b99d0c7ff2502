#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/error.h"

namespace qtune::cli {

int cmd_info(int argc, char** argv) {
  CLI::App app{"Describe a model file: architecture, shapes, parameter count, tensor types.", "qtune info"};
  std::string model;
  app.add_option("model", model, "model file (llama2.c .bin or GGUF)")->required();
  QT_PARSE(app, argc, argv);
  fail("{}: info is not implemented yet", model);
}

}  // namespace qtune::cli
