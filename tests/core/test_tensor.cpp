#include <catch2/catch.hpp>

#include <sparsimix/core.hpp>

using namespace sparsimix;

TEST_CASE("Shape prints, compares and counts", "[core][shape]") {
  Shape s{2, 197, 96};
  REQUIRE(s.rank() == 3);
  REQUIRE(s.numel() == 2 * 197 * 96);
  REQUIRE(s.str() == "[2, 197, 96]");
  REQUIRE(s == Shape{2, 197, 96});
  REQUIRE_FALSE(s == Shape{2, 197});
  REQUIRE(Shape{}.numel() == 1);
  REQUIRE_THROWS_AS((Shape{1, 2, 3, 4, 5}), shape_error);
}

TEST_CASE("check_shape names the tensor, the actual and the expected shape", "[core][shape]") {
  REQUIRE_NOTHROW(check_shape("f", "x", Shape{2, 3, 192}, {-1, -1, 192}));
  try {
    check_shape("SelectiveScan::forward", "x", Shape{2, 197, 96}, {-1, -1, 192});
    FAIL("no throw");
  } catch (const shape_error& e) {
    REQUIRE(std::string(e.what()) == "shape_error: SelectiveScan::forward: x is [2, 197, 96], expected [*, *, 192]");
  }
}

TEST_CASE("Tensor is 64-byte aligned, zeroed, deep-copied and indexable", "[core][tensor]") {
  Tensor<float> t(Shape{3, 5, 7});
  REQUIRE(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  for (float v : t) REQUIRE(v == 0.0f);
  t(1, 2, 3) = 4.5f;
  REQUIRE(t.data()[(1 * 5 + 2) * 7 + 3] == 4.5f);
  REQUIRE(t[1](2, 3) == 4.5f);
  Tensor<float> c = t;
  c(1, 2, 3) = 1.0f;
  REQUIRE(t(1, 2, 3) == 4.5f);
  TensorView<const float> v = t.view();
  REQUIRE(v.reshape(Shape{15, 7})(7, 3) == 4.5f);
  REQUIRE_THROWS_AS(v.reshape(Shape{4, 7}), shape_error);
}

TEST_CASE("Tensor::resize reuses capacity", "[core][tensor]") {
  Tensor<double> t(Shape{100});
  const double* p = t.data();
  t.resize(Shape{10, 10});
  REQUIRE(t.data() == p);
  t.resize(Shape{4, 5});
  REQUIRE(t.data() == p);
  t.resize(Shape{101});
  REQUIRE(t.numel() == 101);
}

TEST_CASE("check_finite reports the first NaN", "[core][tensor]") {
  Tensor<float> t(Shape{2, 3});
  REQUIRE_NOTHROW(check_finite<float>("f", "x", t.view()));
  t(1, 1) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(check_finite<float>("f", "x", t.view()), Catch::Contains("flat index 4"));
  t(1, 1) = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_AS(check_finite<float>("f", "x", t.view()), numeric_error);
}

TEST_CASE("TokenMask counts alive tokens and checks its fit", "[core][mask]") {
  TokenMask m(2, 5);
  m.set(1, 0, false);
  m.set(1, 3, false);
  REQUIRE(m.count(0) == 5);
  REQUIRE(m.count(1) == 3);
  REQUIRE_NOTHROW(m.check_fits("f", Shape{2, 5, 8}));
  REQUIRE_THROWS_AS(m.check_fits("f", Shape{2, 6, 8}), shape_error);
}

TEST_CASE("a default Tensor is empty and copies as empty", "[core][tensor]") {
  Tensor<float> t;
  REQUIRE(t.numel() == 0);
  Tensor<float> c = t;  // must not touch the missing storage
  REQUIRE(c.numel() == 0);
  REQUIRE(TensorView<float>().numel() == 0);
  Tensor<float> s(Shape{});  // rank 0 is a scalar with one element
  REQUIRE(s.numel() == 1);
}

TEST_CASE("keep_large_allocations_in_heap applies on glibc and says when it cannot", "[core][malloc]") {
#if defined(__SANITIZE_ADDRESS__)
  // ASan's allocator replaces glibc's: mallopt has no effect and reports failure.
  REQUIRE_FALSE(keep_large_allocations_in_heap());
#elif defined(__GLIBC__)
  REQUIRE(keep_large_allocations_in_heap());
#else
  REQUIRE_FALSE(keep_large_allocations_in_heap());
#endif
}

TEST_CASE("detail::join lists layers with the given separator", "[core][strings]") {
  REQUIRE(detail::join(std::vector<index_t>{2, 5}, ", ") == "2, 5");
  REQUIRE(detail::join(std::vector<index_t>{4, 5}, "-") == "4-5");
  REQUIRE(detail::join(std::vector<index_t>{0}, " ") == "0");
  REQUIRE(detail::join(std::vector<index_t>{}, ",").empty());
}
