"""``gates-nas search``: one architecture search on a look-up benchmark with the GATES searcher."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from gates_sampler.commands._common import (
    CANDIDATE_MODES,
    NB201_DATASETS,
    UsageError,
    add_benchmark_args,
    benchmark_optimum,
    check_benchmark_args,
    check_device,
    check_importable,
    check_output_file,
    check_output_folder,
    int_at_least,
    make_benchmark,
    non_negative_int,
    positive_int,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "search", help="search a benchmark with the GATES searcher and print the best architecture", description=__doc__
    )
    add_benchmark_args(p)
    p.add_argument("--dataset", default="cifar10", choices=NB201_DATASETS, help="NB201 dataset (default cifar10)")
    p.add_argument("--budget", type=positive_int, default=100, help="architectures to evaluate (default 100)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--n-startup",
        type=int_at_least(2, "an integer >= 2 (the predictor needs pairs)"),
        default=10,
        help="random architectures before the predictor is used (default 10)",
    )
    p.add_argument(
        "--n-candidates", type=positive_int, default=200, help="candidates scored per proposal (default 200)"
    )
    p.add_argument("--candidates", choices=CANDIDATE_MODES, default="auto")
    zs = p.add_mutually_exclusive_group()
    zs.add_argument(
        "--zero-shot",
        dest="zero_shot",
        action="store_const",
        const=True,
        default="auto",
        help="GATES++ on any built-in space: compute the zero-shot metrics of candidates that no table or "
        "cache holds (default: GATES++ where a table ships, i.e. NAS-Bench-201, plain GATES elsewhere)",
    )
    zs.add_argument(
        "--no-zero-shot",
        dest="zero_shot",
        action="store_const",
        const=False,
        help="plain GATES, without zero-shot information",
    )
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda', ... (default auto)")
    p.add_argument(
        "--state", default=None, help="save the searcher here after every evaluation; resume from it if it exists"
    )
    p.add_argument("--json", default=None, help="write the history (arch, value) as JSON")
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Every argument, before the benchmark is loaded."""
    check_benchmark_args(args)
    if args.benchmark == "nb301":
        check_importable("onnxruntime", "--benchmark nb301", "nb301")
    check_output_file(args.json, "--json")
    if args.state is not None:
        if os.path.exists(args.state) and not os.path.isfile(args.state):
            raise UsageError(f"--state {args.state!r} is not a file; pass a file name")
        # the state's folder is created when missing
        check_output_folder(os.path.dirname(os.path.abspath(args.state)), "--state", args.state, create=True)
    check_device(args.device)
    if args.benchmark == "nb301":
        try:
            make_benchmark(args.benchmark, "cifar10", args.nb301_path, args.epoch)
        except (FileNotFoundError, ValueError) as exc:
            raise UsageError(f"--nb301-path: {exc}") from None


def run_meta(args: argparse.Namespace) -> dict[str, Any]:
    """What the told values of this run measure: saved with the state, checked when resuming."""
    if args.benchmark == "nb201":
        return {"benchmark": "nb201", "dataset": args.dataset}
    return {"benchmark": args.benchmark, "dataset": "cifar10", "epoch": args.epoch}


def check_same_problem(path: str, saved: Any, current: dict[str, Any]) -> None:
    """Refuse to resume a state whose values come from another benchmark, dataset or fidelity."""
    if not isinstance(saved, dict):
        return  # a state written before runs recorded their problem: nothing to compare
    differ = {k: (saved[k], v) for k, v in current.items() if k in saved and saved[k] != v}
    if differ:
        made = ", ".join(f"{k}={saved[k]!r}" for k in current if k in saved)
        asked = ", ".join(f"{k}={v!r}" for k, v in current.items())
        raise ValueError(
            f"{path} was made on {made}, this run asks for {asked}; resuming would mix their values. "
            "Pass the same options, or another --state file"
        )


def run(args: argparse.Namespace) -> int:
    from gates_sampler.loop import Step, run_search
    from gates_sampler.searcher import GatesPredictorSearcher

    bench = make_benchmark(
        args.benchmark, args.dataset if args.benchmark == "nb201" else "cifar10", args.nb301_path, args.epoch
    )
    settings = dict(
        direction=bench.direction,
        seed=args.seed,
        n_startup=args.n_startup,
        n_candidates=args.n_candidates,
        candidates=args.candidates,
        device=args.device,
        zero_shot=args.zero_shot,
    )
    meta = run_meta(args)
    if args.state and os.path.exists(args.state):
        state = GatesPredictorSearcher.read_state(args.state)
        check_same_problem(args.state, state.get("meta"), meta)
        searcher = GatesPredictorSearcher.from_state(state, bench.space, **settings)
        print(f"resumed from {args.state} with {searcher.n_told} results")
    else:
        searcher = GatesPredictorSearcher(bench.space, **settings)
    searcher.meta = {**searcher.meta, **meta}

    def save(step: Step) -> None:
        searcher.save(args.state)

    # pending architectures (asked before an interruption) are evaluated first, so nothing asked is lost
    run_search(searcher, bench.query, args.budget, callback=save if args.state else None, progress=True)
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
