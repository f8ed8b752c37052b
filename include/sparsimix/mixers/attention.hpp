// Multi-head self-attention, timm semantics (timm/models/vision_transformer.py `Attention`;
// Vaswani et al. 2017, arXiv:1706.03762, sec. 3.2; docs/method.md 5.3).  x, y: [B, N, C].
//   qkv = x W_qkv^T + b_qkv  -> q, k, v [B, H, N, d], d = C / H (rows of W_qkv: q | k | v,
//   heads contiguous, docs/formats.md section 2);  a = softmax(q k^T d^-1/2) over keys;
//   attn_out = concat_h(a v)  [B, N, C]  (the distillation target, docs/method.md 1.7);
//   y = attn_out W_proj^T + b_proj.
//
// Token mask (Note [token mask gather], core/token_mask.hpp; docs/formats.md section 1):
// dead keys are excluded from the softmax exactly (it runs over alive keys only), and the
// rows of dead queries are 0 in attn_out, in y (no bias) and in captured maps. Both follow
// from running attention on each sequence's alive tokens gathered in order, which is what
// this class does: dead tokens cost nothing and their dx is 0. A sequence with no alive
// token outputs 0.
//
// Paths: forward(x, y, mask) const runs the online-softmax kernel (no N x N buffer);
// forward_capture also writes the maps [B, H, N, N]; the training forward keeps the
// probabilities [B, H, N, N] in the cache (simple, and fast at N ~ 197) for backward.
// The const forwards lease their workspaces from a pool (core/workspace_pool.hpp): several
// threads may run them on one object at once, and a warm object allocates nothing.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "../core/error.hpp"
#include "../core/linalg.hpp"
#include "../core/param.hpp"
#include "../core/parallel.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "../core/workspace_pool.hpp"
#include "../core/token_mask.hpp"
#include "../core/token_packing.hpp"
#include "../kernels/attention.hpp"
#include "traits.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Multi-head self-attention as in timm's ViT (header comment): the teachers' token mixer.
template <class T = float>
class Attention {
 public:
  using scalar_type = T;  // T, for generic code over mixers

  // The width and head count (the mixer has no other settings).
  struct config {
    index_t dim = 0;        // C
    index_t num_heads = 1;  // H; C % H == 0
  };

  // What backward reads. Rows are "compact": each sequence's alive tokens in order (all
  // tokens without a mask), sequence b owning rows [seg[b], seg[b+1]).
  struct cache_type {
    token_packing pack;     // B, N; sequence b owns compact rows [pack.offset(b), pack.offset(b + 1))
    Tensor<index_t> poff;   // [B + 1] offset of sequence b's [H, n_b, n_b] block in probs
    Tensor<T> x;            // [T, C] input rows
    Tensor<T> qkv;          // [T, 3C]
    Tensor<T> probs;        // concatenated [H, n_b, n_b] softmax probabilities
    Tensor<T> o;            // [T, C] pre-proj output
    Tensor<T> o_full;       // [B, N, C] pre-proj output with 0 at dead rows (masked only)

    // The pre-proj output attn_out [B, N, C] (docs/method.md 1.7), 0 at dead rows.
    ConstSeq<T> attn_out() const {
      if (pack.masked()) return o_full.view();
      return ConstSeq<T>(o.data(), Shape{pack.batch(), pack.tokens(), o.size(1)});
    }
  };

  // Allocates the parameters (zero until init); throws config_error unless H > 0 divides C > 0.
  explicit Attention(const config& cfg);

  // C, the token width.
  index_t dim() const noexcept { return cfg_.dim; }
  // H, the number of heads.
  index_t num_heads() const noexcept { return cfg_.num_heads; }
  // d = C / H, the width of one head.
  index_t head_dim() const noexcept { return cfg_.dim / cfg_.num_heads; }
  // Multiply-adds of an inference forward over n tokens: qkv and proj, 4 n C^2, then scores
  // and weighted values, 2 n^2 C.
  index_t multiply_adds(index_t n) const noexcept { return 4 * n * cfg_.dim * cfg_.dim + 2 * n * n * cfg_.dim; }
  // The softmax temperature d^-1/2.
  T scale() const noexcept { return T(1) / std::sqrt(static_cast<T>(head_dim())); }
  // The configuration it was built with.
  const config& cfg() const noexcept { return cfg_; }

  // timm ViT init (init_weights_vit_timm): Linear weights trunc_normal(std 0.02) with timm's
  // absolute bounds [-2, 2] (at std 0.02 effectively a plain normal), biases 0.
  void init(Rng& rng);

  // The parameters under timm's names: qkv.weight, qkv.bias, proj.weight, proj.bias.
  ParamList<T> parameters();

  // Inference: online softmax, no N x N buffer.
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const;

  // Inference that also writes the attention maps [B, H, N, N] (rows of dead queries and
  // columns of dead keys are 0; other rows sum to 1), e.g. for sparsity analysis.
  void forward_capture(ConstSeq<T> x, Seq<T> y, TensorView<T> maps, const TokenMask* mask) const;

  // Runs only up to the pre-proj output attn_out [B, N, C] (the distillation target of
  // docs/method.md 1.7): concat_h(softmax(q k^T d^-1/2) v), 0 at dead rows.
  void forward_pre_proj(ConstSeq<T> x, Seq<T> attn_out, const TokenMask* mask) const;

  // Both from one pass: attn_out as forward_pre_proj writes it and y as forward does, bit for
  // bit (distillation captures the teacher's pre-proj outputs without a second attention).
  void forward_pre_proj(ConstSeq<T> x, Seq<T> attn_out, Seq<T> y, const TokenMask* mask) const;

  // y = attn_out W_proj^T + b_proj (0 at dead rows): the rest of the forward from a pre-proj
  // output, bit for bit what forward gives on the input that produced attn_out.
  void project(ConstSeq<T> attn_out, Seq<T> y, const TokenMask* mask) const;

  // Training: keeps x, qkv, the probabilities and attn_out (cache.attn_out()) for backward.
  void forward(ConstSeq<T> x, Seq<T> y, cache_type& cache, const TokenMask* mask);

  // Accumulates parameter gradients; writes dx [B, N, C] (0 at dead rows).
  void backward(const cache_type& cache, ConstSeq<T> dy, Seq<T> dx);

 private:
  enum class mode { online, capture };

  static index_t sq(index_t n) noexcept { return n * n; }

  void check_io(const char* where, ConstSeq<T> x, const char* yname, const Shape& y, const TokenMask* mask) const {
    check_shape(where, "x", x.shape(), {-1, -1, cfg_.dim});
    check_shape(where, yname, y, {x.size(0), x.size(1), cfg_.dim});
    if (mask) mask->check_fits(where, x.shape());
  }

  struct workspace {  // one const forward's buffers
    token_packing pack;
    Tensor<T> x, qkv, o, y, scratch;
  };
  struct grad_workspace {  // the training forward's and backward's buffers
    Tensor<T> y, dy, dout, dqkv, dp, dx;
  };

  // Inference up to attn_out (compact rows in w.o). With mode::capture, also fills
  // maps [B, H, N, N].
  void run_pre_proj(ConstSeq<T> x, const TokenMask* mask, mode md, T* maps, workspace& w) const;

  // y = attn_out W_proj^T + b_proj from w.o; 0 at dead rows.
  void finish_proj(T* y, workspace& w) const;

  config cfg_;
  Tensor<T> w_qkv_, b_qkv_, w_proj_, b_proj_;
  Tensor<T> g_w_qkv_, g_b_qkv_, g_w_proj_, g_b_proj_;
  workspace_pool<workspace> pool_;
  grad_workspace gw_;
};

template <class T>
Attention<T>::Attention(const config& cfg) : cfg_(cfg) {
  if (cfg.dim <= 0) throw config_error(detail::concat("Attention: dim is ", cfg.dim, ", expected > 0"));
  if (cfg.num_heads <= 0)
    throw config_error(detail::concat("Attention: num_heads is ", cfg.num_heads, ", expected > 0"));
  if (cfg.dim % cfg.num_heads != 0)
    throw config_error(detail::concat("Attention: dim ", cfg.dim, " is not divisible by num_heads ",
                                      cfg.num_heads));
  const index_t C = cfg.dim;
  w_qkv_ = Tensor<T>(Shape{3 * C, C});
  b_qkv_ = Tensor<T>(Shape{3 * C});
  w_proj_ = Tensor<T>(Shape{C, C});
  b_proj_ = Tensor<T>(Shape{C});
  g_w_qkv_ = Tensor<T>(Shape{3 * C, C});
  g_b_qkv_ = Tensor<T>(Shape{3 * C});
  g_w_proj_ = Tensor<T>(Shape{C, C});
  g_b_proj_ = Tensor<T>(Shape{C});
}

template <class T>
void Attention<T>::init(Rng& rng) {
  for (Tensor<T>* w : {&w_qkv_, &w_proj_})
    for (T& e : *w) {
      double z;
      do z = rng.normal(0.0, 0.02);
      while (z < -2.0 || z > 2.0);
      e = static_cast<T>(z);
    }
  b_qkv_.zero();
  b_proj_.zero();
}

template <class T>
ParamList<T> Attention<T>::parameters() {
  return {{"qkv.weight", w_qkv_.view(), g_w_qkv_.view(), true},
          {"qkv.bias", b_qkv_.view(), g_b_qkv_.view(), false},
          {"proj.weight", w_proj_.view(), g_w_proj_.view(), true},
          {"proj.bias", b_proj_.view(), g_b_proj_.view(), false}};
}

template <class T>
void Attention<T>::forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const {
  check_io("Attention::forward", x, "y", y.shape(), mask);
  const auto w = pool_.acquire();
  run_pre_proj(x, mask, mode::online, nullptr, *w);
  finish_proj(y.data(), *w);
}

template <class T>
void Attention<T>::forward_capture(ConstSeq<T> x, Seq<T> y, TensorView<T> maps, const TokenMask* mask) const {
  check_io("Attention::forward_capture", x, "y", y.shape(), mask);
  check_shape("Attention::forward_capture", "maps", maps.shape(),
              {x.size(0), cfg_.num_heads, x.size(1), x.size(1)});
  const auto w = pool_.acquire();
  run_pre_proj(x, mask, mode::capture, maps.data(), *w);
  finish_proj(y.data(), *w);
}

template <class T>
void Attention<T>::forward_pre_proj(ConstSeq<T> x, Seq<T> attn_out, const TokenMask* mask) const {
  check_io("Attention::forward_pre_proj", x, "attn_out", attn_out.shape(), mask);
  const auto w = pool_.acquire();
  run_pre_proj(x, mask, mode::online, nullptr, *w);
  w->pack.scatter(w->o.data(), attn_out.data(), cfg_.dim);
}

template <class T>
void Attention<T>::forward_pre_proj(ConstSeq<T> x, Seq<T> attn_out, Seq<T> y, const TokenMask* mask) const {
  check_io("Attention::forward_pre_proj", x, "attn_out", attn_out.shape(), mask);
  check_shape("Attention::forward_pre_proj", "y", y.shape(), {x.size(0), x.size(1), cfg_.dim});
  const auto w = pool_.acquire();
  run_pre_proj(x, mask, mode::online, nullptr, *w);
  w->pack.scatter(w->o.data(), attn_out.data(), cfg_.dim);
  finish_proj(y.data(), *w);
}

template <class T>
void Attention<T>::project(ConstSeq<T> attn_out, Seq<T> y, const TokenMask* mask) const {
  check_io("Attention::project", attn_out, "y", y.shape(), mask);
  const auto w = pool_.acquire();
  const index_t rows = w->pack.plan(mask, attn_out.size(0), attn_out.size(1));
  w->o.resize(Shape{rows, cfg_.dim});
  w->pack.gather(attn_out.data(), w->o.data(), cfg_.dim);
  finish_proj(y.data(), *w);
}

template <class T>
void Attention<T>::forward(ConstSeq<T> x, Seq<T> y, cache_type& cache, const TokenMask* mask) {
  const char* where = "Attention::forward";
  check_io(where, x, "y", y.shape(), mask);
  const index_t B = x.size(0), N = x.size(1), C = cfg_.dim, H = cfg_.num_heads, d = head_dim();
  const index_t rows = cache.pack.plan(mask, B, N);
  cache.x.resize(Shape{rows, C});
  cache.pack.gather(x.data(), cache.x.data(), C);
  cache.qkv.resize(Shape{rows, 3 * C});
  linear_forward(cache.x.data(), w_qkv_.data(), b_qkv_.data(), cache.qkv.data(), rows, C, 3 * C);
  cache.poff.resize(Shape{B + 1});
  const index_t* seg = cache.pack.offsets();
  index_t* poff = cache.poff.data();
  poff[0] = 0;
  for (index_t b = 0; b < B; ++b) poff[b + 1] = poff[b] + H * sq(seg[b + 1] - seg[b]);
  cache.probs.resize(Shape{poff[B]});
  cache.o.resize(Shape{rows, C});
  const T sc = scale();
  const T* qkv = cache.qkv.data();
  T* probs = cache.probs.data();
  T* o = cache.o.data();
  parallel_for(B * H, [&](index_t i) {
    const index_t b = i / H, h = i % H, n = seg[b + 1] - seg[b];
    if (n == 0) return;
    const T* base = qkv + seg[b] * 3 * C + h * d;
    T* p = probs + poff[b] + h * n * n;
    kernels::attention_probs(base, base + C, 3 * C, n, d, sc, p);
    kernels::attention_apply(p, base + 2 * C, 3 * C, o + seg[b] * C + h * d, C, n, d);
  });
  if (cache.pack.masked()) {
    cache.o_full.resize(Shape{B, N, C});
    cache.pack.scatter(cache.o.data(), cache.o_full.data(), C);
    gw_.y.resize(Shape{rows, C});
    linear_forward(cache.o.data(), w_proj_.data(), b_proj_.data(), gw_.y.data(), rows, C, C);
    cache.pack.scatter(gw_.y.data(), y.data(), C);
  } else {
    linear_forward(cache.o.data(), w_proj_.data(), b_proj_.data(), y.data(), rows, C, C);
  }
}

template <class T>
void Attention<T>::backward(const cache_type& cache, ConstSeq<T> dy, Seq<T> dx) {
  const char* where = "Attention::backward";
  const index_t B = cache.pack.batch(), N = cache.pack.tokens(), C = cfg_.dim, H = cfg_.num_heads, d = head_dim();
  if (cache.x.rank() != 2 || cache.x.size(1) != C)
    throw shape_error(detail::concat(where, ": cache is empty or from another mixer (x is ", cache.x.shape().str(),
                                     ", expected [*, ", C, "])"));
  check_shape(where, "dy", dy.shape(), {B, N, C});
  check_shape(where, "dx", dx.shape(), {B, N, C});
  const index_t rows = cache.x.size(0);
  const index_t* seg = cache.pack.offsets();
  const index_t* poff = cache.poff.data();
  // dy rows of dead tokens are ignored: y is constant 0 there.
  const T* dyc = dy.data();
  if (cache.pack.masked()) {
    gw_.dy.resize(Shape{rows, C});
    cache.pack.gather(dy.data(), gw_.dy.data(), C);
    dyc = gw_.dy.data();
  }
  gw_.dout.resize(Shape{rows, C});
  linear_backward(cache.o.data(), w_proj_.data(), dyc, gw_.dout.data(), g_w_proj_.data(), g_b_proj_.data(), rows,
                  C, C);
  gw_.dqkv.resize(Shape{rows, 3 * C});
  gw_.dp.resize(Shape{poff[B]});
  const T sc = scale();
  const T* qkv = cache.qkv.data();
  const T* probs = cache.probs.data();
  const T* dout = gw_.dout.data();
  T* dqkv = gw_.dqkv.data();
  T* dp = gw_.dp.data();
  parallel_for(B * H, [&](index_t i) {
    const index_t b = i / H, h = i % H, n = seg[b + 1] - seg[b];
    if (n == 0) return;
    const index_t off = seg[b] * 3 * C + h * d;
    const index_t po = poff[b] + h * n * n;
    kernels::attention_backward(probs + po, qkv + off, qkv + off + C, qkv + off + 2 * C, 3 * C,
                                dout + seg[b] * C + h * d, C, n, d, sc, dp + po, dqkv + off, dqkv + off + C,
                                dqkv + off + 2 * C, 3 * C);
  });
  if (cache.pack.masked()) {
    gw_.dx.resize(Shape{rows, C});
    linear_backward(cache.x.data(), w_qkv_.data(), dqkv, gw_.dx.data(), g_w_qkv_.data(), g_b_qkv_.data(), rows, C,
                    3 * C);
    cache.pack.scatter(gw_.dx.data(), dx.data(), C);
  } else {
    linear_backward(cache.x.data(), w_qkv_.data(), dqkv, dx.data(), g_w_qkv_.data(), g_b_qkv_.data(), rows, C,
                    3 * C);
  }
}

template <class T>
void Attention<T>::run_pre_proj(ConstSeq<T> x, const TokenMask* mask, mode md, T* maps, workspace& w) const {
  const index_t B = x.size(0), N = x.size(1), C = cfg_.dim, H = cfg_.num_heads, d = head_dim();
  const index_t rows = w.pack.plan(mask, B, N);
  const T* xs = x.data();
  if (w.pack.masked()) {
    w.x.resize(Shape{rows, C});
    w.pack.gather(x.data(), w.x.data(), C);
    xs = w.x.data();
  }
  w.qkv.resize(Shape{rows, 3 * C});
  linear_forward(xs, w_qkv_.data(), b_qkv_.data(), w.qkv.data(), rows, C, 3 * C);
  w.o.resize(Shape{rows, C});
  const index_t* seg = w.pack.offsets();
  const T sc = scale();
  const T* qkv = w.qkv.data();
  T* o = w.o.data();
  if (md == mode::online) {
    constexpr index_t ss = kernels::attention_online_scratch_size<T>();
    w.scratch.resize(Shape{B * H, ss});
    T* scratch = w.scratch.data();
    parallel_for(B * H, [&](index_t i) {
      const index_t b = i / H, h = i % H, n = seg[b + 1] - seg[b];
      if (n == 0) return;
      const T* base = qkv + seg[b] * 3 * C + h * d;
      kernels::attention_online(base, base + C, base + 2 * C, 3 * C, o + seg[b] * C + h * d, C, n, d, sc,
                                scratch + i * ss);
    });
    return;
  }
  // Capture: unmasked sequences write their probabilities straight into maps; masked
  // ones go through a compact [n_b, n_b] buffer scattered into zeroed rows/columns.
  index_t per_task = 0;
  if (w.pack.masked()) {
    for (index_t b = 0; b < B; ++b) per_task = std::max(per_task, sq(seg[b + 1] - seg[b]));
    w.scratch.resize(Shape{B * H, per_task});
    std::memset(static_cast<void*>(maps), 0, static_cast<std::size_t>(B * H * N * N) * sizeof(T));
  }
  T* scratch = w.scratch.data();
  const index_t* idx = w.pack.sources();
  const bool masked = w.pack.masked();
  parallel_for(B * H, [&](index_t i) {
    const index_t b = i / H, h = i % H, n = seg[b + 1] - seg[b];
    if (n == 0) return;
    const T* base = qkv + seg[b] * 3 * C + h * d;
    T* map = maps + i * N * N;
    T* p = masked ? scratch + i * per_task : map;
    kernels::attention_probs(base, base + C, 3 * C, n, d, sc, p);
    kernels::attention_apply(p, base + 2 * C, 3 * C, o + seg[b] * C + h * d, C, n, d);
    if (masked) {
      const index_t* tok = idx + seg[b];  // flat b * N + n of the alive tokens
      for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < n; ++c) map[(tok[r] - b * N) * N + (tok[c] - b * N)] = p[r * n + c];
    }
  });
}

template <class T>
void Attention<T>::finish_proj(T* y, workspace& w) const {
  const index_t C = cfg_.dim;
  const index_t rows = w.pack.rows();
  if (!w.pack.masked()) {
    linear_forward(w.o.data(), w_proj_.data(), b_proj_.data(), y, rows, C, C);
    return;
  }
  w.y.resize(Shape{rows, C});
  linear_forward(w.o.data(), w_proj_.data(), b_proj_.data(), w.y.data(), rows, C, C);
  w.pack.scatter(w.y.data(), y, C);
}

// ---- registry traits (mixers/traits.hpp) --------------------------------------------------
// No options of its own: the width and the heads come from the model.
template <class T>
struct mixer_traits<Attention<T>> : dims_only_traits<Attention<T>> {
  static constexpr std::string_view kind = "attention";  // the registry and config name
};

// Compiled in src/compiled/mixers.cpp when SPARSIMIX_EXTERN_TEMPLATES is set (fwd.hpp).
SPARSIMIX_EXTERN_TEMPLATE(class Attention<float>)
SPARSIMIX_EXTERN_TEMPLATE(class Attention<double>)

SPARSIMIX_ABI_END
}  // namespace sparsimix
