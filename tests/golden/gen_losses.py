"""Loss goldens: value and gradients (torch.autograd, float64) of every tape loss.

  ce        F.cross_entropy(logits, labels, label_smoothing=0.1)        (and ce0: no smoothing)
  kl        F.kl_div(F.log_softmax(s / T), F.softmax(t / T), reduction="batchmean") * T**2, T = 2
            -- the definition sparsimix's Tape::kl_div_logits documents
  cos       (1 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)).mean()   (over channels)
  mse       F.mse_loss(a, b)
  bkl       mean(p log(p/q) + (1-p) log((1-p)/(1-q))), p, q clamped to [1e-6, 1-1e-6]
            (docs/method.md 2.4; written out, torch has no such loss). Some entries sit outside
            the clamp range, so their gradient must be exactly 0.
"""
import torch
import torch.nn.functional as F

import st


def _grads(loss, *xs):
    return torch.autograd.grad(loss, xs)


def generate(out_dir):
    g = torch.Generator().manual_seed(2024)
    d = torch.float64
    out = {}

    logits = (2 * torch.randn(6, 5, generator=g, dtype=d)).requires_grad_(True)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    out["ce.logits"], out["ce.labels"] = logits.detach(), labels
    for name, eps in (("ce", 0.1), ("ce0", 0.0)):
        loss = F.cross_entropy(logits, labels, label_smoothing=eps)
        out[f"{name}.loss"] = loss.detach().reshape(1)
        out[f"{name}.dlogits"], = _grads(loss, logits)

    s = (2 * torch.randn(6, 5, generator=g, dtype=d)).requires_grad_(True)
    t = (2 * torch.randn(6, 5, generator=g, dtype=d)).requires_grad_(True)
    T = 2.0
    loss = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T * T
    out["kl.s"], out["kl.t"], out["kl.loss"] = s.detach(), t.detach(), loss.detach().reshape(1)
    out["kl.ds"], out["kl.dt"] = _grads(loss, s, t)

    a = torch.randn(2, 3, 8, generator=g, dtype=d).requires_grad_(True)
    b = torch.randn(2, 3, 8, generator=g, dtype=d).requires_grad_(True)
    out["a"], out["b"] = a.detach(), b.detach()
    loss = (1 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)).mean()
    out["cos.loss"] = loss.detach().reshape(1)
    out["cos.da"], out["cos.db"] = _grads(loss, a, b)
    loss = F.mse_loss(a, b)
    out["mse.loss"] = loss.detach().reshape(1)
    out["mse.da"], out["mse.db"] = _grads(loss, a, b)

    p = torch.rand(4, 6, generator=g, dtype=d)
    q = torch.rand(4, 6, generator=g, dtype=d)
    p[0, 0], p[1, 1], q[2, 2], q[3, 3] = 0.0, 1.0, 0.0, 1.0  # clamped entries
    p.requires_grad_(True)
    q.requires_grad_(True)
    pc, qc = p.clamp(1e-6, 1 - 1e-6), q.clamp(1e-6, 1 - 1e-6)
    loss = (pc * torch.log(pc / qc) + (1 - pc) * torch.log((1 - pc) / (1 - qc))).mean()
    out["bkl.p"], out["bkl.q"], out["bkl.loss"] = p.detach(), q.detach(), loss.detach().reshape(1)
    out["bkl.dp"], out["bkl.dq"] = _grads(loss, p, q)

    st.save(out_dir / "losses.safetensors", out)
