"""Cost of the core searcher on this machine: ask() time by history size and peak memory.

    python scripts/searcher_cost.py --budget 150 --seeds 3

Prints the median ask() time around 25/50/100/150 told architectures for each refit policy, the
time of a first (from-scratch) fit, and the process's peak resident memory after the runs.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from gates_sampler import GatesPredictorSearcher
from gates_sampler.benchmarks import NB201Benchmark
from gates_sampler.searcher import SearchSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--candidates", default="random")
    args = parser.parse_args()

    bench = NB201Benchmark(args.dataset)
    marks = [m for m in (25, 50, 100, 150) if m <= args.budget]
    print(f"NB201 {args.dataset}, budget {args.budget}, {args.seeds} seeds, candidates={args.candidates}")
    print(f"{'refit':<8} " + " ".join(f"ask@{m:<4}" for m in marks) + "  first-fit s  wall s")
    for refit in ("warm", "scratch"):
        times = {m: [] for m in marks}
        first_fit, wall = [], []
        for seed in range(args.seeds):
            s = GatesPredictorSearcher(
                bench.space, seed=seed, candidates=args.candidates, settings=SearchSettings(refit=refit)
            )
            start = time.perf_counter()
            for i in range(args.budget):
                t = time.perf_counter()
                a = s.ask()
                dt = time.perf_counter() - t
                if i == s.n_startup:
                    first_fit.append(dt)
                for m in marks:
                    if abs(i - m) <= 5 and i != s.n_startup:
                        times[m].append(dt)
                s.tell(a, bench.query(a))
            wall.append(time.perf_counter() - start)
        print(
            f"{refit:<8} "
            + " ".join(f"{np.median(times[m]):<8.3f}" for m in marks)
            + f"  {np.median(first_fit):<11.2f}  {np.mean(wall):.1f}"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process (all runs above): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
