"""Ranking quality of the Gaussian process on the one-hot encoding, on the predictor-table protocol.

    python scripts/gp_ranking.py --nb301-path DIR

The same seeded NB301 split as ``gates-nas eval-predictor --benchmark nb301`` (a pool of 5,896 random
DARTS cells, 5,000 other cells to test on, labels from the surrogate at epoch 98) and the same training
subsets (``draw_subset``, 3 per size); the process (``gates_sampler.predictor.gp``, the model behind
``acquisition="ei"``) is fitted to each subset and ranks the test cells by its posterior mean. A fit has
no random initialisation, so the predictor table's three initialisation seeds collapse into one run per
subset. Prints Kendall's tau per training size: mean and standard deviation over the subsets.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gates_sampler.commands.eval_predictor import NB301_PERCENTS
from gates_sampler.experiments.predictor_quality import draw_subset, kendall_tau, nb301_split, train_size
from gates_sampler.predictor.gp import fit_feature_gp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nb301-path", required=True)
    parser.add_argument("--subsets", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (eval-predictor's --split-seed)")
    args = parser.parse_args()
    split = nb301_split(args.nb301_path, seed=args.seed)
    test_x = split.space.one_hot(split.test_archs).reshape(len(split.test_archs), -1).double().numpy()
    print(f"{split.name}: pool {split.pool_size}, test {len(split.test_archs)}; GP on the one-hot encoding")
    print(f"{'ratio':>7} {'cells':>6} {'tau mean':>9} {'tau std':>8} {'fit s':>7}")
    for ratio in (p / 100.0 for p in NB301_PERCENTS):
        n = train_size(split.pool_size, ratio)
        taus, seconds = [], []
        for s in range(args.subsets):
            idx = draw_subset(split.pool_size, n, s, 0)
            archs = [split.train_archs[i] for i in idx]
            x = split.space.one_hot(archs).reshape(n, -1).double().numpy()
            start = time.perf_counter()
            gp = fit_feature_gp(x, split.train_values[idx])
            seconds.append(time.perf_counter() - start)
            mean, _ = gp.predict(test_x)
            taus.append(kendall_tau(split.test_values, mean))
        print(f"{ratio:>7.3f} {n:>6} {np.mean(taus):>9.3f} {np.std(taus):>8.3f} {np.mean(seconds):>7.2f}")


if __name__ == "__main__":
    main()
