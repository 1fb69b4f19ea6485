"""``gates-nas precompute-zeroshot``: fill the zero-shot cache for a space (all cores)."""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

from gates_sampler.commands._common import (
    BUILTIN_SPACE_NAMES,
    UsageError,
    check_device,
    check_output_folder,
    non_negative_int,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``precompute-zeroshot`` parser."""
    p = subparsers.add_parser(
        "precompute-zeroshot",
        help="compute and cache GATES++ zero-shot metrics for many architectures",
        description=(
            "Compute the zero-shot metrics (grad_norm, plain, snip, synflow, params, flops per op; relu_logdet and "
            "network sums) of architectures of a space and store them in the on-disk cache. NB201 enumerates all "
            "15625 cells (or the first --limit); DARTS and NB101 draw --limit random architectures."
        ),
    )
    p.add_argument("--space", choices=BUILTIN_SPACE_NAMES, default="nb201", help="search space (default: nb201)")
    p.add_argument(
        "--limit", type=positive_int, default=None, help="only this many architectures (required for darts / nb101)"
    )
    p.add_argument(
        "--jobs", type=positive_int, default=None, help="worker processes, one torch thread each (default: all cores)"
    )
    p.add_argument(
        "--cache",
        default=None,
        help="SQLite file (default: $GATES_SAMPLER_CACHE or ~/.cache/gates-sampler/zeroshot.sqlite)",
    )
    p.add_argument("--preset", choices=("proxy", "full"), default="proxy", help="network size (default: proxy)")
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of batch, initialisation and sampling (default: 0)"
    )
    p.add_argument(
        "--device", default="cpu", help="device (default: cpu; 'auto' uses CUDA when present, then one process)"
    )
    p.add_argument(
        "--export",
        default=None,
        metavar="PATH",
        help="also write the results of these architectures as a table file (.npz) that ZeroShotProvider(table=PATH) "
        "reads without SQLite, e.g. on the workers of a cluster; a directory gets the file name <space>-<config>.npz",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Every argument, before any metric is computed."""
    if args.space != "nb201" and args.limit is None:
        raise UsageError(
            f"the {args.space} space is too large to enumerate; pass --limit N to draw N random architectures"
        )
    # both files' folders are created when missing
    for flag, value in (("--cache", args.cache), ("--export", args.export)):
        if value is None:
            continue
        path = os.path.expanduser(value)
        if flag == "--export" and os.path.isdir(path):
            check_output_folder(path, flag, value)
        elif os.path.isdir(path):
            raise UsageError(f"{flag} {value!r} is a folder; pass a file name")
        else:
            check_output_folder(os.path.dirname(os.path.abspath(path)), flag, value, create=True)
    check_device(args.device)


def run(args: argparse.Namespace) -> int:
    """Run the command; prints a one-line summary."""
    import numpy as np

    from gates_sampler.spaces import Arch, NB201Space, builtin_space
    from gates_sampler.zeroshot import ZeroShotProvider, ZeroShotSettings
    from gates_sampler.zeroshot.table import table_filename, write_table

    space = builtin_space(args.space)
    archs: list[Arch]
    if args.space == "nb201" and isinstance(space, NB201Space):
        archs = list(itertools.islice(space.enumerate(), args.limit))
    else:
        archs = space.sample_unique(np.random.default_rng(args.seed), args.limit)
    # table=False: compute (or read from the SQLite cache) rather than copy a bundled table
    zs = ZeroShotProvider(
        space,
        cache=args.cache,
        seed=args.seed,
        device=args.device,
        table=False,
        settings=ZeroShotSettings(preset=args.preset),
    )
    start = time.perf_counter()
    n = zs.precompute(archs, jobs=args.jobs, progress=not args.no_progress)
    secs = time.perf_counter() - start
    assert zs.cache is not None
    total = zs.cache.count(space.name, zs.config_key)
    rate = f", {secs / n:.3f} s per architecture (wall clock)" if n else ""
    print(
        f"{args.space}: computed {n} of {len(archs)} architectures in {secs:.1f} s{rate}; "
        f"the cache {zs.cache.path} holds {total} for config {zs.config_key} ({args.preset})"
    )
    if args.export is not None:
        path = Path(args.export).expanduser()
        if path.is_dir():
            path = path / table_filename(space.name, zs.config_key)
        results = dict(zip((str(a) for a in archs), zs.results(archs)))
        write_table(path, space.name, zs.config_key, zs.description, results)
        print(f"wrote {len(results)} architectures to {path}")
    return 0
