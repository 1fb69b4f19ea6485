"""``gates-nas compare``: search efficiency of several methods on look-up benchmarks."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
from typing import Any

from tqdm.auto import tqdm

from gates_sampler import experiments as ex
from gates_sampler.commands._common import add_benchmark_args, benchmark_optimum, make_benchmark


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare search methods on NAS-Bench-201 / -301 look-ups", description=__doc__)
    add_benchmark_args(p)
    p.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100", "imagenet"], help="NB201 datasets (ignored for nb301)")
    p.add_argument("--methods", nargs="+", default=["gates", "random", "rea", "tpe"], help="method specs, e.g. gates 'gates[candidates=mixed]' rea tpe tpe-cached optuna-gates")
    p.add_argument("--seeds", type=int, default=10, help="number of seeds (0..seeds-1)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=150, help="evaluations per run")
    p.add_argument("--checkpoints", type=int, nargs="+", default=list(ex.CHECKPOINTS))
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes (each uses one torch thread)")
    p.add_argument("--out", default="results/compare", help="prefix of the raw JSON/CSV and the PNG plot per dataset")
    p.add_argument("--no-plot", action="store_true")
    p.set_defaults(func=run)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _one(task: tuple[str, str, str | None, int, str, int, int]) -> ex.Run:
    kind, dataset, path, epoch, method, budget, seed = task
    return ex.run_method(method, make_benchmark(kind, dataset, path, epoch), budget, seed)


def run(args: argparse.Namespace) -> int:
    for m in args.methods:
        ex.parse_method(m)  # fail fast on a typo, before hours of runs
    datasets = args.datasets if args.benchmark == "nb201" else ["cifar10"]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    checkpoints = [c for c in args.checkpoints if c <= args.budget]
    tasks = [(args.benchmark, d, args.nb301_path, args.epoch, m, args.budget, s) for d in datasets for m in args.methods for s in seeds]
    runs: list[ex.Run] = []
    with tqdm(total=len(tasks), desc="compare runs", unit="run") as bar:
        if args.jobs <= 1:
            for t in tasks:
                runs.append(_one(t))
                bar.update()
        else:
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_worker_init) as pool:
                futures = {pool.submit(_one, t): t for t in tasks}
                for f in cf.as_completed(futures):
                    runs.append(f.result())
                    bar.update()
    order = {t: i for i, t in enumerate((t[1], t[4], t[6]) for t in tasks)}
    for d in datasets:
        bench = make_benchmark(args.benchmark, d, args.nb301_path, args.epoch)
        drun = sorted((r for r in runs if r.benchmark == repr(bench)), key=lambda r: order[(d, r.method, r.seed)])
        best = benchmark_optimum(bench)
        optimum = None if best is None else best[1]
        rows = ex.summarize(drun, bench.direction, optimum, checkpoints)
        title = f"{bench!r}: {len(seeds)} seeds, budget {args.budget}" + (f", optimum {optimum:.3f}" if optimum is not None else "")
        print()
        print(ex.format_table(rows, checkpoints, title))
        prefix = f"{args.out}_{args.benchmark}_{d}"
        files = ex.save_runs(drun, prefix)
        if not args.no_plot:
            files.append(ex.plot_runs(drun, bench.direction, prefix + ".png", title, optimum))
        print("wrote", ", ".join(os.path.relpath(f) for f in files))
    return 0
