// Multi-head bidirectional LSTM token mixer (FAR's `MultiHeadLstm`, HEAD version).
// Ren, Collins, Hu, Yang, "FAR: Function-preserving Attention Replacement",
// arXiv:2505.21535; code github.com/aliothren/FAR modeling/architectures.py. docs/method.md 1.3-1.7.
//
//   a = pre_proj(u)                                         u, a: [B, N, C]
//   o = [LSTM_fwd(a) | LSTM_bwd(a)]  H independent heads     o: [B, N, 2C]
//   s = head_proj(o)   (head h reads fwd-head h, bwd-head h)  s: [B, N, C]  (distillation target)
//   y = post_proj(s)                                        y: [B, N, C]
//
// The PyTorch model stores the H LSTMs as one nn.LSTM(C, C) whose weights are block-diagonal
// by head (masks M_ih, M_hh) and head_proj as a [C, 2C] weight masked by M_head. Here only
// the blocks are stored (docs/method.md 1.6): per direction w_ih, w_hh as [H, 4d, d] (rows gate-major
// i, f, g, o, each d rows), biases as [H, 4d], head_proj as [H, d, 2d] (columns fwd d | bwd d).
// export_dense / import_dense convert to and from the dense masked PyTorch layout
// (docs/formats.md section 2), refusing files with non-zeros outside the blocks.
//
// Token masks, Note [token mask gather] (core/token_mask.hpp): each sequence's alive tokens
// are gathered in order into a packed [M, C] buffer, the whole mixer runs on that shorter
// sequence and the result is scattered back; dead positions output exactly 0 (no bias) and
// get dx = 0.
//
// Kernel paths: pre_proj, the input-to-hidden products of all tokens (one GEMM per head and
// direction), head_proj and post_proj go through Eigen. The recurrence runs one task per
// (head, direction) over parallel_for; each task steps through time for all sequences of the
// batch at once: a [B, d] x [d, 4d] GEMM for the hidden-to-hidden product, then the fused
// gate/cell/hidden kernel (kernels/lstm.hpp) per sequence. Backward is BPTT in the same
// shape, with the weight gradients as GEMMs over all tokens after the reverse loop.
//
// The const inference forwards lease their workspaces from a pool (core/workspace_pool.hpp):
// several threads may run them on one object at once, and a warm object allocates nothing.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/linalg.hpp"
#include "../core/parallel.hpp"
#include "../core/param.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "../core/token_mask.hpp"
#include "../core/token_packing.hpp"
#include "../core/workspace_pool.hpp"
#include "../kernels/lstm.hpp"
#include "traits.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

namespace detail {
// A [rows, cols] row-major Eigen map with row stride ld (a column block of a wider matrix).
template <class T>
auto lstm_strided(T* p, index_t rows, index_t cols, index_t ld) {
  using M = std::conditional_t<std::is_const_v<T>, const RowMatrix<T>, RowMatrix<T>>;
  return Eigen::Map<M, 0, Eigen::OuterStride<>>(p, rows, cols, Eigen::OuterStride<>(ld));
}

}  // namespace detail

// FAR's multi-head bidirectional LSTM token mixer (header comment), prunable by LSTM unit.
template <class T = float>
class MultiHeadLSTM {
  static_assert(std::is_floating_point_v<T>, "MultiHeadLSTM<T>: T must be float or double");

 public:
  using scalar_type = T;  // T, for generic code over mixers

  // The width and head count; each head's LSTM has d = C / H units per direction.
  struct config {
    index_t dim = 0;        // C
    index_t num_heads = 1;  // H; d = C / H
  };

  // What one forward produced, packed over the alive tokens; backward reads it.
  struct state {
    token_packing pack;              // B, N, the M alive tokens packed in order, longest sequence
    bool training = false;           // filled by the training forward (gates, cells and u kept)
    index_t dim = 0, heads = 0;      // width and heads of the mixer that filled it
    Tensor<T> u;      // [M, C] mixer input (training only)
    Tensor<T> a;      // [M, C] pre_proj output
    Tensor<T> gates;  // [H, 2, M, 4d] input-to-hidden pre-activations, then activations i|f|g|o
    Tensor<T> cells;  // [H, 2, M, d] c_t (training only)
    Tensor<T> hid;    // [M, 2C] LSTM output, PyTorch layout [fwd C | bwd C]
    Tensor<T> s;      // [M, C] head_proj output
    Tensor<T> yp;     // [M, C] post_proj output before the scatter (masked runs)
    Tensor<T> scratch;  // [2H, *] the recurrence tasks' buffers
    std::vector<index_t> order;  // [2H] the recurrence tasks, widest first
  };

  // Activations kept by the training forward.
  struct cache_type {
    state st;  // what the training forward produced
    // s = head_proj output (before post_proj), [B, N, C], 0 at dead tokens: the tensor FAR
    // distils against the teacher's pre-proj attention output (docs/method.md 1.7).
    Tensor<T> head_out;
  };

  // Allocates the parameters (zero until init); throws config_error unless H > 0 divides C > 0.
  explicit MultiHeadLSTM(const config& cfg);

  // C, the token width.
  index_t dim() const noexcept { return C_; }
  // H, the number of heads.
  index_t num_heads() const noexcept { return H_; }
  // d = C / H, the LSTM units per head and direction.
  index_t head_dim() const noexcept { return d_; }
  // Multiply-adds of an inference forward over n tokens at the current widths: pre and post
  // projections 2 C^2 per token, and per (direction, head) keeping k units 4 k d (input to
  // hidden) + 4 k^2 (hidden to hidden) + k d (head_proj).
  index_t multiply_adds(index_t n) const noexcept {
    index_t per_token = 2 * C_ * C_;
    for (const index_t k : width_) per_token += 5 * k * d_ + 4 * k * k;
    return n * per_token;
  }
  // The configuration it was built with.
  const config& cfg() const noexcept { return cfg_; }

  // PyTorch defaults (docs/method.md 1.5): Linear W, b ~ U(+-1/sqrt(fan_in)); every LSTM weight and
  // bias ~ U(+-1/sqrt(C)) (PyTorch's hidden_size is the total C, not d). Only the blocks are
  // drawn; the masked entries are 0 by construction. post_proj is usually overwritten with
  // the teacher's attn.proj afterwards.
  void init(Rng& rng);

  // The compact storage, for optimizers. Names ending in ".blocks" are per-head layouts, not
  // PyTorch's dense tensors (use export_dense / import_dense for those):
  //   lstm.weight_{ih,hh}_l0[_reverse].blocks [H, 4d, d]: row g*d + r, column c is dense
  //     entry [g*C + h*d + r, h*d + c];  lstm.bias_*.blocks [H, 4d]: dense [g*C + h*d + r];
  //   head_proj.weight.blocks [H, d, 2d]: [h, r, dir*d + c] is dense [h*d + r, dir*C + h*d + c].
  ParamList<T> parameters();

  // Zeroes every parameter gradient.
  void zero_grad() {
    for (auto& p : parameters()) std::fill(p.grad.begin(), p.grad.end(), T(0));
  }

  // The 14 PyTorch tensors (docs/formats.md section 2, state_dict order), dense and masked:
  // exact zeros outside the per-head blocks.
  std::vector<std::pair<std::string, Tensor<T>>> export_dense() const { return to_dense(false); }
  // The gradients in the same dense layout (exact zeros outside the blocks).
  std::vector<std::pair<std::string, Tensor<T>>> export_dense_grads() const { return to_dense(true); }
  // The PyTorch names export_dense writes, in order.
  static std::vector<std::string> dense_names();

  // Loads the dense PyTorch tensors: lookup(name) returns something convertible to Tensor<T>
  // for every name of dense_names(). Checks every shape (shape_error) and that the LSTM and
  // head_proj weights are exactly 0 outside the per-head blocks (format_error naming the
  // tensor and the entry) before changing anything: nothing is half-loaded.
  template <class Lookup>
    requires std::is_convertible_v<std::invoke_result_t<Lookup&, const std::string&>, Tensor<T>>
  void import_dense(Lookup&& lookup) {
    static constexpr const char* where = "MultiHeadLSTM::import_dense";
    const index_t C = C_, d = d_;
    auto fetch = [&](const std::string& name, std::initializer_list<index_t> shape) {
      Tensor<T> t = lookup(name);
      check_shape(where, name.c_str(), t.shape(), shape);
      return t;
    };
    auto outside = [&](const std::string& name, const Tensor<T>& t, auto in_block) {
      const index_t rows = t.size(0), cols = t.size(1);
      for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c)
          if (!in_block(r, c) && t(r, c) != T(0))
            throw format_error(detail::concat(where, ": ", name, " has a non-zero entry (", t(r, c), ") at [", r,
                                              ", ", c, "], outside the per-head blocks (C = ", C, ", ", H_,
                                              " heads of ", d, "); the masked FAR layout keeps it exactly 0"));
    };
    auto lstm_block = [&](index_t r, index_t c) { return (r % C) / d == c / d; };
    auto head_block = [&](index_t r, index_t c) { return r / d == (c % C) / d; };

    Tensor<T> pre_w = fetch("pre_proj.weight", {C, C}), pre_b = fetch("pre_proj.bias", {C});
    Tensor<T> w_ih(w_ih_.shape()), w_hh(w_hh_.shape()), b_ih(b_ih_.shape()), b_hh(b_hh_.shape());
    for (index_t dir = 0; dir < 2; ++dir) {
      const std::string sfx = dir ? "_reverse" : "";
      const std::string nwi = "lstm.weight_ih_l0" + sfx, nwh = "lstm.weight_hh_l0" + sfx;
      const Tensor<T> wi = fetch(nwi, {4 * C, C}), wh = fetch(nwh, {4 * C, C});
      const Tensor<T> bi = fetch("lstm.bias_ih_l0" + sfx, {4 * C}), bh = fetch("lstm.bias_hh_l0" + sfx, {4 * C});
      outside(nwi, wi, lstm_block);
      outside(nwh, wh, lstm_block);
      for (index_t h = 0; h < H_; ++h)
        for (index_t g = 0; g < 4; ++g)
          for (index_t r = 0; r < d; ++r) {
            const index_t dr = g * C + h * d + r, br = g * d + r;
            b_ih(dir, h, br) = bi(dr);
            b_hh(dir, h, br) = bh(dr);
            for (index_t c = 0; c < d; ++c) {
              w_ih(dir, h, br, c) = wi(dr, h * d + c);
              w_hh(dir, h, br, c) = wh(dr, h * d + c);
            }
          }
    }
    const Tensor<T> hw = fetch("head_proj.weight", {C, 2 * C});
    outside("head_proj.weight", hw, head_block);
    Tensor<T> hp_w(hp_w_.shape());
    for (index_t h = 0; h < H_; ++h)
      for (index_t r = 0; r < d; ++r)
        for (index_t dir = 0; dir < 2; ++dir)
          for (index_t c = 0; c < d; ++c) hp_w(h, r, dir * d + c) = hw(h * d + r, dir * C + h * d + c);
    Tensor<T> hp_b = fetch("head_proj.bias", {C});
    Tensor<T> post_w = fetch("post_proj.weight", {C, C}), post_b = fetch("post_proj.bias", {C});
    // Everything validated: commit.
    pre_w_ = std::move(pre_w);
    pre_b_ = std::move(pre_b);
    w_ih_ = std::move(w_ih);
    w_hh_ = std::move(w_hh);
    b_ih_ = std::move(b_ih);
    b_hh_ = std::move(b_hh);
    hp_w_ = std::move(hp_w);
    hp_b_ = std::move(hp_b);
    post_w_ = std::move(post_w);
    post_b_ = std::move(post_b);
    for (std::size_t u = 0; u < perm_.size(); ++u) perm_[u] = static_cast<index_t>(u) % d;
    // The dense layout has no pruning record: a unit whose group, gate biases and head_proj
    // column are all exactly 0 is disconnected (its output is exactly 0), i.e. pruned.
    infer_pruning();
  }

  // FAR's pruning (docs/method.md 1.9). The unit of pruning is one LSTM hidden unit j of head h,
  // direction dir; its group G holds its 4 gate rows of w_ih, its 4 gate rows of w_hh and its
  // column of w_hh (12 d entries, the 4 diagonal entries w_hh[g d + j, j] counted twice, as
  // the reference concatenation does). Unit order everywhere: index (dir * H + h) * d + j.
  //
  // ||G|| per unit, [2 * H * d].
  std::vector<double> unit_group_norms() const;
  // The DeepHoyer Hoyer-Square regulariser R = sum over (dir, head) of (sum_j ||G_j||)^2 /
  // (sum_j ||G_j||^2 + 1e-6); adds weight * dR/dw to the gradients and returns R (unweighted).
  double add_hoyer_square_grad(double weight);
  // Prunes the units with keep[unit] == 0 (size 2 * H * d, or empty to prune nothing new):
  // zeroes their group, their gate biases and their head_proj column, so a pruned unit's
  // output is exactly 0 and removing it changes nothing. Units pruned before stay pruned.
  // Then reorders the units of every (dir, head), kept ones first (a permutation of hidden
  // units leaves the function unchanged), so (dir, head) runs at its width k on units 0..k-1
  // from then on: forward and backward do no multiply-add for a pruned unit. Only the storage
  // is reordered: export_dense, export_dense_grads and checkpoints keep the PyTorch unit order
  // (pruned units stay where they were, as zeros). The reordering invalidates optimizer state
  // made before the call.
  void prune_units(const std::vector<std::uint8_t>& keep);
  // Kept units per unit index (all 1 when unpruned; kept ones first in each (dir, head)).
  const std::vector<std::uint8_t>& unit_keep() const noexcept { return keep_; }
  // Whether any unit is pruned.
  bool pruned() const noexcept { return std::find(keep_.begin(), keep_.end(), std::uint8_t{0}) != keep_.end(); }
  // Kept units per (dir, head), [2 * H], index dir * H + h: the widths the mixer computes at.
  const std::vector<index_t>& widths() const noexcept { return width_; }
  // Forgets the pruning: every unit trains and computes again (the zeroed entries start at 0).
  void clear_pruning() {
    keep_.assign(keep_.size(), 1);
    width_.assign(width_.size(), d_);
  }
  // Zeroes the pruned units' entries again (after an optimizer step: AdamW's moments would
  // move them otherwise). A no-op when nothing is pruned.
  void apply_pruning();

  // FAR's distillation target (HasPreProjOutput): s, the head_proj output, of a training forward.
  ConstSeq<T> pre_proj_output(const cache_type& c) const { return c.head_out.view(); }

  // InitsFromTeacher: post_proj starts as the replaced attention's proj (FAR, docs/method.md 1.3);
  // returns the names copied (stage 1 of distillation keeps them frozen).
  std::vector<std::string> init_from_teacher(const named_tensors<T>& teacher);
  // The names init_from_teacher copies: post_proj.weight and post_proj.bias.
  std::vector<std::string> teacher_initialised() const { return {"post_proj.weight", "post_proj.bias"}; }

  // Inference: y = mixer(x), x, y: [B, N, C]; mask [B, N] or null.
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const;
  // Inference that also writes s, the head_proj output before post_proj ([B, N, C], 0 at
  // dead tokens), for distillation against attention's pre-proj output.
  void forward(ConstSeq<T> x, Seq<T> y, Seq<T> s, const TokenMask* mask) const;
  // Training: as above, keeping in `cache` what backward needs and s in cache.head_out.
  void forward(ConstSeq<T> x, Seq<T> y, cache_type& cache, const TokenMask* mask) const;

  // Backward of the training forward: accumulates parameter gradients, writes dx (0 at dead
  // tokens). dy: [B, N, C].
  void backward(const cache_type& cache, ConstSeq<T> dy, Seq<T> dx);
  // Same with an extra gradient ds on s (cache.head_out), e.g. from the distillation loss.
  // dy may be an empty view (no gradient through post_proj), ds too.
  void backward(const cache_type& cache, ConstSeq<T> dy, Seq<T> dx, ConstSeq<T> ds);

 private:
  struct bwd_workspace {
    Tensor<T> dy, ds, dhid, dg, da, dx, scratch;
    std::vector<index_t> order;
  };

  void check_io(const char* where, ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const {
    check_shape(where, "x", x.shape(), {-1, -1, C_});
    check_shape(where, "y", y.shape(), {x.size(0), x.size(1), C_});
    if (mask) mask->check_fits(where, x.shape());
  }

  void gather(const state& st, const T* dense, T* packed) const { st.pack.gather(dense, packed, C_); }
  // dense [B, N, C] = packed rows at their tokens, exact 0 elsewhere.
  void scatter(const state& st, const T* packed, T* dense) const { st.pack.scatter(packed, dense, C_); }

  void run(ConstSeq<T> x, Seq<T> y, const TokenMask* mask, state& st, bool training) const;

  // The packed sequences as one recurrence of direction dir (the reverse direction walks each
  // sequence backwards).
  kernels::lstm_problem<T> problem(const state& st, index_t dir, index_t width) const {
    return {st.pack.batch(), width, st.pack.offsets(), st.pack.max_length(), dir == 1};
  }

  // The recurrence of head h, direction dir, for every sequence of the batch.
  // At width k (kept units 0..k-1): scratch hh [2B, 4k], hstate [B, k], cstate [B, k], bias
  // [4k], W_hh^T [k, 4k], compact W_ih [4k, d].
  void forward_task(state& st, index_t h, index_t dir, bool training, T* scratch) const;

  // BPTT of head h, direction dir at its width k. scratch: dgs [3B, 4k], dh [B, k], dc [B, k],
  // zeros [k], compact W_hh [4k, k], W_ih [4k, d] and their gradients.
  void bptt_task(const state& st, index_t h, index_t dir, T* scratch);

  // Fills order with the (head, direction) tasks, task = 2 h + dir, widest first (ties in task
  // order): a recurrence's cost grows with its width, and pruning leaves the widths uneven.
  // An insertion sort of 2H entries: no allocation once order has its size.
  const std::vector<index_t>& tasks_widest_first(std::vector<index_t>& order) const {
    const auto width_of = [&](index_t t) { return width_[static_cast<std::size_t>((t % 2) * H_ + t / 2)]; };
    order.resize(static_cast<std::size_t>(2 * H_));
    for (index_t t = 0; t < 2 * H_; ++t) {
      index_t i = t;
      for (; i > 0 && width_of(order[static_cast<std::size_t>(i - 1)]) < width_of(t); --i)
        order[static_cast<std::size_t>(i)] = order[static_cast<std::size_t>(i - 1)];
      order[static_cast<std::size_t>(i)] = t;
    }
    return order;
  }

  std::vector<std::pair<std::string, Tensor<T>>> to_dense(bool grads) const;
  void infer_pruning();
  void compact_units();

  config cfg_;
  index_t C_ = 0, H_ = 1, d_ = 0;
  // Parameters (compact per-head storage) and their gradients.
  Tensor<T> pre_w_, pre_b_, w_ih_, w_hh_, b_ih_, b_hh_, hp_w_, hp_b_, post_w_, post_b_;
  Tensor<T> g_pre_w_, g_pre_b_, g_w_ih_, g_w_hh_, g_b_ih_, g_b_hh_, g_hp_w_, g_hp_b_, g_post_w_, g_post_b_;
  // Workspaces: reused across calls so inference stops allocating after warm-up.
  workspace_pool<state> pool_;
  bwd_workspace bw_;
  std::vector<std::uint8_t> keep_;  // [2 * H * d], 1 = kept (FAR pruning)
  std::vector<index_t> width_;      // [2 * H] kept units per (dir, head), the first ones of each
  // [2 * H * d]: stored unit n of a (dir, head) is unit perm_[n] of the PyTorch layout (pruning
  // reorders the storage, kept units first; export_dense and the gradients keep the order of
  // the tensors the user has).
  std::vector<index_t> perm_;
};

template <class T>
MultiHeadLSTM<T>::MultiHeadLSTM(const config& cfg) : cfg_(cfg) {
  if (cfg.dim <= 0) throw config_error(detail::concat("MultiHeadLSTM: dim is ", cfg.dim, ", expected > 0"));
  if (cfg.num_heads <= 0)
    throw config_error(detail::concat("MultiHeadLSTM: num_heads is ", cfg.num_heads, ", expected > 0"));
  if (cfg.dim % cfg.num_heads != 0)
    throw config_error(detail::concat("MultiHeadLSTM: dim ", cfg.dim, " is not divisible by num_heads ",
                                      cfg.num_heads));
  C_ = cfg.dim;
  H_ = cfg.num_heads;
  d_ = C_ / H_;
  const Shape wc{C_, C_}, bc{C_}, wl{2, H_, 4 * d_, d_}, bl{2, H_, 4 * d_}, wh{H_, d_, 2 * d_};
  for (auto* p : {&pre_w_, &post_w_}) *p = Tensor<T>(wc);
  for (auto* p : {&pre_b_, &post_b_, &hp_b_}) *p = Tensor<T>(bc);
  for (auto* p : {&w_ih_, &w_hh_}) *p = Tensor<T>(wl);
  for (auto* p : {&b_ih_, &b_hh_}) *p = Tensor<T>(bl);
  hp_w_ = Tensor<T>(wh);
  for (auto* p : {&g_pre_w_, &g_post_w_}) *p = Tensor<T>(wc);
  for (auto* p : {&g_pre_b_, &g_post_b_, &g_hp_b_}) *p = Tensor<T>(bc);
  for (auto* p : {&g_w_ih_, &g_w_hh_}) *p = Tensor<T>(wl);
  for (auto* p : {&g_b_ih_, &g_b_hh_}) *p = Tensor<T>(bl);
  g_hp_w_ = Tensor<T>(wh);
  keep_.assign(static_cast<std::size_t>(2 * C_), 1);
  width_.assign(static_cast<std::size_t>(2 * H_), d_);
  perm_.resize(static_cast<std::size_t>(2 * C_));
  for (std::size_t u = 0; u < perm_.size(); ++u) perm_[u] = static_cast<index_t>(u) % d_;
}

template <class T>
void MultiHeadLSTM<T>::init(Rng& rng) {
  const double kc = 1.0 / std::sqrt(static_cast<double>(C_));
  const double k2c = 1.0 / std::sqrt(static_cast<double>(2 * C_));
  fill_uniform(rng, pre_w_.data(), pre_w_.numel(), -kc, kc);
  fill_uniform(rng, pre_b_.data(), pre_b_.numel(), -kc, kc);
  for (auto* p : {&w_ih_, &w_hh_, &b_ih_, &b_hh_}) fill_uniform(rng, p->data(), p->numel(), -kc, kc);
  fill_uniform(rng, hp_w_.data(), hp_w_.numel(), -k2c, k2c);
  fill_uniform(rng, hp_b_.data(), hp_b_.numel(), -k2c, k2c);
  fill_uniform(rng, post_w_.data(), post_w_.numel(), -kc, kc);
  fill_uniform(rng, post_b_.data(), post_b_.numel(), -kc, kc);
}

template <class T>
ParamList<T> MultiHeadLSTM<T>::parameters() {
  ParamList<T> ps;
  ps.push_back({"pre_proj.weight", pre_w_.view(), g_pre_w_.view(), true});
  ps.push_back({"pre_proj.bias", pre_b_.view(), g_pre_b_.view(), false});
  for (index_t dir = 0; dir < 2; ++dir) {
    const std::string sfx = dir ? "_reverse" : "";
    ps.push_back({"lstm.weight_ih_l0" + sfx + ".blocks", w_ih_[dir], g_w_ih_[dir], true});
    ps.push_back({"lstm.weight_hh_l0" + sfx + ".blocks", w_hh_[dir], g_w_hh_[dir], true});
    ps.push_back({"lstm.bias_ih_l0" + sfx + ".blocks", b_ih_[dir], g_b_ih_[dir], false});
    ps.push_back({"lstm.bias_hh_l0" + sfx + ".blocks", b_hh_[dir], g_b_hh_[dir], false});
  }
  ps.push_back({"head_proj.weight.blocks", hp_w_.view(), g_hp_w_.view(), true});
  ps.push_back({"head_proj.bias", hp_b_.view(), g_hp_b_.view(), false});
  ps.push_back({"post_proj.weight", post_w_.view(), g_post_w_.view(), true});
  ps.push_back({"post_proj.bias", post_b_.view(), g_post_b_.view(), false});
  return ps;
}

template <class T>
void MultiHeadLSTM<T>::forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const {
  check_io("MultiHeadLSTM::forward", x, y, mask);
  const auto w = pool_.acquire();
  run(x, y, mask, *w, false);
}

template <class T>
void MultiHeadLSTM<T>::forward(ConstSeq<T> x, Seq<T> y, Seq<T> s, const TokenMask* mask) const {
  check_io("MultiHeadLSTM::forward", x, y, mask);
  check_shape("MultiHeadLSTM::forward", "s", s.shape(), {x.size(0), x.size(1), C_});
  const auto w = pool_.acquire();
  run(x, y, mask, *w, false);
  scatter(*w, w->s.data(), s.data());
}

template <class T>
void MultiHeadLSTM<T>::forward(ConstSeq<T> x, Seq<T> y, cache_type& cache, const TokenMask* mask) const {
  check_io("MultiHeadLSTM::forward", x, y, mask);
  run(x, y, mask, cache.st, true);
  cache.head_out.resize(x.shape());
  scatter(cache.st, cache.st.s.data(), cache.head_out.data());
}

template <class T>
void MultiHeadLSTM<T>::backward(const cache_type& cache, ConstSeq<T> dy, Seq<T> dx) {
  backward(cache, dy, dx, ConstSeq<T>{});
}

template <class T>
void MultiHeadLSTM<T>::backward(const cache_type& cache, ConstSeq<T> dy, Seq<T> dx, ConstSeq<T> ds) {
  static constexpr const char* where = "MultiHeadLSTM::backward";
  const state& st = cache.st;
  if (!st.training || st.dim != C_ || st.heads != H_)
    throw config_error(detail::concat(where, ": the cache does not come from this mixer's training forward"));
  const index_t B = st.pack.batch(), N = st.pack.tokens(), M = st.pack.rows(), C = C_, d = d_;
  if (dy.data()) check_shape(where, "dy", dy.shape(), {B, N, C});
  if (ds.data()) check_shape(where, "ds", ds.shape(), {B, N, C});
  check_shape(where, "dx", dx.shape(), {B, N, C});

  // ds_packed [M, C] = dy_packed W_post (+ gathered ds); post_proj grads.
  bw_.ds.resize(Shape{M, C});
  bw_.ds.zero();
  if (dy.data()) {
    const T* dyp = dy.data();
    if (st.pack.masked()) {
      bw_.dy.resize(Shape{M, C});
      gather(st, dy.data(), bw_.dy.data());
      dyp = bw_.dy.data();
    }
    linear_backward(st.s.data(), post_w_.data(), dyp, bw_.ds.data(), g_post_w_.data(), g_post_b_.data(), M, C, C);
  }
  if (ds.data()) {
    for (index_t r = 0; r < M; ++r) {
      const T* src = ds.data() + st.pack.source(r) * C;
      T* dst = bw_.ds.data() + r * C;
      for (index_t c = 0; c < C; ++c) dst[c] += src[c];
    }
  }
  // head_proj, per head and direction: dW_h[:, dir] += ds_h^T o_dir_h, do_dir_h = ds_h W_h[:, dir].
  // The 2H tasks write disjoint slices; like the recurrences they run widest first (three
  // heads alone would leave one of two threads idle a third of the time).
  bw_.dhid.resize(Shape{M, 2 * C});
  parallel_for_each_dynamic(tasks_widest_first(bw_.order), [&](index_t task) {
    const index_t h = task / 2, dir = task % 2;
    const index_t k = width_[static_cast<std::size_t>(dir * H_ + h)];  // pruned units get no gradient
    if (k == 0) return;
    const auto dsh = detail::lstm_strided(static_cast<const T*>(bw_.ds.data()) + h * d, M, d, C);
    const auto oh = detail::lstm_strided(st.hid.data() + dir * C + h * d, M, k, 2 * C);
    const auto wh = detail::lstm_strided(static_cast<const T*>(hp_w_.data()) + h * d * 2 * d + dir * d, d, k, 2 * d);
    detail::lstm_strided(g_hp_w_.data() + h * d * 2 * d + dir * d, d, k, 2 * d).noalias() += dsh.transpose() * oh;
    detail::lstm_strided(bw_.dhid.data() + dir * C + h * d, M, k, 2 * C).noalias() = dsh * wh;
  });
  if (M > 0) as_vector(g_hp_b_.data(), C) += as_matrix(static_cast<const T*>(bw_.ds.data()), M, C).colwise().sum().transpose();

  // BPTT, one task per (head, direction).
  bw_.dg.resize(Shape{H_, 2, M, 4 * d});
  bw_.da.resize(Shape{2, M, C});
  const index_t scratch = B * 14 * d + d + 16 * d * d;  // bptt_task's layout
  bw_.scratch.resize(Shape{2 * H_, scratch});
  parallel_for_each_dynamic(tasks_widest_first(bw_.order), [&](index_t task) {
    bptt_task(st, task / 2, task % 2, bw_.scratch.data() + task * scratch);
  });

  // pre_proj: da = da_fwd + da_bwd; dx_packed = da W_pre.
  T* da = bw_.da.data();
  const T* da_b = da + M * C;
  for (index_t i = 0; i < M * C; ++i) da[i] += da_b[i];
  T* dxp = dx.data();
  if (st.pack.masked()) {
    bw_.dx.resize(Shape{M, C});
    dxp = bw_.dx.data();
  }
  linear_backward(st.u.data(), pre_w_.data(), static_cast<const T*>(da), dxp, g_pre_w_.data(), g_pre_b_.data(), M, C, C);
  if (st.pack.masked()) scatter(st, dxp, dx.data());
}

template <class T>
void MultiHeadLSTM<T>::run(ConstSeq<T> x, Seq<T> y, const TokenMask* mask, state& st, bool training) const {
  const index_t B = x.size(0), N = x.size(1), C = C_, d = d_;
  st.pack.plan(mask, B, N);
  st.training = training;
  st.dim = C;
  st.heads = H_;
  const index_t M = st.pack.rows();
  const T* u = x.data();
  if (training || st.pack.masked()) {
    st.u.resize(Shape{M, C});
    gather(st, x.data(), st.u.data());
    u = st.u.data();
  }
  st.a.resize(Shape{M, C});
  linear_forward(u, pre_w_.data(), pre_b_.data(), st.a.data(), M, C, C);

  st.gates.resize(Shape{H_, 2, M, 4 * d});
  if (training) st.cells.resize(Shape{H_, 2, M, d});
  st.hid.resize(Shape{M, 2 * C});
  const index_t scratch = B * 10 * d + 4 * d + 8 * d * d;  // forward_task's layout
  st.scratch.resize(Shape{2 * H_, scratch});
  parallel_for_each_dynamic(tasks_widest_first(st.order), [&](index_t task) {
    forward_task(st, task / 2, task % 2, training, st.scratch.data() + task * scratch);
  });

  // head_proj per head: s_h = o_fwd_h W_h[:, :d]^T + o_bwd_h W_h[:, d:]^T + b_h.
  // The threads split the rows, not the heads (three heads on two threads leave one idle a
  // third of the time). Chunks start at multiples of 16 rows, where Eigen gives every row the
  // same bits as one product over all rows would.
  st.s.resize(Shape{M, C});
  const index_t chunks = detail::gemm_chunks(M, 2 * d, C);
  parallel_for(chunks, [&](index_t c) {
    const index_t r0 = row_chunk_begin(M / 16, chunks, c) * 16;
    const index_t r1 = c + 1 == chunks ? M : row_chunk_begin(M / 16, chunks, c + 1) * 16;
    const index_t rows = r1 - r0;
    for (index_t h = 0; h < H_; ++h) {
      auto sh = detail::lstm_strided(st.s.data() + r0 * C + h * d, rows, d, C);
      bool first = true;
      for (index_t dir = 0; dir < 2; ++dir) {
        const index_t k = width_[static_cast<std::size_t>(dir * H_ + h)];  // only the kept units
        if (k == 0) continue;
        const auto oh =
            detail::lstm_strided(static_cast<const T*>(st.hid.data()) + r0 * 2 * C + dir * C + h * d, rows, k, 2 * C);
        const auto wh = detail::lstm_strided(hp_w_.data() + h * d * 2 * d + dir * d, d, k, 2 * d);
        if (first)
          sh.noalias() = oh * wh.transpose();
        else
          sh.noalias() += oh * wh.transpose();
        first = false;
      }
      if (first) sh.setZero();
      sh.rowwise() += as_vector(hp_b_.data() + h * d, d).transpose();
    }
  });
  if (st.pack.masked()) {
    st.yp.resize(Shape{M, C});
    linear_forward(static_cast<const T*>(st.s.data()), post_w_.data(), post_b_.data(), st.yp.data(), M, C, C);
    scatter(st, st.yp.data(), y.data());
  } else {
    linear_forward(static_cast<const T*>(st.s.data()), post_w_.data(), post_b_.data(), y.data(), M, C, C);
  }
}

template <class T>
void MultiHeadLSTM<T>::forward_task(state& st, index_t h, index_t dir, bool training, T* scratch) const {
  const index_t B = st.pack.batch(), M = st.pack.rows(), C = C_, d = d_;
  const index_t hd = dir * H_ + h, k = width_[static_cast<std::size_t>(hd)], G = 4 * k;
  // A pruned (dir, head) runs at its width k on its kept units 0..k-1 (compact_units). Nothing
  // reads the rest of its output slot; the training forward zeroes it all the same, since its
  // state is the cache a caller may inspect (a pruned unit's h is 0), while inference skips
  // the strided fill (2.5% of a pruned demo hybrid's B 64 forward).
  T* out = st.hid.data() + dir * C + h * d;
  if (training && k < d && M > 0) detail::lstm_strided(out + k, M, d - k, 2 * C).setZero();
  if (k == 0) return;
  T* hh = scratch;  // [2B, 4k]: the recurrent product and the gate-major cell inputs
  T* hs = hh + 2 * B * G;
  T* cs = hs + B * k;
  T* bias = cs + B * k;
  T* wt = bias + G;
  T* wi = wt + G * k;
  const T* wih = w_ih_.data() + hd * 4 * d * d;
  const T* whh = w_hh_.data() + hd * 4 * d * d;
  const T* bih = b_ih_.data() + hd * 4 * d;
  const T* bhh = b_hh_.data() + hd * 4 * d;
  // Compact row g k + r is stored row g d + r.
  for (index_t g = 0; g < 4; ++g)
    for (index_t r = 0; r < k; ++r) bias[g * k + r] = bih[g * d + r] + bhh[g * d + r];
  for (index_t c = 0; c < k; ++c)  // contiguous stores: strided ones cost 15% of a B = 1 forward
    for (index_t g = 0; g < 4; ++g)
      for (index_t r = 0; r < k; ++r) wt[c * G + g * k + r] = whh[(g * d + r) * d + c];
  const T* wic = wih;
  if (k < d) {
    for (index_t g = 0; g < 4; ++g) std::copy(wih + g * d * d, wih + (g * d + k) * d, wi + g * k * d);
    wic = wi;
  }
  T* gates = st.gates.data() + (h * 2 + dir) * M * 4 * d;
  T* cells = training ? st.cells.data() + (h * 2 + dir) * M * d : nullptr;
  // Input-to-hidden for all tokens at once: [M, d] (column block of a) x [d, 4k].
  if (M > 0) {
    auto gx = as_matrix(gates, M, G);
    gx.noalias() = detail::lstm_strided(static_cast<const T*>(st.a.data()) + h * d, M, d, C) *
                   as_matrix(wic, G, d).transpose();
    gx.rowwise() += as_vector(static_cast<const T*>(bias), G).transpose();
  }
  kernels::lstm_recurrence_forward(problem(st, dir, k), gates, static_cast<const T*>(wt), cells, out, 2 * C, hh, hs,
                                   cs);
}

template <class T>
void MultiHeadLSTM<T>::bptt_task(const state& st, index_t h, index_t dir, T* scratch) {
  const index_t B = st.pack.batch(), M = st.pack.rows(), C = C_, d = d_;
  const index_t hd = dir * H_ + h, k = width_[static_cast<std::size_t>(hd)], G = 4 * k;
  auto da = detail::lstm_strided(bw_.da.data() + dir * M * C + h * d, M, d, C);
  if (k == 0) {  // every unit pruned: no path from this (dir, head) back to the input
    if (M > 0) da.setZero();
    return;
  }
  T* dgs = scratch;
  T* dh = dgs + 3 * B * G;  // dgs: [3B, 4k] (kernels/lstm.hpp)
  T* dc = dh + B * k;
  T* zeros = dc + B * k;
  T* whh_c = zeros + k;        // [4k, k]
  T* wih_c = whh_c + G * k;    // [4k, d]
  T* gwhh_c = wih_c + G * d;   // [4k, k]
  T* gwih_c = gwhh_c + G * k;  // [4k, d]
  const bool narrow = k < d;
  const T* wih = w_ih_.data() + hd * 4 * d * d;
  const T* whh = w_hh_.data() + hd * 4 * d * d;
  T* gwhh = g_w_hh_.data() + hd * 4 * d * d;
  T* gwih = g_w_ih_.data() + hd * 4 * d * d;
  if (narrow) {  // compact copies: row g k + r is stored row g d + r
    for (index_t g = 0; g < 4; ++g)
      for (index_t r = 0; r < k; ++r) {
        std::copy_n(whh + (g * d + r) * d, k, whh_c + (g * k + r) * k);
        std::copy_n(wih + (g * d + r) * d, d, wih_c + (g * k + r) * d);
      }
    std::fill(gwhh_c, gwhh_c + G * k, T(0));
    std::fill(gwih_c, gwih_c + G * d, T(0));
    whh = whh_c;
    wih = wih_c;
    gwhh = gwhh_c;
    gwih = gwih_c;
  }
  const T* gates = st.gates.data() + (h * 2 + dir) * M * 4 * d;
  const T* cells = st.cells.data() + (h * 2 + dir) * M * d;
  T* dg = bw_.dg.data() + (h * 2 + dir) * M * 4 * d;
  const T* dhid = bw_.dhid.data() + dir * C + h * d;
  kernels::lstm_recurrence_backward(problem(st, dir, k), gates, cells, dhid, 2 * C, whh, dg, dgs, dh, dc, zeros);
  if (M == 0) return;
  const auto DG = as_matrix(static_cast<const T*>(dg), M, G);
  // dW_hh += sum_t dg_t^T h_{t-1}: per sequence, dg rows shifted against the outputs.
  auto dwhh = as_matrix(gwhh, G, k);
  for (index_t b = 0; b < B; ++b) {
    const index_t len = st.pack.length(b), off = st.pack.offset(b);
    if (len < 2) continue;
    const index_t g0 = dir == 0 ? off + 1 : off, h0 = dir == 0 ? off : off + 1;
    dwhh.noalias() += as_matrix(static_cast<const T*>(dg) + g0 * G, len - 1, G).transpose() *
                      detail::lstm_strided(st.hid.data() + h0 * 2 * C + dir * C + h * d, len - 1, k, 2 * C);
  }
  const auto ah = detail::lstm_strided(st.a.data() + h * d, M, d, C);
  as_matrix(gwih, G, d).noalias() += DG.transpose() * ah;
  const auto dbias = DG.colwise().sum().transpose().eval();
  T* gbih = g_b_ih_.data() + hd * 4 * d;
  T* gbhh = g_b_hh_.data() + hd * 4 * d;
  for (index_t g = 0; g < 4; ++g)
    for (index_t r = 0; r < k; ++r) {
      gbih[g * d + r] += dbias(g * k + r);
      gbhh[g * d + r] += dbias(g * k + r);
    }
  if (narrow) {  // the compact gradients back into the stored rows
    T* fhh = g_w_hh_.data() + hd * 4 * d * d;
    T* fih = g_w_ih_.data() + hd * 4 * d * d;
    for (index_t g = 0; g < 4; ++g)
      for (index_t r = 0; r < k; ++r) {
        for (index_t c = 0; c < k; ++c) fhh[(g * d + r) * d + c] += gwhh_c[(g * k + r) * k + c];
        for (index_t c = 0; c < d; ++c) fih[(g * d + r) * d + c] += gwih_c[(g * k + r) * d + c];
      }
  }
  da.noalias() = DG * as_matrix(wih, G, d);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix

#include "detail/mh_lstm_layout.hpp"  // the dense PyTorch layout and FAR's pruning

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// ---- registry traits (mixers/traits.hpp) --------------------------------------------------
// No options of its own: the width and the heads come from the model.
template <class T>
struct mixer_traits<MultiHeadLSTM<T>> : dims_only_traits<MultiHeadLSTM<T>> {
  static constexpr std::string_view kind = "mh_lstm";  // the registry and config name
};

// Compiled in src/compiled/mixers.cpp when SPARSIMIX_EXTERN_TEMPLATES is set (fwd.hpp).
SPARSIMIX_EXTERN_TEMPLATE(class MultiHeadLSTM<float>)
SPARSIMIX_EXTERN_TEMPLATE(class MultiHeadLSTM<double>)

SPARSIMIX_ABI_END
}  // namespace sparsimix
