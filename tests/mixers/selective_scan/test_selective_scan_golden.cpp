// SelectiveScan against PyTorch (tests/golden/gen_selective_scan.py: a port of mamba's
// selective_scan_ref + Mamba block, Vim v2 bidirectional, masks by per-sequence runs).
// Forward and backward (every parameter gradient and dx), float and double.
#include "support/golden.hpp"

#include <cmath>
#include <string>

#include <sparsimix/mixers/selective_scan.hpp>

using namespace sparsimix;

namespace {

template <class T>
SelectiveScan<T> mixer_from(const io::safetensors_file& f) {
  const auto& m = f.metadata();
  typename SelectiveScan<T>::config cfg;
  cfg.dim = std::stol(m.at("dim"));
  cfg.d_state = std::stol(m.at("d_state"));
  cfg.d_conv = std::stol(m.at("d_conv"));
  cfg.expand = std::stod(m.at("expand"));
  cfg.dt_rank = std::stol(m.at("dt_rank"));
  cfg.bidirectional = m.at("bidirectional") == "true";
  SelectiveScan<T> mixer(cfg);
  auto ps = mixer.parameters();
  for (auto& p : ps) f.read_into<T>(p.name, p.value);
  // Every stored parameter is one of ours (no name left unread).
  index_t stored = 0;
  for (const auto& n : f.names()) stored += n.rfind("grad.", 0) == 0 ? 1 : 0;
  REQUIRE(stored == static_cast<index_t>(ps.size()));
  return mixer;
}

}  // namespace

TEMPLATE_TEST_CASE("selective_scan matches PyTorch (forward, backward)", "[mixer][scan][golden]", float, double) {
  using T = TestType;
  const std::string name = GENERATE(as<std::string>{}, "uni_b1_n13", "uni_b3_n197", "bi_b1_n13", "bi_b3_n197",
                                    "odd_b2_n17", "masked_uni_b3_n13", "masked_bi_b3_n13", "masked_odd_b3_n13");
  INFO("case " << name);
  const auto f = test::golden("selective_scan_" + name + ".safetensors");
  auto mixer = mixer_from<T>(f);
  const auto x = f.get<T>("x");
  const auto dy = f.get<T>("dy");
  const auto y_ref = f.get<double>("y");
  const auto dx_ref = f.get<double>("dx");
  TokenMask mask;
  const bool masked = f.contains("mask");
  if (masked) {
    const auto m = f.get<double>("mask");
    Tensor<std::uint8_t> alive(m.shape());
    for (index_t i = 0; i < m.numel(); ++i) alive.data()[i] = m.data()[i] != 0 ? 1 : 0;
    mask = TokenMask(std::move(alive));
  }
  const TokenMask* mp = masked ? &mask : nullptr;

  // Float: 1e-5 relative to the float64 reference, plus an absolute floor of 2e-6 of the
  // tensor's largest |value| (entries near 0 are sums of cancelling terms). Measured on
  // AVX-512: at most 0.5 of this budget (docs/mixers/selective_scan.md). Double: 1e-10.
  const bool is_float = std::is_same_v<T, float>;
  auto scale_of = [](const Tensor<double>& t) {
    double s = 0;
    for (double v : t) s = std::max(s, std::abs(v));
    return s;
  };
  const double rtol = is_float ? 1e-5 : 1e-10;
  const double afrac = is_float ? 2e-6 : 1e-12;

  Tensor<T> y(x.shape()), y_inf(x.shape()), dx(x.shape());
  mixer.forward(x.view(), y_inf.view(), mp);
  SPARSIMIX_REQUIRE_CLOSE(y_inf, y_ref, rtol, afrac * scale_of(y_ref));
  typename SelectiveScan<T>::cache_type cache;
  mixer.forward(x.view(), y.view(), cache, mp);
  SPARSIMIX_REQUIRE_CLOSE(y, y_ref, rtol, afrac * scale_of(y_ref));
  mixer.backward(cache, dy.view(), dx.view());
  SPARSIMIX_REQUIRE_CLOSE(dx, dx_ref, rtol, afrac * scale_of(dx_ref));
  for (auto& p : mixer.parameters()) {
    INFO("grad of " << p.name);
    const auto g_ref = f.get<double>("grad." + p.name);
    SPARSIMIX_REQUIRE_CLOSE(p.grad, g_ref, rtol, afrac * scale_of(g_ref));
  }
}
