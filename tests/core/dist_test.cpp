// core/dist.h in a plain launch (no mpirun): one rank, and every reduction is the identity — the
// promise that a build with MPI behaves exactly as one without when started on its own.
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "core/dist.h"

namespace qtune {
namespace {

TEST(Dist, APlainLaunchIsOneRankAndReductionsAreTheIdentity) {
  ASSERT_EQ(std::getenv("OMPI_COMM_WORLD_SIZE"), nullptr) << "run this test without mpirun";
  int argc = 1;
  char name[] = "dist_test";
  char* argv_store[] = {name, nullptr};
  char** argv = argv_store;
  dist::init(&argc, &argv);  // not under mpirun: MPI is not initialised
  EXPECT_FALSE(dist::active());
  EXPECT_EQ(dist::rank(), 0);
  EXPECT_EQ(dist::size(), 1);
  EXPECT_TRUE(dist::is_root());
  std::vector<float> f = {1.5f, -2.0f, 3e-8f};
  std::vector<double> d = {0.1, -7.25};
  const std::vector<float> f0 = f;
  const std::vector<double> d0 = d;
  dist::allreduce_sum(f.data(), 3);
  dist::allreduce_sum(d.data(), 2);
  dist::allreduce_max(f.data(), 3);
  dist::allreduce_min(f.data(), 3);
  dist::bcast(f.data(), 3);
  dist::bcast(d.data(), 2);
  EXPECT_EQ(f, f0);
  EXPECT_EQ(d, d0);
  EXPECT_FALSE(dist::any_flag(0));
  EXPECT_TRUE(dist::any_flag(2));
  dist::finalize();
  EXPECT_EQ(dist::size(), 1);
}

}  // namespace
}  // namespace qtune
