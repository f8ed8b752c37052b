"""Golden files for sparsimix::Attention: timm's Attention re-implemented in torch.

timm/models/vision_transformer.py `Attention.forward` (qkv_bias=True, no q/k norm):
    qkv = linear(x).reshape(B, N, 3, H, d).permute(2, 0, 3, 1, 4); q, k, v = qkv.unbind(0)
    attn = (q * scale) @ k.transpose(-2, -1); attn = attn.softmax(-1)
    x = (attn @ v).transpose(1, 2).reshape(B, N, C); x = proj(x)
Token mask (docs/formats.md section 1, Note [token mask gather]): dead keys are excluded exactly
(-inf logits), rows of dead queries are 0 in the maps, in attn_out and in the output.

Inputs are drawn in float32; every reference value is computed in float64 from those exact
float32 numbers and stored as F64, so the C++ float test measures only its own rounding.
One file per case: attention_<case>.safetensors.
"""
import torch

import st

# name: (B, N, C, H, masked)
CASES = {
    "b1_n13_c40_h5": (1, 13, 40, 5, False),
    "b3_n197_c40_h5": (3, 197, 40, 5, False),
    "b2_n70_c48_h3": (2, 70, 48, 3, False),
    "b3_n29_c40_h5_masked": (3, 29, 40, 5, True),
    "b2_n131_c24_h2_masked": (2, 131, 24, 2, True),
}


def attention(x, wqkv, bqkv, wproj, bproj, H, alive=None):
    B, N, C = x.shape
    d = C // H
    qkv = torch.nn.functional.linear(x, wqkv, bqkv).reshape(B, N, 3, H, d).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    logits = (q * d ** -0.5) @ k.transpose(-2, -1)
    if alive is not None:
        logits = logits.masked_fill(~alive[:, None, None, :], float("-inf"))
    attn = logits.softmax(-1)
    if alive is not None:
        attn = attn * alive[:, None, :, None].to(attn.dtype)
    attn_out = (attn @ v).transpose(1, 2).reshape(B, N, C)
    y = torch.nn.functional.linear(attn_out, wproj, bproj)
    if alive is not None:
        y = y * alive[:, :, None].to(y.dtype)
    return y, attn, attn_out


def make_case(B, N, C, H, masked, gen):
    bound = C ** -0.5  # nn.Linear's default range: outputs of order 1
    f32 = dict(dtype=torch.float32)
    x = torch.rand(B, N, C, generator=gen, **f32) * 2 - 1
    wqkv = (torch.rand(3 * C, C, generator=gen, **f32) * 2 - 1) * bound
    bqkv = (torch.rand(3 * C, generator=gen, **f32) * 2 - 1) * bound
    wproj = (torch.rand(C, C, generator=gen, **f32) * 2 - 1) * bound
    bproj = (torch.rand(C, generator=gen, **f32) * 2 - 1) * bound
    dy = torch.rand(B, N, C, generator=gen, **f32) * 2 - 1
    alive = None
    if masked:
        alive = torch.rand(B, N, generator=gen) < 0.6
        alive[:, 0] = True  # CLS never halts
        alive[-1, :] = False  # a sequence with a single alive token
        alive[-1, 0] = True
    leaves = [t.double().requires_grad_() for t in (x, wqkv, bqkv, wproj, bproj)]
    y, attn, attn_out = attention(*leaves, H, alive)
    y.backward(dy.double())
    out = {"x": x, "qkv.weight": wqkv, "qkv.bias": bqkv, "proj.weight": wproj, "proj.bias": bproj, "dy": dy,
           "y": y.detach(), "attn_map": attn.detach(), "attn_out": attn_out.detach()}
    for name, leaf in zip(["x", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias"], leaves):
        out["grad." + name] = leaf.grad
    if alive is not None:
        out["alive"] = alive.to(torch.int64)  # the reader takes I64, not U8
    return out


def generate(out_dir):
    gen = torch.Generator().manual_seed(20261125)
    for name, (B, N, C, H, masked) in CASES.items():
        tensors = make_case(B, N, C, H, masked, gen)
        st.save(out_dir / f"attention_{name}.safetensors", tensors,
                metadata={"B": B, "N": N, "C": C, "H": H})
