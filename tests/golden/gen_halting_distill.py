"""Golden files for the A-ViT term of mask-guided distillation (docs/method.md 2.4, step 3).

Between a teacher's halting (raw scores hT [L, B, N], masks m [L, B, N]) and a student's
(block-output channel 0 y [L, B, N], scores hS = sigmoid(gamma y - beta)), over patch tokens:
    L = sum_l BernoulliKL(hT_l || hS_l) + keep_weight * sum_l (keepS_l - keepT_l)^2
BernoulliKL(p || q) = mean[p log(p/q) + (1-p) log((1-p)/(1-q))], p and q clamped to
[1e-6, 1 - 1e-6]; at the last block both scores are 1 (A-ViT stores h = 1 there);
keepT_l = mean of m_l; keepS_l = mean of prod_{j <= l} (1 - hS_j). Written tensor-style as FAR's
training code does, differentiated by autograd w.r.t. y.
"""
import torch

import st

# name: (L, B, N, gamma, beta, keep_weight)
CASES = {
    "l5_b3_n9": (5, 3, 9, 4.0, 1.0, 5.0),
    "l7_b2_n13": (7, 2, 13, 6.0, 2.0, 0.5),
}


def bernoulli_kl(p, q):
    p = p.clamp(1e-6, 1 - 1e-6)
    q = q.clamp(1e-6, 1 - 1e-6)
    return (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean()


def make_case(L, B, N, gamma, beta, keep_weight, gen):
    hT = torch.rand(L, B, N, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    # Teacher masks: each patch token runs to a random depth 1..L; CLS always alive.
    depth = torch.randint(1, L + 1, (B, N), generator=gen)
    depth[:, 0] = L
    masks = torch.stack([(depth > l).long() for l in range(L)])
    y = (torch.randn(L, B, N, generator=gen, dtype=torch.float64) * 0.4 + beta / gamma).requires_grad_()
    hS = torch.sigmoid(gamma * y - beta)
    ones = torch.ones(B, N - 1, dtype=torch.float64)
    loss = torch.zeros((), dtype=torch.float64)
    surv = torch.ones(B, N - 1, dtype=torch.float64)
    for l in range(L):
        last = l == L - 1
        t = ones if last else hT[l, :, 1:]
        s = ones if last else hS[l, :, 1:]
        loss = loss + bernoulli_kl(t, s)
        surv = surv * (1 - s)
        keep_t = masks[l, :, 1:].double().mean()
        loss = loss + keep_weight * (surv.mean() - keep_t) ** 2
    loss.backward()
    return {
        "teacher_scores": hT, "teacher_masks": masks, "student_y0": y.detach(),
        "loss": loss.detach().reshape(1), "grad": y.grad,
        "hparams": torch.tensor([gamma, beta, keep_weight], dtype=torch.float64),
    }


def generate(out_dir):
    gen = torch.Generator().manual_seed(20261202)
    for name, args in CASES.items():
        st.save(out_dir / f"halting_distill_{name}.safetensors", make_case(*args, gen))
