"""Search under a pruner, accounted in training epochs (``gates-nas compare --pruner ...``).

Each trial trains one architecture epoch by epoch, reporting its validation accuracy after every
epoch to an Optuna study with a pruner; the harness counts every epoch any trial trains. A run stops
when ``epoch_budget`` epochs are spent (the trial then in progress is cut off and counts for nothing).

The quality of a run at budget ``B``: the best final value (the value at the benchmark's last epoch)
among the trials that completed all epochs by the time ``B`` epochs had been spent in total. Pruned
trials never count: their value is not a final one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gates_sampler.experiments.comparison import _with_search_settings, parse_method
from gates_sampler.spaces.base import Arch, SearchSpace

__all__ = [
    "CURVE_METHODS",
    "PRUNERS",
    "CurveBenchmark",
    "CurveRun",
    "best_at",
    "format_curve_table",
    "make_pruner",
    "parse_curve_method",
    "run_curve_study",
    "summarize_curves",
]

#: methods of the pruned comparison: GATES learning from pruned trials, GATES ignoring them (they are
#: only never proposed again), Optuna's TPE, random search
CURVE_METHODS = ("gates", "gates-nolearn", "tpe", "random")
PRUNERS = ("hyperband", "sha", "median", "none")


class CurveBenchmark(Protocol):
    """An evaluator with a learning curve: the metric after each epoch ``1..max_epoch``."""

    space: SearchSpace
    direction: str
    max_epoch: int

    def query_epoch(self, arch: Arch, epoch: int) -> float: ...


class NB301Curves:
    """The NB301 surrogate's validation accuracy after each epoch 1..98 (YAHPO backend)."""

    def __init__(self, path: str | None = None) -> None:
        from gates_sampler.benchmarks.nb301 import MAX_EPOCH, NB301Benchmark

        self._bench = NB301Benchmark(path=path) if path else NB301Benchmark()
        self.space: SearchSpace = self._bench.space
        self.direction = self._bench.direction
        self.max_epoch = MAX_EPOCH

    def query_epoch(self, arch: Arch, epoch: int) -> float:
        return self._bench.query(arch, epoch=epoch)

    def __repr__(self) -> str:
        return "NB301Curves(val_accuracy, epochs 1..98)"


@dataclass
class CurveRun:
    """One search run under a pruner: when each trial completed and its final value."""

    method: str
    pruner: str
    seed: int
    epoch_budget: int
    #: (total epochs spent when the trial completed, its final value), in completion order
    finals: list[tuple[int, float]] = field(default_factory=list)
    n_trials: int = 0
    n_pruned: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "pruner": self.pruner,
            "seed": self.seed,
            "epoch_budget": self.epoch_budget,
            "finals": [list(f) for f in self.finals],
            "n_trials": self.n_trials,
            "n_pruned": self.n_pruned,
            "seconds": self.seconds,
        }


def make_pruner(name: str, max_epoch: int, min_resource: int = 1) -> Any:
    """An Optuna pruner by name (``"none"``: ``NopPruner``)."""
    import optuna

    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max_epoch, reduction_factor=3)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min_resource)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner must be one of {PRUNERS}, got {name!r}")


def parse_curve_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``"gates-nolearn[candidates=mixed]"`` -> ``("gates-nolearn", {"candidates": "mixed"})``; the
    settings of ``gates`` / ``gates-nolearn`` are those of ``gates-nas compare`` method specs."""
    name, bracket, rest = spec.strip().partition("[")
    name = name.strip()
    if name not in CURVE_METHODS:
        raise ValueError(f"method must be one of {CURVE_METHODS} (with [settings] for gates), got {spec!r}")
    if name in ("tpe", "random"):
        _, kwargs = parse_method(spec.replace(name, "tpe", 1))
        if name == "random" and kwargs:
            raise ValueError(f"random takes no settings, got {spec!r}")
        return name, kwargs
    return name, parse_method("gates" + bracket + rest)[1]


def _sampler(spec: str, space: SearchSpace, seed: int, predictor: dict[str, Any] | None = None) -> Any:
    import optuna

    name, kwargs = parse_curve_method(spec)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **kwargs)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    from gates_sampler.integrations.optuna import GatesSampler

    kwargs = _with_search_settings("gates", kwargs)
    if name == "gates-nolearn":
        from dataclasses import replace

        from gates_sampler.searcher import SearchSettings

        kwargs["settings"] = replace(SearchSettings.coerce(kwargs.get("settings")), learn_from_pruned=False)
    if predictor is not None:
        kwargs.setdefault("predictor", predictor)
    n_startup = kwargs.pop("n_startup", 10)
    return GatesSampler(space, seed=seed, n_startup_trials=n_startup, **kwargs)


def run_curve_study(
    spec: str,
    pruner: str,
    bench: CurveBenchmark,
    epoch_budget: int,
    seed: int,
    min_resource: int = 1,
    predictor: dict[str, Any] | None = None,
) -> CurveRun:
    """Run one Optuna study under ``pruner`` until ``epoch_budget`` epochs are spent (see the module doc);
    ``predictor``: predictor options of the gates methods."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.create_study(
        # Hyperband assigns trials to brackets by a hash of the study's name and the trial number: a
        # generated (random) name would make the run differ from one call to the next for the same seed
        study_name=f"curve-study-{seed}",
        direction="minimize" if bench.direction == "minimize" else "maximize",
        sampler=_sampler(spec, bench.space, seed, predictor),
        pruner=make_pruner(pruner, bench.max_epoch, min_resource),
    )
    run = CurveRun(spec, pruner, seed, epoch_budget)
    start = time.perf_counter()
    spent = 0
    while spent < epoch_budget:
        trial = study.ask()
        arch = bench.space.suggest(trial)
        run.n_trials += 1
        value = float("nan")
        state = TrialState.COMPLETE
        for epoch in range(1, bench.max_epoch + 1):
            if spent >= epoch_budget:
                state = TrialState.FAIL  # cut off by the budget: counts for nothing
                break
            value = bench.query_epoch(arch, epoch)
            spent += 1
            trial.report(value, epoch)
            if epoch < bench.max_epoch and trial.should_prune():
                state = TrialState.PRUNED
                break
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
            run.finals.append((spent, value))
        else:
            run.n_pruned += state == TrialState.PRUNED
            study.tell(trial, state=state)
    run.seconds = time.perf_counter() - start
    return run


def best_at(run: CurveRun, budget: int, direction: str = "maximize") -> float:
    """The best final value among the trials completed within ``budget`` epochs (NaN: none yet)."""
    values = [v for spent, v in run.finals if spent <= budget]
    if not values:
        return float("nan")
    return float(max(values) if direction == "maximize" else min(values))


def summarize_curves(
    runs: Sequence[CurveRun], budgets: Sequence[int], direction: str = "maximize"
) -> list[dict[str, Any]]:
    """Per (method, pruner): mean and standard error over seeds of :func:`best_at` at each budget."""
    rows = []
    for method, pruner in dict.fromkeys((r.method, r.pruner) for r in runs):
        rs = [r for r in runs if r.method == method and r.pruner == pruner]
        row: dict[str, Any] = {"method": method, "pruner": pruner, "runs": len(rs)}
        for b in budgets:
            at = np.array([best_at(r, b, direction) for r in rs])
            at = at[np.isfinite(at)]
            se = float(at.std(ddof=1) / np.sqrt(len(at))) if len(at) > 1 else float("nan")
            row[f"best@{b}"] = (float(at.mean()) if len(at) else float("nan"), se, len(at))
        row["trials"] = float(np.mean([r.n_trials for r in rs]))
        row["pruned"] = float(np.mean([r.n_pruned for r in rs]))
        row["seconds"] = float(np.mean([r.seconds for r in rs]))
        rows.append(row)
    return rows


def format_curve_table(
    rows: Sequence[dict[str, Any]], budgets: Sequence[int], title: str = "", per_run: bool = True
) -> str:
    """A plain-text table of :func:`summarize_curves` rows (mean +- standard error; ``(n)`` when fewer
    runs than seeds had completed a trial by that budget); ``per_run``: with the mean trials, pruned
    trials and seconds of a run."""
    head = ["method", "pruner"] + [f"{b} epochs" for b in budgets] + (["trials", "pruned", "s/run"] if per_run else [])
    lines = []
    for r in rows:
        cells = [r["method"], r["pruner"]]
        for b in budgets:
            mean, se, n = r[f"best@{b}"]
            cell = "-" if n == 0 else f"{mean:.3f} +- {se:.3f}"
            cells.append(cell + (f" ({n})" if 0 < n < r["runs"] else ""))
        if per_run:
            cells += [f"{r['trials']:.0f}", f"{r['pruned']:.0f}", f"{r['seconds']:.0f}"]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [title] if title else []
    out += [fmt.format(*head), fmt.format(*["-" * w for w in widths])]
    out += [fmt.format(*c) for c in lines]
    return "\n".join(out)
