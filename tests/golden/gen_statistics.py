"""Golden values of experiment/statistics.hpp from numpy and scipy (independent references).

- bootstrap: the resampled means of three per-example columns, drawing indices with a Python
  model of sparsimix::Rng (gen_rng.py's xoshiro256** and Rng::below), and numpy.percentile's
  2.5/97.5% interval of a paired difference;
- quantile: numpy.percentile (linear interpolation) at several q;
- permutation test of Spearman's rho: scipy.stats.permutation_test, permutation_type
  "pairings", two-sided, exact (every ordering) for n <= 8.
"""
import math

import numpy as np
import scipy.stats
import torch

import st
from gen_rng import Xoshiro


def spearman_pairings(x, y):
    def stat(yy):
        return scipy.stats.spearmanr(x, yy).correlation
    res = scipy.stats.permutation_test((y,), stat, permutation_type="pairings", n_resamples=math.inf,
                                       alternative="two-sided", vectorized=False)
    return res.statistic, res.pvalue


def generate(out):
    gen = np.random.default_rng(7)
    # ---- bootstrap -----------------------------------------------------------------------
    n, resamples, seed = 37, 60, 12345
    cols = np.stack([(gen.random(n) < 0.8).astype(np.float64),
                     (gen.random(n) < 0.7).astype(np.float64),
                     gen.normal(size=n)])
    rng = Xoshiro(seed)
    means = np.zeros((3, resamples))
    for r in range(resamples):
        idx = np.array([rng.below(n) for _ in range(n)])
        means[:, r] = cols[:, idx].mean(axis=1)
    diff = means[0] - means[1]
    ci = np.percentile(diff, [2.5, 97.5])
    # ---- quantiles -------------------------------------------------------------------------
    values = gen.normal(size=11)
    qs = np.array([0.0, 0.025, 0.1, 0.5, 0.9, 0.975, 1.0])
    quant = np.percentile(values, qs * 100)
    # ---- permutation tests -----------------------------------------------------------------
    x6 = np.array([0.31, 0.12, 0.55, 0.47, 0.12, 0.90])   # a tie in x
    y6 = np.array([0.02, 0.05, -0.01, 0.03, 0.04, -0.02])
    x8 = gen.normal(size=8)
    y8 = x8 + 0.7 * gen.normal(size=8)
    r6, p6 = spearman_pairings(x6, y6)
    r8, p8 = spearman_pairings(x8, y8)
    f64 = lambda a: torch.tensor(np.asarray(a, dtype=np.float64))
    st.save(out / "statistics.safetensors", {
        "bootstrap.columns": f64(cols), "bootstrap.means": f64(means), "bootstrap.diff_ci95": f64(ci),
        "quantile.values": f64(values), "quantile.q": f64(qs), "quantile.expected": f64(quant),
        "perm6.x": f64(x6), "perm6.y": f64(y6), "perm6.expected": f64([r6, p6]),
        "perm8.x": f64(x8), "perm8.y": f64(y8), "perm8.expected": f64([r8, p8]),
    }, metadata={"bootstrap_seed": seed, "bootstrap_resamples": resamples})


if __name__ == "__main__":
    import pathlib
    import sys
    generate(pathlib.Path(sys.argv[1]))
