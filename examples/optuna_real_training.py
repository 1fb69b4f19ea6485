"""A small, honest NAS with real training: GATES under a pruner against random search, same epoch budget.

Data: scikit-learn's handwritten digits (1,797 real 8x8 images, shipped inside scikit-learn; nothing is
downloaded), split once into 1,000 training, 397 validation and 400 test images. Every trial builds the
NAS-Bench-201 network of its cell, trains it for up to ``--epochs`` epochs on the training images and
reports the validation accuracy after each epoch; Optuna's ``SuccessiveHalvingPruner`` stops the worse
trials early. GATES learns from the pruned trials too (each ranks below the trials that were better at
the epoch it stopped). A search ends when ``--epoch-budget`` epochs have been trained in total, counting
the pruned trials' epochs.

The found cell of a search is its completed trial with the best validation accuracy. It is then trained
again from scratch (``--final-epochs``) and its accuracy on the 400 test images, never seen by the
search, is what the table compares: GATES against random search (``RandomSampler``, same pruner, same
budget), over ``--seeds`` seeds, on the CPU.

    python examples/optuna_real_training.py                   # 3 seeds, a few minutes on a laptop CPU
    python examples/optuna_real_training.py --quick           # a smoke run (seconds)

Needs ``pip install 'gates-sampler[optuna,digits]'``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import optuna
import torch
from torch.utils.data import TensorDataset

from gates_sampler import GatesSampler
from gates_sampler.benchmarks import TrainingEvaluator
from gates_sampler.benchmarks.training import load_digits_split
from gates_sampler.spaces import NB201Space


class BudgetSpent(Exception):
    """The search's epoch budget ran out in the middle of a trial."""


def search(method: str, seed: int, args: argparse.Namespace, space: NB201Space) -> tuple[str, int, int, int]:
    """One search; returns the found cell, the trials run, the pruned ones and the epochs spent."""
    evaluator = TrainingEvaluator(
        space, "digits", epochs=args.epochs, network={"C": args.C, "N": 1}, batch_size=128, device="cpu", seed=seed
    )
    if method == "gates":
        sampler: optuna.samplers.BaseSampler = GatesSampler(
            space, n_startup_trials=args.startup, n_candidates=100, seed=seed, predictor={"epochs": 50}
        )
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(
        direction="maximize",
        sampler=sampler,
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    )
    spent = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        arch = space.suggest(trial)
        trial.set_user_attr("arch", str(arch))

        def report(epoch: int, val_acc: float) -> None:
            nonlocal spent
            spent += 1
            trial.report(val_acc, epoch)
            if spent >= args.epoch_budget and epoch < args.epochs:
                raise BudgetSpent()
            if epoch < args.epochs and trial.should_prune():
                raise optuna.TrialPruned()

        return evaluator.evaluate(arch, callback=report)

    while spent < args.epoch_budget:
        try:
            study.optimize(objective, n_trials=1)
        except BudgetSpent:
            break  # that trial is cut off: it counts for nothing
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    best = max(complete, key=lambda t: t.value if t.value is not None else -1.0)
    return best.user_attrs["arch"], len(study.trials), len(pruned), spent


def test_accuracy(arch: str, seed: int, args: argparse.Namespace, space: NB201Space) -> float:
    """Train ``arch`` from scratch on the training images; its accuracy (%) on the test images."""
    final = TrainingEvaluator(
        space,
        TensorDataset(*load_digits_split("train")),
        val_dataset=TensorDataset(*load_digits_split("test")),
        epochs=args.final_epochs,
        network={"C": args.C, "N": 1, "num_classes": 10, "in_channels": 1},
        batch_size=128,
        device="cpu",
        seed=seed,
    )
    return final.evaluate(space.parse(arch))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epoch-budget", type=int, default=60, help="epochs trained per search, pruned ones included")
    parser.add_argument("--epochs", type=int, default=9, help="epochs of a trial that is not pruned")
    parser.add_argument("--final-epochs", type=int, default=9, help="epochs of the found cell's test run")
    parser.add_argument("--startup", type=int, default=6, help="random trials before the predictor is used")
    parser.add_argument("--C", type=int, default=8, help="channels of the network's first stage")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, tiny budget")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epoch_budget, args.epochs, args.final_epochs, args.startup = 1, 8, 3, 1, 2
    if min(args.seeds, args.epoch_budget, args.epochs, args.final_epochs) < 1 or args.startup < 2:
        parser.error("--seeds, --epoch-budget, --epochs, --final-epochs must be positive, --startup >= 2")
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a trial cut off by the budget is not worth a warning
    space = NB201Space()
    print(
        f"NB201 cells (C={args.C}, N=1) on scikit-learn digits: {args.epochs} epochs per full trial, "
        f"SuccessiveHalvingPruner, {args.epoch_budget} epochs per search, {args.seeds} seed(s), CPU"
    )
    results: dict[str, list[float]] = {"gates": [], "random": []}
    for seed in range(args.seeds):
        for method in results:
            start = time.perf_counter()
            arch, n_trials, n_pruned, spent = search(method, seed, args, space)
            acc = test_accuracy(arch, seed, args, space)
            results[method].append(acc)
            print(
                f"seed {seed} {method:6s}: {n_trials:3d} trials ({n_pruned} pruned), {spent} epochs, "
                f"test accuracy of the found cell {acc:6.2f} %  ({time.perf_counter() - start:.0f} s)  {arch}"
            )
    print()
    for method, accs in results.items():
        a = np.asarray(accs)
        se = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
        print(f"{method:6s}: test accuracy {a.mean():6.2f} +- {se:.2f} % (mean +- s.e. over {len(a)} seed(s))")


if __name__ == "__main__":
    main()
