"""Search-efficiency experiments: run ask/tell methods on look-up benchmarks and summarise them.

Used by ``gates-nas compare`` and ``gates-nas search``; importable for notebooks. A *method spec*
is a name with optional settings, e.g. ``gates``, ``gates[candidates=mixed]``, ``rea[population_size=20]``,
``tpe``, ``tpe-cached`` (TPE whose duplicate proposals are answered from a cache and do not count
against the budget), ``optuna-gates`` (GatesSampler inside an Optuna study), ``random``.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gates_sampler.base_searcher import AskTellSearcher

# The searchers (torch) and optuna are imported where a run needs them, so that building the
# command-line parsers stays quick.

logger = logging.getLogger("gates_sampler")

CHECKPOINTS = (20, 50, 100, 150)
METHODS = ("gates", "random", "rea", "tpe", "tpe-cached", "gp", "optuna-gates")
#: settings a method spec may not set: ``compare`` sets them for every run
RESERVED_SETTINGS = ("seed", "direction", "space", "search_space")
#: the runs' asks whose median time the table reports: 20 asks ending at this trial (or at the budget)
ASK_WINDOW_END = 110
ASK_WINDOW = 20
#: NAS-Bench-201's own names of NB201Benchmark's datasets
NB201_DATASET_NAMES = {"cifar10": "cifar10-valid", "imagenet": "ImageNet16-120"}
#: name and unit of the benchmarks' metrics
METRIC_LABELS = {
    "val_acc": ("validation accuracy", "%"),
    "latency": ("latency", "s"),
    "model_size": ("model size", "MB"),
    "train_time": ("training time", "s"),
    "runtime": ("training time", "s"),
}


@dataclass
class Run:
    """One search run: the value of every evaluation in order and the time spent proposing each."""

    method: str
    benchmark: str
    seed: int
    values: list[float]
    ask_seconds: list[float]
    archs: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def best_so_far(self, direction: str) -> np.ndarray:
        v = np.asarray(self.values, dtype=np.float64)
        return np.maximum.accumulate(v) if direction == "maximize" else np.minimum.accumulate(v)


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``"gates[candidates=mixed,n_candidates=500]"`` -> ``("gates", {"candidates": "mixed", "n_candidates": 500})``."""
    spec = spec.strip()
    name, _, rest = spec.partition("[")
    name = name.strip()
    if name not in METHODS:
        raise ValueError(
            f"unknown method {name!r}; choose from {METHODS} (optionally with settings, e.g. gates[candidates=mixed])"
        )
    kwargs: dict[str, Any] = {}
    if rest:
        if not rest.endswith("]"):
            raise ValueError(f"method spec {spec!r} must close its settings with ']'")
        for item in filter(None, (s.strip() for s in rest[:-1].split(","))):
            key, eq, val = item.partition("=")
            if not eq:
                raise ValueError(f"setting {item!r} of {spec!r} must look like key=value")
            try:
                kwargs[key.strip()] = ast.literal_eval(val.strip())
            except (ValueError, SyntaxError):
                kwargs[key.strip()] = val.strip()
    return name, kwargs


def _method_class(name: str) -> Any:
    """The class a method's settings go to."""
    if name == "gates":
        from gates_sampler.searcher import GatesPredictorSearcher

        return GatesPredictorSearcher
    if name in ("random", "rea"):
        from gates_sampler.baselines import RandomSearcher, REASearcher

        return RandomSearcher if name == "random" else REASearcher
    try:
        import optuna
    except ImportError as exc:
        raise ImportError(f"method {name!r} needs optuna: pip install 'gates-sampler[optuna]'") from exc
    if name == "optuna-gates":
        from gates_sampler.integrations.optuna import GatesSampler

        return GatesSampler
    if name == "gp":
        return optuna.samplers.GPSampler
    return optuna.samplers.TPESampler


def _settings_of(cls: Any) -> list[str]:
    from gates_sampler.searcher import GatesPredictorSearcher, SearchSettings

    names = [
        n
        for n, p in inspect.signature(cls).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in RESERVED_SETTINGS
    ]
    if cls is GatesPredictorSearcher:
        # a spec names the research settings one by one: gates[refit=scratch]
        names = [n for n in names if n != "settings"] + list(SearchSettings.names())
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls).parameters.values()):
        names += [n for n in _settings_of(GatesPredictorSearcher) if n not in names and n != "n_startup"]
    return names


def _with_search_settings(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The GATES methods' keyword arguments: spec settings that name a :class:`SearchSettings` field are
    gathered into its ``settings=`` object, the rest go to the constructor as they are."""
    if name not in ("gates", "optuna-gates"):
        return kwargs
    from gates_sampler.searcher import SearchSettings

    research = {k: v for k, v in kwargs.items() if k in SearchSettings.names()}
    if not research:
        return kwargs
    return {**{k: v for k, v in kwargs.items() if k not in research}, "settings": SearchSettings(**research)}


def check_method(spec: str, space: Any) -> None:
    """Raise ``ValueError`` naming the fix if ``spec`` cannot run on ``space`` (unknown method or setting,
    a setting of the wrong type or range, optuna missing for an Optuna method). Builds the method once
    with seed 0 and does no search."""
    name, kwargs = parse_method(spec)
    cls = _method_class(name)
    allowed = _settings_of(cls)
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        raise ValueError(f"method spec {spec!r}: unknown setting(s) {unknown}; {name} takes {allowed}")
    for key, value in kwargs.items():
        expected = _default_type(cls, key)
        if expected is not None and not _is_instance(value, expected):
            raise ValueError(f"method spec {spec!r}: setting {key} must be {expected.__name__}, got {value!r}")
    try:
        if name in ("tpe", "tpe-cached", "gp"):
            cls(seed=0, **kwargs)
        else:
            cls(space, seed=0, **_with_search_settings(name, kwargs))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"method spec {spec!r}: {exc}") from None


def _default_type(cls: Any, key: str) -> type | None:
    """The type of a setting's default where it is a plain number or flag (strings may stand for more)."""
    from gates_sampler.searcher import SearchSettings

    param = inspect.signature(cls).parameters.get(key)
    default = param.default if param is not None else getattr(SearchSettings(), key, None)
    if type(default) not in (bool, int, float):
        return None
    return type(default)


def _is_instance(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _make_searcher(name: str, kwargs: dict[str, Any], benchmark: Any, seed: int) -> AskTellSearcher:
    return _method_class(name)(
        benchmark.space, direction=benchmark.direction, seed=seed, **_with_search_settings(name, kwargs)
    )


def _run_asktell(
    searcher: AskTellSearcher, benchmark: Any, budget: int, progress: Callable[[], None] | None
) -> tuple[list[float], list[float], list[str]]:
    from gates_sampler.loop import run_search

    steps = run_search(searcher, benchmark.query, budget, callback=(lambda _: progress()) if progress else None)
    values = [float("nan") if s.value is None else s.value for s in steps]
    return values, [s.ask_seconds for s in steps], [str(s.arch) for s in steps]


def _run_optuna(
    name: str, kwargs: dict[str, Any], benchmark: Any, budget: int, seed: int, progress: Callable[[], None] | None
) -> tuple[list[float], list[float], list[str]]:
    cls = _method_class(name)
    import optuna

    space = benchmark.space
    if name == "optuna-gates":
        sampler: Any = cls(space, seed=seed, **_with_search_settings(name, kwargs))
    else:
        sampler = cls(seed=seed, **kwargs)
    study = optuna.create_study(direction=benchmark.direction, sampler=sampler)
    cache: dict[str, float] = {}
    values: list[float] = []
    times: list[float] = []
    archs: list[str] = []
    max_trials = budget * 50  # a cached TPE that only repeats itself must still stop
    for _ in range(max_trials):
        if len(values) >= budget:
            break
        t = time.perf_counter()
        trial = study.ask()
        arch = space.suggest(trial)
        elapsed = time.perf_counter() - t
        key = space.canonical_key(arch) if name == "tpe-cached" else None
        if key is not None and key in cache:
            study.tell(trial, cache[key])  # a repeat costs nothing: it is answered from the cache
            continue
        v = benchmark.query(arch)
        if key is not None:
            cache[key] = v
        study.tell(trial, v)
        values.append(v)
        times.append(elapsed)
        archs.append(str(arch))
        if progress:
            progress()
    return values, times, archs


def run_method(spec: str, benchmark: Any, budget: int, seed: int, progress: Callable[[], None] | None = None) -> Run:
    """Run one method spec for ``budget`` evaluations on ``benchmark`` with ``seed``."""
    name, kwargs = parse_method(spec)
    start = time.perf_counter()
    if name in ("tpe", "tpe-cached", "gp", "optuna-gates"):
        values, times, archs = _run_optuna(name, kwargs, benchmark, budget, seed, progress)
    else:
        values, times, archs = _run_asktell(_make_searcher(name, kwargs, benchmark, seed), benchmark, budget, progress)
    return Run(spec, repr(benchmark), seed, values, times, archs, time.perf_counter() - start)


def ask_window(budget: int) -> tuple[int, int]:
    """First and last trial (1-based) of the asks whose median time the table reports: the 20 asks
    ending at trial 110, or at the budget when it is smaller (a predictor-based method's ask cost
    grows with the history, so a fixed window compares methods at the same history size)."""
    end = min(ASK_WINDOW_END, budget)
    return max(1, end - ASK_WINDOW + 1), end


def standard_error(values: Sequence[float] | np.ndarray) -> float:
    """Standard error of the mean (sample standard deviation over sqrt(n)); 0 for a single value."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def summarize(
    runs: Sequence[Run], direction: str, optimum: float | None, checkpoints: Sequence[int] = CHECKPOINTS
) -> list[dict[str, Any]]:
    """Per method: mean and standard error (over the runs) of the best value at each checkpoint, mean
    regret, median ask time (all asks, and the asks of :func:`ask_window`)."""
    rows = []
    for method in dict.fromkeys(r.method for r in runs):
        rs = [r for r in runs if r.method == method]
        traj = [r.best_so_far(direction) for r in rs]
        row: dict[str, Any] = {"method": method, "runs": len(rs)}
        for n in checkpoints:
            at = np.array([t[min(n, len(t)) - 1] for t in traj if len(t)])
            row[f"best@{n}"] = (float(at.mean()), standard_error(at))
            if optimum is not None:
                reg = np.abs(optimum - at)
                row[f"regret@{n}"] = float(reg.mean())
                row[f"found@{n}"] = int(np.sum(reg < 1e-9))
        row["median_ask_s"] = float(np.median(np.concatenate([r.ask_seconds for r in rs])))
        first, last = ask_window(min(len(r.ask_seconds) for r in rs))
        row["ask_window"] = (first, last)
        row["median_ask_s_late"] = float(np.median(np.concatenate([r.ask_seconds[first - 1 : last] for r in rs])))
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]], checkpoints: Sequence[int] = CHECKPOINTS, title: str = "") -> str:
    """A plain-text table of :func:`summarize` rows."""
    first, last = rows[0]["ask_window"]
    head = ["method"] + [f"N={n}" for n in checkpoints]
    head += [f"regret@{n}" for n in checkpoints if f"regret@{n}" in rows[0]]
    head += ["ask s (median)", f"ask s (trials {first}-{last})"]
    lines = []
    for r in rows:
        cells = [r["method"]] + [f"{r[f'best@{n}'][0]:.3f} +- {r[f'best@{n}'][1]:.3f}" for n in checkpoints]
        cells += [f"{r[f'regret@{n}']:.3f} ({r[f'found@{n}']}/{r['runs']})" for n in checkpoints if f"regret@{n}" in r]
        cells += [
            f"{r['median_ask_s']:.4f}",
            "-" if np.isnan(r["median_ask_s_late"]) else f"{r['median_ask_s_late']:.4f}",
        ]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [title] if title else []
    out += [fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*c) for c in lines]
    return "\n".join(out)


def save_runs(runs: Sequence[Run], path_prefix: str) -> list[str]:
    """Write raw runs as ``<prefix>.json`` and ``<prefix>.csv`` (one row per evaluation)."""
    os.makedirs(os.path.dirname(os.path.abspath(path_prefix)), exist_ok=True)
    with open(path_prefix + ".json", "w") as f:
        json.dump([asdict(r) for r in runs], f)
    with open(path_prefix + ".csv", "w") as f:
        f.write("benchmark,method,seed,step,value,ask_seconds,arch\n")
        for r in runs:
            for i, (v, t, a) in enumerate(zip(r.values, r.ask_seconds, r.archs or [""] * len(r.values)), start=1):
                f.write(f'"{r.benchmark}","{r.method}",{r.seed},{i},{v},{t},"{a}"\n')
    return [path_prefix + ".json", path_prefix + ".csv"]


def describe_benchmark(bench: Any) -> str:
    """A short readable name, e.g. ``NAS-Bench-201 cifar100, validation accuracy (%)``."""
    metric = metric_label(bench)
    name = type(bench).__name__
    if name == "NB201Benchmark":
        return f"NAS-Bench-201 {NB201_DATASET_NAMES.get(bench.dataset, bench.dataset)}, {metric}"
    if name == "NB301Benchmark":
        return f"NAS-Bench-301 surrogate (epoch {bench.epoch}), {metric}"
    return f"{name}, {metric}"


def metric_label(bench: Any, prefix: str = "", suffix: str = "") -> str:
    """The benchmark's metric with its unit, e.g. ``metric_label(b, "best ", " so far")`` ->
    ``"best validation accuracy so far (%)"`` (``"value"`` where the benchmark names no metric)."""
    metric = str(getattr(bench, "metric", None) or "value")
    name, unit = METRIC_LABELS.get(metric, (metric, ""))
    return f"{prefix}{name}{suffix}" + (f" ({unit})" if unit else "")


def plot_runs(
    runs: Sequence[Run],
    direction: str,
    path: str,
    title: str = "",
    optimum: float | None = None,
    ylabel: str = "best value so far",
) -> str:
    """Best-so-far curves (mean and a +-1 std band per method) as a PNG."""
    # A bare Figure draws without pyplot, so no matplotlib backend is chosen or changed for the caller.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for method in dict.fromkeys(r.method for r in runs):
        traj = [r.best_so_far(direction) for r in runs if r.method == method]
        n = min(len(t) for t in traj)
        arr = np.stack([t[:n] for t in traj])
        mean, std = arr.mean(0), arr.std(0)
        x = np.arange(1, n + 1)
        ax.plot(x, mean, label=method)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    if optimum is not None:
        ax.axhline(optimum, color="k", lw=0.8, ls="--", label="optimum")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    lo = min(
        np.percentile(np.concatenate([r.best_so_far(direction)[min(9, len(r.values) - 1) :] for r in runs]), 2),
        optimum or np.inf,
    )
    if direction == "maximize" and optimum is not None:
        ax.set_ylim(lo, optimum + 0.1 * (optimum - lo))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
