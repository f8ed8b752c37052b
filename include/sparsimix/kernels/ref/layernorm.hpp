// Scalar reference twins of kernels/layernorm.hpp. x, y, dy, dx: [rows, cols]; gamma, beta,
// dgamma, dbeta: [cols]; mean, rstd: [rows]. Ba et al. 2016, arXiv:1607.06450, eq. 4;
// biased variance and eps inside the sqrt, as torch.nn.LayerNorm.
#pragma once
#include <cmath>

#include "../../fwd.hpp"

namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// y = (x - mean) * rstd * gamma + beta, rstd = 1 / sqrt(var + eps). Two passes (mean, then
// the centred sum of squares) rather than E[x^2] - E[x]^2, which cancels for large means.
// gamma/beta nullptr: no affine (torch's elementwise_affine=False). mean/rstd nullptr:
// inference, nothing saved. y may alias x.
template <class T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, index_t rows,
                       index_t cols, T eps) noexcept {
  SPARSIMIX_ASSERT(cols > 0 || rows == 0);  // a row needs at least one feature
  const T inv_n = T(1) / static_cast<T>(cols);
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T s = 0;
    for (index_t c = 0; c < cols; ++c) s += xr[c];
    const T mu = s * inv_n;
    T q = 0;
    for (index_t c = 0; c < cols; ++c) q += (xr[c] - mu) * (xr[c] - mu);
    const T rs = T(1) / std::sqrt(q * inv_n + eps);
    for (index_t c = 0; c < cols; ++c) {
      const T g = gamma ? gamma[c] : T(1);
      const T b = beta ? beta[c] : T(0);
      yr[c] = (xr[c] - mu) * rs * g + b;
    }
    if (mean) mean[r] = mu;
    if (rstd) rstd[r] = rs;
  }
}

// With xhat = (x - mean) * rstd and g = dy * gamma:
//   dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))
//   dgamma += sum_r dy * xhat,  dbeta += sum_r dy   (either may be nullptr)
// mean/rstd are the forward's saved statistics. gamma nullptr: 1.
template <class T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dgamma,
                        T* dbeta, index_t rows, index_t cols) noexcept {
  SPARSIMIX_ASSERT(cols > 0 || rows == 0);  // a row needs at least one feature
  const T inv_n = T(1) / static_cast<T>(cols);
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* gr = dy + r * cols;
    T* dr = dx + r * cols;
    const T mu = mean[r], rs = rstd[r];
    T sg = 0, sgx = 0;
    for (index_t c = 0; c < cols; ++c) {
      const T xh = (xr[c] - mu) * rs;
      const T g = gr[c] * (gamma ? gamma[c] : T(1));
      sg += g;
      sgx += g * xh;
      if (dgamma) dgamma[c] += gr[c] * xh;
      if (dbeta) dbeta[c] += gr[c];
    }
    const T a = sg * inv_n, b = sgx * inv_n;
    for (index_t c = 0; c < cols; ++c) {
      const T xh = (xr[c] - mu) * rs;
      const T g = gr[c] * (gamma ? gamma[c] : T(1));
      dr[c] = rs * (g - a - xh * b);
    }
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
