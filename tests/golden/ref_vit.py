"""Reference HybridViT in PyTorch (float64), with the parameter names of docs/formats.md section 2.

The mixers reuse the references of the mixer golden generators: timm attention
(gen_attention.attention), the FAR multi-head LSTM as a masked torch.nn.LSTM, and the Mamba /
Vim-v2 block (gen_selective_scan.block). Blocks are timm's pre-norm blocks.
"""
import math

import torch
import torch.nn.functional as F

import gen_attention
import gen_selective_scan


class Attention(torch.nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.qkv = torch.nn.Linear(C, 3 * C)
        self.proj = torch.nn.Linear(C, C)

    def forward(self, x, alive=None):
        y, attn, _ = gen_attention.attention(x, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias,
                                             self.H, alive)
        return y, attn


def run_sequential(mixer, x, alive):
    """Note [token mask gather]: each sequence's alive tokens on their own, 0 elsewhere."""
    if alive is None:
        return mixer(x)
    rows = []
    for b in range(x.shape[0]):
        idx = alive[b].nonzero().flatten()
        yb = torch.zeros_like(x[b])
        if idx.numel() > 0:
            yb = yb.index_put((idx,), mixer(x[b:b + 1, idx])[0][0])
        rows.append(yb)
    return torch.stack(rows), None


def lstm_masks(C, H):
    d = C // H
    head = torch.zeros(C, C, dtype=torch.float64)
    for h in range(H):
        head[h * d:(h + 1) * d, h * d:(h + 1) * d] = 1
    return head.repeat(4, 1), torch.cat([head, head], dim=1)


class MultiHeadLstm(torch.nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.pre_proj = torch.nn.Linear(C, C)
        self.lstm = torch.nn.LSTM(C, C, num_layers=1, bidirectional=True, batch_first=True)
        self.head_proj = torch.nn.Linear(2 * C, C)
        self.post_proj = torch.nn.Linear(C, C)
        self.C, self.H = C, H

    def apply_masks(self):
        m_ih, m_head = lstm_masks(self.C, self.H)
        with torch.no_grad():
            for name, p in self.lstm.named_parameters():
                if name.startswith("weight"):
                    p.mul_(m_ih.to(p.dtype))
            self.head_proj.weight.mul_(m_head.to(self.head_proj.weight.dtype))

    def forward(self, x):
        o, _ = self.lstm(self.pre_proj(x))
        return self.post_proj(self.head_proj(o)), None


class SelectiveScan(torch.nn.Module):
    def __init__(self, C, spec):
        super().__init__()
        S, K = spec.get("d_state", 16), spec.get("d_conv", 4)
        R = spec.get("dt_rank", "auto")
        R = math.ceil(C / 16) if R == "auto" else R
        Di = int(math.floor(spec.get("expand", 2) * C))
        self.cfg = {"dim": C, "d_state": S, "d_conv": K, "dt_rank": R, "bidirectional": spec.get("bidirectional", False)}
        self.in_proj = torch.nn.Linear(C, 2 * Di, bias=False)
        for sfx in [""] + (["_b"] if self.cfg["bidirectional"] else []):
            setattr(self, "conv1d" + sfx, torch.nn.Conv1d(Di, Di, K, groups=Di, padding=K - 1))
            setattr(self, "x_proj" + sfx, torch.nn.Linear(Di, R + 2 * S, bias=False))
            setattr(self, "dt_proj" + sfx, torch.nn.Linear(R, Di))
            a_log = torch.log(torch.arange(1, S + 1, dtype=torch.float32)).repeat(Di, 1)
            setattr(self, "A_log" if sfx == "" else "A_b_log", torch.nn.Parameter(a_log))
            setattr(self, "D" if sfx == "" else "D_b", torch.nn.Parameter(torch.ones(Di)))
        self.out_proj = torch.nn.Linear(Di, C, bias=False)

    def forward(self, x):
        return gen_selective_scan.block(dict(self.named_parameters()), x, self.cfg), None


class Block(torch.nn.Module):
    def __init__(self, C, H, hidden, spec, eps):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(C, eps=eps)
        kind = spec["kind"]
        if kind == "attention":
            self.attn = Attention(C, H)
        elif kind == "mh_lstm":
            self.attn = MultiHeadLstm(C, H)
        else:
            self.attn = SelectiveScan(C, spec)
        self.norm2 = torch.nn.LayerNorm(C, eps=eps)
        self.mlp = torch.nn.Module()
        self.mlp.fc1 = torch.nn.Linear(C, hidden)
        self.mlp.fc2 = torch.nn.Linear(hidden, C)

    def forward(self, x, alive=None):
        h = self.norm1(x)
        if isinstance(self.attn, Attention):
            m, attn = self.attn(h, alive)
        else:
            m, attn = run_sequential(self.attn, h, alive)
        x = x + m
        x = x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))
        return x, attn


class HybridViT(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, P, H = cfg["embed_dim"], cfg["patch_size"], cfg["num_heads"]
        eps = cfg.get("ln_eps", 1e-6)
        N = (cfg["img_size"] // P) ** 2 + 1
        self.patch_embed = torch.nn.Module()
        self.patch_embed.proj = torch.nn.Conv2d(cfg["in_chans"], C, P, stride=P)
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, C))
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, N, C))
        hidden = int(math.floor(C * cfg["mlp_ratio"]))
        self.blocks = torch.nn.ModuleList([Block(C, H, hidden, s, eps) for s in cfg["mixers"]])
        self.norm = torch.nn.LayerNorm(C, eps=eps)
        self.head = torch.nn.Linear(C, cfg["num_classes"])
        self.halting = cfg.get("halting")

    def randomize(self, gen):
        """Every parameter random (norms around 1), LSTM masks applied, values rounded to float32."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("A_log") or name.endswith("A_b_log"):
                    p.add_((torch.rand(p.shape, generator=gen, dtype=p.dtype) - 0.5) * 0.4)
                elif name.endswith(".D") or name.endswith(".D_b"):
                    p.copy_(1 + (torch.rand(p.shape, generator=gen, dtype=p.dtype) - 0.5))
                elif "norm" in name and name.endswith("weight"):
                    p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
                else:
                    fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
                    if name == "patch_embed.proj.weight" or "conv1d" in name:
                        fan_in = p[0].numel()
                    scale = 0.5 if name in ("cls_token", "pos_embed") else fan_in ** -0.5
                    p.copy_((torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 1) * scale * 1.5)
            for b in self.blocks:
                if isinstance(b.attn, MultiHeadLstm):
                    b.attn.apply_masks()
            for p in self.parameters():
                p.copy_(p.float().to(p.dtype))

    def forward(self, images, capture=False):
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        outs, maps = [], []
        B, N = x.shape[0], x.shape[1]
        L = len(self.blocks)
        alive = torch.ones(B, N, dtype=torch.bool) if self.halting else None
        cum = torch.zeros(B, N, dtype=x.dtype)
        self.depth = torch.full((B, N), L, dtype=torch.int64)
        for i, b in enumerate(self.blocks):
            # docs/formats.md 1, "halting": block i runs on x * m and its output is masked.
            if alive is not None:
                x = x * alive[..., None].to(x.dtype)
            x, attn = b(x, alive)
            if alive is not None:
                x = x * alive[..., None].to(x.dtype)
                h = torch.sigmoid(self.halting["gamma"] * x[..., 0] - self.halting["beta"]).detach()
                if i == L - 1:
                    h = torch.ones_like(h)
                cum = cum + h
                dies = alive & (cum >= 1 - self.halting["eps"])
                dies[:, 0] = False  # CLS never halts
                self.depth[dies] = i + 1
                alive = alive & ~dies
            outs.append(x)
            maps.append(attn)
        logits = self.head(self.norm(x[:, 0]))
        return (logits, outs, maps) if capture else logits
