// core/dist.h across real ranks: run as `mpirun -np 3 dist_check` (ctest: mpi.dist_np3). Every
// rank checks that allreduce_sum gives exactly the rank-order sum in double, rounded once (also
// over a length that is not a multiple of the ranks and spans several blocks), that every rank
// holds the same bits, and max/min, bcast and any_flag. Exit 0 when all hold on every rank.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/dist.h"

namespace {

// A value per (rank, index) whose sums are sensitive to the order (mixed magnitudes).
double value(int rank, int64_t i) { return std::ldexp(1.0 + 0.37 * double((i * 7 + rank * 13) % 101), int((i + rank) % 40) - 20) * ((i + rank) % 3 ? 1 : -1); }

template <class T>
int check_sum(int64_t n) {
  const int R = qtune::dist::rank(), N = qtune::dist::size();
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<T>(value(R, i));
  qtune::dist::allreduce_sum(v.data(), n);
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    double s = static_cast<double>(static_cast<T>(value(0, i)));
    for (int r = 1; r < N; ++r) s += static_cast<double>(static_cast<T>(value(r, i)));
    if (std::memcmp(&v[i], &(const T&)static_cast<T>(s), sizeof(T)) != 0 && bad++ < 3)
      std::fprintf(stderr, "rank %d: sum[%lld] = %.17g, want %.17g\n", R, (long long)i, double(v[i]), s);
  }
  // the same bits on every rank: rank 0's copy against each
  std::vector<T> root = v;
  qtune::dist::bcast(root.data(), n);
  if (std::memcmp(root.data(), v.data(), sizeof(T) * n) != 0) std::fprintf(stderr, "rank %d: differs from rank 0\n", R), ++bad;
  return bad;
}

}  // namespace

int main(int argc, char** argv) {
  qtune::dist::init(&argc, &argv);
  const int R = qtune::dist::rank(), N = qtune::dist::size();
  int bad = 0;
  if (N < 2) std::fprintf(stderr, "dist_check: run it under mpirun with 2 or more ranks\n"), ++bad;
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1000}, (int64_t{1} << 20) * N + 5}) {
    bad += check_sum<float>(n);
    bad += check_sum<double>(n);
  }
  float mx[2] = {float(R), -float(R)};
  qtune::dist::allreduce_max(mx, 2);
  if (mx[0] != float(N - 1) || mx[1] != 0.0f) std::fprintf(stderr, "rank %d: max wrong\n", R), ++bad;
  float mn[2] = {float(R), -float(R)};
  qtune::dist::allreduce_min(mn, 2);
  if (mn[0] != 0.0f || mn[1] != -float(N - 1)) std::fprintf(stderr, "rank %d: min wrong\n", R), ++bad;
  if (!qtune::dist::any_flag(R == N - 1 ? 5 : 0) || qtune::dist::any_flag(0)) std::fprintf(stderr, "rank %d: any_flag wrong\n", R), ++bad;
  const bool all_ok = !qtune::dist::any_flag(bad);
  if (R == 0) std::printf("dist_check: %d ranks: %s\n", N, all_ok ? "ok" : "FAILED");
  qtune::dist::finalize();
  return all_ok ? 0 : 1;
}
