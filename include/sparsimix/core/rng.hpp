// Deterministic, seedable RNG: the same seed gives the same numbers on every machine
// (xoshiro256** seeded through splitmix64; no std:: distributions, whose output is
// implementation-defined).
#pragma once
#include <cmath>
#include <cstdint>

#include "../fwd.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The library's one random source (weight init, shuffles, splits): seedable, the same everywhere.
class Rng {
 public:
  // A stream seeded through splitmix64: equal seeds give equal streams on every machine.
  explicit Rng(std::uint64_t seed = 0) { reseed(seed); }

  // Restarts the stream as if constructed with `seed`.
  void reseed(std::uint64_t seed) noexcept {
    std::uint64_t z = seed;
    for (auto& s : s_) s = splitmix64(z);
    has_spare_ = false;
  }
  // The complete state, to save a stream and continue it exactly (resumable training).
  struct state_type {
    std::uint64_t s[4]{};    // the xoshiro256** words
    double spare = 0.0;      // normal()'s second Box-Muller sample, while has_spare
    bool has_spare = false;  // whether normal() has a cached sample
  };
  // A copy of the complete state, for a checkpoint.
  state_type state() const noexcept {
    state_type st;
    for (int i = 0; i < 4; ++i) st.s[i] = s_[i];
    st.spare = spare_;
    st.has_spare = has_spare_;
    return st;
  }
  // Continues exactly where the stream that produced `st` was.
  void set_state(const state_type& st) noexcept {
    for (int i = 0; i < 4; ++i) s_[i] = st.s[i];
    spare_ = st.spare;
    has_spare_ = st.has_spare;
  }
  // A child stream: deterministic given this stream's state, independent in practice.
  Rng split() noexcept { return Rng(next_u64()); }

  // The next 64 random bits (xoshiro256**); every other draw is built on it.
  std::uint64_t next_u64() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi).
  double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), n > 0, without modulo bias (rejection of the short range).
  std::uint64_t below(std::uint64_t n) noexcept {
    const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    for (;;) {
      const std::uint64_t r = next_u64();
      if (r >= threshold) return r % n;
    }
  }
  // Standard normal (Box-Muller).
  double normal() noexcept {
    if (has_spare_) { has_spare_ = false; return spare_; }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(6.283185307179586 * u2);
    has_spare_ = true;
    return r * std::cos(6.283185307179586 * u2);
  }
  // Normal with the given mean and standard deviation.
  double normal(double mean, double stddev) noexcept { return mean + stddev * normal(); }

  // Fisher-Yates shuffle of [first, last).
  template <class It>
  void shuffle(It first, It last) noexcept {
    const auto n = static_cast<std::uint64_t>(last - first);
    for (std::uint64_t i = n; i > 1; --i) {
      const auto j = below(i);
      std::swap(first[static_cast<std::ptrdiff_t>(i - 1)], first[static_cast<std::ptrdiff_t>(j)]);
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) noexcept {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t s_[4]{};
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Fills `data[0..n)` with U(lo, hi) samples.
template <class T>
void fill_uniform(Rng& rng, T* data, index_t n, double lo, double hi) noexcept {
  for (index_t i = 0; i < n; ++i) data[i] = static_cast<T>(rng.uniform(lo, hi));
}
// Fills `data[0..n)` with N(mean, stddev) samples.
template <class T>
void fill_normal(Rng& rng, T* data, index_t n, double mean, double stddev) noexcept {
  for (index_t i = 0; i < n; ++i) data[i] = static_cast<T>(rng.normal(mean, stddev));
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
