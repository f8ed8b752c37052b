"""Optimizer goldens: torch.optim.AdamW (and torch.optim.SGD with momentum, no decay, where
our decoupled-decay SGD coincides with torch's) over several steps with a changing lr.

Four parameters, one per kind of group the C++ test builds:
  w1  decay group (weight_decay 0.05, lr x 1)
  b1  no-decay group (weight_decay 0; in C++: Param::decay = false in the same group)
  w2  own group with weight_decay 0.1 and lr x 0.5
  f   frozen group: not given to torch at all, so it must stay at its initial value
Gradients are random per step and stored, so the C++ side replays exactly the same ones.
Written in float32 and float64 (suffixes _f32, _f64).
"""
import torch

import st

STEPS = 6
LRS = [1e-2, 2e-2, 3e-2, 2.5e-2, 1e-2, 5e-3]  # warm-up then decay, via set_lr in C++
SHAPES = {"w1": (4, 3), "b1": (4,), "w2": (3, 5), "f": (2, 2)}


def run(opt_name, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    params = {k: torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_(True)
              for k, s in SHAPES.items()}
    grads = {k: torch.randn((STEPS,) + s, generator=g, dtype=torch.float64).to(dtype)
             for k, s in SHAPES.items()}
    out = {f"{k}.init": p.detach().clone() for k, p in params.items()}
    out["lr"] = torch.tensor(LRS, dtype=torch.float64)
    if opt_name == "adamw":
        groups = [{"params": [params["w1"]], "weight_decay": 0.05},
                  {"params": [params["b1"]], "weight_decay": 0.0},
                  {"params": [params["w2"]], "weight_decay": 0.1, "lr_scale": 0.5}]
        opt = torch.optim.AdamW([{k: v for k, v in gr.items() if k != "lr_scale"} for gr in groups],
                                lr=LRS[0], betas=(0.9, 0.999), eps=1e-8)
    else:
        groups = [{"params": [params["w1"]]}, {"params": [params["b1"]]},
                  {"params": [params["w2"]], "lr_scale": 0.5}]
        opt = torch.optim.SGD([{k: v for k, v in gr.items() if k != "lr_scale"} for gr in groups],
                              lr=LRS[0], momentum=0.9, nesterov=(opt_name == "sgd_nesterov"))
    after = {k: [] for k in SHAPES}
    for s in range(STEPS):
        for gi, gr in enumerate(opt.param_groups):
            gr["lr"] = LRS[s] * groups[gi].get("lr_scale", 1.0)
        for k, p in params.items():
            p.grad = grads[k][s].clone()
        opt.step()
        for k, p in params.items():
            after[k].append(p.detach().clone())
    for k in SHAPES:
        out[f"{k}.grads"] = grads[k]
        out[f"{k}.after"] = torch.stack(after[k])
    return out


def generate(out_dir):
    for name, seed in (("adamw", 11), ("sgd", 12), ("sgd_nesterov", 13)):
        for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64")):
            st.save(out_dir / f"{name}_{suffix}.safetensors", run(name, dtype, seed))
