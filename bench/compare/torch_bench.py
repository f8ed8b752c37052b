"""PyTorch 1.13 (Debian) side of the sparsimix comparison: the shapes of bench/bench_*.cpp.

Run with /usr/bin/python3 (the only interpreter with torch here) and the thread count pinned
in the environment as well (bench/compare/run.sh does): OMP_NUM_THREADS, OPENBLAS_NUM_THREADS
and torch.set_num_threads must agree, or PyTorch's OpenBLAS takes every core while ATen
reports one thread.

Models, float32, float64 nowhere:
  attention   timm's Attention.forward (qkv Linear, (q * scale) @ k^T, softmax, @ v, proj),
              the exact function of tests/golden/gen_attention.py
  mh_lstm     FAR's multi-head LSTM written the efficient way for PyTorch: pre_proj, then one
              torch.nn.LSTM(d, d, bidirectional=True) per head on its channel slice, a
              Linear(2d, d) per head (head_proj), post_proj
  scan_ref    mamba's selective_scan_ref alone (tests/golden/gen_selective_scan.py), the
              Python loop over tokens, on the inputs of one branch (D_in = 2C, S = 16)
  mamba       the reference Mamba block (gen_selective_scan.block: in_proj, conv, x/dt_proj,
              selective_scan_ref, gate, out_proj)
  vit         a timm VisionTransformer (pre-norm blocks, CLS, learned pos, GELU MLP) whose
              blocks hold attention or the mh_lstm above; training step = zero_grad,
              forward, cross_entropy, backward, torch.optim.AdamW.step
Each case reports the median over repetitions of the wall time and of this thread's CPU time
(time.thread_time: with one thread ATen and OpenBLAS compute in the calling thread, so it
excludes the time the process waited for a core on a shared machine).

Usage: torch_bench.py --threads T --out file.json [--full] [--only substring]
"""
import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests" / "golden"))
import gen_attention  # noqa: E402
import gen_selective_scan  # noqa: E402


def timeit(fn, min_reps=3, max_reps=15, budget_s=1.5):
    fn()  # warm-up
    wall, cpu = [], []
    start = time.perf_counter()
    while len(wall) < min_reps or (len(wall) < max_reps and time.perf_counter() - start < budget_s):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        t1, c1 = time.perf_counter(), time.thread_time()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    return {"median_s": statistics.median(wall), "cpu_median_s": statistics.median(cpu), "reps": len(wall)}


class Attention(torch.nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.qkv = torch.nn.Linear(C, 3 * C)
        self.proj = torch.nn.Linear(C, C)

    def forward(self, x):
        y, _, _ = gen_attention.attention(x, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias, self.H)
        return y


class MultiHeadLstm(torch.nn.Module):
    def __init__(self, C, H):
        super().__init__()
        d = C // H
        self.d = d
        self.pre_proj = torch.nn.Linear(C, C)
        self.lstms = torch.nn.ModuleList([torch.nn.LSTM(d, d, bidirectional=True, batch_first=True) for _ in range(H)])
        self.head_proj = torch.nn.ModuleList([torch.nn.Linear(2 * d, d) for _ in range(H)])
        self.post_proj = torch.nn.Linear(C, C)

    def forward(self, x):
        a = self.pre_proj(x)
        outs = []
        for h, (lstm, hp) in enumerate(zip(self.lstms, self.head_proj)):
            o, _ = lstm(a[..., h * self.d:(h + 1) * self.d])
            outs.append(hp(o))
        return self.post_proj(torch.cat(outs, dim=-1))


def mamba_params(C, requires_grad):
    cfg = {"dim": C, "d_state": 16, "d_conv": 4, "expand": 2.0, "dt_rank": math.ceil(C / 16), "bidirectional": False}
    p = gen_selective_scan.make_params(cfg, torch.Generator().manual_seed(1))
    return {k: v.float().requires_grad_(requires_grad) for k, v in p.items()}, cfg


class Block(torch.nn.Module):
    def __init__(self, C, H, kind):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(C, eps=1e-6)
        self.attn = Attention(C, H) if kind == "attention" else MultiHeadLstm(C, H)
        self.norm2 = torch.nn.LayerNorm(C, eps=1e-6)
        self.fc1 = torch.nn.Linear(C, 4 * C)
        self.fc2 = torch.nn.Linear(4 * C, C)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(torch.nn.Module):
    def __init__(self, img, patch, chans, classes, C, depth, H, kinds=None):
        super().__init__()
        kinds = kinds or ["attention"] * depth
        N = (img // patch) ** 2 + 1
        self.patch = torch.nn.Conv2d(chans, C, patch, stride=patch)
        self.cls = torch.nn.Parameter(torch.zeros(1, 1, C))
        self.pos = torch.nn.Parameter(torch.randn(1, N, C) * 0.02)
        self.blocks = torch.nn.ModuleList([Block(C, H, k) for k in kinds])
        self.norm = torch.nn.LayerNorm(C, eps=1e-6)
        self.head = torch.nn.Linear(C, classes)

    def forward(self, img):
        x = self.patch(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x[:, 0]))


def deit(img=224, half_lstm=False):
    kinds = ["mh_lstm" if half_lstm and i % 2 == 1 else "attention" for i in range(12)]
    return ViT(img, 16, 3, 1000, 192, 12, 3, kinds)


def demo():
    return ViT(28, 4, 1, 10, 96, 6, 3)


def case_forward(module, x):
    module.eval()

    def run():
        with torch.no_grad():
            module(x)
    return run


def case_fwd_bwd(module, x):
    module.train()
    x = x.clone().requires_grad_(True)

    def run():
        module.zero_grad(set_to_none=False)
        y = module(x)
        y.backward(torch.ones_like(y))
    return run


def case_train(model, B, img, chans, classes):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    x = torch.randn(B, chans, img, img)
    labels = torch.arange(B) * 7 % classes

    def run():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
    return run


def cases(full):
    C, H = 192, 3
    g = torch.Generator().manual_seed(0)

    def x(B, N, c=C):
        return torch.rand(B, N, c, generator=g) * 2 - 1

    out = []
    attn = Attention(C, H)
    for B, N in [(1, 197), (8, 197), (1, 577)] + ([(1, 1025), (1, 4097)] if full else []):
        out.append((f"attention_fwd/B:{B}/N:{N}", lambda B=B, N=N: case_forward(attn, x(B, N))))
    for B, N in [(1, 197), (8, 197), (1, 577)]:
        out.append((f"attention_fwdbwd/B:{B}/N:{N}", lambda B=B, N=N: case_fwd_bwd(attn, x(B, N))))
    lstm = MultiHeadLstm(C, H)
    for B, N in [(1, 197), (8, 197)]:
        out.append((f"mh_lstm_fwd/B:{B}/N:{N}", lambda B=B, N=N: case_forward(lstm, x(B, N))))
        out.append((f"mh_lstm_fwdbwd/B:{B}/N:{N}", lambda B=B, N=N: case_fwd_bwd(lstm, x(B, N))))

    p, cfg = mamba_params(C, False)
    Di, S, R = 2 * C, 16, cfg["dt_rank"]

    def scan_case(B, N):
        u = torch.rand(B, Di, N, generator=g) - 0.5
        delta = torch.rand(B, Di, N, generator=g) - 0.5
        Bm = torch.rand(B, S, N, generator=g) - 0.5
        Cm = torch.rand(B, S, N, generator=g) - 0.5
        z = torch.rand(B, Di, N, generator=g) - 0.5
        A = -torch.exp(p["A_log"].detach())

        def run():
            with torch.no_grad():
                gen_selective_scan.selective_scan_ref(u, delta, A, Bm, Cm, p["D"], z, p["dt_proj.bias"])
        return run

    def mamba_case(B, N, backward):
        pp, _ = mamba_params(C, backward)
        xin = x(B, N)

        def run():
            if backward:
                for t in pp.values():
                    t.grad = None
                y = gen_selective_scan.block(pp, xin, cfg)
                y.backward(torch.ones_like(y))
            else:
                with torch.no_grad():
                    gen_selective_scan.block(pp, xin, cfg)
        return run

    for B, N in [(1, 197), (8, 197), (1, 1025)]:
        out.append((f"scan_ref_fwd/B:{B}/N:{N}", lambda B=B, N=N: scan_case(B, N)))
        out.append((f"mamba_fwd/B:{B}/N:{N}", lambda B=B, N=N: mamba_case(B, N, False)))
    # Autograd through the reference's per-token loop takes 0.5 s at B 1, N 197 and 20-40 s
    # at B 8 or N 1025 per step: only the smallest case.
    out.append(("mamba_fwdbwd/B:1/N:197", lambda: mamba_case(1, 197, True)))

    for B in [1, 8]:
        out.append((f"vit_fwd/deit_tiny/B:{B}", lambda B=B: case_forward(deit(), torch.randn(B, 3, 224, 224))))
    out.append(("vit_train/deit_tiny/B:8", lambda: case_train(deit(), 8, 224, 3, 1000)))
    out.append(("vit_train/demo/B:128", lambda: case_train(demo(), 128, 28, 1, 10)))
    for img in [224, 384, 512] if full else [224]:
        N = (img // 16) ** 2 + 1
        for half in (False, True):
            name = f"vit_hybrid/{'half_lstm' if half else 'attn'}/N:{N}"
            out.append((name, lambda img=img, half=half: case_forward(deit(img, half), torch.randn(1, 3, img, img))))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--full", action="store_true", help="also the long sequences (N 1025, 4097) and N 577/1025 hybrids")
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if os.environ.get(var) != str(args.threads):
            print(f"torch_bench: warning: {var}={os.environ.get(var)} but --threads {args.threads}", file=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    results = []
    for name, make in cases(args.full):
        if args.only and args.only not in name:
            continue
        r = timeit(make())
        r.update(name=name, threads=args.threads)
        results.append(r)
        print(f"torch T={args.threads} {name}: {r['median_s'] * 1e3:.3f} ms wall, {r['cpu_median_s'] * 1e3:.3f} ms cpu",
              file=sys.stderr, flush=True)
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "config": torch.__config__.show()}
    pathlib.Path(args.out).write_text(json.dumps({"info": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
