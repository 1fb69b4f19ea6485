"""How much time does GatesSampler spend per trial, next to Optuna's TPESampler, and does running the
GATES loop inside Optuna find the same cells as the core searcher?

    python scripts/optuna_overhead.py overhead --trials 110 --window 90 110
    python scripts/optuna_overhead.py quality --dataset cifar100 --seeds 0 1 2 --trials 50

``overhead`` runs one in-memory (or SQLite) study per sampler on the NAS-Bench-201 look-up (so the
objective itself costs nothing) and times every sampler call (``before_trial``,
``infer_relative_search_space``, ``sample_relative``, ``sample_independent``, ``after_trial``),
summed per trial. The table gives the median over the trials in ``--window`` (trial ``k`` is proposed
with ``k`` completed trials), the median time of the core searcher's ``ask`` in that window (fit +
scoring; the rest is the adapter reading the study and claiming), the median over all trials and the
total.

``quality`` prints the best value found after ``--trials`` evaluations by ``run_optuna_gates`` and by
the core ``GatesPredictorSearcher`` loop with the same settings and seeds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import torch
from optuna.samplers import BaseSampler

from gates_sampler import GatesPredictorSearcher, GatesSampler
from gates_sampler.benchmarks import NB201Benchmark
from gates_sampler.integrations.optuna import run_optuna_gates


class TimedSampler(BaseSampler):
    """Delegates to ``inner`` and adds up the seconds spent in it per trial number."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner
        self.seconds: dict[int, float] = defaultdict(float)

    def _timed(self, trial: Any, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds[trial.number] += time.perf_counter() - start

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def before_trial(self, study, trial):
        return self._timed(trial, self.inner.before_trial, study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._timed(trial, self.inner.infer_relative_search_space, study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._timed(trial, self.inner.sample_relative, study, trial, search_space)

    def sample_independent(self, study, trial, name, dist):
        return self._timed(trial, self.inner.sample_independent, study, trial, name, dist)

    def after_trial(self, study, trial, state, values):
        return self._timed(trial, self.inner.after_trial, study, trial, state, values)


def time_sampler(
    name: str, sampler: BaseSampler, bench: NB201Benchmark, n_trials: int, storage: str | None
) -> dict[int, float]:
    timed = TimedSampler(sampler)
    space = bench.space
    study = optuna.create_study(direction=bench.direction, sampler=timed, storage=storage, study_name=name)
    study.optimize(lambda t: bench.query(space.suggest(t)), n_trials=n_trials)
    return dict(timed.seconds)


def overhead(args: argparse.Namespace) -> None:
    bench = NB201Benchmark(args.dataset)
    lo, hi = args.window
    samplers = {
        "GatesSampler": lambda: GatesSampler(bench.space, seed=args.seed, device="cpu", **zero_shot_kwargs(args)),
        "TPESampler": lambda: optuna.samplers.TPESampler(seed=args.seed),
    }
    GatesPredictorSearcher(bench.space, **zero_shot_kwargs(args))  # pay torch's one-off lazy imports before timing
    tmp = tempfile.mkdtemp(prefix="gates-overhead-")
    rows = []
    for name, make in samplers.items():
        storage = None if args.storage == "memory" else f"sqlite:///{os.path.join(tmp, name + '.db')}"
        start = time.perf_counter()
        sampler = make()
        seconds = time_sampler(name, sampler, bench, args.trials, storage)
        wall = time.perf_counter() - start
        per_trial = np.array([seconds.get(k, 0.0) for k in range(args.trials)])
        window = per_trial[lo:hi]
        # the part spent inside the core searcher's ask (fit + score); the rest is the adapter's
        # reading of the study and claiming (sequential run: one ask per trial)
        core = getattr(getattr(sampler, "searcher", None), "ask_seconds", None)
        in_core = float(np.median(core[lo:hi])) if core and len(core) >= hi else float("nan")
        rows.append(
            (
                name,
                float(np.median(window)),
                float(np.percentile(window, 90)),
                in_core,
                float(np.median(per_trial)),
                float(per_trial.sum()),
                wall,
            )
        )
    print(
        f"sampler seconds per trial, NB201 {args.dataset} look-up, {args.trials} trials, storage={args.storage}, "
        f"torch threads={torch.get_num_threads()}, seed={args.seed}, zero_shot={args.zero_shot}"
    )
    print(
        f"{'sampler':<14} {f'median [{lo},{hi})':>16} {f'p90 [{lo},{hi})':>14} {'of it core ask':>15} "
        f"{'median all':>11} {'total':>9} {'study wall':>11}"
    )
    for name, med, p90, in_core, med_all, total, wall in rows:
        print(f"{name:<14} {med:>16.4f} {p90:>14.4f} {in_core:>15.4f} {med_all:>11.4f} {total:>9.2f} {wall:>11.2f}")


def zero_shot_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--zero-shot none`` pins plain GATES; ``default`` leaves the searcher's own default."""
    return {"zero_shot": None} if args.zero_shot == "none" else {}


def core_loop(bench: NB201Benchmark, n_trials: int, seed: int, **kwargs: Any) -> list[float]:
    searcher = GatesPredictorSearcher(bench.space, direction=bench.direction, seed=seed, device="cpu", **kwargs)
    values = []
    for _ in range(n_trials):
        arch = searcher.ask()
        values.append(bench.query(arch))
        searcher.tell(arch, values[-1])
    return values


def quality(args: argparse.Namespace) -> None:
    bench = NB201Benchmark(args.dataset)
    best = max if bench.direction == "maximize" else min
    _, optimum = bench.optimum()
    rows: dict[str, list[float]] = {"GatesSampler (Optuna)": [], "GatesPredictorSearcher": []}
    secs: dict[str, float] = {k: 0.0 for k in rows}
    same = []
    GatesPredictorSearcher(bench.space, **zero_shot_kwargs(args))  # pay torch's one-off lazy imports before timing
    for seed in args.seeds:
        # the predictor's dropout draws from torch's global generator: seed it alike for both runs
        torch.manual_seed(seed)
        t = time.perf_counter()
        via_optuna = run_optuna_gates(bench, args.trials, seed, device="cpu", **zero_shot_kwargs(args))
        secs["GatesSampler (Optuna)"] += time.perf_counter() - t
        torch.manual_seed(seed)
        t = time.perf_counter()
        via_core = core_loop(bench, args.trials, seed, **zero_shot_kwargs(args))
        secs["GatesPredictorSearcher"] += time.perf_counter() - t
        rows["GatesSampler (Optuna)"].append(best(via_optuna))
        rows["GatesPredictorSearcher"].append(best(via_core))
        same.append(via_optuna == via_core)
    print(
        f"NB201 {args.dataset}, N={args.trials}, seeds {args.seeds}, zero_shot={args.zero_shot}, "
        f"torch threads={torch.get_num_threads()}: "
        f"best value found (table optimum {optimum:.3f})"
    )
    print(f"{'method':<24} {'mean':>8} {'std':>7}  {'per seed':<30} {'seconds':>8}")
    for name, vals in rows.items():
        print(
            f"{name:<24} {np.mean(vals):>8.3f} {np.std(vals):>7.3f}  "
            f"{' '.join(f'{v:.3f}' for v in vals):<30} {secs[name]:>8.1f}"
        )
    print(f"identical value sequences per seed: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("overhead", help="sampler seconds per trial, GatesSampler vs TPESampler")
    p.add_argument("--trials", type=int, default=110)
    p.add_argument("--window", type=int, nargs=2, default=(90, 110), help="trial numbers [lo, hi) for the median")
    p.add_argument("--storage", choices=["memory", "sqlite"], default="memory")
    p = sub.add_parser("quality", help="best value found: GatesSampler in Optuna vs the core loop")
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    for p in sub.choices.values():
        p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 on a shared machine)")
        p.add_argument(
            "--zero-shot",
            choices=["none", "default"],
            default="none",
            help="none: plain GATES (cost independent of the zero-shot cache); default: the searcher's default",
        )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.what == "overhead":
        if not 0 <= args.window[0] < args.window[1] <= args.trials:
            parser.error("--window needs 0 <= lo < hi <= --trials")
        overhead(args)
    else:
        quality(args)


if __name__ == "__main__":
    main()
