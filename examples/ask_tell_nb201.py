"""A standalone ask/tell search on NAS-Bench-201 look-ups (no framework needed).

python examples/ask_tell_nb201.py --dataset cifar100 --budget 100 --seed 0
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gates_sampler import GatesPredictorSearcher
from gates_sampler.benchmarks import NB201Benchmark
from gates_sampler.loop import Step, run_search


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"])
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers", type=int, default=1, help="architectures proposed per step, as for parallel workers"
    )
    args = parser.parse_args(argv)

    bench = NB201Benchmark(args.dataset)
    searcher = GatesPredictorSearcher(bench.space, seed=args.seed)

    def report(step: Step) -> None:
        arch, value = searcher.best
        print(f"{searcher.n_told:4d} evaluated, best {value:.3f}  {arch}")

    # batch_size=n asks n distinct architectures at once (ask_batch), e.g. one per GPU; tell() takes
    # results in any order
    run_search(searcher, bench.query, args.budget, batch_size=args.workers, callback=report)

    optimum = bench.optimum()[1]
    print(f"best after {searcher.n_told}: {searcher.best[1]:.3f} (benchmark optimum {optimum:.3f})")


if __name__ == "__main__":
    main()
