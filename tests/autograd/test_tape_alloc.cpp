// clear() keeps every buffer: after the first training step, a step of forward + backward +
// clip + AdamW performs no heap allocation. Counted by replacing the global operator new in
// this test executable (counting only while `counting` is set). AddressSanitizer owns
// operator new itself (replacing it there trips alloc-dealloc-mismatch), so sanitizer builds
// check the weaker, allocator-independent property only: every step reuses the same buffers.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <new>
#include <vector>

#include <sparsimix/autograd.hpp>

#if defined(__SANITIZE_ADDRESS__)
#define SPARSIMIX_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARSIMIX_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef SPARSIMIX_COUNT_ALLOCATIONS
#define SPARSIMIX_COUNT_ALLOCATIONS 1
#endif

namespace {
bool counting = false;
long allocations = 0;
}  // namespace

#if SPARSIMIX_COUNT_ALLOCATIONS
namespace {
void* counted_alloc(std::size_t n, std::size_t align) {
  if (counting) ++allocations;
  if (n == 0) n = 1;
  void* p = align <= alignof(std::max_align_t) ? std::malloc(n) : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n, alignof(std::max_align_t)); }
void* operator new[](std::size_t n) { return counted_alloc(n, alignof(std::max_align_t)); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif

using namespace sparsimix;

TEST_CASE("a training step on a reused tape allocates nothing after the first step", "[autograd][alloc]") {
  const index_t B = 4, N = 5, C = 8, K = 3;
  Rng rng(1);
  Tensor<float> x(Shape{B, N, C}), cls(Shape{1, 1, C}), g(Shape{C}, 1.0f), be(Shape{C}), w1(Shape{16, C}),
      b1(Shape{16}), w2(Shape{K, 16}), teacher(Shape{B, K});
  for (auto* t : {&x, &cls, &w1, &w2, &teacher}) fill_uniform(rng, t->data(), t->numel(), -1, 1);
  Tensor<float> gcls(cls.shape()), gg(g.shape()), gbe(be.shape()), gw1(w1.shape()), gb1(b1.shape()), gw2(w2.shape());
  ParamList<float> ps{{"cls", cls.view(), gcls.view(), true}, {"g", g.view(), gg.view(), false},
                      {"b", be.view(), gbe.view(), false},    {"w1", w1.view(), gw1.view(), true},
                      {"b1", b1.view(), gb1.view(), false},   {"w2", w2.view(), gw2.view(), true}};
  AdamW<float> opt({.lr = 1e-3, .weight_decay = 0.05});
  opt.add_group(ps);
  const ParamList<float> trainable = opt.trainable();
  const std::vector<index_t> labels{0, 1, 2, 1};
  TokenMask mask(B, N + 1);
  mask.set(1, 3, false);
  Tape<float> tape;
  std::vector<long> per_step;
  std::vector<const float*> buffers;  // the loss's and the logits' value storage per step
  for (int step = 0; step < 4; ++step) {
    allocations = 0;
    counting = true;
    tape.clear();
    opt.zero_grad();
    Var h = tape.concat_tokens(tape.param(ps[0]), tape.input(x.view()));
    h = tape.mask_tokens(tape.layernorm(h, tape.param(ps[1]), tape.param(ps[2])), mask);
    Var f = tape.linear_gelu(h, tape.param(ps[3]), tape.param(ps[4]));
    const Shape fs = tape.shape(f);
    Var pooled = tape.reshape(tape.slice_tokens(f, 0, 1), Shape{fs[0], fs[2]});
    Var logits = tape.linear(pooled, tape.param(ps[5]));
    Var loss = tape.add(tape.cross_entropy(logits, labels, 0.1f),
                        tape.kl_div_logits(logits, tape.input(teacher.view()), 2.0f));
    loss = tape.add(loss, tape.scale(tape.mse(h, tape.input(tape.value(h)), &mask), 0.5f));
    tape.backward(loss);
    clip_grad_norm(trainable, 1.0);
    opt.step();
    counting = false;
    per_step.push_back(allocations);
    buffers.push_back(tape.value(loss).data());
    buffers.push_back(tape.value(logits).data());
  }
  for (std::size_t i = 2; i < buffers.size(); ++i) REQUIRE(buffers[i] == buffers[i % 2]);
#if SPARSIMIX_COUNT_ALLOCATIONS
  INFO("allocations per step: " << per_step[0] << ", " << per_step[1] << ", " << per_step[2] << ", " << per_step[3]);
  REQUIRE(per_step[0] > 0);  // the counter works: the first step fills the pools
  REQUIRE(per_step[2] == 0);
  REQUIRE(per_step[3] == 0);
#endif
}
