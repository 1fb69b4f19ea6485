"""How well does a small proxy network keep the ranking of the full-size network's zero-shot metrics?

Computes all metrics on ``--cells`` random NAS-Bench-201 cells with the full-size network
(C=16, N=5, 32x32 images, batch 64) and with a few proxy configurations, then prints the Spearman
correlation, over cells, of every architecture-level metric and of every per-op metric (over all
(cell, op position) pairs with parameters), and the seconds per cell of each configuration.

    nice python scripts/zeroshot_proxy.py --cells 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from gates_sampler.networks import build_network
from gates_sampler.spaces import NB201Space
from gates_sampler.zeroshot.metrics import ARCH_METRICS, OP_METRICS, compute_zeroshot, synthetic_batch

CONFIGS = {
    "full C16 N5 32px b64": (dict(C=16, N=5), 64, 32),
    "proxy C8 N1 16px b16": (dict(C=8, N=1), 16, 16),
    "proxy C8 N1 16px b32": (dict(C=8, N=1), 32, 16),
    "proxy C16 N1 16px b32": (dict(C=16, N=1), 32, 16),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = NB201Space()
    rng = np.random.default_rng(args.seed)
    archs = space.sample_unique(rng, args.cells)
    results: dict[str, list] = {}
    seconds: dict[str, float] = {}
    for name, (cfg, bs, im) in CONFIGS.items():
        x, y = synthetic_batch(bs, im, seed=args.seed)
        start = time.perf_counter()
        results[name] = [
            compute_zeroshot(lambda a=a, cfg=cfg: build_network(space, a, **cfg), x, y, seed=args.seed) for a in archs
        ]
        seconds[name] = (time.perf_counter() - start) / len(archs)
    full = list(CONFIGS)[0]
    cols = [f"arch:{m}" for m in ARCH_METRICS] + [f"op:{m}" for m in OP_METRICS]
    print(f"Spearman vs '{full}' over {len(archs)} NB201 cells (op metrics: over all parametric (cell, op) pairs)")
    print(f"{'config':<26}{'s/cell':>8}" + "".join(f"{c:>18}" for c in cols))
    for name in CONFIGS:
        row = []
        for m in range(len(ARCH_METRICS)):
            a = [r.arch[m] for r in results[full]]
            b = [r.arch[m] for r in results[name]]
            row.append(spearmanr(a, b).statistic)
        for m in range(len(OP_METRICS)):
            a, b = [], []
            for rf, rp in zip(results[full], results[name]):
                for k, v in rf.ops.items():
                    if v[4] > 0:
                        a.append(v[m])
                        b.append(rp.ops[k][m])
            row.append(spearmanr(a, b).statistic)
        print(f"{name:<26}{seconds[name]:>8.3f}" + "".join(f"{v:>18.3f}" for v in row))


if __name__ == "__main__":
    main()
