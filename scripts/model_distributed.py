#!/usr/bin/env python3
"""Models the step time of data-parallel training (docs/distributed.md) for DeiT-Tiny, -Small
and -Base at 2..64 processes from measured single-process compute times, the gradient size and
a ring all-reduce on 10 and 100 Gbit/s links, and prints the markdown tables.

  compute(p)  = t_image * B / (p * cores)      (t_image measured on one core; `cores` per process
                                                assumes perfect threading: the optimistic end
                                                for compute, the pessimistic one for the links)
  backward(p) = 2/3 of compute(p)              (backward is two of a step's three matmul passes)
  ring(n, p)  = 2 (p - 1) alpha + 2 (p - 1) / p * n * 4 bytes / bandwidth
  exposed(p)  = ring(bucket, p) + max(0, ring(grad, p) - backward(p))
                (the buckets' sums run during backward; the last bucket's starts when it ends)
  step(p)     = compute(p) + exposed(p); efficiency = compute(1) / (p * step(p))

Usage: model_distributed.py MEASURED.json [--batch 1024] [--bucket 6553600] [--cores 1]
MEASURED.json: {"deit_tiny": {"params": N, "seconds_per_image": s}, ...}
"""
import argparse
import json

LINKS = {"10 Gbit/s": 10e9 / 8, "100 Gbit/s": 100e9 / 8}
ALPHA = 20e-6  # seconds per message hop (TCP over Ethernet; InfiniBand is ~2 us)
RANKS = [2, 4, 8, 16, 32, 64]


def ring(values, p, bandwidth):
    return 2 * (p - 1) * ALPHA + 2 * (p - 1) / p * values * 4 / bandwidth


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("measured")
    ap.add_argument("--batch", type=int, default=1024, help="global batch (DeiT's is 1024)")
    ap.add_argument("--bucket", type=int, default=6553600, help="gradient values per bucket (25 MiB of floats)")
    ap.add_argument("--cores", type=int, default=1, help="cores per process (compute divided by this)")
    a = ap.parse_args()
    measured = json.load(open(a.measured))
    for link, bw in LINKS.items():
        print(f"\n{link} links, global batch {a.batch}, {a.cores} core(s) per process, buckets of "
              f"{a.bucket * 4 / 2**20:.0f} MiB: step time in seconds (scaling efficiency)\n")
        print("| model | gradient | 1 process | " + " | ".join(f"{p}" for p in RANKS) + " |")
        print("|---|---|---|" + "---|" * len(RANKS))
        for name, m in measured.items():
            t1 = m["seconds_per_image"] * a.batch / a.cores
            cells = []
            for p in RANKS:
                compute = t1 / p
                backward = compute * 2 / 3
                exposed = ring(min(a.bucket, m["params"]), p, bw) + max(0.0, ring(m["params"], p, bw) - backward)
                step = compute + exposed
                cells.append(f"{step:.2f} ({t1 / (p * step) * 100:.0f}%)")
            print(f"| {name} | {m['params'] * 4 / 2**20:.0f} MiB | {t1:.1f} | " + " | ".join(cells) + " |")
    print("\nBucket size that hides the sum of the last bucket behind 5% of a step at 64 processes:")
    for link, bw in LINKS.items():
        for name, m in measured.items():
            step64 = m["seconds_per_image"] * a.batch / (64 * a.cores)
            # largest bucket whose all-reduce stays under 5% of the step
            n = max(1, int((0.05 * step64 - 2 * 63 * ALPHA) * bw / (4 * 2 * 63 / 64)))
            print(f"- {link}, {name}: up to {n * 4 / 2**20:.1f} MiB" if n > 1 else
                  f"- {link}, {name}: latency alone exceeds 5% of the step")


if __name__ == "__main__":
    main()
