"""Search NAS-Bench-201 (cifar10 validation accuracy, a table look-up) with GatesSampler in Optuna.

    python examples/optuna_nb201.py --trials 50 --seed 0

The objective is an ordinary Optuna objective: ``space.suggest(trial)`` suggests the cell's six
operations, which GatesSampler proposes together from its GATES predictor; anything else the
objective suggests (here nothing) would go to Optuna's TPE.
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
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"])
    parser.add_argument("--n-startup", type=int, default=10, help="random trials before the predictor is used")
    args = parser.parse_args(argv)

    bench = NB201Benchmark(args.dataset)
    space = bench.space

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        trial.set_user_attr("arch", str(arch))
        return bench.query(arch)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = GatesSampler(space, n_startup_trials=args.n_startup, seed=args.seed)
    study = optuna.create_study(direction=bench.direction, sampler=sampler)
    start = time.time()
    study.optimize(objective, n_trials=args.trials)

    best_arch, best_value = bench.optimum()
    print(f"{args.trials} trials in {time.time() - start:.1f} s")
    print(
        f"best found:    {study.best_value:.3f}  (trial {study.best_trial.number})  "
        f"{study.best_trial.user_attrs['arch']}"
    )
    print(f"table optimum: {best_value:.3f}  {best_arch}")


if __name__ == "__main__":
    main()
