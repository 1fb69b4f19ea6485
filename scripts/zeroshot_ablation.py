"""GATES / +EES / +ETS / GATES++ (paper Table 7) on the NB201 cells whose zero-shot values are cached.

Uses the harness of ``gates-nas eval-predictor`` (same split, subsets, seeds and metrics) but keeps
only pool and test cells present in the zero-shot cache, so it can run before the whole space is
precomputed; training sizes are the paper's 0.5 / 1 / 2.5 % of the 7813-cell pool (39 / 78 / 195).

    nice python scripts/zeroshot_ablation.py --subsets 3 --seeds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gates_sampler.experiments.predictor_quality import (
    ABLATION_VARIANTS,
    NB201_POOL_SIZE,
    PAPER_SEEDS,
    PAPER_TABLE7_NB201,
    PredictorSplit,
    evaluate_predictor,
    format_ablation_table,
    nb201_split,
    summarize,
)
from gates_sampler.zeroshot import ZeroShotProvider


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subsets", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--cache", default=None)
    args = ap.parse_args()
    split = nb201_split("cifar10")
    zs = ZeroShotProvider(split.space, cache=args.cache, device="cpu")
    assert zs.cache is not None
    have = set(
        zs.cache.get_many(split.space.name, zs.config_key, [str(a) for a in split.train_archs + split.test_archs])
    )
    tr = [i for i, a in enumerate(split.train_archs) if str(a) in have]
    te = [i for i, a in enumerate(split.test_archs) if str(a) in have]
    sub = PredictorSplit(
        space=split.space,
        train_archs=[split.train_archs[i] for i in tr],
        train_values=split.train_values[tr],
        test_archs=[split.test_archs[i] for i in te],
        test_values=split.test_values[te],
        name=split.name + "-cached",
    )
    sizes = [int(np.floor(NB201_POOL_SIZE * p)) for p in (0.005, 0.01, 0.025)]
    ratios = [(n + 0.5) / sub.pool_size for n in sizes]  # the paper's absolute training sizes
    print(
        f"cached cells: pool {sub.pool_size} of {split.pool_size}, "
        f"test {len(sub.test_archs)} of {len(split.test_archs)}; "
        f"training sizes {sizes}; {args.subsets} subsets x {args.seeds} seeds; {args.epochs} epochs"
    )
    start = time.perf_counter()
    res = evaluate_predictor(
        sub,
        ratios,
        n_subsets=args.subsets,
        seeds=list(PAPER_SEEDS[: args.seeds]),
        variants=list(ABLATION_VARIANTS),
        zero_shot=zs,
        epochs=args.epochs,
        device="cpu",
    )
    print(format_ablation_table(summarize(res)))
    print("paper Table 7 (NB201, 0.5/0.75/1/2.5 %):", PAPER_TABLE7_NB201)
    print(f"{len(res)} fits in {time.perf_counter() - start:.0f} s wall (shared machine)")


if __name__ == "__main__":
    main()
