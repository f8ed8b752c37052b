// Test helpers: golden files (written by tests/golden/*.py at test time) and closeness.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include <sparsimix/core/tensor.hpp>
#include <sparsimix/io/safetensors.hpp>

namespace sparsimix::test {

inline io::safetensors_file golden(const std::string& file) {
  return io::safetensors_file::load(std::string(SPARSIMIX_GOLDEN_DIR) + "/" + file);
}

struct closeness {
  double max_abs = 0, max_rel = 0;  // rel = |a - e| / (|e| + atol)
  index_t worst = -1;
  bool ok = true;
};

// Elementwise |a - e| <= atol + rtol * |e|.
// A and E: Tensor<T> or TensorView<T> of any scalar.
template <class A, class E>
closeness compare(const A& actual, const E& expected, double rtol, double atol) {
  closeness c;
  REQUIRE(actual.shape() == expected.shape());
  for (index_t i = 0; i < actual.numel(); ++i) {
    const double a = static_cast<double>(actual.data()[i]), e = static_cast<double>(expected.data()[i]);
    const double d = std::abs(a - e);
    if (!(d <= atol + rtol * std::abs(e))) c.ok = false;
    if (d > c.max_abs || std::isnan(d)) { c.max_abs = d; c.worst = i; }
    c.max_rel = std::max(c.max_rel, d / (std::abs(e) + atol));
  }
  return c;
}

// REQUIREs closeness and prints the numbers that failed.
#define SPARSIMIX_REQUIRE_CLOSE(actual, expected, rtol, atol)                                               \
  do {                                                                                                     \
    const auto _c = ::sparsimix::test::compare((actual), (expected), (rtol), (atol));                     \
    INFO(#actual " vs " #expected ": max abs " << _c.max_abs << ", max rel " << _c.max_rel << " at " << _c.worst \
                                               << " (rtol " << (rtol) << ", atol " << (atol) << ")");      \
    REQUIRE(_c.ok);                                                                                        \
  } while (0)

}  // namespace sparsimix::test
