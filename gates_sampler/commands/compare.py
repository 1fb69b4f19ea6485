"""``gates-nas compare``: search efficiency of several methods on look-up benchmarks."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gates_sampler.commands._common import (
    NB201_DATASETS,
    UsageError,
    add_benchmark_args,
    benchmark_optimum,
    check_benchmark_args,
    check_importable,
    check_output_folder,
    make_benchmark,
    non_negative_int,
    positive_int,
)
from gates_sampler.experiments import comparison as ex
from gates_sampler.experiments import multi_objective as mo

_R = TypeVar("_R")


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare search methods on NAS-Bench-201 / -301 look-ups", description=__doc__)
    add_benchmark_args(p)
    p.add_argument(
        "--datasets",
        nargs="+",
        choices=NB201_DATASETS,
        default=list(NB201_DATASETS),
        help="NB201 datasets (ignored for nb301)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=["gates", "random", "rea", "tpe"],
        help=f"method specs, one of {', '.join(ex.METHODS)}, optionally with settings, e.g. "
        "'gates[candidates=mixed]' 'rea[population_size=20]'",
    )
    p.add_argument("--seeds", type=positive_int, default=10, help="number of seeds (first-seed .. first-seed+seeds-1)")
    p.add_argument("--first-seed", type=non_negative_int, default=0)
    p.add_argument("--budget", type=positive_int, default=150, help="evaluations per run")
    p.add_argument(
        "--checkpoints",
        type=positive_int,
        nargs="+",
        default=None,
        help=f"N at which the table reports the best value, each <= --budget; the budget itself is always "
        f"reported (default: those of {list(ex.CHECKPOINTS)} below the budget)",
    )
    p.add_argument(
        "--jobs", type=positive_int, default=1, help="parallel worker processes (each uses one torch thread)"
    )
    p.add_argument(
        "--pruner",
        nargs="+",
        choices=["hyperband", "sha", "median", "none"],
        default=None,
        help="run Optuna studies under these pruners, every trial reporting its learning curve epoch by epoch "
        "(NB301 surrogate, epochs 1..98), accounted in total epochs; methods: gates, gates-nolearn (pruned "
        "trials not learned from), tpe, random",
    )
    p.add_argument("--epoch-budget", type=positive_int, default=5000, help="with --pruner: total epochs per run")
    p.add_argument(
        "--epoch-checkpoints",
        type=positive_int,
        nargs="+",
        default=None,
        help="with --pruner: epoch totals the table reports (default: 2000, 5000, 10000 below the budget, and it)",
    )
    p.add_argument("--min-resource", type=positive_int, default=1, help="with --pruner: the pruners' first rung")
    p.add_argument(
        "--predictor",
        default=None,
        help='with --pruner: predictor options of the gates methods as JSON, e.g. \'{"hidden": 64, "n_layers": 3}\'',
    )
    p.add_argument("--out", default="results/compare", help="prefix of the raw JSON/CSV and the PNG plot per dataset")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot (it needs matplotlib)")
    p.add_argument(
        "--objectives",
        nargs=2,
        metavar=("ACCURACY", "COST"),
        choices=("val_acc", "latency", "model_size"),
        default=None,
        help="multi-objective comparison on NAS-Bench-201, e.g. 'val_acc latency' or 'val_acc model_size': "
        "hypervolume regret against the true front; --methods then take "
        f"{', '.join(mo.MO_METHODS)} (default: gates tpe nsga2 random)",
    )
    p.add_argument(
        "--constraint",
        metavar="latency:QUANTILE",
        default=None,
        help="constrained comparison on NAS-Bench-201: maximise accuracy with latency <= the bound that "
        "QUANTILE of all cells meet (e.g. latency:0.2); --methods take gates, gates-known-cost, tpe, random",
    )
    p.set_defaults(func=run, check=check)


def checkpoints(args: argparse.Namespace) -> list[int]:
    """The table's checkpoints: the asked ones (or the defaults below the budget) plus the budget."""
    asked = list(ex.CHECKPOINTS) if args.checkpoints is None else list(args.checkpoints)
    if args.checkpoints is not None:
        beyond = sorted(c for c in asked if c > args.budget)
        if beyond:
            raise UsageError(
                f"--checkpoints {' '.join(map(str, beyond))} exceed --budget {args.budget}; "
                f"pass checkpoints <= {args.budget} or raise --budget"
            )
    return sorted({c for c in asked if c < args.budget} | {args.budget})


def check(args: argparse.Namespace) -> None:
    """Every argument, before the first run (the runs can take hours): the quick checks first, then each
    method is built once (which imports torch) to check its settings."""
    if args.pruner:
        return _check_pruned(args)
    checkpoints(args)
    check_benchmark_args(args)
    if args.objectives is not None or args.constraint is not None:
        _check_multi_objective(args)
        return
    for flag, values in (("--methods", args.methods), ("--datasets", args.datasets)):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise UsageError(f"{flag} lists {', '.join(map(repr, twice))} more than once; name each once")
    for spec in args.methods:
        ex.parse_method(spec)
    if args.benchmark == "nb301":
        check_importable("onnxruntime", "--benchmark nb301", "nb301")
    if not args.no_plot:
        check_importable("matplotlib", "the compare plot", "plot", alternative="pass --no-plot")
    check_output_folder(os.path.dirname(os.path.abspath(args.out)), "--out", args.out, create=True)
    space = _space(args.benchmark)
    for spec in args.methods:
        ex.check_method(spec, space)
    if args.benchmark == "nb301":
        try:
            make_benchmark(args.benchmark, "cifar10", args.nb301_path, args.epoch)
        except (FileNotFoundError, ValueError) as exc:
            raise UsageError(f"--nb301-path: {exc}") from None


def epoch_checkpoints(args: argparse.Namespace) -> list[int]:
    asked = [2000, 5000, 10000] if args.epoch_checkpoints is None else list(args.epoch_checkpoints)
    if args.epoch_checkpoints is not None and max(asked) > args.epoch_budget:
        raise UsageError(f"--epoch-checkpoints exceed --epoch-budget {args.epoch_budget}")
    return sorted({c for c in asked if c < args.epoch_budget} | {args.epoch_budget})


def _check_pruned(args: argparse.Namespace) -> None:
    from gates_sampler.experiments import multifidelity as mf

    if args.benchmark != "nb301":
        raise UsageError("--pruner needs learning curves: pass --benchmark nb301 (the surrogate's epochs 1..98)")
    check_benchmark_args(args)
    check_importable("onnxruntime", "--benchmark nb301", "nb301")
    check_importable("optuna", "--pruner", "optuna")
    epoch_checkpoints(args)
    for spec in args.methods:
        try:
            mf.parse_curve_method(spec)
        except ValueError as exc:
            raise UsageError(f"--methods: {exc}") from None
    _predictor_options(args)
    check_output_folder(os.path.dirname(os.path.abspath(args.out)), "--out", args.out, create=True)


def _predictor_options(args: argparse.Namespace) -> dict[str, Any] | None:
    import json

    if args.predictor is None:
        return None
    try:
        options = json.loads(args.predictor)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--predictor is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise UsageError(f"--predictor must be a JSON object of predictor options, got {args.predictor!r}")
    return options


def _one_pruned(task: tuple[str, str, str, int, int, int, dict[str, Any] | None]) -> Any:
    from gates_sampler.experiments import multifidelity as mf

    path, method, pruner, budget, seed, min_resource, predictor = task
    return mf.run_curve_study(method, pruner, mf.NB301Curves(path), budget, seed, min_resource, predictor)


def run_pruned(args: argparse.Namespace) -> int:
    """The ``--pruner`` comparison: one table of best final accuracy against total epochs spent."""
    import json

    from gates_sampler.experiments import multifidelity as mf

    _quiet_optuna()
    marks = epoch_checkpoints(args)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tasks = [
        (args.nb301_path, m, p, args.epoch_budget, s, args.min_resource, _predictor_options(args))
        for p in args.pruner
        for m in args.methods
        for s in seeds
    ]
    partial = f"{args.out}_pruned_nb301.partial.jsonl"  # every finished run at once: hours of work survive a stop
    with open(partial, "w") as log:

        def done(run: Any) -> None:
            log.write(json.dumps(run.to_dict()) + "\n")
            log.flush()

        runs = _run_all(_one_pruned, tasks, args.jobs, "pruned runs", done)
    order = {(t[2], t[1], t[4]): i for i, t in enumerate(tasks)}
    runs.sort(key=lambda r: order[(r.pruner, r.method, r.seed)])
    rows = mf.summarize_curves(runs, marks)
    title = (
        f"NB301 surrogate, best validation accuracy at epoch 98 among trials completed within the epoch budget "
        f"({len(seeds)} seeds, mean +- s.e.; min_resource {args.min_resource})"
    )
    print()
    print(mf.format_curve_table(rows, marks, title))
    path = f"{args.out}_pruned_nb301.json"
    with open(path, "w") as out:
        json.dump([r.to_dict() for r in runs], out)
    print("wrote", os.path.relpath(path))
    return 0


MO_DEFAULT_METHODS = ["gates", "tpe", "nsga2", "random"]
CONSTRAINED_METHODS = ("gates", "gates-known-cost", "tpe", "random")


def _constraint_quantile(text: str) -> float:
    name, _, q = text.partition(":")
    try:
        value = float(q)
    except ValueError:
        value = float("nan")
    if name != "latency" or not 0 < value < 1:
        raise UsageError(f"--constraint must look like latency:QUANTILE with 0 < QUANTILE < 1, got {text!r}")
    return value


def _check_multi_objective(args: argparse.Namespace) -> None:
    if args.benchmark != "nb201":
        raise UsageError("--objectives and --constraint need --benchmark nb201 (its table has every metric)")
    if args.objectives is not None and args.constraint is not None:
        raise UsageError("pass either --objectives or --constraint, not both")
    if args.objectives is not None and (args.objectives[0] != "val_acc" or args.objectives[1] == "val_acc"):
        raise UsageError("--objectives must be val_acc and one cost (latency or model_size)")
    allowed = mo.MO_METHODS if args.objectives is not None else CONSTRAINED_METHODS
    if args.constraint is not None:
        _constraint_quantile(args.constraint)
    methods = _mo_methods(args)
    bad = [m for m in methods if m not in allowed]
    if bad:
        raise UsageError(f"--methods {' '.join(bad)}: this comparison takes {', '.join(allowed)}")
    if not args.no_plot:
        check_importable("matplotlib", "the compare plot", "plot", alternative="pass --no-plot")
    check_output_folder(os.path.dirname(os.path.abspath(args.out)), "--out", args.out, create=True)


def _mo_methods(args: argparse.Namespace) -> list[str]:
    # the single-objective default list is replaced unless methods were named
    return MO_DEFAULT_METHODS if args.methods == ["gates", "random", "rea", "tpe"] else list(args.methods)


def _mo_one(task: tuple[str, str, tuple[str, ...] | None, float | None, int, int]) -> mo.MORun:
    method, dataset, objectives, quantile, budget, seed = task
    if objectives is None:
        assert quantile is not None
        return mo.run_constrained(method, dataset, quantile, budget, seed)
    return mo.run_mo_method(method, _problem(dataset, objectives), budget, seed)


_PROBLEMS: dict[tuple[str, tuple[str, ...]], mo.NB201Problem] = {}


def _problem(dataset: str, objectives: tuple[str, ...]) -> mo.NB201Problem:
    key = (dataset, objectives)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = mo.NB201Problem(dataset, objectives)
    return _PROBLEMS[key]


def run_multi_objective(args: argparse.Namespace) -> int:
    """``--objectives`` / ``--constraint``: run every method and seed, print one table per dataset."""
    import json
    from dataclasses import asdict

    _quiet_optuna()
    marks = checkpoints(args)
    objectives = None if args.objectives is None else tuple(args.objectives)
    quantile = None if args.constraint is None else _constraint_quantile(args.constraint)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    methods = _mo_methods(args)
    tasks = [(m, d, objectives, quantile, args.budget, s) for d in args.datasets for m in methods for s in seeds]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    runs = _run_all(_mo_one, tasks, args.jobs, "compare runs")
    order = {(t[1], t[0], t[5]): i for i, t in enumerate(tasks)}
    runs.sort(key=lambda r: order[(r.dataset, r.method, r.seed)])
    for d in args.datasets:
        drun = [r for r in runs if r.dataset == d]
        name = ex.NB201_DATASET_NAMES.get(d, d)
        if objectives is not None:
            problem = _problem(d, objectives)
            rows = mo.summarize_mo(drun, problem, marks)
            title = (
                f"NAS-Bench-201 {name}, {' vs '.join(objectives)}: hypervolume regret (true front HV "
                f"{problem.true_hv:.4f}; mean +- s.e.), {len(seeds)} seeds, budget {args.budget}"
            )
            print()
            print(mo.format_rows(rows, "regret", marks, title, mo.method_labels(objectives)))
            prefix = f"{args.out}_{d}_{'_'.join(objectives)}"
        else:
            bound = drun[0].constraint
            rows = mo.summarize_constrained(drun, marks)
            title = (
                f"NAS-Bench-201 {name}: best feasible validation accuracy (%) with latency <= {bound:.5f} s "
                f"({args.constraint}; mean +- s.e.), {len(seeds)} seeds, budget {args.budget}"
            )
            labels = {
                "gates": "gates (latency learned from told constraint values)",
                "gates-known-cost": "gates (latency looked up: cheap constraint)",
                "tpe": "TPESampler(constraints_func)",
                "random": "random",
            }
            print()
            print(mo.format_rows(rows, "best", marks, title, labels))
            prefix = f"{args.out}_{d}_constrained"
        with open(prefix + ".json", "w") as out:
            json.dump([asdict(r) for r in drun], out)
        files = [prefix + ".json"]
        if objectives is not None and not args.no_plot:
            first = [r for r in drun if r.seed == args.first_seed]
            files.append(
                mo.plot_fronts(
                    first,
                    _problem(d, objectives),
                    prefix + ".png",
                    args.budget,
                    f"{title.split(':')[0]}, seed {args.first_seed}",
                )
            )
        print("wrote", ", ".join(os.path.relpath(f) for f in files))
    return 0


def _space(kind: str) -> Any:
    if kind == "nb301":
        from gates_sampler.spaces import DartsSpace

        return DartsSpace()
    from gates_sampler.spaces import NB201Space

    return NB201Space()


def _quiet_optuna() -> None:
    """One INFO line per Optuna trial would drown the table: the command (not the library) turns them off."""
    try:
        import optuna
    except ModuleNotFoundError:
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _run_all(
    fn: Callable[[Any], _R], tasks: Sequence[Any], jobs: int, desc: str, done: Callable[[_R], None] | None = None
) -> list[_R]:
    """``fn`` of every task, in the order they finish, with a progress bar; with ``jobs > 1`` in that many
    worker processes (each with one torch thread). ``done`` sees every result as it arrives."""
    import concurrent.futures as cf
    import multiprocessing as mp

    from tqdm.auto import tqdm

    results: list[_R] = []
    with tqdm(total=len(tasks), desc=desc, unit="run") as bar:

        def finish(result: _R) -> None:
            results.append(result)
            if done is not None:
                done(result)
            bar.update()

        if jobs <= 1:
            for t in tasks:
                finish(fn(t))
        else:
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
                for f in cf.as_completed([pool.submit(fn, t) for t in tasks]):
                    finish(f.result())
    return results


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    _quiet_optuna()


def _one(task: tuple[str, str, str | None, int, str, int, int]) -> ex.Run:
    kind, dataset, path, epoch, method, budget, seed = task
    return ex.run_method(method, make_benchmark(kind, dataset, path, epoch), budget, seed)


def run(args: argparse.Namespace) -> int:

    if args.pruner:
        return run_pruned(args)
    if args.objectives is not None or args.constraint is not None:
        return run_multi_objective(args)
    _quiet_optuna()
    marks = checkpoints(args)
    datasets = args.datasets if args.benchmark == "nb201" else ["cifar10"]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tasks = [
        (args.benchmark, d, args.nb301_path, args.epoch, m, args.budget, s)
        for d in datasets
        for m in args.methods
        for s in seeds
    ]
    runs = _run_all(_one, tasks, args.jobs, "compare runs")
    order = {t: i for i, t in enumerate((t[1], t[4], t[6]) for t in tasks)}
    for d in datasets:
        bench = make_benchmark(args.benchmark, d, args.nb301_path, args.epoch)
        drun = sorted((r for r in runs if r.benchmark == repr(bench)), key=lambda r: order[(d, r.method, r.seed)])
        best = benchmark_optimum(bench)
        optimum = None if best is None else best[1]
        rows = ex.summarize(drun, bench.direction, optimum, marks)
        title = ex.describe_benchmark(bench)
        subtitle = f"{len(seeds)} seeds, budget {args.budget}, best value found: mean +- standard error"
        if optimum is not None:
            subtitle += f", optimum {optimum:.3f}"
        print()
        print(ex.format_table(rows, marks, f"{title}: {subtitle}"))
        prefix = f"{args.out}_{args.benchmark}_{d}"
        files = ex.save_runs(drun, prefix)
        if not args.no_plot:
            files.append(
                ex.plot_runs(
                    drun,
                    bench.direction,
                    prefix + ".png",
                    f"{title}\n{subtitle}",
                    optimum,
                    ylabel=ex.metric_label(bench, "best ", " so far"),
                )
            )
        print("wrote", ", ".join(os.path.relpath(f) for f in files))
    return 0
