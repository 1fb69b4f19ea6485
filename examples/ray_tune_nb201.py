"""Architecture search on NAS-Bench-201 with Ray Tune and GatesSearcher.

Each trial looks its cell up in the NAS-Bench-201 table (cifar10 validation accuracy by default)
through ``NB201Benchmark``; the searcher proposes cells with the GATES predictor.

    python examples/ray_tune_nb201.py                       # a local Ray instance
    python examples/ray_tune_nb201.py --trials 100 --concurrency 4
    python examples/ray_tune_nb201.py --address 127.0.0.1:6379   # an existing cluster (`ray start --head`)

With ``--concurrency`` above 1, several cells are evaluated at once; the searcher never hands the
same cell to two running trials. Interrupt with Ctrl+C and resume with ``--resume``: every finished
evaluation is kept.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from gates_sampler import GatesSearcher
from gates_sampler.benchmarks import NB201Benchmark


def evaluate(config: dict, bench: NB201Benchmark) -> None:
    """One trial: the validation accuracy of the proposed cell (a real run would train it here)."""
    arch = bench.space.from_params(config)
    tune.report({"val_acc": bench.query(arch), "arch": str(arch)})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default=None, help="address of a running Ray cluster (default: start a local one)")
    parser.add_argument("--trials", type=int, default=50, help="number of cells to evaluate")
    parser.add_argument("--concurrency", type=int, default=2, help="trials running at the same time")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", default=os.path.abspath("ray_results"), help="where Tune writes the experiment")
    parser.add_argument("--name", default="gates_nb201", help="experiment name (a folder under --storage)")
    parser.add_argument("--resume", action="store_true", help="resume the interrupted experiment --storage/--name")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.concurrency < 1:
        parser.error("--trials and --concurrency must be positive")

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=max(2, args.concurrency), include_dashboard=False)

    bench = NB201Benchmark(args.dataset)
    trainable = tune.with_parameters(evaluate, bench=bench)
    path = os.path.join(args.storage, args.name)
    try:
        if args.resume:
            tuner = tune.Tuner.restore(path, trainable=trainable)
        else:
            searcher = GatesSearcher(bench.space, metric="val_acc", mode="max", seed=args.seed)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=args.concurrency), num_samples=args.trials
                ),
                run_config=tune.RunConfig(storage_path=args.storage, name=args.name),
            )
        results = tuner.fit()
    finally:
        ray.shutdown()

    best = results.get_best_result(metric="val_acc", mode="max")
    _, optimum = bench.optimum()
    finished = sum("val_acc" in (r.metrics or {}) for r in results)
    print(f"{len(results)} trials: {finished} cells evaluated, {results.num_errors} failed")
    print(f"best found: {best.metrics['val_acc']:.3f}  {best.metrics['arch']}")
    print(f"optimum of NAS-Bench-201 {args.dataset}: {optimum:.3f}  (regret {optimum - best.metrics['val_acc']:.3f})")


if __name__ == "__main__":
    main()
