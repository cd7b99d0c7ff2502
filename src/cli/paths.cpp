#include "cli/paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/file.h"

namespace qtune::cli {

namespace {

std::string folder_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The absolute path of a file that may not exist yet (its folder must).
std::string absolute(const std::string& path) {
  char buf[PATH_MAX];
  const std::string folder = folder_of(path);
  if (!::realpath(folder.c_str(), buf)) return path;
  const size_t slash = path.rfind('/');
  return std::string(buf) + "/" + (slash == std::string::npos ? path : path.substr(slash + 1));
}

struct Checked {
  NamedPath p;
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string abs;
};

Checked check_input(const NamedPath& in) {
  Checked c{in};
  struct stat st {};
  QT_CHECK(::stat(in.path.c_str(), &st) == 0, "{} {}: {}", in.flag, in.path,
           errno == ENOENT ? "no such file" : std::strerror(errno));
  QT_CHECK(S_ISREG(st.st_mode), "{} {}: not a regular file ({})", in.flag, in.path, file_kind(st.st_mode));
  c.exists = true, c.dev = st.st_dev, c.ino = st.st_ino, c.abs = absolute(in.path);
  return c;
}

Checked check_output(const NamedPath& out) {
  QT_CHECK(!out.path.empty(), "{} is an empty path", out.flag);
  Checked c{out};
  struct stat st {};
  if (::stat(out.path.c_str(), &st) == 0) {
    QT_CHECK(S_ISREG(st.st_mode), "{} {}: cannot write: it is {}, not a regular file", out.flag, out.path,
             file_kind(st.st_mode));
    c.exists = true, c.dev = st.st_dev, c.ino = st.st_ino;
  }
  const std::string folder = folder_of(out.path);
  struct stat fs {};
  QT_CHECK(::stat(folder.c_str(), &fs) == 0, "{} {}: cannot write: directory '{}' does not exist", out.flag,
           out.path, folder);
  QT_CHECK(S_ISDIR(fs.st_mode), "{} {}: cannot write: '{}' is not a directory", out.flag, out.path, folder);
  QT_CHECK(::access(folder.c_str(), W_OK) == 0, "{} {}: cannot write: directory '{}' is not writable", out.flag,
           out.path, folder);
  c.abs = absolute(out.path);
  return c;
}

bool same_file(const Checked& a, const Checked& b) {
  if (a.exists && b.exists) return a.dev == b.dev && a.ino == b.ino;
  return a.abs == b.abs;
}

bool allowed(const std::vector<std::pair<std::string, std::string>>& may_equal, const std::string& a,
             const std::string& b) {
  for (const auto& [x, y] : may_equal)
    if ((x == a && y == b) || (x == b && y == a)) return true;
  return false;
}

}  // namespace

void check_paths(const std::vector<NamedPath>& inputs, const std::vector<NamedPath>& outputs,
                 const std::vector<std::pair<std::string, std::string>>& may_equal) {
  std::vector<Checked> in, out;
  for (const auto& p : inputs) in.push_back(check_input(p));
  for (const auto& p : outputs) out.push_back(check_output(p));
  for (size_t i = 0; i < out.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      QT_CHECK(!same_file(out[i], out[j]) || allowed(may_equal, out[i].p.flag, out[j].p.flag),
               "{} and {} are the same file ({}): give them different names", out[j].p.flag, out[i].p.flag,
               out[i].p.path);
    for (const auto& x : in)
      QT_CHECK(!same_file(out[i], x) || allowed(may_equal, out[i].p.flag, x.p.flag),
               "{} {} is the same file as {}: refusing to overwrite an input", out[i].p.flag, out[i].p.path,
               x.p.flag);
  }
}

}  // namespace qtune::cli
