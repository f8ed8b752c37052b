"""Tensors in every dtype sparsimix reads, written as PyTorch holds them."""
import torch

import st


def generate(out):
    g = torch.Generator().manual_seed(0)
    ref = (torch.randn(3, 4, generator=g, dtype=torch.float64) * 100)
    ref[0, 0] = 1e-6   # subnormal in F16
    ref[0, 1] = -0.0
    ref[0, 2] = 70000  # overflows F16 to inf
    tensors = {"ref_f64": ref}
    for name, dt in (("as_f16", torch.float16), ("as_bf16", torch.bfloat16), ("as_f32", torch.float32)):
        t = ref.to(dt)
        tensors[name] = t
        tensors[name + "_f64"] = t.to(torch.float64)
    ints = torch.tensor([-3, 0, 2**40 + 5], dtype=torch.int64)
    tensors["ints"] = ints
    tensors["ints_copy"] = ints.clone()
    st.save(out / "safetensors_dtypes.safetensors", tensors, {"format": "pt"})
