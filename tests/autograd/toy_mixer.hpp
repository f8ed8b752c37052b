// A small SeqMixer for the autograd tests (no real mixer is needed to test the tape node):
//   y[b, n] = W x[b, n] + U mean_{m alive} x[b, m]   for alive n;  y[b, n] = 0 for dead n.
// Token mixing through the mean makes every output depend on every alive input token.
#pragma once
#include <algorithm>
#include <vector>

#include <sparsimix/concepts.hpp>
#include <sparsimix/core/linalg.hpp>
#include <sparsimix/core/rng.hpp>

namespace sparsimix::test {

template <class T = float>
class ToyMixer {
 public:
  using scalar_type = T;
  struct cache_type {
    Tensor<T> x, mean;  // [B, N, C], [B, C]
    const TokenMask* mask = nullptr;
  };

  ToyMixer(index_t dim, std::uint64_t seed) : c_(dim), w_(Shape{dim, dim}), u_(Shape{dim, dim}),
                                               gw_(Shape{dim, dim}), gu_(Shape{dim, dim}) {
    Rng rng(seed);
    fill_uniform(rng, w_.data(), w_.numel(), -0.5, 0.5);
    fill_uniform(rng, u_.data(), u_.numel(), -0.5, 0.5);
  }
  index_t dim() const noexcept { return c_; }

  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const {
    Tensor<T> mean;
    run(x, y, mean, mask);
  }
  void forward(ConstSeq<T> x, Seq<T> y, cache_type& cache, const TokenMask* mask) {
    cache.x.resize(x.shape());
    cache.x.copy_from(x);
    cache.mask = mask;
    run(x, y, cache.mean, mask);
  }
  void backward(const cache_type& cache, ConstSeq<T> dy, Seq<T> dx) {
    const index_t b = dy.size(0), n = dy.size(1), c = c_;
    std::fill(dx.begin(), dx.end(), T(0));
    std::vector<T> dmean(static_cast<std::size_t>(c));
    for (index_t i = 0; i < b; ++i) {
      std::fill(dmean.begin(), dmean.end(), T(0));
      const index_t alive = count(cache.mask, i, n);
      for (index_t t = 0; t < n; ++t) {
        if (!is_alive(cache.mask, i, t)) continue;
        const T* g = dy.data() + (i * n + t) * c;
        // dW += g x^T, dx += W^T g; dU += g mean^T, dmean += U^T g
        linear_backward(cache.x.data() + (i * n + t) * c, w_.data(), g, dx.data() + (i * n + t) * c, gw_.data(),
                        static_cast<T*>(nullptr), 1, c, c, accumulate::yes);
        linear_backward(cache.mean.data() + i * c, u_.data(), g, dmean.data(), gu_.data(), static_cast<T*>(nullptr),
                        1, c, c, accumulate::yes);
      }
      for (index_t t = 0; t < n; ++t) {
        if (!is_alive(cache.mask, i, t)) continue;
        for (index_t j = 0; j < c; ++j) dx.data()[(i * n + t) * c + j] += dmean[static_cast<std::size_t>(j)] / static_cast<T>(alive);
      }
    }
  }
  ParamList<T> parameters() {
    return {{"w.weight", w_.view(), gw_.view(), true}, {"u.weight", u_.view(), gu_.view(), true}};
  }

 private:
  static bool is_alive(const TokenMask* m, index_t b, index_t t) { return !m || m->alive(b, t); }
  static index_t count(const TokenMask* m, index_t b, index_t n) { return m ? m->count(b) : n; }
  void run(ConstSeq<T> x, Seq<T> y, Tensor<T>& mean, const TokenMask* mask) const {
    const index_t b = x.size(0), n = x.size(1), c = c_;
    mean.resize(Shape{b, c});
    mean.zero();
    for (index_t i = 0; i < b; ++i) {
      const index_t alive = count(mask, i, n);
      for (index_t t = 0; t < n; ++t)
        if (is_alive(mask, i, t))
          for (index_t j = 0; j < c; ++j) mean(i, j) += x(i, t, j) / static_cast<T>(alive);
      std::vector<T> um(static_cast<std::size_t>(c));
      linear_forward(mean.data() + i * c, u_.data(), static_cast<const T*>(nullptr), um.data(), 1, c, c);
      for (index_t t = 0; t < n; ++t) {
        T* yr = y.data() + (i * n + t) * c;
        if (!is_alive(mask, i, t)) {
          std::fill(yr, yr + c, T(0));
          continue;
        }
        linear_forward(x.data() + (i * n + t) * c, w_.data(), um.data(), yr, 1, c, c);
      }
    }
  }
  index_t c_;
  Tensor<T> w_, u_, gw_, gu_;
};

}  // namespace sparsimix::test
