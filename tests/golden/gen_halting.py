"""Golden files for sparsimix::HaltingController: the A-ViT halting loop of docs/formats.md section 1
re-implemented in torch, tensor-style as A-ViT's act_vision_transformer.py writes it
(c, R, rho, mask updated for every token each block), with a stand-in block
y_l = tanh(x_l @ W_l):

    m = 1; for l in 0..L-1:  x_in = x * m;  y = tanh(x_in @ W_l) * m;  x = y
        h = sigmoid(gamma * y[..., 0] - beta)   (forced to 1 at l = L-1 for halting)
        c += h; rho += m; reached = (c >= 1-eps) & m; rho += R * reached
        R -= h * (c < 1-eps); m = c < 1-eps, m[:, 0] = 1 (CLS never halts)
    ponder = mean over batch and patch tokens of rho
    H_l = mean over batch and patch tokens of the raw h^l (A-ViT appends it before forcing 1)
    p = H / sum H; p = clamp(p, 0.01, 0.99); p = p / sum p (FAR)
    KL = kl_div(log p, target, reduction='batchmean'), target = A-ViT get_distribution_target
         (gaussian, target depth ceil(2L/3), sigma 1, buffer 0.02)

Gradients of alpha_p * ponder + alpha_d * KL are taken w.r.t. each block's masked output
y_l (a leaf: the next block reads a detached copy, so these are the partials through h).
The inputs are float32; the reference runs in float64 from those exact numbers. The
generator checks that tokens halt at different depths (some mid-stack, some only at the
forced last block) and that no cumulative sum lies within 1e-3 of the threshold.
"""
import math

import torch

import st

# name: (B, N, C, L, gamma, beta, eps, alpha_p, alpha_d, target depth; 0: ceil(2L/3))
CASES = {
    "b3_n17_c8_l6": (3, 17, 8, 6, 5.0, 3.0, 0.01, 0.5, 0.3, 0),
    "b2_n30_c6_l9": (2, 30, 6, 9, 6.0, 4.0, 0.01, 0.7, 0.2, 0),
    "b2_n21_c7_l8_td3": (2, 21, 7, 8, 5.0, 3.0, 0.01, 0.4, 0.6, 3),
}


def distribution_target(L, target_depth=0):
    td = target_depth if target_depth > 0 else math.ceil(2 * L / 3)
    pdf = torch.tensor([math.exp(-0.5 * (l - td) ** 2) / math.sqrt(2 * math.pi) for l in range(L)],
                       dtype=torch.float64)
    return pdf * (1 - 0.02) / pdf[:td].sum()


def halting_loop(x0, W, gamma, beta, eps, target_depth):
    B, N, C = x0.shape
    L = W.shape[0]
    thr = 1 - eps
    m = torch.ones(B, N, dtype=torch.float64)
    c = torch.zeros(B, N, dtype=torch.float64)
    R = torch.ones(B, N, dtype=torch.float64)
    rho = torch.zeros(B, N, dtype=torch.float64)
    x = x0
    leaves, raw_h, masks, margins = [], [], [], []
    for l in range(L):
        masks.append(m.clone())
        x_in = x * m[..., None]
        y = torch.tanh(x_in @ W[l]) * m[..., None]
        y = y.detach().requires_grad_()
        leaves.append(y)
        x = y.detach()
        h = torch.sigmoid(gamma * y[..., 0] - beta)
        raw_h.append(h)
        if l == L - 1:
            h = torch.ones_like(h)
        c = c + h
        rho = rho + m
        reached = (c >= thr).double() * m
        rho = rho + R * reached
        not_reached = (c < thr).double()
        R = R - not_reached * h
        alive_patch = m[:, 1:] > 0
        margins.append((c[:, 1:].detach() - thr).abs()[alive_patch])
        m = not_reached.clone()
        m[:, 0] = 1
    ponder = rho[:, 1:].mean()
    H = torch.stack([h[:, 1:].mean() for h in raw_h])
    p = H / H.sum()
    p = torch.clamp(p, 0.01, 0.99)
    p = p / p.sum()
    kl = torch.nn.functional.kl_div(p.log(), distribution_target(L, target_depth), reduction="batchmean")
    depth = torch.stack(masks).sum(0).long()
    margin = torch.cat(margins).min().item()
    return leaves, torch.stack(masks), depth, ponder, kl, margin, p


def make_case(B, N, C, L, gamma, beta, eps, alpha_p, alpha_d, target_depth, gen):
    for _ in range(100):
        x0 = torch.randn(B, N, C, generator=gen, dtype=torch.float32) * 1.5
        W = torch.randn(L, C, C, generator=gen, dtype=torch.float32) * (1.2 / math.sqrt(C))
        leaves, masks, depth, ponder, kl, margin, p = halting_loop(x0.double(), W.double(), gamma, beta, eps, target_depth)
        d = depth[:, 1:]
        ok = (margin > 1e-3 and (d < L).any() and (d == L).any() and d.unique().numel() >= 3
              and ((p - 0.01).abs() > 1e-4).all() and ((p - 0.99).abs() > 1e-4).all())
        if ok:
            break
    else:
        raise RuntimeError("gen_halting: no draw halts mid-stack with a safe threshold margin")
    (alpha_p * ponder + alpha_d * kl).backward()
    return {
        "x": x0, "W": W,
        "y": torch.stack([y.detach() for y in leaves]),           # [L, B, N, C] masked outputs
        "masks": masks.long(),                                     # [L, B, N] mask block l ran under
        "depth": depth,                                            # [B, N]
        "ponder": ponder.detach().reshape(1),
        "kl": kl.detach().reshape(1),
        "grad": torch.stack([y.grad[..., 0] for y in leaves]),    # [L, B, N]
        "hparams": torch.tensor([gamma, beta, eps, alpha_p, alpha_d, target_depth], dtype=torch.float64),
    }


def generate(out_dir):
    gen = torch.Generator().manual_seed(20261125)
    for name, args in CASES.items():
        st.save(out_dir / f"halting_{name}.safetensors", make_case(*args, gen))
