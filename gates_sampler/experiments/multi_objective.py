"""Multi-objective and constrained search experiments on NAS-Bench-201, behind ``gates-nas compare --objectives``.

Every cell of NAS-Bench-201 has its validation accuracy, latency and model size in the table, so the
true Pareto front is known. Quality of a run after ``N`` evaluations: the *hypervolume regret*, the true
front's hypervolume minus the hypervolume of the ``N`` points found. Each objective is scaled to
``[0, 1]`` by fixed bounds from all 15,625 cells of that dataset: 1 is the best value in the table
(highest accuracy, lowest latency or size), 0 the reference point, which is the *median* accuracy and
the *largest* cost in the table. (With the lowest accuracy, about 10 % for cells that do not train, as
reference, every reasonable cell would sit near the top and regrets would be tiny; the median makes the
hypervolume measure the part of the front worth having.) Points worse than the reference in an
objective add nothing. A regret is a fraction of the unit square, comparable across methods and seeds.

Cheap or learned. ``model_size`` is computed exactly from the cell (a parameter count), so ``gates``
declares it cheap (``cheap_objectives``). ``latency`` is measured on hardware, so ``gates`` learns it
with a predictor like the accuracy; the method ``gates-known-cost`` declares every cost objective
cheap (it looks the latency up for any cell), a separate, labelled variant. The Optuna samplers learn
every objective from the trials.

Constrained runs (``--constraint latency:0.2``): maximise accuracy subject to ``latency <= L``, with
``L`` the latency quantile that leaves 20 % of the cells feasible; reported: the best feasible accuracy
among the first ``N`` evaluations. ``gates`` learns the constraint from the told values
(``tell(..., constraints=[latency - L])``); TPE gets the same values through ``constraints_func``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MO_METHODS = ("gates", "gates-rank", "gates-known-cost", "tpe", "nsga2", "random")
#: metrics exactly computable from the cell: ``gates`` declares them cheap
CHEAP_METRICS = ("model_size",)
MO_CHECKPOINTS = (50, 100, 150)


@dataclass
class MORun:
    """One run: every evaluated point (the objective values, in the metrics' own units) in order."""

    method: str
    dataset: str
    objectives: tuple[str, ...]
    seed: int
    points: list[list[float]]
    archs: list[str] = field(default_factory=list)
    constraint: float | None = None
    wall_seconds: float = 0.0


class NB201Problem:
    """NAS-Bench-201 with several metrics: the full table, the scaling bounds and the true front."""

    def __init__(self, dataset: str, objectives: Sequence[str]) -> None:
        from gates_sampler.benchmarks import NB201Benchmark
        from gates_sampler.multi_objective import hypervolume, nondominated_mask

        self.dataset = dataset
        self.objectives = tuple(objectives)
        self.benchmarks = [NB201Benchmark(dataset, metric=m) for m in self.objectives]
        self.space = self.benchmarks[0].space
        self.directions = [b.direction for b in self.benchmarks]
        self.cells = self.benchmarks[0].archs()
        self.table = np.array([[b.query(a) for b in self.benchmarks] for a in self.cells])
        # the reference point: the median accuracy and the largest cost of the table (see the module docstring)
        worst = np.where(
            np.array([d == "maximize" for d in self.directions]),
            np.median(self.table, axis=0),
            self.table.max(axis=0),
        )
        best = np.where(
            np.array([d == "maximize" for d in self.directions]), self.table.max(axis=0), self.table.min(axis=0)
        )
        self.worst, self.best = worst, best
        scaled = self.scale(self.table)
        self.true_front = self.table[nondominated_mask(scaled)]
        self.true_hv = hypervolume(scaled[nondominated_mask(scaled)], np.zeros(len(self.objectives)))

    def values(self, arch: Any) -> list[float]:
        return [b.query(arch) for b in self.benchmarks]

    def scale(self, points: np.ndarray) -> np.ndarray:
        """Points scaled per objective: 0 at the reference point, 1 at the best value of the whole table."""
        return (np.asarray(points, dtype=np.float64) - self.worst) / (self.best - self.worst)

    def regret(self, points: Sequence[Sequence[float]]) -> float:
        # the core module imports torch: imported here so that building the command-line parser stays quick
        from gates_sampler.multi_objective import hypervolume

        if not len(points):
            return self.true_hv
        return self.true_hv - hypervolume(self.scale(np.asarray(points)), np.zeros(len(self.objectives)))


def _searcher(method: str, problem: NB201Problem, seed: int, constraints: bool = False) -> Any:
    from gates_sampler.baselines import RandomSearcher
    from gates_sampler.multi_objective import MultiObjectiveGatesSearcher

    if method == "random":
        return RandomSearcher(problem.space, seed=seed)
    known = ("latency", "model_size") if method == "gates-known-cost" else CHEAP_METRICS
    cheap = {i: b.query for i, b in enumerate(problem.benchmarks) if b.metric in known and i > 0}
    scaling = "rank" if method == "gates-rank" else "range"
    return MultiObjectiveGatesSearcher(
        problem.space, directions=problem.directions, cheap_objectives=cheap, seed=seed, scaling=scaling
    )


def run_mo_method(method: str, problem: NB201Problem, budget: int, seed: int) -> MORun:
    """Search ``problem`` with ``method`` for ``budget`` evaluations."""
    start = time.perf_counter()
    points: list[list[float]] = []
    archs: list[str] = []
    if method in ("tpe", "nsga2"):
        import optuna

        sampler = optuna.samplers.TPESampler(seed=seed) if method == "tpe" else optuna.samplers.NSGAIISampler(seed=seed)
        study = optuna.create_study(directions=list(problem.directions), sampler=sampler)  # type: ignore[arg-type]
        for _ in range(budget):
            trial = study.ask()
            arch = problem.space.suggest(trial)
            values = problem.values(arch)
            study.tell(trial, values)
            points.append(values)
            archs.append(str(arch))
    else:
        searcher = _searcher(method, problem, seed)
        for _ in range(budget):
            arch = searcher.ask()
            values = problem.values(arch)
            searcher.tell(arch, values if method != "random" else values[0])
            points.append(values)
            archs.append(str(arch))
    return MORun(method, problem.dataset, problem.objectives, seed, points, archs, None, time.perf_counter() - start)


def run_constrained(method: str, dataset: str, quantile: float, budget: int, seed: int) -> MORun:
    """Maximise accuracy subject to latency <= its ``quantile`` over the table (see the module docstring)."""
    from gates_sampler.benchmarks import NB201Benchmark
    from gates_sampler.multi_objective import MultiObjectiveGatesSearcher

    acc, lat = NB201Benchmark(dataset), NB201Benchmark(dataset, metric="latency")
    bound = latency_bound(dataset, quantile)
    start = time.perf_counter()
    points: list[list[float]] = []
    archs: list[str] = []
    if method == "tpe":
        import optuna

        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed, constraints_func=lambda t: [t.user_attrs["latency"] - bound]),
        )
        for _ in range(budget):
            trial = study.ask()
            arch = acc.space.suggest(trial)
            trial.set_user_attr("latency", lat.query(arch))
            study.tell(trial, acc.query(arch))
            points.append([acc.query(arch), lat.query(arch)])
            archs.append(str(arch))
    else:
        cheap: Callable[[Any], list[float]] | None = None
        if method == "gates-known-cost":
            cheap = lambda a: [lat.query(a) - bound]  # noqa: E731
        if method == "random":
            from gates_sampler.baselines import RandomSearcher

            searcher: Any = RandomSearcher(acc.space, seed=seed)
        else:
            searcher = MultiObjectiveGatesSearcher(acc.space, directions=["maximize"], constraints=cheap, seed=seed)
        for _ in range(budget):
            arch = searcher.ask()
            a, latency = acc.query(arch), lat.query(arch)
            if method == "random":
                searcher.tell(arch, a)
            else:
                searcher.tell(arch, a, constraints=[latency - bound])
            points.append([a, latency])
            archs.append(str(arch))
    return MORun(method, dataset, ("val_acc", "latency"), seed, points, archs, bound, time.perf_counter() - start)


def latency_bound(dataset: str, quantile: float) -> float:
    """The latency that ``quantile`` of the NAS-Bench-201 cells do not exceed."""
    from gates_sampler.benchmarks import NB201Benchmark

    lat = NB201Benchmark(dataset, metric="latency")
    return float(np.quantile(lat.query_many(lat.archs()), quantile))


def best_feasible(run: MORun, n: int) -> float:
    """The best accuracy among the first ``n`` points whose latency meets the bound (NaN: none feasible)."""
    assert run.constraint is not None
    ok = [p[0] for p in run.points[:n] if p[1] <= run.constraint]
    return max(ok) if ok else float("nan")


def _mean_se(x: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    if not len(a):
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0


def summarize_mo(runs: Sequence[MORun], problem: NB201Problem, checkpoints: Sequence[int]) -> list[dict[str, Any]]:
    """Per method: mean and standard error of the hypervolume regret at each checkpoint."""
    rows = []
    for method in dict.fromkeys(r.method for r in runs):
        rs = [r for r in runs if r.method == method]
        row: dict[str, Any] = {"method": method, "runs": len(rs)}
        for n in checkpoints:
            row[f"regret@{n}"] = _mean_se([problem.regret(r.points[:n]) for r in rs])
        row["seconds"] = float(np.mean([r.wall_seconds for r in rs]))
        rows.append(row)
    return rows


def summarize_constrained(runs: Sequence[MORun], checkpoints: Sequence[int]) -> list[dict[str, Any]]:
    """Per method: mean and standard error of the best feasible accuracy, and the share of feasible proposals."""
    rows = []
    for method in dict.fromkeys(r.method for r in runs):
        rs = [r for r in runs if r.method == method]
        row: dict[str, Any] = {"method": method, "runs": len(rs)}
        for n in checkpoints:
            row[f"best@{n}"] = _mean_se([best_feasible(r, n) for r in rs])
        row["feasible"] = float(np.mean([np.mean([p[1] <= (r.constraint or 0.0) for p in r.points]) for r in rs]))
        row["seconds"] = float(np.mean([r.wall_seconds for r in rs]))
        rows.append(row)
    return rows


def format_rows(
    rows: Sequence[dict[str, Any]], prefix: str, checkpoints: Sequence[int], title: str, labels: dict[str, str]
) -> str:
    """A plain-text table: ``prefix@N`` columns as mean +- standard error."""
    digits = 4 if prefix == "regret" else 2
    head = ["method"] + [f"{prefix} N={n}" for n in checkpoints] + ["s/run"]
    if "feasible" in rows[0]:
        head.insert(-1, "feasible share")
    lines = []
    for r in rows:
        cells = [labels.get(r["method"], r["method"])]
        cells += [f"{r[f'{prefix}@{n}'][0]:.{digits}f} +- {r[f'{prefix}@{n}'][1]:.{digits}f}" for n in checkpoints]
        if "feasible" in r:
            cells.append(f"{r['feasible']:.2f}")
        cells.append(f"{r['seconds']:.0f}")
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [title, fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*c) for c in lines]
    )


def method_labels(objectives: Sequence[str]) -> dict[str, str]:
    """Table labels saying which objectives each method computes exactly and which it learns."""
    costs = [o for o in objectives[1:]]
    cheap = [o for o in costs if o in CHEAP_METRICS]
    learned = [o for o in costs if o not in CHEAP_METRICS]
    gates = "gates (" + ", ".join([f"{o} exact" for o in cheap] + [f"{o} learned" for o in learned]) + ")"
    return {
        "gates": gates,
        "gates-known-cost": "gates (" + ", ".join(f"{o} looked up" for o in costs) + ")",
        "gates-rank": gates[:-1] + "; scaling=rank)",
        "tpe": "TPESampler (Optuna's default)",
        "nsga2": "NSGAIISampler",
        "random": "random",
    }


def plot_fronts(runs: Sequence[MORun], problem: NB201Problem, path: str, n: int, title: str = "") -> str:
    """The non-dominated points each method found in its first ``n`` evaluations (one seed) against the true front."""
    from matplotlib.figure import Figure

    from gates_sampler.multi_objective import nondominated_mask

    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.subplots()
    true = problem.true_front[np.argsort(problem.true_front[:, 1])]
    ax.step(true[:, 1], true[:, 0], where="post", color="k", lw=1.2, label="true front")
    labels = method_labels(problem.objectives)
    for r, marker in zip(runs, "os^vD*"):
        pts = np.asarray(r.points[:n])
        found = pts[nondominated_mask(problem.scale(pts))]
        found = found[np.argsort(found[:, 1])]
        ax.plot(found[:, 1], found[:, 0], marker=marker, ls="--", lw=0.8, ms=4, label=labels.get(r.method, r.method))
    ax.set_xlabel(problem.objectives[1])
    ax.set_ylabel(problem.objectives[0])
    lo = np.percentile(problem.table[:, 0], 5)
    ax.set_ylim(lo, problem.best[0] + 0.02 * (problem.best[0] - lo))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
