"""``gates-nas search``: one architecture search on a look-up benchmark with the GATES searcher."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from tqdm.auto import tqdm

from gates_sampler.commands._common import add_benchmark_args, benchmark_optimum, make_benchmark
from gates_sampler.searcher import CANDIDATE_MODES, GatesPredictorSearcher


def register(sub: Any) -> None:
    p = sub.add_parser("search", help="search a benchmark with the GATES searcher and print the best architecture", description=__doc__)
    add_benchmark_args(p)
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"], help="NB201 dataset (default cifar10)")
    p.add_argument("--budget", type=int, default=100, help="architectures to evaluate (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-startup", type=int, default=10)
    p.add_argument("--n-candidates", type=int, default=200)
    p.add_argument("--candidates", choices=CANDIDATE_MODES, default="random")
    zs = p.add_mutually_exclusive_group()
    zs.add_argument("--zero-shot", dest="zero_shot", action="store_const", const=True, default="auto",
                    help="GATES++ on any built-in space: compute the zero-shot metrics of candidates that no table or "
                         "cache holds (default: GATES++ where a table ships, i.e. NAS-Bench-201, plain GATES elsewhere)")
    zs.add_argument("--no-zero-shot", dest="zero_shot", action="store_const", const=False,
                    help="plain GATES, without zero-shot information")
    p.add_argument("--device", default="auto")
    p.add_argument("--state", default=None, help="save the searcher here after every evaluation; resume from it if it exists")
    p.add_argument("--json", default=None, help="write the history (arch, value) as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.budget < 1:
        raise ValueError(f"--budget must be positive, got {args.budget}")
    bench = make_benchmark(args.benchmark, args.dataset if args.benchmark == "nb201" else "cifar10", args.nb301_path, args.epoch)
    settings = dict(
        direction=bench.direction, seed=args.seed, n_startup=args.n_startup,
        n_candidates=args.n_candidates, candidates=args.candidates, device=args.device,
        zero_shot=args.zero_shot,
    )
    if args.state and os.path.exists(args.state):
        searcher = GatesPredictorSearcher.load(args.state, bench.space, **settings)
        print(f"resumed from {args.state} with {searcher.n_told} results")
    else:
        searcher = GatesPredictorSearcher(bench.space, **settings)
    # architectures asked before an interruption are evaluated first, so nothing asked is lost
    todo = searcher.pending
    with tqdm(total=args.budget, initial=min(searcher.n_told, args.budget), desc="search", unit="arch") as bar:
        while searcher.n_told < args.budget:
            arch = todo.pop(0) if todo else searcher.ask()
            searcher.tell(arch, bench.query(arch))
            if args.state:
                searcher.save(args.state)
            best = searcher.best
            bar.set_postfix(best=f"{best[1]:.3f}" if best else "-")
            bar.update()
    best_arch, best_value = searcher.best  # type: ignore[misc]
    print(f"best architecture after {searcher.n_told} evaluations: {best_arch}")
    print(f"best value: {best_value:.4f}")
    optimum = benchmark_optimum(bench)
    if optimum is not None:
        print(f"benchmark optimum: {optimum[1]:.4f} (regret {abs(optimum[1] - best_value):.4f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"arch": str(o.arch), "value": o.value} for o in searcher.history], f, indent=1)
    return 0
