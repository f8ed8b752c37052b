// A-ViT adaptive token halting (Yin et al., CVPR 2022, arXiv:2112.07658, sec. 3; docs/method.md
// 3.1-3.4, 6.12-6.13; the contract is docs/formats.md section 1, paragraph "halting").
//
// The halting controller across the L blocks of one forward pass (the masking itself is
// core's zero_dead_tokens and the tape's mask_tokens; the mixers honour the mask through
// token packing):
//      reset(B, N, L);                       // m = 1 everywhere, c = 0
//      for l in 0..L-1:  y_l = block_l(x * m) * m;  update(l, y_l);  x = y_l;
//    update computes h = sigmoid(gamma * y_l[..., 0] - beta) (h = 1 at l = L-1), c += h,
//    and a patch token dies once c >= 1 - eps. The CLS token (n = 0) never halts: its h is
//    ignored, every block processes it. mask() is the TokenMask the next block honours
//    (Note [token mask gather], core/token_mask.hpp).
//
// Losses (patch tokens n >= 1 only, P = B * (N - 1) of them; docs/formats.md section 1):
//  * ponder (docs/method.md 3.2, 3.4): rho_k = N_k + r_k, N_k = depth (blocks that processed k,
//    1..L), r_k = 1 - sum_{l < N_k - 1} h_k^l (the remainder before the halting block);
//    ponder_loss = mean over the P patch tokens of rho.
//  * distributional prior (docs/method.md 3.4, FAR's patch-only variant): H_l = mean over the P
//    patch tokens of the RAW score h^l = sigmoid(gamma y_l[..., 0] - beta), also at the last
//    block (A-ViT's act_vision_transformer.py appends the layer mean before overwriting the
//    last h with 1, and the target puts little mass at the last block, which a forced 1
//    could never match); dead tokens count with their score on the masked (zero) output.
//    p = H / sum H, q = clamp(p, 0.01, 0.99), r = q / sum q (FAR renormalises),
//    KL = KLDivLoss(reduction='batchmean')(log r, t) = (1/L) sum_l t_l (log t_l - log r_l)
//    (terms with t_l = 0 are 0), t = prior_target(L, td): the Gaussian of A-ViT's
//    get_distribution_target with target depth td, by default ceil(2L/3) (docs/method.md 6.13; 8 for L = 12),
//    sigma 1, buffer 0.02: t_l = pdf(l) * 0.98 / sum_{l < td} pdf(l), NOT normalised.
//  * loss_grad(alpha_p, alpha_d) = d(alpha_p * ponder + alpha_d * KL) / d y_l[b, n, 0], the
//    partial derivative through h only, w.r.t. the value handed to update (the masked
//    output): 0 for CLS, and the ponder part is 0 where h was forced to 1 (last block) or
//    after the token died. A model adds it to channel 0 of its gradient of y_l; the masking
//    op's backward then zeroes dead tokens. The mask itself is piecewise constant (no gradient).
//    Defaults (docs/method.md 6.13): alpha_p 5e-4, alpha_d 1e-3.
//
// Everything the controller keeps is [L, B, N] scalars (double inside, so float models
// reproduce the thresholds of a float64 reference). Only the first reset() for a shape
// allocates; update() never does.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../core/token_mask.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The A-ViT training losses' weights and the prior's centre (docs/method.md 3.4, 6.13).
struct halting_loss_options {
  double ponder_weight = 5e-4;  // alpha_p: larger halts tokens earlier (sparser)
  double prior_weight = 1e-3;   // alpha_d: pull of the halting-depth distribution towards the prior
  index_t target_depth = 0;     // centre of the Gaussian prior, 1..L; 0: ceil(2L/3) (8 of 12)
  // The prior's centre for a model of `layers` blocks: target_depth, or ceil(2L/3) when 0.
  index_t effective_target_depth(index_t layers) const noexcept {
    return target_depth > 0 ? target_depth : (2 * layers + 2) / 3;
  }
};

// A-ViT's halting state across the blocks of one forward pass: scores, masks and losses.
template <class T = float>
class HaltingController {
 public:
  using scalar_type = T;  // T, the model's scalar type

  // The halting gate h = sigmoid(gamma * y[..., 0] - beta) and its threshold.
  struct config {
    double gamma = 10;   // gate_scale
    double beta = 30;    // gate_center (Tiny; 75 for Small)
    double eps = 0.01;   // a patch token dies once its cumulative score c >= 1 - eps
  };

  // Throws config_error for a non-finite gate or eps outside (0, 1).
  explicit HaltingController(const config& cfg);

  // The gate it was built with.
  const config& cfg() const noexcept { return cfg_; }

  // Starts a forward pass of L blocks over [B, N] tokens (token 0 is CLS): all alive.
  void reset(index_t batch, index_t tokens, index_t layers);

  // y: [B, N, C], block `layer`'s masked output (layers in order 0, 1, ..., L-1).
  void update(index_t layer, ConstSeq<T> y);

  // L, the blocks of the current forward pass.
  index_t layers() const noexcept { return L_; }
  // Blocks updated so far in this pass (L once the forward is complete).
  index_t layers_done() const noexcept { return done_; }
  // The alive mask for the next block (after update(l): the tokens block l + 1 processes).
  const TokenMask& mask() const noexcept { return mask_; }
  // [L, B, N]: 1 where block l processed the token (the mask it ran under).
  const Tensor<std::uint8_t>& layer_masks() const noexcept { return alive_; }
  // [L, B, N]: the raw scores sigmoid(gamma y_l[..., 0] - beta) (not forced to 1 at the end).
  const Tensor<double>& scores() const noexcept { return h_; }
  // Cumulative halting sum c [B, N] (CLS: 0, it is not accumulated).
  const Tensor<double>& cumulative() const noexcept { return c_; }

  // [B, N]: blocks that processed each token, 1..L (L for CLS).
  Tensor<std::int64_t> depth() const;

  // Fraction of patch tokens block `layer` processed (FAR statistics.py keep_ratio).
  double keep_ratio(index_t layer) const;

  // ponder_loss = mean over patch tokens of rho = depth + remainder (header comment).
  T ponder_loss() const;

  // target_depth: the prior's centre, 1..L (0: ceil(2L/3)).
  T prior_kl(index_t target_depth = 0) const;

  // [L, B, N]: d(alpha_p * ponder_loss + alpha_d * prior_kl(target_depth)) / d y_l[b, n, 0].
  Tensor<T> loss_grad(double alpha_p, double alpha_d, index_t target_depth = 0) const {
    Tensor<T> g(Shape{L_, B_, N_});
    loss_grad(alpha_p, alpha_d, g.view(), target_depth);
    return g;
  }
  // loss_grad written into `out` [L, B, N] instead of a new tensor.
  void loss_grad(double alpha_p, double alpha_d, TensorView<T> out, index_t target_depth = 0) const;

  // A-ViT's distributional target (utils.py get_distribution_target, gaussian) with its centre
  // at target_depth (1..L; 0: ceil(2L/3)), sigma 1, buffer 0.02; length L, not normalised.
  static std::vector<double> prior_target(index_t layers, index_t target_depth = 0);

 private:
  struct prior_state {
    std::vector<double> target, p, r;  // [L]
    double hsum = 0, qsum = 0;
  };

  prior_state prior(index_t target_depth) const;

  index_t patches() const noexcept { return B_ * (N_ - 1); }

  void require_done(const char* what) const;

  config cfg_;
  index_t B_ = 0, N_ = 0, L_ = 0, done_ = 0;
  TokenMask mask_;
  Tensor<double> h_;                // [L, B, N] raw scores
  Tensor<std::uint8_t> alive_;      // [L, B, N] mask block l ran under
  Tensor<double> c_;                // [B, N] cumulative score
  Tensor<index_t> halt_;            // [B, N] block at which the patch token died, -1 while alive
};

template <class T>
HaltingController<T>::HaltingController(const config& cfg) : cfg_(cfg) {
  if (!std::isfinite(cfg.gamma) || !std::isfinite(cfg.beta))
    throw config_error(
        detail::concat("HaltingController: gamma ", cfg.gamma, " and beta ", cfg.beta, " must be finite"));
  if (!(cfg.eps > 0 && cfg.eps < 1))
    throw config_error(detail::concat("HaltingController: eps is ", cfg.eps, ", expected 0 < eps < 1"));
}

template <class T>
void HaltingController<T>::reset(index_t batch, index_t tokens, index_t layers) {
  if (batch <= 0 || tokens <= 1 || layers <= 0)
    throw config_error(detail::concat("HaltingController::reset: B ", batch, ", N ", tokens, ", L ", layers,
                                      ", expected B > 0, N > 1 (CLS + patches), L > 0"));
  B_ = batch, N_ = tokens, L_ = layers, done_ = 0;
  if (mask_.tensor().rank() == 2 && mask_.batch() == batch && mask_.tokens() == tokens) {
    for (index_t b = 0; b < batch; ++b)
      for (index_t n = 0; n < tokens; ++n) mask_.set(b, n, true);
  } else {
    mask_ = TokenMask(batch, tokens);
  }
  h_.resize(Shape{layers, batch, tokens});
  h_.zero();
  alive_.resize(Shape{layers, batch, tokens});
  alive_.zero();
  c_.resize(Shape{batch, tokens});
  c_.zero();
  halt_.resize(Shape{batch, tokens});
  halt_.fill(-1);
}

template <class T>
void HaltingController<T>::update(index_t layer, ConstSeq<T> y) {
  if (L_ == 0) throw config_error("HaltingController::update: call reset(B, N, L) first");
  if (done_ == L_)
    throw config_error(detail::concat("HaltingController::update: layer ", layer, " after all ", L_,
                                      " blocks were updated (reset starts a new pass)"));
  if (layer != done_)
    throw config_error(detail::concat("HaltingController::update: layer is ", layer, ", expected ", done_,
                                      " (blocks in order, ", L_, " in all)"));
  check_shape("HaltingController::update", "y", y.shape(), {B_, N_, -1});
  if (y.size(2) < 1) throw shape_error("HaltingController::update: y has no channel 0");
  const index_t C = y.size(2);
  const bool last = layer == L_ - 1;
  const double thr = 1.0 - cfg_.eps;
  for (index_t b = 0; b < B_; ++b)
    for (index_t n = 0; n < N_; ++n) {
      const double z = cfg_.gamma * static_cast<double>(y.data()[(b * N_ + n) * C]) - cfg_.beta;
      h_(layer, b, n) = 1.0 / (1.0 + std::exp(-z));
      alive_(layer, b, n) = mask_.alive(b, n) ? 1 : 0;
      if (n == 0) continue;  // CLS never halts
      if (!mask_.alive(b, n)) continue;
      c_(b, n) += last ? 1.0 : h_(layer, b, n);
      if (c_(b, n) >= thr) {
        halt_(b, n) = layer;
        mask_.set(b, n, false);
      }
    }
  ++done_;
}

template <class T>
Tensor<std::int64_t> HaltingController<T>::depth() const {
  require_done("depth");
  Tensor<std::int64_t> d(Shape{B_, N_});
  for (index_t b = 0; b < B_; ++b)
    for (index_t n = 0; n < N_; ++n) d(b, n) = n == 0 ? L_ : halt_(b, n) + 1;
  return d;
}

template <class T>
double HaltingController<T>::keep_ratio(index_t layer) const {
  require_done("keep_ratio");
  if (layer < 0 || layer >= L_)
    throw config_error(detail::concat("HaltingController::keep_ratio: layer ", layer, " not in [0, ", L_, ")"));
  index_t k = 0;
  for (index_t b = 0; b < B_; ++b)
    for (index_t n = 1; n < N_; ++n) k += alive_(layer, b, n);
  return static_cast<double>(k) / static_cast<double>(patches());
}

template <class T>
T HaltingController<T>::ponder_loss() const {
  require_done("ponder_loss");
  double s = 0;
  for (index_t b = 0; b < B_; ++b)
    for (index_t n = 1; n < N_; ++n) {
      const index_t k = halt_(b, n);
      double r = 1;
      for (index_t l = 0; l < k; ++l) r -= h_(l, b, n);
      s += static_cast<double>(k + 1) + r;
    }
  return static_cast<T>(s / static_cast<double>(patches()));
}

template <class T>
T HaltingController<T>::prior_kl(index_t target_depth) const {
  require_done("prior_kl");
  const prior_state p = prior(target_depth);
  double kl = 0;
  for (index_t l = 0; l < L_; ++l) {
    const double t = p.target[static_cast<std::size_t>(l)];
    if (t > 0) kl += t * (std::log(t) - std::log(p.r[static_cast<std::size_t>(l)]));
  }
  return static_cast<T>(kl / static_cast<double>(L_));
}

template <class T>
void HaltingController<T>::loss_grad(double alpha_p, double alpha_d, TensorView<T> out, index_t target_depth) const {
  require_done("loss_grad");
  check_shape("HaltingController::loss_grad", "out", out.shape(), {L_, B_, N_});
  const prior_state p = prior(target_depth);
  const auto L = static_cast<std::size_t>(L_);
  // Back through KL = (1/L) sum t (log t - log r), r = q / Q, q = clamp(p), p = H / S.
  std::vector<double> gr(L), gp(L), gH(L);
  double dot = 0;
  for (std::size_t l = 0; l < L; ++l) {
    gr[l] = p.target[l] > 0 ? -p.target[l] / (static_cast<double>(L_) * p.r[l]) : 0.0;
    dot += gr[l] * p.r[l];
  }
  for (std::size_t l = 0; l < L; ++l) {
    const bool inside = p.p[l] >= 0.01 && p.p[l] <= 0.99;  // torch.clamp passes the bounds
    gp[l] = inside ? (gr[l] - dot) / p.qsum : 0.0;
  }
  dot = 0;
  for (std::size_t l = 0; l < L; ++l) dot += gp[l] * p.p[l];
  for (std::size_t l = 0; l < L; ++l) gH[l] = (gp[l] - dot) / p.hsum;
  const double inv_p = 1.0 / static_cast<double>(patches());
  for (index_t l = 0; l < L_; ++l)
    for (index_t b = 0; b < B_; ++b) {
      out(l, b, 0) = T(0);
      for (index_t n = 1; n < N_; ++n) {
        double dh = alpha_d * gH[static_cast<std::size_t>(l)] * inv_p;
        if (l < halt_(b, n)) dh -= alpha_p * inv_p;  // r_k = 1 - sum_{l < halt} h^l
        const double h = h_(l, b, n);
        out(l, b, n) = static_cast<T>(dh * cfg_.gamma * h * (1 - h));
      }
    }
}

template <class T>
std::vector<double> HaltingController<T>::prior_target(index_t layers, index_t target_depth) {
  if (layers < 1 || target_depth < 0 || target_depth > layers)
    throw config_error(detail::concat("HaltingController::prior_target: target depth ", target_depth, " for ", layers,
                                      " layers, expected 1..", layers, " (0: ceil(2L/3))"));
  const index_t td = halting_loss_options{0, 0, target_depth}.effective_target_depth(layers);
  std::vector<double> t(static_cast<std::size_t>(layers));
  double below = 0;
  for (index_t l = 0; l < layers; ++l) {
    const double d = static_cast<double>(l - td);
    t[static_cast<std::size_t>(l)] = std::exp(-0.5 * d * d) * 0.3989422804014327;  // N(l; td, 1)
    if (l < td) below += t[static_cast<std::size_t>(l)];
  }
  for (auto& v : t) v *= 0.98 / below;
  return t;
}

template <class T>
typename HaltingController<T>::prior_state HaltingController<T>::prior(index_t target_depth) const {
  const auto L = static_cast<std::size_t>(L_);
  prior_state s;
  s.target = prior_target(L_, target_depth);
  s.p.assign(L, 0.0);
  s.r.assign(L, 0.0);
  for (index_t l = 0; l < L_; ++l) {
    double sum = 0;
    for (index_t b = 0; b < B_; ++b)
      for (index_t n = 1; n < N_; ++n) sum += h_(l, b, n);
    s.p[static_cast<std::size_t>(l)] = sum / static_cast<double>(patches());
    s.hsum += s.p[static_cast<std::size_t>(l)];
  }
  for (auto& v : s.p) v /= s.hsum;
  for (std::size_t l = 0; l < L; ++l) {
    s.r[l] = std::clamp(s.p[l], 0.01, 0.99);
    s.qsum += s.r[l];
  }
  for (auto& v : s.r) v /= s.qsum;
  return s;
}

template <class T>
void HaltingController<T>::require_done(const char* what) const {
  if (L_ == 0 || done_ != L_)
    throw config_error(detail::concat("HaltingController::", what, ": ", done_, " of ", L_,
                                      " blocks updated, expected all (reset, then update every block)"));
}

SPARSIMIX_EXTERN_TEMPLATE(class HaltingController<float>)
SPARSIMIX_EXTERN_TEMPLATE(class HaltingController<double>)

// Bernoulli KL between teacher and student halting probabilities (docs/method.md 2.4):
// mean over elements of p log(p/q) + (1-p) log((1-p)/(1-q)), both clamped to [1e-6, 1-1e-6].
// If dq is non-empty it receives d KL / d q (0 where q was clamped).
template <class T>
T bernoulli_kl(TensorView<const T> p, TensorView<const T> q, TensorView<T> dq = {}) {
  if (!(p.shape() == q.shape()))
    throw shape_error(detail::concat("bernoulli_kl: q is ", q.shape().str(), ", expected p's ", p.shape().str()));
  if (!dq.empty() && !(dq.shape() == q.shape()))
    throw shape_error(detail::concat("bernoulli_kl: dq is ", dq.shape().str(), ", expected q's ", q.shape().str()));
  const index_t n = p.numel();
  if (n == 0) return T(0);
  constexpr double lo = 1e-6, hi = 1 - 1e-6;
  double s = 0;
  for (index_t i = 0; i < n; ++i) {
    const double pi = std::clamp(static_cast<double>(p.data()[i]), lo, hi);
    const double qr = static_cast<double>(q.data()[i]);
    const double qi = std::clamp(qr, lo, hi);
    s += pi * std::log(pi / qi) + (1 - pi) * std::log((1 - pi) / (1 - qi));
    if (!dq.empty())
      dq.data()[i] = (qr >= lo && qr <= hi)
                         ? static_cast<T>((-pi / qi + (1 - pi) / (1 - qi)) / static_cast<double>(n))
                         : T(0);
  }
  return static_cast<T>(s / static_cast<double>(n));
}

// The A-ViT term of mask-guided distillation (docs/method.md 2.4, step 3), between the halting of a
// teacher and of a student that ran under the teacher's masks:
//   L = sum_l BernoulliKL(hT_l || hS_l) + keep_weight * sum_l (keepS_l - keepT_l)^2
// over patch tokens (n >= 1, P = B (N - 1) of them), with
//   hT, hS [L, B, N]  the raw scores sigmoid(gamma y_l[..., 0] - beta) of teacher and student
//                     (HaltingController::scores); at the last block both are taken as 1
//                     (A-ViT stores h = 1 there), so that KL term is 0 and has no gradient;
//   BernoulliKL       bernoulli_kl above (mean over the P tokens, both clamped to 1e-6);
//   keepT_l           the mean over patch tokens of the teacher's mask m_l (the tokens block l
//                     processed, HaltingController::layer_masks);
//   keepS_l           mean over patch tokens of prod_{j <= l} (1 - hS_j), the student's soft
//                     survival (METHOD's index: j <= l; 0 at the last block).
// If grad_y0 is given ([L, B, N]) it receives dL / d yS_l[b, n, 0] = dL/dhS * gamma hS (1 - hS)
// (0 for CLS and at the last block): the gradient to inject into channel 0 of the student's
// block outputs, as HybridViT::halting_loss does.
inline double halting_distill_loss(const Tensor<double>& teacher_scores, const Tensor<std::uint8_t>& teacher_masks,
                                   const Tensor<double>& student_scores, double gamma, double keep_weight,
                                   Tensor<double>* grad_y0 = nullptr) {
  const char* where = "halting_distill_loss";
  check_shape(where, "teacher_scores", teacher_scores.shape(), {-1, -1, -1});
  const index_t L = teacher_scores.size(0), B = teacher_scores.size(1), N = teacher_scores.size(2);
  check_shape(where, "teacher_masks", teacher_masks.shape(), {L, B, N});
  check_shape(where, "student_scores", student_scores.shape(), {L, B, N});
  if (N < 2 || B < 1 || L < 1)
    throw shape_error(detail::concat(where, ": scores are ", teacher_scores.shape().str(), ", expected [L, B, N >= 2]"));
  if (grad_y0) {
    if (!(grad_y0->shape() == teacher_scores.shape())) grad_y0->resize(teacher_scores.shape());
    grad_y0->zero();
  }
  constexpr double lo = 1e-6, hi = 1 - 1e-6;
  const double P = static_cast<double>(B * (N - 1));
  double kl = 0;
  std::vector<double> keep_t(static_cast<std::size_t>(L), 0.0), keep_s(static_cast<std::size_t>(L), 0.0);
  for (index_t l = 0; l < L; ++l)
    for (index_t b = 0; b < B; ++b)
      for (index_t n = 1; n < N; ++n) {
        keep_t[static_cast<std::size_t>(l)] += teacher_masks(l, b, n) ? 1.0 / P : 0.0;
        if (l == L - 1) continue;  // both 1: KL 0
        const double pt = std::clamp(teacher_scores(l, b, n), lo, hi), qr = student_scores(l, b, n);
        const double q = std::clamp(qr, lo, hi);
        kl += (pt * std::log(pt / q) + (1 - pt) * std::log((1 - pt) / (1 - q))) / P;
        if (grad_y0 && qr >= lo && qr <= hi) (*grad_y0)(l, b, n) = (-pt / q + (1 - pt) / (1 - q)) / P;
      }
  // Soft survival per token: S_l = prod_{j <= l} (1 - hS_j), hS_{L-1} = 1.
  std::vector<double> coef(static_cast<std::size_t>(L));
  for (index_t b = 0; b < B; ++b)
    for (index_t n = 1; n < N; ++n) {
      double prod = 1;
      for (index_t l = 0; l < L; ++l) {
        prod *= l == L - 1 ? 0.0 : 1 - student_scores(l, b, n);
        keep_s[static_cast<std::size_t>(l)] += prod / P;
      }
    }
  double keep = 0;
  for (index_t l = 0; l < L; ++l) {
    const double d = keep_s[static_cast<std::size_t>(l)] - keep_t[static_cast<std::size_t>(l)];
    keep += d * d;
    coef[static_cast<std::size_t>(l)] = 2 * keep_weight * d / P;  // dL / d S_l[b, n]
  }
  if (grad_y0) {
    for (index_t b = 0; b < B; ++b)
      for (index_t n = 1; n < N; ++n) {
        // dS_l / dh_j = -prod_{i <= l, i != j} (1 - h_i) for j <= l: the survival before j
        // times the factors from j + 1 to l, built up along l (no division by 1 - h_j).
        double before = 1;  // prod_{i < j} (1 - h_i)
        for (index_t j = 0; j < L - 1; ++j) {
          double dh = 0, others = before;
          for (index_t l = j; l < L - 1; ++l) {
            if (l > j) others *= 1 - student_scores(l, b, n);
            dh -= coef[static_cast<std::size_t>(l)] * others;
          }
          const double h = student_scores(j, b, n);
          (*grad_y0)(j, b, n) = ((*grad_y0)(j, b, n) + dh) * gamma * h * (1 - h);
          before *= 1 - h;
        }
      }
  }
  return kl + keep_weight * keep;
}

SPARSIMIX_EXTERN_TEMPLATE(float bernoulli_kl<float>(TensorView<const float>, TensorView<const float>,
                                                    TensorView<float>))
SPARSIMIX_EXTERN_TEMPLATE(double bernoulli_kl<double>(TensorView<const double>, TensorView<const double>,
                                                      TensorView<double>))

SPARSIMIX_ABI_END
}  // namespace sparsimix
