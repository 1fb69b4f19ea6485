"""GATES++ on Optuna in the DARTS space, scored by the NAS-Bench-301 surrogate (CIFAR-10).

Each trial suggests a DARTS genotype (normal + reduce cell) and asks the YAHPO Gym NB301 ONNX
surrogate for its validation accuracy after 98 epochs. The surrogate needs ``onnxruntime``
(``pip install 'gates-sampler[nb301]'``) and its files (``new_model.onnx`` or ``model.onnx`` plus
``encoding.json`` from the ``nb301/`` folder of https://github.com/slds-lmu/yahpo_data), whose folder
is passed as ``--path`` or in the environment variable ``GATES_NB301_PATH``.

    python examples/optuna_nb301_surrogate.py --path /data/yahpo_data/nb301 --trials 100
    GATES_NB301_PATH=/data/yahpo_data/nb301 python examples/optuna_nb301_surrogate.py --compare-random
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

import optuna

from gates_sampler import GatesSampler
from gates_sampler.benchmarks import NB301Benchmark
from gates_sampler.benchmarks.nb301 import DARTS_V2
from gates_sampler.spaces import DartsSpace

#: environment variable naming the surrogate folder when --path is not given
PATH_VARIABLE = "GATES_NB301_PATH"


def run(sampler: optuna.samplers.BaseSampler, bench: NB301Benchmark, space: DartsSpace, n_trials: int) -> optuna.Study:
    """Optimise the surrogate's validation accuracy with ``sampler``."""

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        trial.set_user_attr("arch", str(arch))
        return bench.query(arch)

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return study


def best_so_far(study: optuna.Study, checkpoints: list[int]) -> list[float]:
    values = [t.value for t in study.trials]
    return [max(values[:n]) for n in checkpoints]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--path",
        default=os.environ.get(PATH_VARIABLE),
        help=f"folder of the YAHPO nb301 surrogate (default: ${PATH_VARIABLE})",
    )
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--startup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare-random", action="store_true", help="also run Optuna's RandomSampler")
    args = parser.parse_args(argv)
    if args.path is None:
        parser.error(
            f"pass --path FOLDER (or set {PATH_VARIABLE}) to the YAHPO nb301 surrogate folder: new_model.onnx "
            "(or model.onnx) and encoding.json from the nb301/ folder of github.com/slds-lmu/yahpo_data"
        )
    if not Path(args.path).expanduser().exists():
        parser.error(
            f"the NB301 surrogate folder {args.path!r} does not exist; pass --path FOLDER (or set {PATH_VARIABLE})"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = DartsSpace()
    try:
        bench = NB301Benchmark(str(Path(args.path).expanduser()))
    except (FileNotFoundError, ValueError, ImportError) as exc:  # files missing or not the surrogate's; no onnxruntime
        parser.error(str(exc))
    print(f"NB301 surrogate: DARTS-V2 scores {bench.query(DARTS_V2):.2f} % (validation accuracy, epoch 98)")

    runs = {"GATES": GatesSampler(space, n_startup_trials=args.startup, seed=args.seed)}
    if args.compare_random:
        runs["random"] = optuna.samplers.RandomSampler(seed=args.seed)
    checkpoints = sorted({n for n in (10, 20, 40, 60, 100, 200, args.trials) if n <= args.trials})
    print(f"\n{'sampler':>8} " + " ".join(f"{'N=' + str(n):>7}" for n in checkpoints) + f" {'time':>7}")
    studies = {}
    for name, sampler in runs.items():
        start = time.perf_counter()
        studies[name] = study = run(sampler, bench, space, args.trials)
        row = " ".join(f"{v:7.2f}" for v in best_so_far(study, checkpoints))
        print(f"{name:>8} {row} {time.perf_counter() - start:6.1f}s")
    best = studies["GATES"].best_trial
    print(f"\nbest found by GATES: {best.value:.2f} % (trial {best.number})\n{best.user_attrs['arch']}")


if __name__ == "__main__":
    main()
