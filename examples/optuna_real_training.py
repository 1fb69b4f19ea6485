"""GATES++ on Optuna with real training and pruning.

Every trial builds the NAS-Bench-201 network of the proposed cell, trains it for a few epochs and
reports the validation accuracy after each epoch; from epoch 2 on, Optuna's MedianPruner stops worse trials
early (they end as PRUNED). Without ``--cifar-root`` the networks train on a small synthetic DEMO
data set (``gates_sampler.benchmarks.demo_data``, 16x16 images) so the example runs in a few minutes
on a laptop CPU; its accuracies only demonstrate the loop. With ``--cifar-root`` (the folder holding
``cifar-10-batches-py/``) it trains on CIFAR-10 instead (a GPU is then advisable; raise ``--epochs``,
``--C`` and ``--N``).

    python examples/optuna_real_training.py                      # demo data, 12 trials
    python examples/optuna_real_training.py --cifar-root ~/data --epochs 12 --C 16 --N 5 --trials 100
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
import torch

from gates_sampler import GatesSampler
from gates_sampler.benchmarks import TrainingEvaluator, TrainingSettings
from gates_sampler.benchmarks.training import OptunaPruningCallback
from gates_sampler.spaces import NB201Space


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--startup", type=int, default=6, help="random trials before the predictor is used")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--C", type=int, default=8, help="channels of the first stage")
    parser.add_argument("--N", type=int, default=1, help="cells per stage")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cifar-root", default=None, help="folder holding cifar-10-batches-py/ (else: demo data)")
    parser.add_argument("--n-train", type=int, default=800, help="demo data: training images")
    parser.add_argument("--n-val", type=int, default=400, help="demo data: validation images")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cifar_root and not (Path(args.cifar_root).expanduser() / "cifar-10-batches-py").is_dir():
        parser.error(
            f"--cifar-root {args.cifar_root!r} holds no cifar-10-batches-py/ folder; download CIFAR-10 "
            "(python version) from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it there, "
            "or leave out --cifar-root to train on synthetic demo data"
        )
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = NB201Space()
    common = dict(
        epochs=args.epochs,
        network={"C": args.C, "N": args.N},
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
    )
    if args.cifar_root:
        evaluator = TrainingEvaluator(space, "cifar10", args.cifar_root, **common)
        data = "CIFAR-10"
    else:
        demo = TrainingSettings(n_train=args.n_train, n_val=args.n_val, demo_image_size=16)
        evaluator = TrainingEvaluator(space, "demo", settings=demo, **common)
        data = f"synthetic DEMO data ({args.n_train} train / {args.n_val} val images, 16x16)"
    print(
        f"training NB201 networks (C={args.C}, N={args.N}, {args.epochs} epochs) on {data}, device {evaluator.device}"
    )

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        trial.set_user_attr("arch", str(arch))
        return evaluator.evaluate(arch, callback=OptunaPruningCallback(trial))

    study = optuna.create_study(
        direction="maximize",
        sampler=GatesSampler(space, n_startup_trials=args.startup, seed=args.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
    )
    start = time.perf_counter()
    for _ in range(args.trials):
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=1)
        t = study.trials[-1]
        curve = " ".join(f"{v:5.1f}" for _, v in sorted(t.intermediate_values.items()))
        value = "" if t.value is None else f"{t.value:6.2f}"
        print(
            f"trial {t.number:3d} {t.state.name:9s} {value:>6s}  [{curve}]  "
            f"{time.perf_counter() - t0:5.1f}s  {t.user_attrs['arch']}"
        )
    elapsed = time.perf_counter() - start

    states = [t.state for t in study.trials]
    n_pruned = sum(s == optuna.trial.TrialState.PRUNED for s in states)
    n_done = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
    print(f"\n{len(states)} trials: {n_done} complete, {n_pruned} pruned, {elapsed:.0f} s")
    best = study.best_trial
    print(f"best val_acc {best.value:.2f} % (trial {best.number}): {best.user_attrs['arch']}")


if __name__ == "__main__":
    main()
