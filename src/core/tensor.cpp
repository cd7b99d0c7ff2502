#include "core/tensor.h"

namespace qtune {

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace qtune
