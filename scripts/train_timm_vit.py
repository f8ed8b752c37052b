#!/usr/bin/python3
"""Trains a timm-style ViT on Fashion-MNIST in PyTorch and saves it as a plain timm checkpoint.

The teacher of docs/distillation-guide.md: no pretrained weights can be downloaded here, so
this stands for "your timm checkpoint". The model is timm's VisionTransformer written out
(same module names, so the state_dict has timm's keys: patch_embed.proj, cls_token, pos_embed,
blocks.{i}.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2, norm, head; pre-norm blocks, exact
GELU, LayerNorm eps 1e-6, class-token pooling), and the file is a safetensors state_dict with
no sparsimix metadata, exactly what timm's save_file(model.state_dict()) writes. Heads are
embed_dim / 64 as in every timm ViT/DeiT, which is what sparsimix assumes for such a file.

Usage (Debian's PyTorch lives under /usr/bin/python3):
  /usr/bin/python3 scripts/train_timm_vit.py --out vit.safetensors [--steps 600] [--embed-dim 128]
It prints the test accuracy PyTorch measures, to compare with `sparsimix eval`.
"""
import argparse
import gzip
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import st  # noqa: E402  the safetensors writer of the golden tests

MEAN, STD = 0.2860, 0.3530  # the normalisation sparsimix's Fashion-MNIST loader applies


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def load_split(folder, prefix):
    def find(kind):
        for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz",
                     f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"):
            if os.path.exists(os.path.join(folder, name)):
                return os.path.join(folder, name)
        sys.exit(f"train_timm_vit: no {prefix} {kind} IDX file in {folder}")
    images = read_idx(find("images")).float().div(255).sub(MEAN).div(STD).unsqueeze(1)
    return images, read_idx(find("labels")).long()


class Attention(torch.nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(torch.nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = torch.nn.Linear(dim, hidden)
        self.fc2 = torch.nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(torch.nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(torch.nn.Module):
    def __init__(self, patch, chans, dim):
        super().__init__()
        self.proj = torch.nn.Conv2d(chans, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(torch.nn.Module):
    def __init__(self, img=28, patch=4, chans=1, classes=10, dim=128, depth=4, mlp_ratio=2.0):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, chans, dim)
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = torch.nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = torch.nn.ModuleList(Block(dim, max(1, dim // 64), int(dim * mlp_ratio)) for _ in range(depth))
        self.norm = torch.nn.LayerNorm(dim, eps=1e-6)
        self.head = torch.nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)[:, 0])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the checkpoint to write (.safetensors)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX folder")
    p.add_argument("--steps", type=int, default=600, help="AdamW steps of batch 128")
    p.add_argument("--embed-dim", type=int, default=128, help="width (heads = width / 64)")
    p.add_argument("--depth", type=int, default=4, help="blocks")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.steps < 1 or a.embed_dim < 64 or a.embed_dim % 64 or a.depth < 1:
        sys.exit("train_timm_vit: --steps >= 1, --embed-dim a multiple of 64 and --depth >= 1 expected")
    torch.manual_seed(a.seed)
    x_train, y_train = load_split(a.data, "train")
    x_test, y_test = load_split(a.data, "t10k")
    model = VisionTransformer(dim=a.embed_dim, depth=a.depth)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    warmup = max(1, a.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / a.steps))))
    gen = torch.Generator().manual_seed(a.seed)
    order, pos = torch.randperm(len(x_train), generator=gen), 0
    model.train()
    for step in range(a.steps):
        if pos + 128 > len(order):
            order, pos = torch.randperm(len(x_train), generator=gen), 0
        idx = order[pos:pos + 128]
        pos += 128
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0 or step + 1 == a.steps:
            print(f"step {step + 1}/{a.steps} loss {loss.item():.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x_test[i:i + 1000]).argmax(1) for i in range(0, len(x_test), 1000)])
    print(f"PyTorch test accuracy {(pred == y_test).float().mean().item():.4f} on {len(y_test)} images")
    # Written beside, then renamed: a crash never leaves half a checkpoint under --out.
    tmp = a.out + ".partial"
    st.save(tmp, {k: v.float() for k, v in model.state_dict().items()}, metadata={"format": "pt"})
    os.replace(tmp, a.out)
    print(f"wrote {a.out} (timm names, {sum(v.numel() for v in model.state_dict().values())} values)")


if __name__ == "__main__":
    main()
