// The arch loop of the kernel tests (Highway's hwy/contrib/dot/dot_test.cc idea): run a
// check once per xsimd arch that is both compiled into this test (the test's -m flags,
// -march=native by default) and supported by this CPU (GCC's __builtin_cpu_supports:
// xsimd 8.1's own detection is wrong on these machines, TOOLCHAIN.md). Archs the CPU lacks
// are reported with WARN, so a run on a smaller machine says what it did not cover.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <sparsimix/kernels.hpp>

namespace sparsimix::test {

struct arch_status {
  const char* name;
  bool compiled;
  bool cpu;
};

inline std::vector<arch_status> kernel_archs() {
#if defined(__x86_64__) || defined(__i386__)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd");
  return {{"sse2", XSIMD_WITH_SSE2 != 0, __builtin_cpu_supports("sse2") != 0},
          {"fma3<avx2>", XSIMD_WITH_FMA3_AVX2 != 0, avx2},
          {"avx512bw", XSIMD_WITH_AVX512BW != 0, avx512}};
#else
  return {};
#endif
}

// f(arch_tag, name) for every arch compiled in and supported; returns how many ran.
template <class F>
int for_each_arch(F&& f) {
  int ran = 0;
  [[maybe_unused]] const auto archs = kernel_archs();
#if XSIMD_WITH_SSE2
  if (archs[0].cpu) { INFO("arch sse2"); f(xsimd::sse2{}, "sse2"); ++ran; } else WARN("CPU lacks sse2: not tested");
#endif
#if XSIMD_WITH_FMA3_AVX2
  if (archs[1].cpu) { INFO("arch fma3<avx2>"); f(xsimd::fma3<xsimd::avx2>{}, "fma3<avx2>"); ++ran; }
  else WARN("CPU lacks avx2+fma: fma3<avx2> kernels not tested");
#endif
#if XSIMD_WITH_AVX512BW
  if (archs[2].cpu) { INFO("arch avx512bw"); f(xsimd::avx512bw{}, "avx512bw"); ++ran; }
  else WARN("CPU lacks avx512f/bw/dq/cd: avx512bw kernels not tested");
#endif
  return ran;
}

// Tail-exercising lengths: below, at and around every batch width (4, 8, 16 floats).
inline const std::vector<index_t>& kernel_lengths() {
  static const std::vector<index_t> n = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 1000};
  return n;
}

// |got - want| <= ulps * eps(T) * scale: "ulps units of the scale". Also passes when the
// difference is below the smallest normal number: xsimd's exp (and what uses it) returns 0
// where the true result is subnormal (exp(-100) in float), libm the subnormal.
// Equal infinities and two NaNs count as equal.
template <class T>
bool close_ulps(T got, T want, T scale, double ulps) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  const double d = std::abs(static_cast<double>(got) - static_cast<double>(want));
  return d <= static_cast<double>(std::numeric_limits<T>::min()) ||
         d <= ulps * static_cast<double>(std::numeric_limits<T>::epsilon()) * static_cast<double>(std::abs(scale));
}

// GELU tolerance in ulp of max(|gelu(x)|, |x|/2): xsimd 8.1's double erf is off by up to
// ~34 ulp of 1 around |x| = 3 (measured over 2e5 points in [-12, 12] on sse2, avx2 and
// avx512bw alike); float erf within 1.5 ulp.
template <class T>
constexpr double gelu_ulps() {
  return sizeof(T) == sizeof(double) ? 64.0 : 4.0;
}

}  // namespace sparsimix::test
