// The inference forward allocates nothing after warm-up (workspaces keep their capacity).
// This TU replaces the global operator new of test_mh_lstm with a counting one.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#include <sparsimix/mixers/mh_lstm.hpp>

namespace {
std::atomic<long> allocations{0};

void* counted_alloc(std::size_t n, std::size_t align) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
void* counted_or_throw(std::size_t n, std::size_t align) {
  if (void* p = counted_alloc(n, align)) return p;
  throw std::bad_alloc();
}
}  // namespace

// Every replaceable form, all on malloc/free, so no pairing mixes ours with the library's
// (ASan checks new/delete pairing).
void* operator new(std::size_t n) { return counted_or_throw(n, 0); }
void* operator new[](std::size_t n) { return counted_or_throw(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

using namespace sparsimix;

TEMPLATE_TEST_CASE("MultiHeadLSTM inference forward does not allocate after warm-up", "[mixer][lstm][alloc]", float,
                   double) {
  using T = TestType;
  MultiHeadLSTM<T> m({48, 3});
  Rng rng(2);
  m.init(rng);
  Tensor<T> x(Shape{3, 197, 48}), y(x.shape()), s(x.shape());
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  TokenMask mask(3, 197);
  for (index_t n = 0; n < 197; n += 3) mask.set(1, n, false);
  const TokenMask* masks[] = {nullptr, &mask};
  for (const TokenMask* mp : masks) {
    const long cold = allocations.load();
    m.forward(x.view(), y.view(), mp);  // warm-up
    m.forward(x.view(), y.view(), s.view(), mp);
    if (mp == nullptr) REQUIRE(allocations.load() - cold > 0);  // the counter sees the workspaces grow
    const long before = allocations.load();
    m.forward(x.view(), y.view(), mp);
    m.forward(x.view(), y.view(), s.view(), mp);
    REQUIRE(allocations.load() - before == 0);
  }
}
