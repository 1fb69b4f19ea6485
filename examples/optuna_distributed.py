"""Several worker processes searching NAS-Bench-201 together through one Optuna storage.

Every worker builds its own ``GatesSampler``; the sampler rebuilds what it knows from the shared
study before each proposal, so the workers share no memory, only the storage. Running trials never
hold the same architecture at the same time.

    python examples/optuna_distributed.py --workers 3 --trials 20
    python examples/optuna_distributed.py --storage journal:/tmp/nb201.log --workers 4 --trials 25
    python examples/optuna_distributed.py --workers 3 --trials 20 --pruner hyperband

``--storage`` takes an SQLAlchemy URL (default: a fresh SQLite file in a temporary folder) or
``journal:<path>`` for Optuna's journal file storage. ``--trials`` counts trials per worker.
With ``--pruner``, each trial reports a learning curve over ``CURVE_STEPS`` steps (a stand-in that
rises to the table's value) and the pruner stops the poor ones; the samplers learn from them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import optuna
import torch

from gates_sampler import GatesSampler
from gates_sampler.benchmarks import NB201Benchmark


def open_storage(url: str) -> str | optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: ``journal:<path>`` or an SQLAlchemy URL."""
    if url.startswith("journal:"):
        backend = optuna.storages.journal.JournalFileBackend(url[len("journal:") :])
        return optuna.storages.JournalStorage(backend)
    return url


#: steps of the stand-in learning curve reported with --pruner
CURVE_STEPS = 4
PRUNERS = ("none", "median", "sha", "hyperband")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=CURVE_STEPS, reduction_factor=2)
    return optuna.pruners.NopPruner()


def worker(
    url: str,
    study_name: str,
    n_trials: int,
    seed: int,
    dataset: str,
    sleep: float,
    sampler_kwargs: dict[str, Any],
    pruner: str = "none",
) -> None:
    """One worker process: load the shared study and run ``n_trials`` trials with its own sampler."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)  # several workers share the machine's cores
    bench = NB201Benchmark(dataset)
    space = bench.space
    sampler = GatesSampler(space, seed=seed, device="cpu", **sampler_kwargs)
    study = optuna.load_study(
        study_name=study_name, storage=open_storage(url), sampler=sampler, pruner=make_pruner(pruner)
    )

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        # recorded so that overlapping trials can be checked afterwards
        trial.set_user_attr("arch", str(arch))
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("start", time.time())
        value = bench.query(arch)
        if pruner != "none":
            for step in range(1, CURVE_STEPS + 1):
                time.sleep(sleep / CURVE_STEPS)  # stands in for training one more step
                trial.report(value - 10.0 * (CURVE_STEPS - step) / step, step)
                if step < CURVE_STEPS and trial.should_prune():
                    trial.set_user_attr("end", time.time())
                    raise optuna.TrialPruned()
        else:
            time.sleep(sleep)  # stands in for training the network
        trial.set_user_attr("end", time.time())
        return value

    study.optimize(objective, n_trials=n_trials)


def run(
    url: str,
    study_name: str,
    workers: int,
    trials: int,
    seed: int,
    dataset: str = "cifar10",
    sleep: float = 0.2,
    sampler_kwargs: dict[str, Any] | None = None,
    pruner: str = "none",
) -> optuna.Study:
    """Create the study, start ``workers`` processes of ``trials`` trials each, wait, and return the study."""
    # validation accuracy: higher is better
    optuna.create_study(study_name=study_name, storage=open_storage(url), direction="maximize", load_if_exists=True)
    ctx = mp.get_context("spawn")  # fresh interpreters, as separate machines would be
    procs = [
        ctx.Process(target=worker, args=(url, study_name, trials, seed, dataset, sleep, sampler_kwargs or {}, pruner))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} worker(s) exited with codes {failed}")
    return optuna.load_study(study_name=study_name, storage=open_storage(url))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--trials", type=int, default=20, help="trials per worker")
    parser.add_argument("--storage", default=None, help="SQLAlchemy URL or journal:<path> (default: fresh SQLite file)")
    parser.add_argument("--study-name", default="gates-nb201")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"])
    parser.add_argument("--seed", type=int, default=0, help="the same seed in every worker is fine")
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds each trial pretends to train")
    parser.add_argument("--n-startup", type=int, default=10, help="random trials before the predictor is used")
    parser.add_argument("--n-candidates", type=int, default=200, help="candidates scored per proposal")
    parser.add_argument("--warm-epochs", type=int, default=10, help="epochs of each warm-started refit")
    parser.add_argument("--pruner", default="none", choices=PRUNERS, help="Optuna pruner of the trials' curves")
    parser.add_argument(
        "--predictor", default="{}", help='Predictor settings as JSON, e.g. \'{"epochs": 50, "hidden": 64}\''
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.trials < 1:
        parser.error("--workers and --trials must be positive")
    try:
        predictor = json.loads(args.predictor)
    except json.JSONDecodeError as exc:
        parser.error(f"--predictor is not valid JSON: {exc}")
    if not isinstance(predictor, dict):
        parser.error("--predictor must be a JSON object")
    sampler_kwargs = {
        "n_startup_trials": args.n_startup,
        "n_candidates": args.n_candidates,
        "predictor": predictor,
        "settings": {"warm_epochs": args.warm_epochs},
    }
    url = args.storage or f"sqlite:///{os.path.join(tempfile.mkdtemp(prefix='gates-optuna-'), 'study.db')}"

    start = time.time()
    study = run(
        url,
        args.study_name,
        args.workers,
        args.trials,
        args.seed,
        args.dataset,
        args.sleep,
        sampler_kwargs,
        args.pruner,
    )
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    archs = [t.user_attrs["arch"] for t in trials + pruned]
    print(f"storage: {url}")
    print(
        f"{len(trials)} trials completed by {len({t.user_attrs['pid'] for t in trials + pruned})} workers "
        f"in {time.time() - start:.1f} s ({len(pruned)} more pruned); "
        f"{len(set(archs))} distinct architectures"
    )
    best_arch, best_value = NB201Benchmark(args.dataset).optimum()
    print(f"best: {study.best_value:.3f}  {study.best_trial.user_attrs['arch']}")
    print(f"optimum of the table: {best_value:.3f}  {best_arch}")


if __name__ == "__main__":
    main()
