// Scalar reference twins of kernels/activations.hpp. Tests compare every SIMD arch against
// these; they are also the tail loops' semantics.
#pragma once
#include <cmath>

#include "../../fwd.hpp"

namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// Logistic sigmoid 1 / (1 + exp(-x)).
template <class T> inline T sigmoid(T x) noexcept { return T(1) / (T(1) + std::exp(-x)); }
// SiLU x * sigmoid(x).
template <class T> inline T silu(T x) noexcept { return x * sigmoid(x); }
// log(1 + exp(x)), PyTorch's threshold 20: identity above it.
template <class T> inline T softplus(T x) noexcept { return x > T(20) ? x : std::log1p(std::exp(x)); }
// Exact GELU: x/2 (1 + erf(x / sqrt 2)).
template <class T> inline T gelu(T x) noexcept {
  return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
}
// d gelu / dx = Phi(x) + x phi(x).
template <class T> inline T gelu_grad(T x) noexcept {
  const T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
  const T pdf = std::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
  return cdf + x * pdf;
}
// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
template <class T> inline T silu_grad(T x) noexcept {
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

// y = exp(x) over n elements.
template <class T> void exp(const T* x, T* y, index_t n) noexcept { for (index_t i = 0; i < n; ++i) y[i] = std::exp(x[i]); }
// y = sigmoid(x) over n elements.
template <class T> void sigmoid(const T* x, T* y, index_t n) noexcept { for (index_t i = 0; i < n; ++i) y[i] = sigmoid(x[i]); }
// y = tanh(x) over n elements.
template <class T> void tanh(const T* x, T* y, index_t n) noexcept { for (index_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]); }
// y = silu(x) over n elements.
template <class T> void silu(const T* x, T* y, index_t n) noexcept { for (index_t i = 0; i < n; ++i) y[i] = silu(x[i]); }
// y = softplus(x) over n elements.
template <class T> void softplus(const T* x, T* y, index_t n) noexcept { for (index_t i = 0; i < n; ++i) y[i] = softplus(x[i]); }
// y = gelu(x) over n elements.
template <class T> void gelu(const T* x, T* y, index_t n) noexcept { for (index_t i = 0; i < n; ++i) y[i] = gelu(x[i]); }
// dx = dy * gelu'(x)
template <class T> void gelu_backward(const T* x, const T* dy, T* dx, index_t n) noexcept { for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * gelu_grad(x[i]); }
// dx = dy * silu'(x) over n elements.
template <class T> void silu_backward(const T* x, const T* dy, T* dx, index_t n) noexcept { for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * silu_grad(x[i]); }

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
