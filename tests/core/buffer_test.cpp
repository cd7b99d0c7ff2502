// core/buffer.h: carving tensors out of one Buffer, and the per-thread scratch.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "core/buffer.h"
#include "test_util.h"

using namespace qtune;

// Slices in order, each on a 64-byte boundary, disjoint, inside the buffer, zeroed; the
// return value counts the elements without the padding.
TEST(Carve, PointsAlignedDisjointSlicesInOrder) {
  Buffer<float> mem;
  float *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr;
  const int64_t used = carve(mem, {{&a, 5}, {&b, 16}, {&c, 0}, {&d, 33}});
  EXPECT_EQ(used, 5 + 16 + 0 + 33);
  EXPECT_EQ(mem.size(), size_t(16 + 16 + 0 + 48));
  EXPECT_EQ(a, mem.data());
  EXPECT_EQ(b, mem.data() + 16);
  EXPECT_EQ(c, mem.data() + 32);
  EXPECT_EQ(d, mem.data() + 32);
  for (float* p : {a, b, c, d}) EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  for (float v : mem) EXPECT_EQ(v, 0.0f);
  // carving again (a new shape) replaces the buffer and re-points every slice
  carve(mem, {{&a, 1}, {&b, 1}});
  EXPECT_EQ(mem.size(), 32u);
  EXPECT_EQ(b, mem.data() + 16);
}

TEST(Carve, OtherElementTypes) {
  Buffer<int64_t> mem;
  int64_t *a = nullptr, *b = nullptr;
  EXPECT_EQ(carve(mem, {{&a, 3}, {&b, 9}}), 12);
  EXPECT_EQ(b - a, 8);  // 64 bytes = 8 int64
  EXPECT_EQ(mem.size(), 24u);
}

struct OwnerA;
struct OwnerB;

// Kept between calls, grown on demand, one per thread, slot and owner.
TEST(Scratch, PerThreadPerSlotPerOwner) {
  auto a = [](int slot, int64_t n) { return scratch<float, OwnerA>(slot, n); };
  float* p = a(0, 100);
  p[99] = 7.0f;
  EXPECT_EQ(a(0, 50), p);  // smaller: the same memory, contents kept
  EXPECT_EQ(p[99], 7.0f);
  EXPECT_NE(a(1, 100), p);
  float* other_owner = scratch<float, OwnerB>(0, 100);
  EXPECT_NE(other_owner, p);
  double* d = scratch<double, OwnerA>(3, 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(d) % 64, 0u);
  std::vector<float*> seen(4, nullptr);
#pragma omp parallel num_threads(4)
  seen[omp_get_thread_num()] = a(2, 10);
  std::set<float*> distinct;
  for (float* s : seen)
    if (s) distinct.insert(s);
  EXPECT_EQ(distinct.size(), size_t(std::count_if(seen.begin(), seen.end(), [](float* s) { return s; })));
}
