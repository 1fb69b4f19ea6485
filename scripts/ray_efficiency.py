"""Does the Ray Tune door lose anything? Tune + GatesSearcher vs the core GatesPredictorSearcher loop.

Both run the same settings (default predictor, n_startup=10, n_candidates=200) with the same seeds on
NAS-Bench-201 look-ups, sequentially (Tune with ``ConcurrencyLimiter(max_concurrent=1)``), so the
searcher sees exactly the same ask/tell sequence in both. One Ray session serves all seeds.

    nice python scripts/ray_efficiency.py --seeds 0 1 2 3 4 --budget 50 --dataset cifar10
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import numpy as np


def core_run(bench, seed: int, budget: int) -> tuple[float, list[str], float]:
    from gates_sampler import GatesPredictorSearcher

    start = time.perf_counter()
    searcher = GatesPredictorSearcher(bench.space, direction=bench.direction, seed=seed)
    archs = []
    for _ in range(budget):
        arch = searcher.ask()
        searcher.tell(arch, bench.query(arch))
        archs.append(str(arch))
    return searcher.best[1], archs, time.perf_counter() - start


def lookup(config: dict, bench) -> None:
    from ray import tune

    tune.report({"acc": bench.query(bench.space.from_params(config))})


def tune_run(bench, seed: int, budget: int, storage: str) -> tuple[float, list[str], float]:
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from gates_sampler import GatesSearcher

    start = time.perf_counter()
    searcher = GatesSearcher(
        bench.space, metric="acc", mode="max" if bench.direction == "maximize" else "min", seed=seed
    )
    tuner = tune.Tuner(
        tune.with_parameters(lookup, bench=bench),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=1), num_samples=budget, reuse_actors=True
        ),
        run_config=tune.RunConfig(storage_path=storage, name=f"seed{seed}", verbose=0),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0 and len(grid) == budget
    return searcher.best[1], [str(o.arch) for o in searcher.history], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"])
    args = parser.parse_args()
    logging.getLogger("ray").setLevel(logging.ERROR)

    import ray

    from gates_sampler.benchmarks import NB201Benchmark

    bench = NB201Benchmark(args.dataset)
    _, optimum = bench.optimum()
    rows = {"core": [], "tune": []}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as storage:
            for seed in args.seeds:
                t_best, t_archs, t_time = tune_run(bench, seed, args.budget, storage)
                c_best, c_archs, c_time = core_run(bench, seed, args.budget)
                same = (
                    "same"
                    if t_archs == c_archs
                    else f"differ from #{next(i for i, (a, b) in enumerate(zip(t_archs, c_archs)) if a != b)}"
                )
                print(
                    f"seed {seed}: core best {c_best:.3f} ({c_time:.0f}s)  "
                    f"tune best {t_best:.3f} ({t_time:.0f}s)  proposals {same}",
                    flush=True,
                )
                rows["core"].append(c_best)
                rows["tune"].append(t_best)
    finally:
        ray.shutdown()
    print(f"NB201 {args.dataset} val_acc, optimum {optimum:.3f}, budget {args.budget}, seeds {args.seeds}")
    for name, label in (
        ("core", "core GatesPredictorSearcher loop"),
        ("tune", "Tune + GatesSearcher (max_concurrent=1)"),
    ):
        v = np.array(rows[name])
        print(f"  {label:42s} best {v.mean():.3f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}")


if __name__ == "__main__":
    main()
