#include "io/projections.h"

#include <fmt/format.h>

namespace qtune {

int projection_index(std::string_view target) {
  for (int i = 0; i < kNumProjections; ++i)
    if (target == kProjections[i].target) return i;
  return -1;
}

int projection_of(std::string_view name) {
  if (name.ends_with(".weight")) name.remove_suffix(7);
  if (!name.starts_with("blk.")) return -1;
  const size_t dot = name.find('.', 4);
  if (dot == std::string_view::npos || dot == 4) return -1;
  for (size_t i = 4; i < dot; ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  const std::string_view stem = name.substr(dot + 1);
  for (int i = 0; i < kNumProjections; ++i)
    if (stem == kProjections[i].gguf) return i;
  return -1;
}

std::string projection_stem(int layer, int i) { return fmt::format("blk.{}.{}", layer, kProjections[i].gguf); }

bool is_projection_name(std::string_view name) { return name.ends_with(".weight") && projection_of(name) >= 0; }

std::string target_of(std::string_view name) {
  const int i = projection_of(name);
  return i < 0 ? std::string() : kProjections[i].target;
}

std::vector<std::string> projection_targets() {
  std::vector<std::string> v;
  for (const auto& p : kProjections) v.emplace_back(p.target);
  return v;
}

}  // namespace qtune
