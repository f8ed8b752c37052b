// Shared pieces of the xsimd kernels (namespace sparsimix::kernels::simd): padded tails,
// horizontal max, and the compile-time arch the public entry points use.
//
// Note [arch-keyed code]: with runtime dispatch (cmake/sparsimixDispatch.cmake) the same
// headers are compiled once per arch with that arch's flags. Any inline function that is
// not keyed on the arch (std::max<float>, a non-template helper, std::exp(float) at -O0...)
// is emitted as a weak symbol by every such TU, and the linker keeps one copy at random:
// baseline code may then run the AVX-512 copy. So everything the kernels call has the
// Arch in its signature (batch<T, Arch> or an Arch tag), and tails go through a padded
// batch rather than scalar libm calls. The dispatch check's `nm` step enforces this.
//
// Note [GCC 12 AVX-512 warnings]: GCC 12's avx512fintrin.h builds _mm512_undefined_* as
// `__m512 __Y = __Y;`, and with -march=native every xsimd AVX-512 op inlined into our code
// reports -W(maybe-)uninitialized there (GCC PR 105593, fixed in 13). A pragma only helps
// when the code is inlined into a function defined inside the pragma's range, so every
// kernel header wraps itself in push/ignored/pop and the whole-array kernels are
// [[gnu::flatten]] (xsimd's out-of-line log1p/max would otherwise be reported from the
// consumer's TU). Arch-templated code elsewhere should do the same.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SPARSIMIX_KERNELS_X86 1
#endif

#include "../../fwd.hpp"

#if defined(SPARSIMIX_KERNELS_RUNTIME_DISPATCH)
#include "../dispatch.hpp"
#endif

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN

// False when xsimd finds no SIMD instruction set for the consumer's flags: the public
// entry points then run the ref/ twins.
inline constexpr bool has_default_arch = !std::is_same_v<xsimd::default_arch, xsimd::unavailable>;

template <class T, class A>
using vec = xsimd::batch<T, A>;

template <class A, class T>
constexpr index_t width() noexcept {
  return static_cast<index_t>(vec<T, A>::size);
}

// Loads p[0, rem) into a batch and fills the other lanes with `fill` (chosen per kernel so
// the padding cannot change the result: 0 for sums, -inf for max and softmax, the mean for
// a centred sum of squares). xsimd 8.1 has no masked load: AVX-512 uses the intrinsics,
// other archs a round trip through a small stack buffer. Either way tails compute with
// exactly the same instructions as the body.
template <class A, class T>
[[gnu::flatten]] vec<T, A> load_tail(A, const T* p, index_t rem, T fill) noexcept {
#if defined(SPARSIMIX_KERNELS_X86)
  // AVX-512's masked loads read only the first rem lanes, with no stack round trip (whose
  // scalar stores followed by a vector load stall store forwarding: a pruned LSTM with 8
  // units per head, whose gate vectors are all tails, ran 1.5x slower than with 16).
  if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, float>)
    return vec<T, A>(_mm512_mask_loadu_ps(_mm512_set1_ps(fill), static_cast<__mmask16>((1u << rem) - 1u), p));
  if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, double>)
    return vec<T, A>(_mm512_mask_loadu_pd(_mm512_set1_pd(fill), static_cast<__mmask8>((1u << rem) - 1u), p));
#endif
  alignas(A::alignment()) T buf[vec<T, A>::size];
  for (index_t i = 0; i < width<A, T>(); ++i) buf[i] = i < rem ? p[i] : fill;
  return vec<T, A>::load_aligned(buf);
}

// Stores the first `rem` lanes of v to p.
template <class A, class T>
[[gnu::flatten]] void store_tail(A, const vec<T, A>& v, T* p, index_t rem) noexcept {
#if defined(SPARSIMIX_KERNELS_X86)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, float>) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << rem) - 1u), v);
    return;
  }
  if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, double>) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << rem) - 1u), v);
    return;
  }
#endif
  alignas(A::alignment()) T buf[vec<T, A>::size];
  v.store_aligned(buf);
  const index_t m = rem < width<A, T>() ? rem : width<A, T>();  // rem < width always; tells GCC's -Warray-bounds
  for (index_t i = 0; i < m; ++i) p[i] = buf[i];
}

// Largest lane (xsimd 8.1 has hadd but no horizontal max).
template <class A, class T>
[[gnu::flatten]] T hmax(A, const vec<T, A>& v) noexcept {
  alignas(A::alignment()) T buf[vec<T, A>::size];
  v.store_aligned(buf);
  T m = buf[0];
  for (index_t i = 1; i < width<A, T>(); ++i) m = buf[i] > m ? buf[i] : m;
  return m;
}

// exp with xsimd's range reduction and polynomial (same accuracy, ~1 ulp). For float on
// AVX-512 the 2^k scaling is one vscalefps: xsimd 8.1's ldexp goes through an integer
// conversion, shift and multiply, and checks both ends of the range with two selects; the
// exps of the selective scan (16 per channel and token) and of softmax are the hot spots.
// Same edge cases: exp(-inf) and anything <= xsimd's minlog is exactly 0 (masked softmax
// keys rely on it), large x overflows to inf, NaN stays NaN.
template <class A, class T>
vec<T, A> fast_exp(const vec<T, A>& x) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && std::is_base_of_v<xsimd::avx512f, A>) {
    const auto c = [](int bits) { return _mm512_castsi512_ps(_mm512_set1_epi32(bits)); };  // xsimd's constants
    const __m512 xv = x;
    // Operand order keeps NaN: (v)maxps/minps return the second operand when one is NaN.
    const __m512 xc = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-88.5f), xv));
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(xc, c(0x3fb8aa3b)),  // 1 / log(2)
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, c(0x3f318000), xc);  // log(2), high part
    r = _mm512_fnmadd_ps(k, c(static_cast<int>(0xb95e8083u)), r);  // low part
    __m512 y = c(0x3ab778cf);
    y = _mm512_fmadd_ps(y, r, c(0x3c098d8b));
    y = _mm512_fmadd_ps(y, r, c(0x3d2aa957));
    y = _mm512_fmadd_ps(y, r, c(0x3e2aa9a5));
    y = _mm512_fmadd_ps(y, r, c(0x3f000000));
    y = _mm512_add_ps(_mm512_fmadd_ps(y, _mm512_mul_ps(r, r), r), c(0x3f800000));
    const __mmask16 keep = _mm512_cmp_ps_mask(xv, _mm512_set1_ps(-88.3762626647949f), _CMP_NLE_UQ);
    return vec<T, A>(_mm512_maskz_mov_ps(keep, _mm512_scalef_ps(y, k)));
  }
#endif
  return xsimd::exp(x);
}

// xsimd 8.1's tanh with its exp replaced by fast_exp (the LSTM cell's c and g gates): a
// polynomial below |x| = 0.625, 1 - 2 / (1 + exp(2|x|)) above, the sign restored last.
template <class A, class T>
vec<T, A> fast_tanh(const vec<T, A>& v) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    using V = vec<T, A>;
    const V one(T(1)), x = xsimd::abs(v), sign = xsimd::bitofsign(v);
    const auto small = x < V(T(0.625));
    V z = one;
    if (xsimd::any(small)) {
      z = xsimd::kernel::detail::tanh_kernel<V>::tanh(x);
      if (xsimd::all(small)) return z ^ sign;
    }
    const V r = xsimd::fma(V(T(-2)), one / (one + fast_exp(x + x)), one);
    return xsimd::select(small, z, r) ^ sign;
  } else {
    return xsimd::tanh(v);
  }
}

// y[i] = f(x[i]) for a batch functor f; the tail pads with zeros (every activation here is
// finite at 0). y may alias x.
template <class A, class T, class F>
void map(A, const T* x, T* y, index_t n, F f) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  index_t i = 0;
  for (; i + w <= n; i += w) f(V::load_unaligned(x + i)).store_unaligned(y + i);
  if (i < n) store_tail(A{}, f(load_tail(A{}, x + i, n - i, T(0))), y + i, n - i);
}

// dx[i] = dy[i] * f(x[i]).
template <class A, class T, class F>
void map_grad(A, const T* x, const T* dy, T* dx, index_t n, F f) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  index_t i = 0;
  for (; i + w <= n; i += w) (V::load_unaligned(dy + i) * f(V::load_unaligned(x + i))).store_unaligned(dx + i);
  if (i < n) {
    const V g = load_tail(A{}, dy + i, n - i, T(0)) * f(load_tail(A{}, x + i, n - i, T(0)));
    store_tail(A{}, g, dx + i, n - i);
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

// Body of every public entry point: the runtime dispatcher when the target opted in
// (SPARSIMIX_KERNELS_RUNTIME_DISPATCH, set by sparsimix_add_dispatched_kernels), else the
// compile-time xsimd::default_arch, else the scalar twin. Dispatch happens once per call.
#if defined(SPARSIMIX_KERNELS_RUNTIME_DISPATCH)
#define SPARSIMIX_KERNELS_ENTRY(name, ...) return dispatched::name(__VA_ARGS__)
#else
#define SPARSIMIX_KERNELS_ENTRY(name, ...)                                             \
  do {                                                                                 \
    if constexpr (simd::has_default_arch) return simd::name(xsimd::default_arch{}, __VA_ARGS__); \
    else return ref::name(__VA_ARGS__);                                                \
  } while (0)
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
