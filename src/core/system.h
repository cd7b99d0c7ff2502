// core/system.h — threads, memory and time.
#pragma once
#include <cstdint>
#include <string>

namespace qtune {

void set_num_threads(int n);  // OpenMP only (kernels::set_num_threads also sets BLAS); n <= 0: all cores
int num_threads();
int64_t peak_rss_bytes();  // VmHWM of this process
double now_seconds();      // monotonic
std::string human_bytes(int64_t b);
std::string human_seconds(double s);

}  // namespace qtune
