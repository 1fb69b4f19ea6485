"""``gates-nas eval-predictor``: the predictor-quality harness on NAS-Bench-201 and NAS-Bench-301
(paper Sec. 6.1-6.2).

Example (the paper's GATES row of Table 4, 5 ratios x 3 subsets x 3 seeds)::

    gates-nas eval-predictor --encoder gates --dataset cifar10 --json gates.json
    gates-nas eval-predictor --ratios 1 --subsets 3 --seeds 1 --epochs 200   # a quick check
    gates-nas eval-predictor --ablation --ratios 0.5 1 2.5                  # Table 7 grid
    gates-nas eval-predictor --benchmark nb301 --nb301-path DIR --preset paper-nb301 --ratios 0.5 1 2.5 10
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
    add_benchmark_args,
    check_benchmark_args,
    check_device,
    check_importable,
    check_output_file,
    int_at_least,
    non_negative_int,
)

# The harness imports torch; it loads on first use (module ``__getattr__``) so that building the parser
# for ``gates-nas --help`` stays quick. ``run`` reads these names through the module, so they can be
# replaced in tests.
_HARNESS_NAMES = (
    "ABLATION_VARIANTS",
    "NB201_POOL_SIZE",
    "NB301_POOL_SIZE",
    "NB301_TEST_SIZE",
    "PAPER_TABLE4_NB201",
    "PAPER_TABLE4_NB301",
    "PREDICTOR_PRESETS",
    "PAPER_TABLE7_NB201",
    "evaluate_predictor",
    "format_ablation_table",
    "format_table",
    "load_zero_shot",
    "nb201_split",
    "nb301_split",
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
#: the NB301 training sizes of the paper's Table 7 plus 10 %
NB301_PERCENTS = (0.5, 1.0, 2.5, 10.0)
#: ``gates_sampler.experiments.predictor_quality.PREDICTOR_PRESETS`` (names only; tests check they agree)
PRESETS = ("default", "paper-nb301")
#: ``gates_sampler.experiments.predictor_quality.NB301_POOL_SIZE`` / ``NB301_TEST_SIZE``
NB301_SIZES = (5896, 5000)
_at_least_two = int_at_least(2, "an integer >= 2")


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
        help="measure predictor ranking quality on NAS-Bench-201 or -301 (Kendall's tau, N@K, Precision@K)",
        description=(
            "Split the 15625 NAS-Bench-201 cells by a fixed seed (or, as the paper, by the benchmark's index "
            "order) into a 7813-cell training pool and a 7812-cell test set (with --benchmark nb301: a seeded "
            "pool of 5896 random distinct DARTS cells and a disjoint test set of 5000 others, labelled by the "
            "NB301 surrogate); for each training ratio train "
            "predictors on random subsets of the pool with several seeds, rank the test set, and print mean "
            "+- std of Kendall's tau, N@K (best true rank among the top-K predicted, 1 = best) and Precision@K "
            "(share of the true top-K among the predicted top-K)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--encoder", choices=("gates", "mlp", "gates++"), default="gates", help="predictor encoder")
    p.add_argument("--loss", choices=LOSSES, default="hinge", help="training loss")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10", help="NAS-Bench-201 dataset (validation accuracy)")
    add_benchmark_args(p)
    p.add_argument(
        "--pool-size",
        type=_at_least_two,
        default=None,
        metavar="N",
        help=f"nb301: cells in the training pool (default {NB301_SIZES[0]}, the paper's NB301 training set)",
    )
    p.add_argument(
        "--test-size",
        type=_at_least_two,
        default=None,
        metavar="N",
        help=f"nb301: cells in the test set, drawn apart from the pool (default {NB301_SIZES[1]})",
    )
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="GATES sizes: 'default' (the Predictor defaults, which searches use on small spaces such as NB201: "
        "five 128-wide layers, embeddings of 48) or 'paper-nb301' (the paper's NB301 setting, which searches "
        "use on large spaces such as DARTS: four 64-wide layers, operation embeddings of 32)",
    )
    p.add_argument(
        "--ratios",
        type=_percent,
        nargs="+",
        default=None,
        metavar="PCT",
        help="training-set sizes in percent of the pool (nb201: 7813 cells, 0.1%% = 7, 10%% = 781; "
        f"default {' '.join(f'{r:g}' for r in DEFAULT_PERCENTS)}; nb301 default "
        f"{' '.join(f'{r:g}' for r in NB301_PERCENTS)})",
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
        "--cost-features",
        action="store_true",
        help="nb301: with --ablation, compare GATES with GATES fed the cells' parameter and MAC counts "
        "(CellCostFeatures: no forward pass) as architecture-level targets and score-head input",
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
    p.add_argument(
        "--split-seed",
        type=non_negative_int,
        default=0,
        help="seed of the random pool / test split (nb301: of the cell draw)",
    )
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
    if args.preset != "default" and args.encoder == "mlp":
        raise UsageError(f"--preset {args.preset} sets GATES sizes; drop it with --encoder mlp")
    check_benchmark_args(args)
    if args.cost_features and (args.benchmark != "nb301" or not args.ablation):
        raise UsageError("--cost-features counts DARTS cells: use it with --benchmark nb301 --ablation")
    if args.benchmark == "nb301":
        if args.split == "first":
            raise UsageError("--split first is NAS-Bench-201's index order; NB301 cells are drawn by --split-seed")
        check_importable("onnxruntime", "--benchmark nb301", "nb301")
    else:
        for flag, value in (("--pool-size", args.pool_size), ("--test-size", args.test_size)):
            if value is not None:
                raise UsageError(f"{flag} sizes the NB301 split; NAS-Bench-201 always splits 7813 / 7812 cells")
    if args.aux_weight is not None and not (math.isfinite(args.aux_weight) and args.aux_weight >= 0):
        raise UsageError(f"--aux-weight must be a finite number >= 0, got {args.aux_weight}")
    check_output_file(args.json, "--json")
    check_device(args.device)


def _predictor_kwargs(args: argparse.Namespace, presets: dict[str, dict[str, Any]]) -> dict | None:
    kwargs: dict = dict(presets[args.preset])
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
    nb301 = args.benchmark == "nb301"
    if nb301:
        split = h.nb301_split(
            args.nb301_path,
            seed=args.split_seed,
            pool_size=args.pool_size or h.NB301_POOL_SIZE,
            test_size=args.test_size or h.NB301_TEST_SIZE,
            epoch=args.epoch,
        )
    else:
        split = h.nb201_split(args.dataset, seed=args.split_seed, split=args.split)
    if args.test_cells is not None and args.test_cells < len(split.test_archs):
        keep = np.sort(
            np.random.default_rng(args.split_seed).choice(len(split.test_archs), args.test_cells, replace=False)
        )
        split.test_archs = [split.test_archs[i] for i in keep]
        split.test_values = split.test_values[keep]
    if args.cost_features:
        from gates_sampler.zeroshot.cost import CellCostFeatures

        zero_shot = CellCostFeatures(split.space)
    elif args.encoder == "gates++" or args.ablation:
        try:
            zero_shot = h.load_zero_shot(split.space)
        except ImportError as exc:
            print(f"gates-nas eval-predictor: {exc}", file=sys.stderr)
            return 3
    device = resolve_device(args.device)
    percents = args.ratios if args.ratios is not None else list(NB301_PERCENTS if nb301 else DEFAULT_PERCENTS)
    ratios = [p / 100.0 for p in percents]
    seeds = _seeds(args.seeds)
    variants = list(h.ABLATION_VARIANTS) if args.ablation else None
    if args.cost_features:
        variants = ["GATES", "+ETS"]  # the cost features have no per-operation part (EES)
    predictor_kwargs = _predictor_kwargs(args, h.PREDICTOR_PRESETS)
    sizes = ", ".join(f"{p:g}% = {h.train_size(split.pool_size, r)}" for p, r in zip(percents, ratios))
    if nb301:
        source = f"NAS-Bench-301 surrogate (epoch {args.epoch}) validation accuracy"
        how = f"random distinct DARTS cells, seed {args.split_seed}"
    else:
        source = f"NAS-Bench-201 {args.dataset} validation accuracy"
        how = "first 7813 in benchmark index order" if args.split == "first" else f"split seed {args.split_seed}"
    print(
        f"{source}: pool {split.pool_size} / test {len(split.test_archs)} cells "
        f"({how}); training sizes {sizes}; {args.subsets} subsets x seeds {seeds}; "
        f"{args.epochs} epochs; encoder {args.encoder}, preset {args.preset}, loss {args.loss}; device {device}"
    )
    fit_200 = None
    if not args.no_timing:
        n_time = min(200, split.pool_size)
        idx = np.random.default_rng(args.subset_seed).choice(split.pool_size, size=n_time, replace=False)
        fit_200 = h.time_fit(
            split.space,
            [split.train_archs[i] for i in idx],
            split.train_values[idx],
            epochs=args.epochs,
            encoder="mlp" if args.encoder == "mlp" else "gates",
            loss=args.loss,
            device=str(device),
            **{k: v for k, v in (predictor_kwargs or {}).items() if k != "arch_input"},
        )
        where = "this CPU" if device.type == "cpu" else str(device)
        print(f"fitting on {n_time} architectures for {args.epochs} epochs takes {fit_200:.1f} s on {where}")
    config = {k: v for k, v in vars(args).items() if k not in ("func", "check")}
    config.update(
        seeds_used=seeds,
        device=str(device),
        pool_size=split.pool_size,
        test_size=len(split.test_archs),
        ratios=percents,
        predictor_settings=predictor_kwargs or {},
    )
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
        predictor_kwargs=predictor_kwargs,
    )
    wall = time.perf_counter() - start
    rows = h.summarize(results)
    print()
    if args.ablation:
        table7 = h.PAPER_TABLE7_NB201 if args.dataset == "cifar10" and not nb301 else None
        print("Kendall's tau (mean +- std over runs)" + (" [paper Table 7, NAS-Bench-201]" if table7 else ""))
        print(h.format_ablation_table(rows, table7))
        print()
    if nb301:
        paper = None if args.ablation else h.PAPER_TABLE4_NB301.get(args.encoder)
        if paper:
            print("paper tau: the paper's Table 4 on NB301's real anchor labels (the surrogate's are smoother)")
    else:
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
