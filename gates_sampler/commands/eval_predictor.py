"""``gates-nas eval-predictor``: the predictor-quality harness on NAS-Bench-201 (paper Sec. 6.1-6.2).

Example (the paper's GATES row of Table 4, 5 ratios x 3 subsets x 3 seeds)::

    gates-nas eval-predictor --encoder gates --dataset cifar10 --json gates.json
    gates-nas eval-predictor --ratios 1 --subsets 3 --seeds 1 --epochs 200   # a quick check
    gates-nas eval-predictor --ablation --ratios 0.5 1 2.5                  # Table 7 grid
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

from gates_sampler.commands._common import (
    LOSSES,
    PAPER_SEEDS,
    SPLITS,
    UsageError,
    check_device,
    check_output_file,
    non_negative_int,
)

# The harness imports torch; it loads on first use (module ``__getattr__``) so that building the parser
# for ``gates-nas --help`` stays quick. ``run`` reads these names through the module, so they can be
# replaced in tests.
_HARNESS_NAMES = (
    "ABLATION_VARIANTS",
    "NB201_POOL_SIZE",
    "PAPER_TABLE4_NB201",
    "PAPER_TABLE7_NB201",
    "evaluate_predictor",
    "format_ablation_table",
    "format_table",
    "load_zero_shot",
    "nb201_split",
    "results_to_json",
    "summarize",
    "time_fit",
    "train_size",
)


def __getattr__(name: str) -> Any:
    if name in _HARNESS_NAMES:
        from gates_sampler.experiments import predictor_quality as evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DATASETS = ("cifar10", "cifar100", "imagenet")
DEFAULT_PERCENTS = (0.1, 0.5, 1.0, 2.5, 10.0)


def _percent(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a training ratio must be a number (percent of the pool), got {text!r}"
        ) from None
    if not 0.0 < v <= 100.0:
        raise argparse.ArgumentTypeError(f"a training ratio is a percent of the pool in (0, 100], got {text!r}")
    return v


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def register(subparsers: Any) -> None:
    """Add the ``eval-predictor`` parser to the ``gates-nas`` subcommands."""
    p = subparsers.add_parser(
        "eval-predictor",
        help="measure predictor ranking quality on NAS-Bench-201 (Kendall's tau, N@K, Precision@K)",
        description=(
            "Split the 15625 NAS-Bench-201 cells by a fixed seed (or, as the paper, by the benchmark's index "
            "order) into a 7813-cell training pool and a 7812-cell test set; for each training ratio train "
            "predictors on random subsets of the pool with several seeds, rank the test set, and print mean "
            "+- std of Kendall's tau, N@K (best true rank among the top-K predicted, 1 = best) and Precision@K "
            "(share of the true top-K among the predicted top-K)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--encoder", choices=("gates", "mlp", "gates++"), default="gates", help="predictor encoder")
    p.add_argument("--loss", choices=LOSSES, default="hinge", help="training loss")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10", help="NAS-Bench-201 dataset (validation accuracy)")
    p.add_argument(
        "--ratios",
        type=_percent,
        nargs="+",
        default=list(DEFAULT_PERCENTS),
        metavar="PCT",
        help="training-set sizes in percent of the 7813-cell pool (0.1%% = 7 cells, 10%% = 781)",
    )
    p.add_argument("--subsets", type=_positive, default=3, help="random training subsets per ratio")
    p.add_argument(
        "--seeds",
        type=_positive,
        default=3,
        help=f"training seeds per subset (the first three are the paper's {list(PAPER_SEEDS)})",
    )
    p.add_argument("--epochs", type=_positive, default=200, help="training epochs per fit")
    p.add_argument(
        "--tau-epochs",
        type=_positive,
        default=5,
        metavar="E",
        help="Kendall's tau is averaged over the test set scored after each of the last E epochs "
        "(the paper: 5); tau_final is the last epoch's",
    )
    p.add_argument(
        "--aux-pool",
        action="store_true",
        help="variants with the auxiliary zero-shot head (ETS, GATES++) also fit it on the zero-shot "
        "targets of the whole unlabeled training pool",
    )
    p.add_argument(
        "--arch-input",
        action="store_true",
        help="variants with zero-shot targets (ETS, GATES++) also feed them to the score head",
    )
    p.add_argument(
        "--aux-weight",
        type=float,
        default=None,
        metavar="W",
        help="weight of the auxiliary zero-shot loss (ETS, GATES++; default: the Predictor's)",
    )
    p.add_argument("--ks", type=_positive, nargs="+", default=[5, 10], metavar="K", help="K of N@K and Precision@K")
    p.add_argument(
        "--ablation",
        action="store_true",
        help="run the GATES / +EES / +ETS / GATES++ grid (paper Table 7) on identical subsets and seeds",
    )
    p.add_argument(
        "--test-cells",
        type=_positive,
        default=None,
        metavar="N",
        help="rank only N random cells of the test set (quicker, e.g. when GATES++ must compute "
        "zero-shot features of every test cell); default: all 7812",
    )
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="random",
        help="'random': the pool / test split drawn by --split-seed; 'first': the paper's split, "
        "the first 7813 cells in NAS-Bench-201's index order train, the rest test",
    )
    p.add_argument("--split-seed", type=non_negative_int, default=0, help="seed of the random pool / test split")
    p.add_argument("--subset-seed", type=non_negative_int, default=0, help="seed of the training-subset draws")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda', ...")
    p.add_argument("--json", metavar="PATH", help="also write every run and the summary to this JSON file")
    p.add_argument("--no-timing", action="store_true", help="skip the 200-cell fit-time measurement")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Every argument, before the benchmark is loaded."""
    if args.ablation and args.encoder == "mlp":
        raise UsageError("--ablation compares GATES variants; drop --encoder mlp (or --ablation)")
    if args.aux_weight is not None and not (math.isfinite(args.aux_weight) and args.aux_weight >= 0):
        raise UsageError(f"--aux-weight must be a finite number >= 0, got {args.aux_weight}")
    check_output_file(args.json, "--json")
    check_device(args.device)


def _predictor_kwargs(args: argparse.Namespace) -> dict | None:
    kwargs: dict = {}
    if args.arch_input:
        kwargs["arch_input"] = True
    if args.aux_weight is not None:
        kwargs["aux_weight"] = args.aux_weight
    return kwargs or None


def _seeds(n: int) -> list[int]:
    # the paper's seeds first, then further fixed seeds
    return list(PAPER_SEEDS[:n]) + [1000 + i for i in range(max(0, n - len(PAPER_SEEDS)))]


def run(args: argparse.Namespace) -> int:
    """Run the harness described by the parsed ``args`` and print the table."""
    import numpy as np

    from gates_sampler.utils import resolve_device

    h = sys.modules[__name__]
    zero_shot = None
    split = h.nb201_split(args.dataset, seed=args.split_seed, split=args.split)
    if args.test_cells is not None and args.test_cells < len(split.test_archs):
        keep = np.sort(
            np.random.default_rng(args.split_seed).choice(len(split.test_archs), args.test_cells, replace=False)
        )
        split.test_archs = [split.test_archs[i] for i in keep]
        split.test_values = split.test_values[keep]
    if args.encoder == "gates++" or args.ablation:
        try:
            zero_shot = h.load_zero_shot(split.space)
        except ImportError as exc:
            print(f"gates-nas eval-predictor: {exc}", file=sys.stderr)
            return 3
    device = resolve_device(args.device)
    ratios = [p / 100.0 for p in args.ratios]
    seeds = _seeds(args.seeds)
    variants = list(h.ABLATION_VARIANTS) if args.ablation else None
    sizes = ", ".join(f"{p:g}% = {h.train_size(split.pool_size, r)}" for p, r in zip(args.ratios, ratios))
    how = "first 7813 in benchmark index order" if args.split == "first" else f"split seed {args.split_seed}"
    print(
        f"NAS-Bench-201 {args.dataset} validation accuracy: "
        f"pool {split.pool_size} / test {len(split.test_archs)} cells "
        f"({how}); training sizes {sizes}; {args.subsets} subsets x seeds {seeds}; "
        f"{args.epochs} epochs; encoder {args.encoder}, loss {args.loss}; device {device}"
    )
    fit_200 = None
    if not args.no_timing:
        idx = np.random.default_rng(args.subset_seed).choice(split.pool_size, size=200, replace=False)
        fit_200 = h.time_fit(
            split.space,
            [split.train_archs[i] for i in idx],
            split.train_values[idx],
            epochs=args.epochs,
            encoder="mlp" if args.encoder == "mlp" else "gates",
            loss=args.loss,
            device=str(device),
        )
        where = "this CPU" if device.type == "cpu" else str(device)
        print(f"fitting on 200 architectures for {args.epochs} epochs takes {fit_200:.1f} s on {where}")
    config = {k: v for k, v in vars(args).items() if k not in ("func", "check")}
    config.update(seeds_used=seeds, device=str(device), pool_size=h.NB201_POOL_SIZE)
    done: list = []

    def save_partial(result: Any) -> None:
        # rewrite the JSON after every run, so an interrupted harness keeps what it measured
        done.append(result)
        if args.json:
            _write_json(args.json, h.results_to_json(config, done, {"fit_200_seconds": fit_200, "complete": False}))

    start = time.perf_counter()
    results = h.evaluate_predictor(
        split,
        ratios,
        n_subsets=args.subsets,
        seeds=seeds,
        encoder=args.encoder,
        loss=args.loss,
        epochs=args.epochs,
        ks=args.ks,
        variants=variants,
        zero_shot=zero_shot,
        subset_seed=args.subset_seed,
        device=str(device),
        progress=not args.no_progress,
        on_result=save_partial,
        tau_epochs=args.tau_epochs,
        aux_pool=args.aux_pool,
        predictor_kwargs=_predictor_kwargs(args),
    )
    wall = time.perf_counter() - start
    rows = h.summarize(results)
    print()
    if args.ablation:
        print("Kendall's tau (mean +- std over runs) [paper Table 7, NAS-Bench-201]")
        print(h.format_ablation_table(rows, h.PAPER_TABLE7_NB201 if args.dataset == "cifar10" else None))
        print()
    paper = h.PAPER_TABLE4_NB201.get(args.encoder) if args.dataset == "cifar10" and not args.ablation else None
    print(h.format_table(rows, paper))
    print(f"\n{len(results)} fits in {wall:.0f} s (fit s = mean seconds per fit)")
    if args.json:
        summary = {"fit_200_seconds": fit_200, "wall_seconds": wall, "complete": True}
        _write_json(args.json, h.results_to_json(config, results, summary))
        print(f"wrote {args.json}")
    return 0


def _write_json(path: str, record: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, path)
