"""Golden files for sparsimix::SelectiveScan (Mamba-1 block, optional Vim v2 bidirectional).

The reference is a pure-PyTorch port of state-spaces/mamba (e9594ce)
`mamba_ssm/ops/selective_scan_interface.py::selective_scan_ref` and of the slow path of
`mamba_ssm/modules/mamba_simple.py::Mamba.forward` (Conv1d(padding=K-1)[..., :L]); the
bidirectional variant follows hustvl/Vim `mamba_simple.py` bimamba_type "v2" with
if_devide_out=True. It runs in float64 on parameters and inputs rounded to float32 (what the
files store), so the only error a float C++ run shows is its own. Gradients: torch autograd
of sum(y * dy) for a random upstream dy.

Masked cases: the reference runs each sequence's alive tokens on their own (batch 1) and
scatters the result back, 0 at dead positions (docs/formats.md 1, Note [token mask gather]).
"""
import math

import torch
import torch.nn.functional as F

import st


def selective_scan_ref(u, delta, A, B, C, D, z, delta_bias):
    """mamba's selective_scan_ref with delta_softplus=True, real A, B/C [b, n, l]."""
    delta = F.softplus(delta + delta_bias[..., None])
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    y = torch.stack(ys, dim=2)
    out = y + u * D[:, None]
    return out * F.silu(z)


def branch(p, sfx, x, z, L, R, S, K):
    """Mamba steps 2-6 without out_proj on x, z [b, D_in, L]; parameter names with suffix sfx."""
    w = p[f"conv1d{sfx}.weight"]
    x = F.conv1d(x, w, p[f"conv1d{sfx}.bias"], padding=K - 1, groups=w.shape[0])[..., :L]
    x = F.silu(x)
    b = x.shape[0]
    x_dbl = x.transpose(1, 2).reshape(b * L, -1) @ p[f"x_proj{sfx}.weight"].t()
    dt, Bm, Cm = torch.split(x_dbl, [R, S, S], dim=-1)
    dt = (p[f"dt_proj{sfx}.weight"] @ dt.t()).reshape(-1, b, L).permute(1, 0, 2)
    Bm = Bm.reshape(b, L, S).transpose(1, 2)
    Cm = Cm.reshape(b, L, S).transpose(1, 2)
    a_name = "A_log" if sfx == "" else "A_b_log"
    d_name = "D" if sfx == "" else "D_b"
    A = -torch.exp(p[a_name])
    return selective_scan_ref(x, dt, A, Bm, Cm, p[d_name], z, p[f"dt_proj{sfx}.bias"])


def block(p, hidden, cfg):
    """Mamba (or Vim v2) block on hidden [b, L, C]."""
    L = hidden.shape[1]
    R, S, K = cfg["dt_rank"], cfg["d_state"], cfg["d_conv"]
    xz = (hidden @ p["in_proj.weight"].t()).transpose(1, 2)  # [b, 2 D_in, L]
    x, z = xz.chunk(2, dim=1)
    y = branch(p, "", x, z, L, R, S, K)
    if cfg["bidirectional"]:
        yb = branch(p, "_b", x.flip([-1]), z.flip([-1]), L, R, S, K)
        y = (y + yb.flip([-1])) / 2
    return y.transpose(1, 2) @ p["out_proj.weight"].t()


def make_params(cfg, gen):
    C, S, K, R = cfg["dim"], cfg["d_state"], cfg["d_conv"], cfg["dt_rank"]
    Di = int(math.floor(cfg["expand"] * C))

    def uni(shape, bound):
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound

    def dt_bias():
        dt = torch.exp(torch.rand(Di, generator=gen, dtype=torch.float64)
                       * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
        # A wider spread than init (x 30) so softplus' and the decay both matter.
        dt = dt * 30
        return dt + torch.log(-torch.expm1(-dt))

    p = {"in_proj.weight": uni((2 * Di, C), C ** -0.5)}
    names = [""] + (["_b"] if cfg["bidirectional"] else [])
    for sfx in names:
        p[f"conv1d{sfx}.weight"] = uni((Di, 1, K), K ** -0.5)
        p[f"conv1d{sfx}.bias"] = uni((Di,), K ** -0.5)
        p[f"x_proj{sfx}.weight"] = uni((R + 2 * S, Di), Di ** -0.5)
        p[f"dt_proj{sfx}.weight"] = uni((Di, R), R ** -0.5)
        p[f"dt_proj{sfx}.bias"] = dt_bias()
        a_log = torch.log(torch.arange(1, S + 1, dtype=torch.float64)).repeat(Di, 1)
        p["A_log" if sfx == "" else "A_b_log"] = a_log + uni((Di, S), 0.3)
        p["D" if sfx == "" else "D_b"] = 1 + uni((Di,), 0.5)
    p["out_proj.weight"] = uni((C, Di), Di ** -0.5)
    # Round to float32 so C++ (reading F32) and the reference see the same values.
    return {k: v.float().double() for k, v in p.items()}


def run_case(out, name, cfg, batch, tokens, seed, mask=None):
    gen = torch.Generator().manual_seed(seed)
    p = make_params(cfg, gen)
    x = torch.randn(batch, tokens, cfg["dim"], generator=gen, dtype=torch.float64).float().double()
    dy = torch.randn(batch, tokens, cfg["dim"], generator=gen, dtype=torch.float64).float().double()
    for v in p.values():
        v.requires_grad_(True)
    x.requires_grad_(True)
    if mask is None:
        y = block(p, x, cfg)
    else:
        rows = []
        for b in range(batch):
            alive = mask[b].nonzero().flatten()
            yb = torch.zeros(tokens, cfg["dim"], dtype=torch.float64)
            if alive.numel() > 0:
                yb = yb.index_put((alive,), block(p, x[b:b + 1, alive], cfg)[0])
            rows.append(yb)
        y = torch.stack(rows)
    (y * dy).sum().backward()
    tensors = {"x": x.detach(), "dy": dy, "y": y.detach(), "dx": x.grad}
    if mask is not None:
        tensors["mask"] = mask.to(torch.int64)
    for k, v in p.items():
        tensors[k] = v.detach()
        tensors["grad." + k] = v.grad
    # Inputs stored as F32 (what a float model reads); expected values in F64.
    stored = {k: (v.float() if (k in p or k in ("x", "dy")) else v) for k, v in tensors.items()}
    meta = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in cfg.items()}
    meta["batch"] = str(batch)
    meta["tokens"] = str(tokens)
    st.save(out / f"selective_scan_{name}.safetensors", stored, metadata=meta)


def generate(out):
    torch.set_num_threads(1)
    base = {"dim": 40, "d_state": 16, "d_conv": 4, "expand": 2.0, "dt_rank": 3, "bidirectional": False}
    bi = dict(base, bidirectional=True)
    # Non-default sizes: D_in = 60 (not a multiple of any SIMD width), S = 5, K = 3, R = 4.
    odd = {"dim": 40, "d_state": 5, "d_conv": 3, "expand": 1.5, "dt_rank": 4, "bidirectional": True}
    run_case(out, "uni_b1_n13", base, 1, 13, 1)
    run_case(out, "uni_b3_n197", base, 3, 197, 2)
    run_case(out, "bi_b1_n13", bi, 1, 13, 3)
    run_case(out, "bi_b3_n197", bi, 3, 197, 4)
    run_case(out, "odd_b2_n17", odd, 2, 17, 5)
    gen = torch.Generator().manual_seed(6)
    mask = (torch.rand(3, 13, generator=gen) < 0.6).to(torch.uint8)
    mask[0, :] = 1      # all alive
    mask[1, :] = 0      # a single alive token (conv and scan of length 1)
    mask[1, 7] = 1
    mask[2, 0] = 0      # first token dead: the conv must not see it
    run_case(out, "masked_uni_b3_n13", base, 3, 13, 7, mask)
    run_case(out, "masked_bi_b3_n13", bi, 3, 13, 8, mask)
    mask2 = mask.clone()
    mask2[1, :] = 0     # a fully dead sequence
    run_case(out, "masked_odd_b3_n13", odd, 3, 13, 9, mask2)
