// core/rng.h — a small, fast, fully specified RNG (xoshiro256**), so runs are reproducible
// across compilers and standard libraries (std:: distributions are implementation-defined).
// Its whole state is 4 words, saved in checkpoints.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace qtune {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed) {
    uint64_t z = seed;
    for (auto& w : s_) w = splitmix(z);  // splitmix64 expands the seed; never all-zero
  }
  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // uniform in [0, 1), 24 random bits (exact in float)
  float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }
  double uniform_double() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // uniform integer in [0, n)
  uint64_t below(uint64_t n) { return n ? next_u64() % n : 0; }
  // standard normal (Box–Muller, one value per call)
  double normal() {
    double u1 = uniform_double(), u2 = uniform_double();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Laplace(0, b)
  double laplace(double b) {
    double u = uniform_double() - 0.5;
    double a = 1.0 - 2.0 * std::fabs(u);
    if (a < 1e-300) a = 1e-300;
    return (u < 0 ? b : -b) * std::log(a);
  }

  std::array<uint64_t, 4> state() const { return s_; }

  // Counter-based draws: pure functions of (key, index), so a large random matrix can be
  // regenerated element by element, in any order and any thread, instead of stored.
  static uint64_t hash(uint64_t key, uint64_t index) {
    uint64_t z = key ^ (index * 0xd1b54a32d192ed03ULL);
    return splitmix(z);
  }
  // Laplace(0, b) at (key, index), rounded to float once (the log is taken in double so the
  // float result does not depend on the libm's float log).
  static float laplace_at(uint64_t key, uint64_t index, double b) {
    const double u = static_cast<double>(hash(key, index) >> 11) * (1.0 / 9007199254740992.0) - 0.5;
    double a = 1.0 - 2.0 * std::fabs(u);
    if (a < 1e-300) a = 1e-300;
    return static_cast<float>((u < 0 ? b : -b) * std::log(a));
  }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix(uint64_t& z) {
    uint64_t r = (z += 0x9e3779b97f4a7c15ULL);
    r = (r ^ (r >> 30)) * 0xbf58476d1ce4e5b9ULL;
    r = (r ^ (r >> 27)) * 0x94d049bb133111ebULL;
    return r ^ (r >> 31);
  }
  std::array<uint64_t, 4> s_{};
};

}  // namespace qtune
