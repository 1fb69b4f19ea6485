"""Accuracy against model size (or latency) on NAS-Bench-201 with GatesSampler in a multi-objective Optuna study.

    python examples/optuna_multi_objective.py --trials 60 --cost model_size
    python examples/optuna_multi_objective.py --trials 60 --cost latency --max-latency 0.012

The objective returns (validation accuracy, cost). The model size is exact for any cell (a parameter
count), so the sampler is told it is cheap (``cheap_objectives={1: ...}``) and computes it for every
candidate instead of learning it. A latency is measured, so it is learned like the accuracy. With
``--max-latency``, trials slower than the bound are infeasible (Optuna's ``constraints_func``):
``study.best_trials`` keeps feasible trials only, and the sampler learns to avoid slow cells.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import optuna

from gates_sampler import GatesSampler
from gates_sampler.benchmarks import NB201Benchmark


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"])
    parser.add_argument("--cost", default="model_size", choices=["model_size", "latency"])
    parser.add_argument("--max-latency", type=float, default=None, help="seconds; trials above it are infeasible")
    parser.add_argument("--n-startup", type=int, default=10, help="random trials before the predictors are used")
    args = parser.parse_args(argv)

    accuracy = NB201Benchmark(args.dataset)
    cost = NB201Benchmark(args.dataset, metric=args.cost)
    latency = NB201Benchmark(args.dataset, metric="latency")
    space = accuracy.space

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = space.suggest(trial)
        trial.set_user_attr("latency", latency.query(arch))
        return accuracy.query(arch), cost.query(arch)

    constraints = None
    if args.max_latency is not None:
        bound = args.max_latency

        def constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
            return [trial.user_attrs["latency"] - bound]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = GatesSampler(
        space,
        n_startup_trials=args.n_startup,
        seed=args.seed,
        # the model size of a cell is exact: computed for every candidate, not learned
        cheap_objectives={1: cost.query} if args.cost == "model_size" else None,
        constraints_func=constraints,
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    start = time.time()
    study.optimize(objective, n_trials=args.trials)

    unit = "MB" if args.cost == "model_size" else "s"
    print(f"{args.trials} trials in {time.time() - start:.1f} s; Pareto front ({len(study.best_trials)} trials):")
    for t in sorted(study.best_trials, key=lambda t: t.values[1]):
        print(f"  accuracy {t.values[0]:6.2f} %   {args.cost} {t.values[1]:.4f} {unit}   trial {t.number}")


if __name__ == "__main__":
    main()
