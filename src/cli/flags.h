// cli/flags.h — CLI11 glue: parse errors become exit code 2 with one "error:" line;
// --help prints and exits 0.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdio>

#define QT_PARSE(app, argc, argv)                                   \
  do {                                                              \
    try {                                                           \
      (app).parse((argc), (argv));                                  \
    } catch (const CLI::CallForHelp&) {                             \
      std::fputs((app).help().c_str(), stdout);                     \
      return 0;                                                     \
    } catch (const CLI::ParseError& e) {                            \
      std::fprintf(stderr, "error: %s (see --help)\n", e.what());   \
      return 2;                                                     \
    }                                                               \
  } while (0)
