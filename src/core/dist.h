// core/dist.h — data-parallel runs over several processes (MPI ranks), behind one small interface.
//
// MPI is used only when the process was started by an MPI launcher (mpirun sets
// OMPI_COMM_WORLD_SIZE or PMIX_RANK): a plain launch never calls MPI_Init and every function
// here is then the identity (size 1, rank 0, reductions leave the values as they are). A build
// without MPI (QTUNE_HAVE_MPI undefined; CMake did not find it) behaves the same and refuses to run
// under mpirun with more than one rank. The MPI headers stay in dist.cpp.
//
// Threads: MPI_THREAD_FUNNELED — OpenMP threads inside each rank, MPI calls from the main thread
// only. Every collective must be reached by every rank in the same order (the trainer keeps them
// in lockstep: each rank runs the same forwards and backwards on its shard of the same batch).
//
// Determinism: allreduce_sum adds every element in rank order (((v_0 + v_1) + v_2) + ...) in
// double and rounds once — each rank sums one slice of the buffer (an all-to-all brings it every
// rank's copy) and an all-gather shares the sums — so every rank holds the same bits and the result
// does not depend on the MPI library's choice of algorithm. Traffic per rank: 2(N−1)/N × the
// buffer, as a ring all-reduce.
// max/min are exact whatever the order. The trainer's use: docs/DESIGN.md §5.1.
#pragma once
#include <cstdint>

namespace qtune::dist {

// Initialises MPI when launched by mpirun (and compiled with it); otherwise does nothing.
// Call once, first thing in main.
void init(int* argc, char*** argv);
// MPI_Finalize when init started MPI; call on the successful exit path only (a rank that fails
// exits without it and the launcher ends the job).
void finalize();

bool active();  // MPI is initialised (launched by mpirun with this build)
int rank();     // 0 when not active
int size();     // 1 when not active
inline bool is_root() { return rank() == 0; }

// In place, identical result on every rank (see the header comment for the order).
void allreduce_sum(float* v, int64_t n);
void allreduce_sum(double* v, int64_t n);
void allreduce_max(float* v, int64_t n);
void allreduce_min(float* v, int64_t n);
// rank 0's values to every rank.
void bcast(float* v, int64_t n);
void bcast(double* v, int64_t n);
// True on every rank when flag != 0 on any rank (a max over ranks).
bool any_flag(int flag);
// Every rank waits for all (e.g. for rank 0 to finish a checkpoint before the others exit).
void barrier();

// Ends every rank of the job with `code` (MPI_Abort); std::exit when not active.
[[noreturn]] void abort(int code);

}  // namespace qtune::dist
