// The sequence kernels that moved out of the mixers (kernels/lstm.hpp, kernels/conv.hpp):
// every compiled arch against the scalar twins in kernels/ref/, on packed batches of
// uneven sequence lengths (an empty one included), in both directions.
#include <catch2/catch.hpp>

#include <vector>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/kernels/conv.hpp>
#include <sparsimix/kernels/lstm.hpp>

#include "kernels/arch_loop.hpp"

using namespace sparsimix;

namespace {

template <class T>
std::vector<T> uniform_values(index_t n, std::uint64_t seed, double lo, double hi) {
  Rng rng(seed);
  std::vector<T> v(static_cast<std::size_t>(n));
  fill_uniform(rng, v.data(), n, lo, hi);
  return v;
}

template <class T>
double max_abs_diff(const std::vector<T>& a, const std::vector<T>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

}  // namespace

TEMPLATE_TEST_CASE("lstm recurrence kernels match their scalar twins on every arch", "[kernels][lstm]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  const std::vector<index_t> offset{0, 5, 5, 12, 13, 22};  // lengths 5, 0, 7, 1, 9
  const index_t B = 5, M = 22;
  const int ran = test::for_each_arch([&](auto arch, const char*) {
    using A = decltype(arch);
    for (index_t d : {3, 16, 19})
      for (bool reverse : {false, true}) {
        INFO("d " << d << " reverse " << reverse);
        const index_t G = 4 * d, ldh = 2 * d + 1;
        const kernels::lstm_problem<T> p{B, d, offset.data(), 9, reverse};
        const auto gates0 = uniform_values<T>(M * G, 1 + static_cast<std::uint64_t>(d), -2, 2);
        const auto wt = uniform_values<T>(d * G, 2 + static_cast<std::uint64_t>(d), -0.5, 0.5);
        // forward, training (cells kept) and inference (cells in scratch)
        for (bool training : {true, false}) {
          std::vector<T> g1 = gates0, g2 = gates0, c1(static_cast<std::size_t>(M * d)), c2 = c1;
          std::vector<T> h1(static_cast<std::size_t>(M * ldh), T(-3)), h2 = h1;
          std::vector<T> hh(static_cast<std::size_t>(2 * B * G)), hs(static_cast<std::size_t>(B * d)), cs = hs;
          kernels::simd::lstm_recurrence_forward(A{}, p, g1.data(), wt.data(), training ? c1.data() : nullptr,
                                                 h1.data(), ldh, hh.data(), hs.data(), cs.data());
          kernels::ref::lstm_recurrence_forward(p, g2.data(), wt.data(), training ? c2.data() : nullptr, h2.data(),
                                                ldh, hh.data(), hs.data(), cs.data());
          CHECK(max_abs_diff(g1, g2) <= tol);
          CHECK(max_abs_diff(c1, c2) <= tol);
          CHECK(max_abs_diff(h1, h2) <= tol);
        }
        // backward from the training forward's gates and cells
        std::vector<T> g = gates0, c(static_cast<std::size_t>(M * d)), hid(static_cast<std::size_t>(M * ldh));
        std::vector<T> hh(static_cast<std::size_t>(2 * B * G)), hs(static_cast<std::size_t>(B * d)), cs = hs;
        kernels::ref::lstm_recurrence_forward(p, g.data(), wt.data(), c.data(), hid.data(), ldh, hh.data(), hs.data(),
                                              cs.data());
        const auto dhid = uniform_values<T>(M * ldh, 3 + static_cast<std::uint64_t>(d), -1, 1);
        std::vector<T> whh(static_cast<std::size_t>(G * d));
        for (index_t k = 0; k < d; ++k)
          for (index_t j = 0; j < G; ++j) whh[static_cast<std::size_t>(j * d + k)] = wt[static_cast<std::size_t>(k * G + j)];
        std::vector<T> dg1(static_cast<std::size_t>(M * G)), dg2 = dg1, dgs(static_cast<std::size_t>(3 * B * G));
        std::vector<T> dh(static_cast<std::size_t>(B * d)), dc = dh, zeros(static_cast<std::size_t>(d), T(5));
        kernels::simd::lstm_recurrence_backward(A{}, p, g.data(), c.data(), dhid.data(), ldh, whh.data(), dg1.data(),
                                                dgs.data(), dh.data(), dc.data(), zeros.data());
        kernels::ref::lstm_recurrence_backward(p, g.data(), c.data(), dhid.data(), ldh, whh.data(), dg2.data(),
                                               dgs.data(), dh.data(), dc.data(), zeros.data());
        CHECK(max_abs_diff(dg1, dg2) <= tol);
      }
  });
  REQUIRE(ran >= 1);
}

TEMPLATE_TEST_CASE("depthwise conv1d kernels match their scalar twins on every arch", "[kernels][conv]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  const int ran = test::for_each_arch([&](auto arch, const char*) {
    using A = decltype(arch);
    for (index_t Di : test::kernel_lengths()) {
      if (Di == 0 || Di > 64) continue;
      for (index_t L : {1, 2, 7})
        for (index_t K : {1, 4})
          for (bool reverse : {false, true}) {
            INFO("Di " << Di << " L " << L << " K " << K << " reverse " << reverse);
            const index_t ldx = 2 * Di;
            const auto x = uniform_values<T>(L * ldx, 7 + static_cast<std::uint64_t>(Di), -1, 1);
            const auto wt = uniform_values<T>(K * Di, 8, -1, 1);
            const auto bias = uniform_values<T>(Di, 9, -1, 1);
            std::vector<T> y1(static_cast<std::size_t>(L * Di)), y2 = y1;
            kernels::simd::conv1d_depthwise_forward(A{}, x.data(), ldx, wt.data(), bias.data(), y1.data(), L, Di, K,
                                                    reverse);
            kernels::ref::conv1d_depthwise_forward(x.data(), ldx, wt.data(), bias.data(), y2.data(), L, Di, K, reverse);
            CHECK(max_abs_diff(y1, y2) <= tol);
            const auto gy = uniform_values<T>(L * Di, 10, -1, 1);
            std::vector<T> gx1(static_cast<std::size_t>(L * ldx), T(0.25)), gx2 = gx1;
            std::vector<T> gw1(static_cast<std::size_t>(K * Di), T(0.5)), gw2 = gw1, gb1(static_cast<std::size_t>(Di)),
                gb2 = gb1;
            kernels::simd::conv1d_depthwise_backward(A{}, x.data(), ldx, wt.data(), gy.data(), gx1.data(), gw1.data(),
                                                     gb1.data(), L, Di, K, reverse);
            kernels::ref::conv1d_depthwise_backward(x.data(), ldx, wt.data(), gy.data(), gx2.data(), gw2.data(),
                                                    gb2.data(), L, Di, K, reverse);
            CHECK(max_abs_diff(gx1, gx2) <= tol);
            CHECK(max_abs_diff(gw1, gw2) <= tol);
            CHECK(max_abs_diff(gb1, gb2) <= tol);
          }
    }
  });
  REQUIRE(ran >= 1);
}
