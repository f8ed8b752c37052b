"""Turns bench/results/*.json (written by bench/compare/run.sh) into docs/performance.md.

Time basis: with 1 thread every side is timed by the CPU time of the calling thread (Google
Benchmark's default cpu_time, time.thread_time in torch_bench.py, CLOCK_THREAD_CPUTIME_ID in
the C++ programs): on a shared 2-core VM this drops the time a process waited for a core,
which otherwise dominates the noise. With 2 threads CPU time is no measure of speed, so
those rows use wall time (and are only as good as the machine was quiet: see the load).
Speedup = other's time / sparsimix's time (> 1: sparsimix is faster).
The text from the ANALYSIS marker on is kept when the file is regenerated.
"""
import argparse
import datetime
import glob
import json
import os
import pathlib
import re
import subprocess

ANALYSIS = "<!-- analysis: kept by bench/compare/report.py when it regenerates the tables -->"


def load(path):
    with open(path) as f:
        return json.load(f)


def sparsimix_results(res):
    out = {}
    for path in sorted(glob.glob(os.path.join(res, "sparsimix_*_T*.json"))):
        t_file = int(re.search(r"_T(\d+)\.json$", path).group(1))
        benches = load(path)["benchmarks"]
        # The median aggregate of the repetitions; with REPS=1 Google Benchmark writes no
        # aggregates, so the single iteration entry stands in.
        have_median = {b["run_name"] for b in benches if b.get("aggregate_name") == "median"}
        for b in benches:
            if b.get("aggregate_name") != "median" and not (
                    b.get("run_type") == "iteration" and b["run_name"] not in have_median):
                continue
            name = b["run_name"]
            m = re.search(r"/T:(\d+)", name)
            t = int(m.group(1)) if m else t_file
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
            real, cpu = b["real_time"] * scale, b["cpu_time"] * scale
            g = b.get("GFLOP/s")
            flops = None
            if g is not None:
                flops = g * 1e9 * (real if name.endswith("/real_time") else cpu)
            key = re.sub(r"/T:\d+", "", name).replace("/real_time", "")
            out[(key, t)] = {"wall": real, "cpu": cpu, "flops": flops}
    return out


def torch_results(res):
    out, info = {}, {}
    for path in sorted(glob.glob(os.path.join(res, "torch_T*.json"))) + sorted(glob.glob(os.path.join(res, "torch_skx_T*.json"))):
        skx = "torch_skx_" in path
        d = load(path)
        info = d["info"]
        for r in d["results"]:
            out[(("skx:" if skx else "") + r["name"], r["threads"])] = {"wall": r["median_s"], "cpu": r["cpu_median_s"]}
    return out, info


def dnnl_results(res):
    out = {}
    for path in glob.glob(os.path.join(res, "dnnl_lstm_B*_N*_T*.json")):
        m = re.search(r"B(\d+)_N(\d+)_T(\d+)", path)
        d = load(path)
        out[(f"B:{m.group(1)}/N:{m.group(2)}", int(m.group(3)))] = {"wall": d["median_s"], "cpu": d["cpu_median_s"],
                                                                    "impl": d["impl"]}
    return out


def sgemm_peaks(res):
    peaks, rows = {}, []
    for path in sorted(glob.glob(os.path.join(res, "sgemm_*_T*.json"))):
        kind = re.search(r"sgemm_(\w+)_T", path).group(1)
        d = load(path)
        t = d["threads"]
        for r in d["results"]:
            g = r["cpu_gflops"] if t == 1 else r["gflops"]
            rows.append((kind, t, r["n"], g))
            peaks[t] = max(peaks.get(t, 0.0), g)
    return peaks, rows


def basis(t):
    return "cpu" if t == 1 else "wall"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", default="bench/compare/run.sh")
    a = ap.parse_args()
    sx = sparsimix_results(a.results)
    th, tinfo = torch_results(a.results)
    dn = dnnl_results(a.results)
    peaks, sgemm_rows = sgemm_peaks(a.results)

    rows, summary = [], []

    def row(label, sx_key, t, other, other_name, target=None, note=""):
        s = sx.get((sx_key, t))
        src = {"torch": th, "oneDNN": dn, "torch+AVX-512 BLAS": th}[other]
        o = src.get((("skx:" if other == "torch+AVX-512 BLAS" else "") + other_name, t))
        if s is None or o is None:
            rows.append(f"| {label} | {t} | {'n/a' if s is None else fmt_ms(s[basis(t)])} | {other} | "
                        f"{'n/a' if o is None else fmt_ms(o[basis(t)])} | n/a | {target or ''} | missing | | {note} |")
            summary.append({"case": label, "threads": t, "missing": True})
            return None
        b = basis(t)
        speed = o[b] / s[b]
        frac = ""
        if s["flops"] and peaks.get(t):
            frac = f"{100 * s['flops'] / s[b] * 1e-9 / peaks[t]:.0f}%"
        met = ""
        if target is not None:
            met = "yes" if speed >= target else "**no**"
        wall_speed = o["wall"] / s["wall"]
        rows.append(f"| {label} | {t} | {fmt_ms(s[b])} | {other} | {fmt_ms(o[b])} | {speed:.2f}x | "
                    f"{'' if target is None else f'>= {target}x'} | {met} | {frac} | "
                    f"{'' if t != 1 else f'wall {wall_speed:.2f}x'}{'; ' if note and t == 1 else ''}{note} |")
        summary.append({"case": label, "threads": t, "sparsimix_s": s[b], "other": other, "other_s": o[b],
                        "speedup": speed, "target": target, "basis": b, "sparsimix_wall_s": s["wall"],
                        "other_wall_s": o["wall"]})
        return speed

    A = "BM_Attention_Forward/B:{}/N:{}/C:192"
    AB = "BM_Attention_ForwardBackward/B:{}/N:{}/C:192"
    targets_attn = {(1, 197): 1.7, (8, 197): 1.15, (1, 4097): 2.0}
    for t in (1, 2):
        for B, N in [(1, 197), (8, 197), (1, 577), (1, 1025), (1, 4097)]:
            row(f"attention fwd B={B} N={N}", A.format(B, N), t, "torch", f"attention_fwd/B:{B}/N:{N}",
                targets_attn.get((B, N)) if t == 1 else None,
                "no N x N buffer (online softmax)" if N == 4097 else "")
    for t in (1, 2):
        for B, N in [(1, 197), (8, 197), (1, 577)]:
            row(f"attention fwd+bwd B={B} N={N}", AB.format(B, N), t, "torch", f"attention_fwdbwd/B:{B}/N:{N}")
    L = "BM_MultiHeadLSTM_Forward/{}/{}/192"
    LB = "BM_MultiHeadLSTM_ForwardBackward/{}/{}/192"
    for t in (1, 2):
        for B in (1, 8):
            row(f"mh_lstm fwd B={B} N=197", L.format(B, 197), t, "torch", f"mh_lstm_fwd/B:{B}/N:197",
                4.0 if (B == 8 and t == 1) else None, "torch.nn.LSTM per head")
            row(f"mh_lstm fwd B={B} N=197", L.format(B, 197), t, "oneDNN", f"B:{B}/N:197",
                1.0 if (B == 8 and t == 1) else None, "oneDNN: the 3 per-head LSTMs only, no projections")
            row(f"mh_lstm fwd+bwd B={B} N=197", LB.format(B, 197), t, "torch", f"mh_lstm_fwdbwd/B:{B}/N:197",
                4.0 if (B == 8 and t == 1) else None)
    S = "BM_SelectiveScan_Forward/{}/{}/192"
    SB = "BM_SelectiveScan_ForwardBackward/{}/{}/192"
    for t in (1, 2):
        for B, N in [(1, 197), (8, 197), (1, 1025)]:
            if t == 1:
                row(f"selective scan fwd B={B} N={N}", f"BM_ScanKernel/B:{B}/N:{N}", t, "torch",
                    f"scan_ref_fwd/B:{B}/N:{N}", 30.0 if B == 1 else None,
                    "softplus + SiLU gate + kernels::scan_forward vs selective_scan_ref")
            row(f"Mamba block fwd B={B} N={N}", S.format(B, N), t, "torch", f"mamba_fwd/B:{B}/N:{N}",
                10.0 if t == 1 else None)
        row("Mamba block fwd+bwd B=1 N=197", SB.format(1, 197), t, "torch", "mamba_fwdbwd/B:1/N:197")
    V = "BM_ViT_Forward/deit_tiny/B:{}"
    for t in (1, 2):
        for B in (1, 8):
            row(f"DeiT-Tiny fwd B={B}", V.format(B), t, "torch", f"vit_fwd/deit_tiny/B:{B}",
                1.2 if (B == 1 and t == 1) else None)
        row("DeiT-Tiny train step B=8 (AdamW)", "BM_ViT_TrainStep/deit_tiny/B:8", t, "torch",
            "vit_train/deit_tiny/B:8", 1.2 if t == 1 else None)
        row("demo train step B=128 (AdamW)", "BM_ViT_TrainStep/demo/B:128", t, "torch", "vit_train/demo/B:128",
            1.2 if t == 1 else None)
    # PyTorch with OPENBLAS_CORETYPE=SkylakeX (1 thread): what the same PyTorch does once its
    # OpenBLAS uses the AVX-512 kernels this CPU supports.
    skx_rows = [("attention fwd B=1 N=197", A.format(1, 197), "attention_fwd/B:1/N:197"),
                ("attention fwd B=8 N=197", A.format(8, 197), "attention_fwd/B:8/N:197"),
                ("attention fwd+bwd B=8 N=197", AB.format(8, 197), "attention_fwdbwd/B:8/N:197"),
                ("mh_lstm fwd B=8 N=197", L.format(8, 197), "mh_lstm_fwd/B:8/N:197"),
                ("mh_lstm fwd+bwd B=8 N=197", LB.format(8, 197), "mh_lstm_fwdbwd/B:8/N:197"),
                ("Mamba block fwd B=1 N=197", S.format(1, 197), "mamba_fwd/B:1/N:197"),
                ("DeiT-Tiny fwd B=1", V.format(1), "vit_fwd/deit_tiny/B:1"),
                ("DeiT-Tiny fwd B=8", V.format(8), "vit_fwd/deit_tiny/B:8"),
                ("DeiT-Tiny train step B=8 (AdamW)", "BM_ViT_TrainStep/deit_tiny/B:8", "vit_train/deit_tiny/B:8"),
                ("demo train step B=128 (AdamW)", "BM_ViT_TrainStep/demo/B:128", "vit_train/demo/B:128")]
    for label, key, tname in skx_rows:
        row(label, key, 1, "torch+AVX-512 BLAS", tname, None, "PyTorch with OPENBLAS_CORETYPE=SkylakeX")
    hyb = []
    for t in (1, 2):
        for N in (197, 577, 1025):
            for mix in ("attn", "half_lstm"):
                row(f"hybrid {mix} fwd B=1 N={N}", f"BM_ViT_Hybrid/{mix}/N:{N}", t, "torch",
                    f"vit_hybrid/{mix}/N:{N}")
            sa, sh = sx.get((f"BM_ViT_Hybrid/attn/N:{N}", t)), sx.get((f"BM_ViT_Hybrid/half_lstm/N:{N}", t))
            sp = sx.get((f"BM_ViT_Hybrid/half_lstm_pruned50/N:{N}", t))
            ta, tl = th.get((f"vit_hybrid/attn/N:{N}", t)), th.get((f"vit_hybrid/half_lstm/N:{N}", t))
            if sa and sh:
                hyb.append((t, N, sa[basis(t)] / sh[basis(t)], (ta[basis(t)] / tl[basis(t)]) if ta and tl else None,
                            (sa[basis(t)] / sp[basis(t)]) if sp else None))

    # Special targets: demo training with 2 threads vs PyTorch's best; 2 threads vs 1 thread.
    special = []
    d2 = sx.get(("BM_ViT_TrainStep/demo/B:128", 2))
    tbest = [th.get(("vit_train/demo/B:128", t)) for t in (1, 2)]
    tbest = [x["wall"] for x in tbest if x]
    if d2 and tbest:
        sp = min(tbest) / d2["wall"]
        special.append(f"| demo train B=128, sparsimix 2 threads vs PyTorch's best (wall) | {sp:.2f}x | >= 1.8x | "
                       f"{'yes' if sp >= 1.8 else '**no**'} | sparsimix {128 / d2['wall']:.0f} img/s, PyTorch best "
                       f"{128 / min(tbest):.0f} img/s |")
        summary.append({"case": "demo train 2T vs torch best", "speedup": sp, "target": 1.8})
    for key, label in [("BM_ViT_Forward/deit_tiny/B:8", "DeiT-Tiny fwd B=8"),
                       ("BM_ViT_TrainStep/deit_tiny/B:8", "DeiT-Tiny train step B=8")]:
        s1, s2 = sx.get((key, 1)), sx.get((key, 2))
        if s1 and s2:
            sc = s1["wall"] / s2["wall"]
            sc_cpu = s1["cpu"] / s2["wall"]
            special.append(f"| {label}: 2 threads vs 1 thread | {sc:.2f}x (wall/wall); {sc_cpu:.2f}x (1T cpu / 2T wall) "
                           f"| >= 1.7x | {'yes' if sc >= 1.7 else '**no**'} | |")
            summary.append({"case": f"{label} 2T/1T", "speedup": sc, "speedup_cpu1": sc_cpu, "target": 1.7})

    load_before = pathlib.Path(a.results, "load_before.txt").read_text().strip().replace("\n", "; busiest processes (%CPU): ") if os.path.exists(
        os.path.join(a.results, "load_before.txt")) else "?"
    load_after = pathlib.Path(a.results, "load_after.txt").read_text().strip() if os.path.exists(
        os.path.join(a.results, "load_after.txt")) else "?"
    lscpu = pathlib.Path(a.results, "lscpu.txt").read_text() if os.path.exists(os.path.join(a.results, "lscpu.txt")) else ""
    model = re.search(r"Model name:\s*(.*)", lscpu)
    family = ""
    try:
        cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
        fam = re.search(r"cpu family\s*:\s*(\d+)", cpuinfo)
        mod = re.search(r"\nmodel\s*:\s*(\d+)", cpuinfo)
        family = f"family {fam.group(1)} model {mod.group(1)}" if fam and mod else ""
    except OSError:
        pass
    cores = re.search(r"^CPU\(s\):\s*(\d+)", lscpu, re.M)
    avx512 = "AVX-512" if "avx512f" in lscpu else "no AVX-512"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        commit = "?"

    md = []
    md.append("# Performance: sparsimix vs PyTorch, oneDNN and OpenBLAS\n")
    md.append("Generated by `bench/compare/report.py` from the raw JSON in `bench/results/`.\n")
    md.append(f"- Command: `{a.command}` (from the repository root; see the script's header)")
    md.append(f"- Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, sparsimix commit {commit}")
    md.append(f"- Machine: {model.group(1).strip() if model else '?'} ({family}, {avx512}), "
              f"{cores.group(1) if cores else '?'} cores, Debian 12, g++ 12 `-O3 -march=native` (Release), OpenMP")
    md.append(f"- PyTorch {tinfo.get('torch', '?')} (Debian, OpenBLAS inside), oneDNN 2.6.3 (Debian), "
              "OpenBLAS 0.3.21 (Debian, pthread)")
    # The 1-minute load average before the run says whether other jobs shared the cores.
    m1 = re.search(r"load average: ([0-9.]+)", load_before)
    busy = m1 is not None and float(m1.group(1)) >= 1.0
    md.append(f"- Load: before `{load_before}`; after `{load_after}` "
              + ("(other jobs were sharing the cores when the run started)" if busy
                 else "(the machine was idle when the run started)"))
    md.append("")
    md.append("Timing: medians. **1 thread: CPU time of the calling thread on both sides** (the wall-time "
              "speedup is in the last column); 2 threads: wall time. Speedup = other's time / sparsimix's time. "
              "Threads pinned together: `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS`, `torch.set_num_threads` / "
              "`sparsimix::set_num_threads`. FLOP formulas: the header comment of each `bench/bench_*.cpp` "
              "(multiply-add = 2, GEMMs only). % peak = sparsimix GFLOP/s / OpenBLAS sgemm practical peak at "
              "the same thread count.\n")
    md.append("## OpenBLAS sgemm (practical peak)\n")
    md.append("| kernels | threads | n | GFLOP/s |")
    md.append("|---|---|---|---|")
    for kind, t, n, g in sgemm_rows:
        md.append(f"| {'default detection' if kind == 'default' else 'OPENBLAS_CORETYPE=SkylakeX'} | {t} | {n} | {g:.0f} |")
    md.append("")
    md.append("Peak used: " + ", ".join(f"{t} thread{'s' if t > 1 else ''}: {p:.0f} GFLOP/s" for t, p in sorted(peaks.items())))
    md.append("")
    md.append("## Side by side\n")
    md.append("| case | T | sparsimix ms | other | other ms | speedup | target | met | % sgemm peak | notes |")
    md.append("|---|---|---|---|---|---|---|---|---|---|")
    md.extend(rows)
    md.append("")
    md.append("## Whole-model targets\n")
    md.append("| target | measured | required | met | notes |")
    md.append("|---|---|---|---|---|")
    md.extend(special)
    md.append("")
    md.append("## Hybrid (half of the blocks mh_lstm) vs all-attention, DeiT-Tiny, B = 1\n")
    md.append("Ratio = all-attention time / hybrid time (> 1: the hybrid is faster).\n")
    md.append("| threads | N | sparsimix ratio | PyTorch ratio | sparsimix, half of the LSTM units pruned |")
    md.append("|---|---|---|---|---|")
    for t, N, r, rt, rp in hyb:
        md.append(f"| {t} | {N} | {r:.2f} | {'' if rt is None else f'{rt:.2f}'} | {'' if rp is None else f'{rp:.2f}'} |")
    md.append("")

    keep = ""
    if os.path.exists(a.out):
        old = pathlib.Path(a.out).read_text()
        if ANALYSIS in old:
            keep = old[old.index(ANALYSIS):]
    if not keep:
        keep = ANALYSIS + "\n\n## Analysis\n\n(to be written after a run)\n"
    pathlib.Path(a.out).write_text("\n".join(md) + "\n" + keep)
    pathlib.Path(a.results, "summary.json").write_text(json.dumps(summary, indent=1))


def fmt_ms(s):
    return f"{s * 1e3:.3g}" if s * 1e3 < 100 else f"{s * 1e3:.0f}"


if __name__ == "__main__":
    main()
