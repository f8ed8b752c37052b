// Tape<T>::run_backward: the reverse rule of every op, one case each. Split out of tape.hpp
// to keep the class readable; tape.hpp includes it after the class, it is not used alone.
#pragma once

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

template <class T>
void Tape<T>::run_backward(const node& nd, const T* dy) {
  using op = detail::tape_op;
  switch (nd.op) {
    case op::leaf: break;
    case op::linear: {
      const index_t m = nd.i0, k = nd.i1, n = nd.i2;
      linear_node_backward(nd, dy, m, k, n);
      break;
    }
    case op::linear_gelu: {
      const index_t m = nd.i0, k = nd.i1, n = shape(nd.b)[0];
      const T* pre = aux_data(nd.i2);
      scratch_.resize(Shape{m * n});  // d(pre-activation)
      kernels::gelu_backward(pre, dy, scratch_.data(), m * n);
      linear_node_backward(nd, scratch_.data(), m, k, n);
      break;
    }
    case op::add: {
      const index_t n = numel(nd.out), nb = nd.i0;
      if (T* ga = acc_grad(nd.a))
        for (index_t i = 0; i < n; ++i) ga[i] += dy[i];
      if (T* gb = acc_grad(nd.b))
        for (index_t i = 0; i < n; i += nb)
          for (index_t j = 0; j < nb; ++j) gb[j] += dy[i + j];
      break;
    }
    case op::sub: {
      const index_t n = numel(nd.out);
      if (T* ga = acc_grad(nd.a))
        for (index_t i = 0; i < n; ++i) ga[i] += dy[i];
      if (T* gb = acc_grad(nd.b))
        for (index_t i = 0; i < n; ++i) gb[i] -= dy[i];
      break;
    }
    case op::mul: {
      const index_t n = numel(nd.out);
      const T* a = ptr(nd.a);
      const T* b = ptr(nd.b);
      if (T* ga = acc_grad(nd.a))
        for (index_t i = 0; i < n; ++i) ga[i] += dy[i] * b[i];
      if (T* gb = acc_grad(nd.b))
        for (index_t i = 0; i < n; ++i) gb[i] += dy[i] * a[i];
      break;
    }
    case op::scale: {
      const index_t n = numel(nd.out);
      const T s = static_cast<T>(nd.f0);
      if (T* ga = acc_grad(nd.a))
        for (index_t i = 0; i < n; ++i) ga[i] += s * dy[i];
      break;
    }
    case op::layernorm: {
      const index_t rows = nd.i0, c = nd.i1;
      T* dg = acc_grad(nd.b);  // the kernel adds into these; nullptr skips them
      T* dbe = acc_grad(nd.c);
      const T* x = ptr(nd.a);
      const T* gamma = ptr(nd.b);
      const T* mean = aux_data(nd.i2);
      const T* rstd = aux_data(nd.i2 + 1);
      if (vars_[uidx(nd.a)].grad) {
        write_grad(nd.a, [&](T* dx) {
          kernels::layernorm_backward(x, gamma, mean, rstd, dy, dx, dg, dbe, rows, c);
        });
      } else {
        scratch_.resize(Shape{rows * c});
        kernels::layernorm_backward(x, gamma, mean, rstd, dy, scratch_.data(), dg, dbe, rows, c);
      }
      break;
    }
    case op::gelu: {
      const T* x = ptr(nd.a);
      const index_t n = numel(nd.a);
      write_grad(nd.a, [&](T* dx) { kernels::gelu_backward(x, dy, dx, n); });
      break;
    }
    case op::softmax: {
      const T* y = ptr(nd.out);
      write_grad(nd.a, [&](T* dx) { kernels::softmax_rows_backward(y, dy, dx, nd.i0, nd.i1); });
      break;
    }
    case op::concat_tokens: {
      const Shape as = shape(nd.a), bs = shape(nd.b);
      const index_t batch = shape(nd.out)[0], na = as[1], nb = bs[1], c = as[2];
      T* ga = acc_grad(nd.a);
      T* gb = acc_grad(nd.b);
      for (index_t i = 0; i < batch; ++i) {
        const T* src = dy + i * (na + nb) * c;
        if (ga) {
          T* d = ga + (as[0] == 1 ? 0 : i) * na * c;
          for (index_t j = 0; j < na * c; ++j) d[j] += src[j];
        }
        if (gb) {
          T* d = gb + (bs[0] == 1 ? 0 : i) * nb * c;
          for (index_t j = 0; j < nb * c; ++j) d[j] += src[na * c + j];
        }
      }
      break;
    }
    case op::slice_tokens: {
      T* gx = acc_grad(nd.a);
      if (!gx) break;
      const Shape xs = shape(nd.a);
      const index_t batch = xs[0], n = xs[1], c = xs[2], start = nd.i0, count = nd.i1;
      for (index_t i = 0; i < batch; ++i) {
        T* d = gx + (i * n + start) * c;
        const T* src = dy + i * count * c;
        for (index_t j = 0; j < count * c; ++j) d[j] += src[j];
      }
      break;
    }
    case op::reshape: {
      const index_t n = numel(nd.out);
      if (T* gx = acc_grad(nd.a))
        for (index_t i = 0; i < n; ++i) gx[i] += dy[i];
      break;
    }
    case op::mean_tokens: {
      T* gx = acc_grad(nd.a);
      if (!gx) break;
      const Shape xs = shape(nd.a);
      const index_t batch = xs[0], n = xs[1], c = xs[2];
      const T inv = T(1) / static_cast<T>(n);
      for (index_t i = 0; i < batch; ++i)
        for (index_t t = 0; t < n; ++t)
          for (index_t j = 0; j < c; ++j) gx[(i * n + t) * c + j] += inv * dy[i * c + j];
      break;
    }
    case op::mask_tokens: {
      T* gx = acc_grad(nd.a);
      if (!gx) break;
      const index_t rows = nd.i0, c = nd.i1;
      for (index_t r = 0; r < rows; ++r)
        if (bytes_[static_cast<std::size_t>(nd.i2 + r)])
          for (index_t j = r * c; j < (r + 1) * c; ++j) gx[j] += dy[j];
      break;
    }
    case op::sum:
    case op::mean: {
      const index_t n = numel(nd.a);
      const T g = static_cast<T>(nd.f0) * dy[0];
      if (T* gx = acc_grad(nd.a))
        for (index_t i = 0; i < n; ++i) gx[i] += g;
      break;
    }
    case op::mixer: {
      auto& h = *mixers_[static_cast<std::size_t>(nd.i0)];
      const Shape xs = shape(nd.a);
      if (nd.b.valid() && vars_[uidx(nd.b)].grad_ready) {
        // Two outputs: y's gradient may never have been written (a loss on s alone).
        const ConstSeq<T> dys(acc_grad(nd.out), xs), dss(vars_[uidx(nd.b)].grad, xs);
        if (vars_[uidx(nd.a)].grad) {
          write_grad(nd.a, [&](T* dx) { h.backward(dys, Seq<T>(dx, xs), dss); });
        } else {
          scratch2_.resize(xs);
          h.backward(dys, scratch2_.view(), dss);
        }
        break;
      }
      const ConstSeq<T> dys(dy, xs);
      if (vars_[uidx(nd.a)].grad) {
        write_grad(nd.a, [&](T* dx) { h.backward(dys, Seq<T>(dx, xs)); });
      } else {
        scratch_.resize(xs);
        h.backward(dys, scratch_.view());
      }
      break;
    }
    case op::mse: {
      const index_t counted = nd.i0, c = nd.i1, n = numel(nd.a);
      if (counted == 0) break;
      const T g = T(2) * dy[0] / static_cast<T>(counted);
      T* ga = acc_grad(nd.a);
      T* gb = acc_grad(nd.b);
      const T* a = ptr(nd.a);
      const T* b = ptr(nd.b);
      for (index_t r = 0; r < n / c; ++r) {
        if (nd.i2 >= 0 && !bytes_[static_cast<std::size_t>(nd.i2 + r)]) continue;
        for (index_t j = r * c; j < (r + 1) * c; ++j) {
          const T d = g * (a[j] - b[j]);
          if (ga) ga[j] += d;
          if (gb) gb[j] -= d;
        }
      }
      break;
    }
    case op::cosine_loss: {
      const index_t rows = nd.i0, c = nd.i1;
      const T* st = aux_data(nd.i2);
      const T eps = static_cast<T>(nd.f0);
      const T* a = ptr(nd.a);
      const T* b = ptr(nd.b);
      T* ga = acc_grad(nd.a);
      T* gb = acc_grad(nd.b);
      const T g = -dy[0] / static_cast<T>(rows);  // d(1 - cos)/dcos, averaged
      for (index_t r = 0; r < rows; ++r) {
        const T d = st[3 * r], na = st[3 * r + 1], nb = st[3 * r + 2];
        const T inv = T(1) / (na * nb);
        // d cos / da = b / (na nb) - cos * a / na^2, the second term only where |a| > eps.
        const T ca = na > eps ? d * inv / (na * na) : T(0);
        const T cb = nb > eps ? d * inv / (nb * nb) : T(0);
        for (index_t j = 0; j < c; ++j) {
          const T aj = a[r * c + j], bj = b[r * c + j];
          if (ga) ga[r * c + j] += g * (bj * inv - ca * aj);
          if (gb) gb[r * c + j] += g * (aj * inv - cb * bj);
        }
      }
      break;
    }
    case op::cross_entropy: {
      T* gl = acc_grad(nd.a);
      if (!gl) break;
      const index_t batch = shape(nd.a)[0], k = nd.i1;
      const T* lp = aux_data(nd.i2);
      const T e = static_cast<T>(nd.f0);
      const T g = dy[0] / static_cast<T>(batch);
      const T uniform = e / static_cast<T>(k);
      for (index_t i = 0; i < batch; ++i) {
        const index_t label = labels_[static_cast<std::size_t>(nd.i0 + i)];
        for (index_t j = 0; j < k; ++j) {
          const T target = (j == label ? T(1) - e : T(0)) + uniform;
          gl[i * k + j] += g * (std::exp(lp[i * k + j]) - target);
        }
      }
      break;
    }
    case op::soft_cross_entropy: {
      const index_t batch = nd.i0, k = nd.i1;
      const T* lp = aux_data(nd.i2);
      const T* t = ptr(nd.b);
      const T g = dy[0] / static_cast<T>(batch);
      if (T* gl = acc_grad(nd.a)) {
        for (index_t i = 0; i < batch; ++i) {
          T tsum = 0;
          for (index_t j = 0; j < k; ++j) tsum += t[i * k + j];
          for (index_t j = 0; j < k; ++j) gl[i * k + j] += g * (std::exp(lp[i * k + j]) * tsum - t[i * k + j]);
        }
      }
      if (T* gt = acc_grad(nd.b))
        for (index_t i = 0; i < batch * k; ++i) gt[i] -= g * lp[i];
      break;
    }
    case op::kl_div_logits: {
      const index_t batch = nd.i0, k = nd.i1;
      const T* ls = aux_data(nd.i2);
      const T* lt = aux_data(nd.i2 + 1);
      const T tau = static_cast<T>(nd.f0);
      // L = tau^2/B sum p_t (log p_t - log p_s), logits divided by tau:
      // dL/ds = tau/B (p_s - p_t); dL/dt = tau/B p_t (g - <p_t, g>), g = log p_t - log p_s.
      const T g = dy[0] * tau / static_cast<T>(batch);
      if (T* gs = acc_grad(nd.a))
        for (index_t i = 0; i < batch * k; ++i) gs[i] += g * (std::exp(ls[i]) - std::exp(lt[i]));
      if (T* gt = acc_grad(nd.b)) {
        for (index_t i = 0; i < batch; ++i) {
          T mean_g = 0;
          for (index_t j = 0; j < k; ++j) mean_g += std::exp(lt[i * k + j]) * (lt[i * k + j] - ls[i * k + j]);
          for (index_t j = 0; j < k; ++j) {
            const T pt = std::exp(lt[i * k + j]);
            gt[i * k + j] += g * pt * (lt[i * k + j] - ls[i * k + j] - mean_g);
          }
        }
      }
      break;
    }
    case op::bernoulli_kl: {
      const index_t n = numel(nd.a);
      const double g = static_cast<double>(dy[0]) / static_cast<double>(n);
      const T* p = ptr(nd.a);
      const T* q = ptr(nd.b);
      T* gp = acc_grad(nd.a);
      T* gq = acc_grad(nd.b);
      constexpr double lo = 1e-6, hi = 1.0 - 1e-6;
      for (index_t i = 0; i < n; ++i) {
        const double pr = static_cast<double>(p[i]), qr = static_cast<double>(q[i]);
        const double pc = clamp_prob(pr), qc = clamp_prob(qr);
        if (gp && pr >= lo && pr <= hi)
          gp[i] += static_cast<T>(g * (std::log(pc / qc) - std::log((1 - pc) / (1 - qc))));
        if (gq && qr >= lo && qr <= hi) gq[i] += static_cast<T>(g * (-pc / qc + (1 - pc) / (1 - qc)));
      }
      break;
    }
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
