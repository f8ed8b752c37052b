// MultiHeadLSTM's members for the dense PyTorch layout (FAR's nn.LSTM with block-diagonal
// masks: dense_names, to_dense, init_from_teacher) and for FAR's structured pruning (unit group
// norms, the Hoyer-Square gradient, pruning, compaction to the kept units): mixers/mh_lstm.hpp
// includes this after the class; include that header, not this one.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../mh_lstm.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

template <class T>
std::vector<std::string> MultiHeadLSTM<T>::dense_names() {
  std::vector<std::string> n{"pre_proj.weight", "pre_proj.bias"};
  for (const char* sfx : {"", "_reverse"})
    for (const char* base : {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0"})
      n.push_back(std::string(base) + sfx);
  for (const char* s : {"head_proj.weight", "head_proj.bias", "post_proj.weight", "post_proj.bias"}) n.push_back(s);
  return n;
}

template <class T>
std::vector<double> MultiHeadLSTM<T>::unit_group_norms() const {
  const index_t d = d_;
  std::vector<double> sq(static_cast<std::size_t>(2 * C_), 0.0);
  for (index_t dir = 0; dir < 2; ++dir)
    for (index_t h = 0; h < H_; ++h) {
      double* u = sq.data() + (dir * H_ + h) * d;
      const T* wi = w_ih_.data() + (dir * H_ + h) * 4 * d * d;
      const T* wh = w_hh_.data() + (dir * H_ + h) * 4 * d * d;
      for (index_t row = 0; row < 4 * d; ++row)
        for (index_t c = 0; c < d; ++c) {
          const double a = static_cast<double>(wi[row * d + c]), b = static_cast<double>(wh[row * d + c]);
          u[row % d] += a * a + b * b;  // the unit's gate rows
          u[c] += b * b;                // the unit's recurrent column
        }
    }
  for (double& v : sq) v = std::sqrt(v);
  return sq;
}

template <class T>
double MultiHeadLSTM<T>::add_hoyer_square_grad(double weight) {
  const index_t d = d_;
  const std::vector<double> n = unit_group_norms();
  std::vector<double> dn(n.size(), 0.0);  // weight * dR/d||G_j||, 0 for an empty group
  double R = 0;
  for (index_t grp = 0; grp < 2 * H_; ++grp) {
    const double* g = n.data() + grp * d;
    double S = 0, Q = 1e-6;
    for (index_t j = 0; j < d; ++j) {
      S += g[j];
      Q += g[j] * g[j];
    }
    R += S * S / Q;
    for (index_t j = 0; j < d; ++j)
      if (g[j] > 0) dn[static_cast<std::size_t>(grp * d + j)] = weight * (2 * S / Q - 2 * S * S * g[j] / (Q * Q));
  }
  if (weight == 0) return R;
  // d||G_j|| / dw = w / ||G_j|| for every group w belongs to.
  std::vector<double> k(n.size(), 0.0);
  for (std::size_t u = 0; u < n.size(); ++u) k[u] = n[u] > 0 ? dn[u] / n[u] : 0.0;
  for (index_t grp = 0; grp < 2 * H_; ++grp) {
    const double* ku = k.data() + grp * d;
    const index_t off = grp * 4 * d * d;
    const T* wi = w_ih_.data() + off;
    const T* wh = w_hh_.data() + off;
    T* gi = g_w_ih_.data() + off;
    T* gh = g_w_hh_.data() + off;
    for (index_t row = 0; row < 4 * d; ++row)
      for (index_t c = 0; c < d; ++c) {
        gi[row * d + c] += static_cast<T>(ku[row % d] * static_cast<double>(wi[row * d + c]));
        gh[row * d + c] += static_cast<T>((ku[row % d] + ku[c]) * static_cast<double>(wh[row * d + c]));
      }
  }
  return R;
}

template <class T>
void MultiHeadLSTM<T>::prune_units(const std::vector<std::uint8_t>& keep) {
  if (keep.empty()) return;
  if (keep.size() != keep_.size())
    throw shape_error(detail::concat("MultiHeadLSTM::prune_units: keep has ", keep.size(), " entries, expected ",
                                     keep_.size(), " (2 directions x ", H_, " heads x ", d_, " units)"));
  for (std::size_t u = 0; u < keep.size(); ++u)
    if (!keep[u]) keep_[u] = 0;
  apply_pruning();
  compact_units();
}

template <class T>
void MultiHeadLSTM<T>::compact_units() {
  const index_t d = d_;
  std::vector<index_t> perm(static_cast<std::size_t>(d));
  std::vector<T> tmp;
  // new row g d + n = old row g d + perm[n], for the 4 gate blocks of a [4d, cols] slot.
  auto rows = [&](T* w, index_t cols) {
    tmp.assign(w, w + 4 * d * cols);
    for (index_t g = 0; g < 4; ++g)
      for (index_t n = 0; n < d; ++n)
        std::copy_n(tmp.data() + (g * d + perm[static_cast<std::size_t>(n)]) * cols, cols, w + (g * d + n) * cols);
  };
  // new column n = old column perm[n] of `count` rows of stride ld.
  auto cols = [&](T* w, index_t count, index_t ld) {
    for (index_t r = 0; r < count; ++r) {
      T* row = w + r * ld;
      tmp.assign(row, row + d);
      for (index_t n = 0; n < d; ++n) row[n] = tmp[static_cast<std::size_t>(perm[static_cast<std::size_t>(n)])];
    }
  };
  for (index_t dir = 0; dir < 2; ++dir)
    for (index_t h = 0; h < H_; ++h) {
      const index_t hd = dir * H_ + h;
      std::uint8_t* kp = keep_.data() + hd * d;
      index_t k = 0;
      for (index_t j = 0; j < d; ++j)
        if (kp[j]) perm[static_cast<std::size_t>(k++)] = j;
      width_[static_cast<std::size_t>(hd)] = k;
      for (index_t j = 0, n = k; j < d; ++j)
        if (!kp[j]) perm[static_cast<std::size_t>(n++)] = j;
      bool identity = true;
      for (index_t n = 0; n < d; ++n) identity = identity && perm[static_cast<std::size_t>(n)] == n;
      if (identity) continue;
      for (Tensor<T>* t : {&w_ih_, &g_w_ih_}) rows(t->data() + hd * 4 * d * d, d);
      for (Tensor<T>* t : {&w_hh_, &g_w_hh_}) {
        rows(t->data() + hd * 4 * d * d, d);
        cols(t->data() + hd * 4 * d * d, 4 * d, d);
      }
      for (Tensor<T>* t : {&b_ih_, &g_b_ih_, &b_hh_, &g_b_hh_}) rows(t->data() + hd * 4 * d, 1);
      for (Tensor<T>* t : {&hp_w_, &g_hp_w_}) cols(t->data() + h * d * 2 * d + dir * d, d, 2 * d);
      for (index_t n = 0; n < d; ++n) kp[n] = n < k ? 1 : 0;
      index_t* pp = perm_.data() + hd * d;
      const std::vector<index_t> before(pp, pp + d);
      for (index_t n = 0; n < d; ++n) pp[n] = before[static_cast<std::size_t>(perm[static_cast<std::size_t>(n)])];
    }
}

template <class T>
void MultiHeadLSTM<T>::infer_pruning() {
  const index_t d = d_;
  const std::vector<double> n = unit_group_norms();
  for (index_t dir = 0; dir < 2; ++dir)
    for (index_t h = 0; h < H_; ++h) {
      const index_t grp = dir * H_ + h;
      for (index_t j = 0; j < d; ++j) {
        bool zero = n[static_cast<std::size_t>(grp * d + j)] == 0;
        for (index_t g = 0; g < 4 && zero; ++g)
          zero = b_ih_.data()[grp * 4 * d + g * d + j] == T(0) && b_hh_.data()[grp * 4 * d + g * d + j] == T(0);
        for (index_t r = 0; r < d && zero; ++r) zero = hp_w_.data()[h * d * 2 * d + r * 2 * d + dir * d + j] == T(0);
        keep_[static_cast<std::size_t>(grp * d + j)] = zero ? 0 : 1;
      }
    }
  compact_units();
}

template <class T>
void MultiHeadLSTM<T>::apply_pruning() {
  if (!pruned()) return;
  const index_t d = d_;
  for (index_t dir = 0; dir < 2; ++dir)
    for (index_t h = 0; h < H_; ++h) {
      const index_t grp = dir * H_ + h;
      const std::uint8_t* kp = keep_.data() + grp * d;
      T* wi = w_ih_.data() + grp * 4 * d * d;
      T* wh = w_hh_.data() + grp * 4 * d * d;
      T* bi = b_ih_.data() + grp * 4 * d;
      T* bh = b_hh_.data() + grp * 4 * d;
      for (index_t row = 0; row < 4 * d; ++row) {
        const bool row_alive = kp[row % d];
        if (!row_alive) bi[row] = bh[row] = T(0);
        for (index_t c = 0; c < d; ++c) {
          if (!row_alive) wi[row * d + c] = T(0);
          if (!row_alive || !kp[c]) wh[row * d + c] = T(0);
        }
      }
      // head_proj reads unit j of (dir, h) at column dir * d + j of every output row of head h.
      T* hw = hp_w_.data() + h * d * 2 * d + dir * d;
      for (index_t r = 0; r < d; ++r)
        for (index_t j = 0; j < d; ++j)
          if (!kp[j]) hw[r * 2 * d + j] = T(0);
    }
}

template <class T>
std::vector<std::string> MultiHeadLSTM<T>::init_from_teacher(const named_tensors<T>& teacher) {
  const Tensor<T>* w = nullptr;
  const Tensor<T>* b = nullptr;
  for (const auto& [name, t] : teacher) {
    if (name == "proj.weight") w = &t;
    if (name == "proj.bias") b = &t;
  }
  if (!w || !b || !(w->shape() == post_w_.shape()) || !(b->shape() == post_b_.shape())) return {};
  post_w_.copy_from(w->view());
  post_b_.copy_from(b->view());
  return teacher_initialised();
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>>> MultiHeadLSTM<T>::to_dense(bool grads) const {
  const index_t C = C_, d = d_;
  const Tensor<T>& wih = grads ? g_w_ih_ : w_ih_;
  const Tensor<T>& whh = grads ? g_w_hh_ : w_hh_;
  const Tensor<T>& bih = grads ? g_b_ih_ : b_ih_;
  const Tensor<T>& bhh = grads ? g_b_hh_ : b_hh_;
  const Tensor<T>& hpw = grads ? g_hp_w_ : hp_w_;
  std::vector<std::pair<std::string, Tensor<T>>> out;
  out.emplace_back("pre_proj.weight", grads ? g_pre_w_ : pre_w_);
  out.emplace_back("pre_proj.bias", grads ? g_pre_b_ : pre_b_);
  for (index_t dir = 0; dir < 2; ++dir) {
    const std::string sfx = dir ? "_reverse" : "";
    Tensor<T> wi(Shape{4 * C, C}), wh(Shape{4 * C, C}), bi(Shape{4 * C}), bh(Shape{4 * C});  // zeroed
    for (index_t h = 0; h < H_; ++h) {
      const index_t* P = perm_.data() + (dir * H_ + h) * d;  // stored unit -> PyTorch unit
      for (index_t g = 0; g < 4; ++g)
        for (index_t r = 0; r < d; ++r) {
          const index_t dr = g * C + h * d + P[r], br = g * d + r;
          bi(dr) = bih(dir, h, br);
          bh(dr) = bhh(dir, h, br);
          for (index_t c = 0; c < d; ++c) {
            wi(dr, h * d + c) = wih(dir, h, br, c);
            wh(dr, h * d + P[c]) = whh(dir, h, br, c);
          }
        }
    }
    out.emplace_back("lstm.weight_ih_l0" + sfx, std::move(wi));
    out.emplace_back("lstm.weight_hh_l0" + sfx, std::move(wh));
    out.emplace_back("lstm.bias_ih_l0" + sfx, std::move(bi));
    out.emplace_back("lstm.bias_hh_l0" + sfx, std::move(bh));
  }
  Tensor<T> hw(Shape{C, 2 * C});
  for (index_t h = 0; h < H_; ++h)
    for (index_t r = 0; r < d; ++r)
      for (index_t dir = 0; dir < 2; ++dir)
        for (index_t c = 0; c < d; ++c) hw(h * d + r, dir * C + h * d + perm_[(dir * H_ + h) * d + c]) = hpw(h, r, dir * d + c);
  out.emplace_back("head_proj.weight", std::move(hw));
  out.emplace_back("head_proj.bias", grads ? g_hp_b_ : hp_b_);
  out.emplace_back("post_proj.weight", grads ? g_post_w_ : post_w_);
  out.emplace_back("post_proj.bias", grads ? g_post_b_ : post_b_);
  return out;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
