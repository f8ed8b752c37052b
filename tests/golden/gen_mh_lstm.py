"""Golden files for sparsimix::MultiHeadLSTM (FAR's MultiHeadLstm, docs/method.md 1.3-1.7).

Reference: pre_proj Linear -> torch.nn.LSTM(C, C, bidirectional=True, batch_first=True) whose
weights are masked block-diagonal by head (M_ih, M_hh) -> head_proj Linear(2C, C) masked by
M_head -> post_proj Linear. Parameters and inputs are drawn in float32 and the reference runs
in float64, so the files hold the exact answer for float inputs.

Each case file holds the 14 dense parameters (PyTorch names), x, dy, the outputs y and s
(head_proj output), dx, and grad.<name> for every parameter (masked: entries outside the
blocks are set to 0, as sparsimix writes them). With a mask ("mask", I64 [B, N]) the
reference runs each sequence's alive tokens on their own and scatters (Note [token mask
gather]): y, s, dx are 0 at dead tokens.
"""
import torch

import st

CASES = [
    # name, B, N, C, H, masked
    ("c40h5_b3n13", 3, 13, 40, 5, False),
    ("c48h3_b1n197", 1, 197, 48, 3, False),
    ("c48h3_b3n13_masked", 3, 13, 48, 3, True),
    ("c40h5_b1n197_masked", 1, 197, 40, 5, True),
]


def block_masks(C, H):
    d = C // H
    head = torch.zeros(C, C)
    for h in range(H):
        head[h * d:(h + 1) * d, h * d:(h + 1) * d] = 1
    m_ih = head.repeat(4, 1)                 # [4C, C], gate g rows g*C + h*d + r
    m_head = torch.cat([head, head], dim=1)  # [C, 2C]
    return m_ih, m_head


class MultiHeadLstm(torch.nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.pre_proj = torch.nn.Linear(C, C)
        self.lstm = torch.nn.LSTM(C, C, num_layers=1, bidirectional=True, batch_first=True)
        self.head_proj = torch.nn.Linear(2 * C, C)
        self.post_proj = torch.nn.Linear(C, C)
        m_ih, m_head = block_masks(C, H)
        with torch.no_grad():
            for name, p in self.lstm.named_parameters():
                if name.startswith("weight"):
                    p.mul_(m_ih)
            self.head_proj.weight.mul_(m_head)
            # Larger biases and post_proj than PyTorch's init, so every term matters.
            for p in (self.pre_proj.bias, self.head_proj.bias, self.post_proj.bias):
                p.uniform_(-0.5, 0.5)
        self.m_ih, self.m_head = m_ih, m_head

    def forward(self, u):
        a = self.pre_proj(u)
        o, _ = self.lstm(a)
        s = self.head_proj(o)
        return self.post_proj(s), s

    def grad_mask(self, name):
        if name.startswith("lstm.weight"):
            return self.m_ih
        if name == "head_proj.weight":
            return self.m_head
        return None


def make_mask(B, N, gen):
    mask = (torch.rand(B, N, generator=gen) < 0.6).to(torch.uint8)
    mask[:, 0] = 1                 # CLS never halts
    if B > 1:
        mask[1, :] = 0             # one sequence with a single alive token
        mask[1, 0] = 1
    if B > 2:
        mask[2, :] = 1             # one sequence fully alive
    return mask


def run_case(out, name, B, N, C, H, masked, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = MultiHeadLstm(C, H)  # float32 draws
    x = torch.randn(B, N, C, generator=gen)
    dy = torch.randn(B, N, C, generator=gen)
    mask = make_mask(B, N, gen) if masked else torch.ones(B, N, dtype=torch.uint8)
    params = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("m_")}

    model = model.double()
    xd = x.double().requires_grad_(True)
    dyd = dy.double()
    y = torch.zeros(B, N, C, dtype=torch.float64)
    s = torch.zeros(B, N, C, dtype=torch.float64)
    loss = 0
    for b in range(B):
        idx = mask[b].nonzero().flatten()
        if idx.numel() == 0:
            continue
        yb, sb = model(xd[b, idx][None])
        loss = loss + (yb[0] * dyd[b, idx]).sum()
        y[b, idx] = yb[0].detach()
        s[b, idx] = sb[0].detach()
    loss.backward()

    tensors = dict(params)
    tensors["x"] = x
    tensors["dy"] = dy
    if masked:
        tensors["mask"] = mask.to(torch.int64)  # the reader has no U8
    tensors["y"] = y
    tensors["s"] = s
    tensors["dx"] = xd.grad
    for pname, p in model.named_parameters():
        g = p.grad.clone()
        gm = model.grad_mask(pname)
        if gm is not None:
            g = g * gm.double()
        tensors["grad." + pname] = g
    st.save(out / f"mh_lstm_{name}.safetensors", tensors)


def generate(out):
    for i, (name, B, N, C, H, masked) in enumerate(CASES):
        run_case(out, name, B, N, C, H, masked, seed=100 + i)
