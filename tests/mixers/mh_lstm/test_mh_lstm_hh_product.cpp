// The recurrence's hidden-to-hidden product (kernels::lstm_hh_product: 4-row x 4-vector
// blocks, 4-row single vectors, single rows with 8 vectors, scalar column tails) against a plain triple loop in
// long double, for batch sizes covering each path and widths with and without tails; and a
// batched MultiHeadLSTM forward (4-row blocks) against the same sequences run one by one
// (single-row path).
#include <catch2/catch.hpp>

#include <vector>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/mixers/mh_lstm.hpp>

using namespace sparsimix;

TEMPLATE_TEST_CASE("lstm_hh_product matches a plain product", "[mixers][lstm]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;  // sums of d products of O(1) terms
  for (index_t B : {1, 3, 4, 5, 8, 9})
    for (index_t d : {5, 64})
      for (index_t G : {20, 32, 52, 256, 4 * 64 + 3}) {  // 32, 52: pruned widths (4 k), under 4 vectors
        Rng rng(static_cast<std::uint64_t>(B * 1000 + d * 10 + G));
        std::vector<T> hs(static_cast<std::size_t>(B * d)), wt(static_cast<std::size_t>(d * G)),
            hh(static_cast<std::size_t>(B * G), T(-7));
        fill_uniform(rng, hs.data(), B * d, -1.0, 1.0);
        fill_uniform(rng, wt.data(), d * G, -1.0, 1.0);
        kernels::lstm_hh_product(hs.data(), wt.data(), hh.data(), B, d, G);
        for (index_t b = 0; b < B; ++b)
          for (index_t j = 0; j < G; ++j) {
            long double e = 0;
            for (index_t k = 0; k < d; ++k)
              e += static_cast<long double>(hs[static_cast<std::size_t>(b * d + k)]) * wt[static_cast<std::size_t>(k * G + j)];
            INFO("B " << B << " d " << d << " G " << G << " b " << b << " j " << j);
            REQUIRE(hh[static_cast<std::size_t>(b * G + j)] == Approx(static_cast<double>(e)).margin(tol * static_cast<double>(d)));
          }
      }
}

TEMPLATE_TEST_CASE("MultiHeadLSTM batched forward equals each sequence alone", "[mixers][lstm]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  const index_t B = 6, N = 11, C = 128, H = 2;  // d = 64: 4 gates x 64 fill whole vector chunks
  MultiHeadLSTM<T> m({C, H});
  Rng rng(11);
  m.init(rng);
  Tensor<T> x(Shape{B, N, C}), y(Shape{B, N, C});
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  m.forward(x.view(), y.view(), nullptr);
  for (index_t b = 0; b < B; ++b) {
    Tensor<T> xb(Shape{1, N, C}), yb(Shape{1, N, C});
    std::copy_n(x.data() + b * N * C, N * C, xb.data());
    m.forward(xb.view(), yb.view(), nullptr);
    for (index_t i = 0; i < N * C; ++i) REQUIRE(y.data()[b * N * C + i] == Approx(yb.data()[i]).margin(tol));
  }
}
