#include "core/dist.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "core/error.h"

#ifdef QTUNE_HAVE_MPI
#include <mpi.h>
#endif

namespace qtune::dist {

namespace {

bool g_active = false;
int g_rank = 0, g_size = 1;

// Launched by an MPI launcher: Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE, PMIx-based launchers
// (Open MPI 4+, srun --mpi=pmix) PMIX_RANK.
bool launched_by_mpirun() { return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK"); }

#ifdef QTUNE_HAVE_MPI
// Elements per rank and collective: MPI counts are int, and bounded blocks keep the buffers small.
constexpr int64_t kChunk = int64_t{1} << 20;

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

template <class T>
void bcast_impl(T* v, int64_t n) {
  for (int64_t off = 0; off < n; off += kChunk)
    MPI_Bcast(v + off, static_cast<int>(std::min(kChunk, n - off)), mpi_type<T>(), 0, MPI_COMM_WORLD);
}

// A deterministic all-reduce: rank j owns slice j of each block (an all-to-all brings it every
// rank's copy), adds them in rank order in double and rounds once; an all-gather returns the sums.
// Every element is summed once, in one order, so every rank gets the same bits whatever the MPI
// library's algorithms; each rank sends and receives 2(N−1)/N of the buffer, as a ring would.
template <class T>
void sum_impl(T* v, int64_t n) {
  const int64_t N = g_size, k = std::min(kChunk, (n + N - 1) / N);  // per-rank slice of a block
  std::vector<T> send(static_cast<size_t>(N * k)), recv(send.size()), mine(static_cast<size_t>(k));
  for (int64_t off = 0; off < n; off += N * k) {
    const int64_t m = std::min(N * k, n - off);
    std::copy(v + off, v + off + m, send.begin());
    std::fill(send.begin() + m, send.end(), T(0));  // the last block's padding
    MPI_Alltoall(send.data(), static_cast<int>(k), mpi_type<T>(), recv.data(), static_cast<int>(k), mpi_type<T>(),
                 MPI_COMM_WORLD);
    for (int64_t i = 0; i < k; ++i) {
      double s = static_cast<double>(recv[static_cast<size_t>(i)]);
      for (int64_t r = 1; r < N; ++r) s += static_cast<double>(recv[static_cast<size_t>(r * k + i)]);
      mine[static_cast<size_t>(i)] = static_cast<T>(s);
    }
    MPI_Allgather(mine.data(), static_cast<int>(k), mpi_type<T>(), send.data(), static_cast<int>(k), mpi_type<T>(),
                  MPI_COMM_WORLD);
    std::copy(send.begin(), send.begin() + m, v + off);
  }
}

void extreme_impl(float* v, int64_t n, MPI_Op op) {
  for (int64_t off = 0; off < n; off += kChunk)
    MPI_Allreduce(MPI_IN_PLACE, v + off, static_cast<int>(std::min(kChunk, n - off)), MPI_FLOAT, op,
                  MPI_COMM_WORLD);
}
#endif

}  // namespace

void init(int* argc, char*** argv) {
  if (!launched_by_mpirun()) return;
#ifdef QTUNE_HAVE_MPI
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  g_active = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  // Errors of a collective (a peer died) end the job instead of returning codes we would ignore.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
#else
  const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (n && std::atoi(n) > 1)
    throw Error("this qtune was built without MPI and cannot run as one of several ranks; rebuild with "
                "libopenmpi-dev installed (CMake finds it) or run without mpirun");
#endif
}

void finalize() {
#ifdef QTUNE_HAVE_MPI
  if (g_active) MPI_Finalize();
#endif
  g_active = false;
}

bool active() { return g_active; }
int rank() { return g_rank; }
int size() { return g_size; }

// On one rank (and in a build without MPI) every collective is the identity.
#ifdef QTUNE_HAVE_MPI
#define ON_SEVERAL_RANKS(call) \
  if (g_size > 1) call
#else
#define ON_SEVERAL_RANKS(call)
#endif

void allreduce_sum(float* v, int64_t n) { ON_SEVERAL_RANKS(sum_impl(v, n)); }
void allreduce_sum(double* v, int64_t n) { ON_SEVERAL_RANKS(sum_impl(v, n)); }
void allreduce_max(float* v, int64_t n) { ON_SEVERAL_RANKS(extreme_impl(v, n, MPI_MAX)); }
void allreduce_min(float* v, int64_t n) { ON_SEVERAL_RANKS(extreme_impl(v, n, MPI_MIN)); }
void bcast(float* v, int64_t n) { ON_SEVERAL_RANKS(bcast_impl(v, n)); }
void bcast(double* v, int64_t n) { ON_SEVERAL_RANKS(bcast_impl(v, n)); }

bool any_flag(int flag) {
#ifdef QTUNE_HAVE_MPI
  if (g_size > 1) MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
  return flag != 0;
}

void barrier() {
#ifdef QTUNE_HAVE_MPI
  if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void abort(int code) {
#ifdef QTUNE_HAVE_MPI
  if (g_active) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

}  // namespace qtune::dist
