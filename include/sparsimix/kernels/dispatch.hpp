// Runtime dispatch of the kernels (opt-in; STYLE.md section 5, TOOLCHAIN.md "xsimd 8.1").
//
// A target that calls sparsimix_add_dispatched_kernels(<target>) (cmake/sparsimixDispatch.cmake)
// gets one object per arch (sse2, fma3<avx2>, avx512bw), each compiled with that arch's
// flags and holding the explicit instantiations below, plus a dispatcher object compiled
// with the target's baseline flags that picks an arch once, with GCC's
// __builtin_cpu_supports (xsimd 8.1's own detection is wrong on these machines). The target
// is compiled with SPARSIMIX_KERNELS_RUNTIME_DISPATCH, which routes every public entry
// point (kernels::gelu, kernels::softmax_rows, ...) to kernels::dispatched::*.
// Without the opt-in nothing here is compiled and the entry points use xsimd::default_arch.
#pragma once
#include "../fwd.hpp"

// Strips the parentheses of a parenthesised list: (a, b) -> a, b.
#define SPARSIMIX_KERNELS_UNPAREN(...) __VA_ARGS__

// X(name, return type, (parameters), (arguments)) for every dispatched kernel, for scalar T:
// every public entry point of the kernels except attention's (their matrix products are
// Eigen's, which is not keyed on the arch: Note [arch-keyed code]; they follow the compile-
// time arch). Keep in step with the public entry points; the dispatch test calls every one.
#define SPARSIMIX_KERNELS_DISPATCH_LIST(X, T)                                                                   \
  X(exp, void, (const T* x, T* y, index_t n), (x, y, n))                                                        \
  X(sigmoid, void, (const T* x, T* y, index_t n), (x, y, n))                                                    \
  X(tanh, void, (const T* x, T* y, index_t n), (x, y, n))                                                       \
  X(silu, void, (const T* x, T* y, index_t n), (x, y, n))                                                       \
  X(softplus, void, (const T* x, T* y, index_t n), (x, y, n))                                                   \
  X(gelu, void, (const T* x, T* y, index_t n), (x, y, n))                                                       \
  X(gelu_backward, void, (const T* x, const T* dy, T* dx, index_t n), (x, dy, dx, n))                           \
  X(silu_backward, void, (const T* x, const T* dy, T* dx, index_t n), (x, dy, dx, n))                           \
  X(softmax_rows, void, (const T* x, T* y, index_t rows, index_t cols), (x, y, rows, cols))                     \
  X(softmax_rows_backward, void, (const T* y, const T* dy, T* dx, index_t rows, index_t cols),                  \
    (y, dy, dx, rows, cols))                                                                                    \
  X(layernorm_forward, void,                                                                                    \
    (const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, index_t rows, index_t cols, T eps),     \
    (x, gamma, beta, y, mean, rstd, rows, cols, eps))                                                           \
  X(layernorm_backward, void,                                                                                   \
    (const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dgamma, T* dbeta,         \
     index_t rows, index_t cols),                                                                               \
    (x, gamma, mean, rstd, dy, dx, dgamma, dbeta, rows, cols))                                                  \
  X(add_bias, void, (T* y, const T* bias, index_t rows, index_t cols), (y, bias, rows, cols))                   \
  X(bias_gelu, void, (T* y, const T* bias, index_t rows, index_t cols, T* pre), (y, bias, rows, cols, pre))     \
  X(sum, T, (const T* x, index_t n), (x, n))                                                                    \
  X(dot, T, (const T* a, const T* b, index_t n), (a, b, n))                                                     \
  X(max, T, (const T* x, index_t n), (x, n))                                                                    \
  X(sum_squares, T, (const T* x, index_t n), (x, n))                                                            \
  X(lstm_hh_product, void, (const T* hs, const T* wt, T* hh, index_t B, index_t d, index_t G),                 \
    (hs, wt, hh, B, d, G))                                                                                      \
  X(lstm_cell_forward, void, (T* gates, const T* c_prev, T* c, T* h, index_t d), (gates, c_prev, c, h, d))    \
  X(lstm_cell_backward, void,                                                                                   \
    (const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dpre, index_t d),                      \
    (gates, c_prev, c, dh, dc, dpre, d))                                                                        \
  X(lstm_recurrence_forward, void,                                                                              \
    (const lstm_problem<T>& p, T* gates, const T* wt, T* cells, T* hid, index_t ldh, T* hh, T* hs, T* cs),      \
    (p, gates, wt, cells, hid, ldh, hh, hs, cs))                                                                \
  X(lstm_recurrence_backward, void,                                                                             \
    (const lstm_problem<T>& p, const T* gates, const T* cells, const T* dhid, index_t ldh, const T* whh, T* dg, \
     T* dgs, T* dh, T* dc, T* zeros),                                                                           \
    (p, gates, cells, dhid, ldh, whh, dg, dgs, dh, dc, zeros))                                                  \
  X(conv1d_depthwise_forward, void,                                                                             \
    (const T* x, index_t ldx, const T* wt, const T* bias, T* xc, index_t L, index_t Di, index_t K, bool reverse), \
    (x, ldx, wt, bias, xc, L, Di, K, reverse))                                                                  \
  X(conv1d_depthwise_backward, void,                                                                            \
    (const T* x, index_t ldx, const T* wt, const T* gxc, T* gx, T* gwt, T* gb, index_t L, index_t Di, index_t K, \
     bool reverse),                                                                                             \
    (x, ldx, wt, gxc, gx, gwt, gb, L, Di, K, reverse))                                                          \
  X(scan_forward, void, (const scan_problem<T>& p, T* h, T* states, T* y_pre, T* y, const T* gate, T scale),    \
    (p, h, states, y_pre, y, gate, scale))                                                                      \
  X(scan_backward, void,                                                                                        \
    (const scan_problem<T>& p, const T* states, const T* gy, T* lam, T* acc, T* gu, T* gdelta, T* gbc,          \
     index_t ldgbc, T* ga, T* gd),                                                                              \
    (p, states, gy, lam, acc, gu, gdelta, gbc, ldgbc, ga, gd))

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN
template <class T>
struct scan_problem;  // kernels/ref/scan.hpp
template <class T>
struct lstm_problem;  // kernels/ref/lstm.hpp
SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels

namespace sparsimix::kernels::dispatched {
SPARSIMIX_ABI_BEGIN

// Declares one dispatched entry point (an X for SPARSIMIX_KERNELS_DISPATCH_LIST).
#define SPARSIMIX_KERNELS_DISPATCH_DECLARE(name, ret, params, args) ret name params noexcept;
SPARSIMIX_KERNELS_DISPATCH_LIST(SPARSIMIX_KERNELS_DISPATCH_DECLARE, float)
SPARSIMIX_KERNELS_DISPATCH_LIST(SPARSIMIX_KERNELS_DISPATCH_DECLARE, double)
#undef SPARSIMIX_KERNELS_DISPATCH_DECLARE

// The arch in use: "sse2", "fma3<avx2>" or "avx512bw" (xsimd's names).
const char* arch_name() noexcept;
// Archs compiled into this program, comma-separated, best first.
const char* compiled_archs() noexcept;
// Whether `name` is compiled in and this CPU (and OS) supports it.
bool arch_available(const char* name) noexcept;
// Forces an arch (tests, benchmarks); "best" restores the automatic choice. Returns false,
// changing nothing, when the arch is not available. Not meant to race with kernel calls.
bool set_arch(const char* name) noexcept;

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::dispatched

// Explicit instantiation definitions (one arch TU) and declarations (the dispatcher TU) of
// every dispatched kernel for Arch, float and double.
#define SPARSIMIX_KERNELS_INSTANTIATE_ONE(name, ret, params, args) \
  template ret sparsimix::kernels::simd::name(SPARSIMIX_KERNELS_ARCH, SPARSIMIX_KERNELS_UNPAREN params) noexcept;
// The declaration twin of SPARSIMIX_KERNELS_INSTANTIATE_ONE: the dispatcher TU links the
// arch TUs' instantiations instead of making its own.
#define SPARSIMIX_KERNELS_EXTERN_ONE(name, ret, params, args) \
  extern template ret sparsimix::kernels::simd::name(SPARSIMIX_KERNELS_ARCH, SPARSIMIX_KERNELS_UNPAREN params) noexcept;
