"""Minimal safetensors writer for golden files (no third-party package needed).

Layout: u64 little-endian header length, JSON header padded with spaces to 8 bytes,
then the tensors' raw little-endian bytes in header order.
"""
import json
import struct

import torch

_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64",
           torch.float16: "F16", torch.bfloat16: "BF16", torch.uint8: "U8"}


def save(path, tensors, metadata=None):
    """tensors: dict name -> torch.Tensor (any shape). Writes in insertion order."""
    header = {}
    blobs = []
    offset = 0
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
