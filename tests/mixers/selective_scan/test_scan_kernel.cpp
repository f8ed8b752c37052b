// kernels/scan.hpp (SIMD, compile-time arch) against its scalar twin kernels/ref/scan.hpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/core/tensor.hpp>
#include <sparsimix/kernels/scan.hpp>

using namespace sparsimix;

namespace {

template <class T>
struct scan_data {
  index_t L, Dn, S;
  std::vector<T> u, delta, bc, a, d, gate;
  scan_data(index_t len, index_t channels, index_t state, std::uint64_t seed) : L(len), Dn(channels), S(state) {
    Rng rng(seed);
    auto fill = [&](std::vector<T>& v, index_t n, double lo, double hi) {
      v.resize(static_cast<std::size_t>(n));
      fill_uniform(rng, v.data(), n, lo, hi);
    };
    fill(u, L * Dn, -2, 2);
    fill(delta, L * Dn, 0.01, 1.5);
    fill(bc, L * 2 * S, -1, 1);
    fill(a, S * Dn, -3, -0.05);
    fill(d, Dn, 0, 2);
    fill(gate, L * Dn, -0.3, 1.2);
  }
  kernels::scan_problem<T> problem(bool reverse) const {
    kernels::scan_problem<T> p;
    p.len = L; p.channels = Dn; p.state = S; p.reverse = reverse;
    p.u = u.data(); p.delta = delta.data(); p.bc = bc.data(); p.ldbc = 2 * S; p.a = a.data(); p.d = d.data();
    return p;
  }
};

// max |a - e| / (atol + rtol |e|) <= 1 over the whole vector
template <class T>
bool close(const std::vector<T>& a, const std::vector<T>& e, double rtol, double atol, double* worst = nullptr) {
  double w = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double v = std::abs(double(a[i]) - double(e[i])) / (atol + rtol * std::abs(double(e[i])));
    if (!(v <= w)) w = std::isnan(v) ? INFINITY : v;
  }
  if (worst) *worst = w;
  return w <= 1.0;
}

}  // namespace

// Every SIMD arch this TU is compiled for (the Highway-style arch loop of STYLE.md 9), on
// one problem; archs the flags leave out are reported, not silently skipped.
template <class T, class Arch>
void check_arch(Arch arch, index_t Dn, index_t S, bool reverse) {
  const double rtol = std::is_same_v<T, float> ? 2e-5 : 1e-12, atol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  const index_t L = 23;
  scan_data<T> s(L, Dn, S, static_cast<std::uint64_t>(Dn * 100 + S));
  const auto p = s.problem(reverse);
  const auto n_ld = static_cast<std::size_t>(L * Dn), n_st = static_cast<std::size_t>(L * S * Dn);
  INFO("arch " << Arch::name() << ", D_in " << Dn << ", S " << S << ", reverse " << reverse);

  std::vector<T> h(static_cast<std::size_t>(S * Dn)), h_ref(h.size());
  std::vector<T> st(n_st), st_ref(n_st), yp(n_ld), yp_ref(n_ld), y(n_ld), y_ref(n_ld);
  kernels::simd::scan_forward(arch, p, h.data(), st.data(), yp.data(), y.data(), s.gate.data(), T(0.5));
  kernels::ref::scan_forward(p, h_ref.data(), st_ref.data(), yp_ref.data(), y_ref.data(), s.gate.data(), T(0.5));
  double worst = 0;
  CHECK(close(st, st_ref, rtol, atol, &worst));
  CHECK(close(yp, yp_ref, rtol, atol, &worst));
  CHECK(close(y, y_ref, rtol, atol, &worst));
  INFO("worst violation " << worst);

  // Without a state store the running state and the (ungated) output are the same.
  std::vector<T> y2(n_ld);
  kernels::simd::scan_forward(arch, p, h.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr), y2.data(),
                              static_cast<const T*>(nullptr), T(1));
  CHECK(close(y2, yp_ref, rtol, atol));
  const auto last = st_ref.end() - static_cast<std::ptrdiff_t>(S * Dn);
  CHECK(close(h, std::vector<T>(last, st_ref.end()), rtol, atol));

  // Backward: same states in, every output compared.
  std::vector<T> gy(n_ld);
  Rng rng(77);
  fill_uniform(rng, gy.data(), L * Dn, -1, 1);
  Tensor<T> acc(Shape{kernels::scan_backward_acc_size<T>(S)});  // 64-byte aligned
  std::vector<T> lam(h.size());
  std::vector<T> gu(n_ld), gu_r(n_ld), gdl(n_ld), gdl_r(n_ld), gbc(static_cast<std::size_t>(L * 2 * S)),
      gbc_r(gbc.size());
  std::vector<T> ga(h.size(), T(0.25)), ga_r(h.size(), T(0.25)), gd(static_cast<std::size_t>(Dn), T(-1)),
      gd_r(gd.size(), T(-1));  // non-zero start: the kernel must accumulate
  kernels::simd::scan_backward(arch, p, st_ref.data(), gy.data(), lam.data(), acc.data(), gu.data(), gdl.data(),
                               gbc.data(), 2 * S, ga.data(), gd.data());
  kernels::ref::scan_backward(p, st_ref.data(), gy.data(), lam.data(), gu_r.data(), gdl_r.data(), gbc_r.data(),
                              2 * S, ga_r.data(), gd_r.data());
  CHECK(close(gu, gu_r, rtol, atol, &worst));
  CHECK(close(gdl, gdl_r, rtol, atol, &worst));
  CHECK(close(gbc, gbc_r, rtol, atol, &worst));
  CHECK(close(ga, ga_r, rtol, atol, &worst));
  CHECK(close(gd, gd_r, rtol, atol, &worst));
}

template <class T, class Arch>
void check_if_compiled(Arch arch, index_t Dn, index_t S, bool reverse) {
  if constexpr (Arch::supported())
    check_arch<T>(arch, Dn, S, reverse);
  else
    WARN("arch " << Arch::name() << " not enabled by this build's flags: not tested");
}

TEMPLATE_TEST_CASE("scan_forward/backward SIMD paths match the scalar reference", "[kernels][scan]", float, double) {
  using T = TestType;
  // Channel counts around the SIMD widths (tails included) and S not a multiple of anything.
  const auto Dn = GENERATE(as<index_t>{}, 1, 7, 16, 37, 64);
  const auto S = GENERATE(as<index_t>{}, 1, 5, 16);
  const bool reverse = GENERATE(false, true);
  check_if_compiled<T>(xsimd::sse2{}, Dn, S, reverse);
  check_if_compiled<T>(xsimd::avx2{}, Dn, S, reverse);
  check_if_compiled<T>(xsimd::avx512bw{}, Dn, S, reverse);
}

TEST_CASE("ref::scan_backward is the adjoint of ref::scan_forward (finite differences)", "[kernels][scan]") {
  // L = sum(y_pre * gy); perturb u, delta, B, C, A, D one entry at a time.
  const index_t L = 6, Dn = 3, S = 4;
  scan_data<double> s(L, Dn, S, 5);
  std::vector<double> gy(static_cast<std::size_t>(L * Dn));
  Rng rng(3);
  fill_uniform(rng, gy.data(), L * Dn, -1, 1);
  for (bool reverse : {false, true}) {
    auto loss = [&]() {
      std::vector<double> h(static_cast<std::size_t>(S * Dn)), y(gy.size());
      kernels::ref::scan_forward(s.problem(reverse), h.data(), static_cast<double*>(nullptr),
                                 static_cast<double*>(nullptr), y.data(), static_cast<const double*>(nullptr), 1.0);
      double r = 0;
      for (std::size_t i = 0; i < y.size(); ++i) r += y[i] * gy[i];
      return r;
    };
    std::vector<double> h(static_cast<std::size_t>(S * Dn)), st(static_cast<std::size_t>(L * S * Dn)), y(gy.size());
    kernels::ref::scan_forward(s.problem(reverse), h.data(), st.data(), static_cast<double*>(nullptr), y.data(),
                               static_cast<const double*>(nullptr), 1.0);
    std::vector<double> lam(h.size()), gu(gy.size()), gdl(gy.size()), gbc(static_cast<std::size_t>(L * 2 * S)),
        ga(h.size()), gd(static_cast<std::size_t>(Dn));
    kernels::ref::scan_backward(s.problem(reverse), st.data(), gy.data(), lam.data(), gu.data(), gdl.data(),
                                gbc.data(), 2 * S, ga.data(), gd.data());
    auto check = [&](std::vector<double>& v, const std::vector<double>& g, const char* name) {
      for (std::size_t i = 0; i < v.size(); ++i) {
        const double o = v[i], eps = 1e-6;
        v[i] = o + eps;
        const double lp = loss();
        v[i] = o - eps;
        const double lm = loss();
        v[i] = o;
        INFO(name << "[" << i << "] reverse " << reverse);
        CHECK(g[i] == Approx((lp - lm) / (2 * eps)).epsilon(1e-6).margin(1e-8));
      }
    };
    check(s.u, gu, "u");
    check(s.delta, gdl, "delta");
    check(s.bc, gbc, "bc");
    check(s.a, ga, "A");
    check(s.d, gd, "D");
  }
}
