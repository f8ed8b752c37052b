// Elementwise activations over contiguous arrays; y may alias x.
// PLACEHOLDER until the xsimd versions land: forwards to the scalar twins in ref/.
#pragma once
#include "ref/activations.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

template <class T> void exp(const T* x, T* y, index_t n) noexcept { ref::exp(x, y, n); }
template <class T> void sigmoid(const T* x, T* y, index_t n) noexcept { ref::sigmoid(x, y, n); }
template <class T> void tanh(const T* x, T* y, index_t n) noexcept { ref::tanh(x, y, n); }
template <class T> void silu(const T* x, T* y, index_t n) noexcept { ref::silu(x, y, n); }
template <class T> void softplus(const T* x, T* y, index_t n) noexcept { ref::softplus(x, y, n); }
template <class T> void gelu(const T* x, T* y, index_t n) noexcept { ref::gelu(x, y, n); }
template <class T> void gelu_backward(const T* x, const T* dy, T* dx, index_t n) noexcept { ref::gelu_backward(x, dy, dx, n); }
template <class T> void silu_backward(const T* x, const T* dy, T* dx, index_t n) noexcept { ref::silu_backward(x, dy, dx, n); }

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
