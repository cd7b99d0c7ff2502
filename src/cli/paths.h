// cli/paths.h — every path a command reads or writes, checked before any work is done, so a
// typo costs nothing: an output that cannot be written is found before a 50-second training
// run, not after it, and no command overwrites one of its own inputs (or writes two outputs to
// one file) — a --report equal to --out would replace the adapter with JSON.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace qtune::cli {

struct NamedPath {
  std::string flag;  // "--out"
  std::string path;
};

// Throws Error (one line naming the flag and the path) when
//  - an input is missing or not a regular file (a folder, a FIFO that would block forever);
//  - an output is "", a directory or another non-regular file, or its directory is missing, not
//    a directory or not writable;
//  - two outputs are the same file, or an output is the same file as an input (same device and
//    inode, or the same absolute path), except the pairs in `may_equal` (e.g. --checkpoint may be
//    the --resume file it replaces).
// Empty optional paths are left out by the caller.
void check_paths(const std::vector<NamedPath>& inputs, const std::vector<NamedPath>& outputs,
                 const std::vector<std::pair<std::string, std::string>>& may_equal = {});

}  // namespace qtune::cli
