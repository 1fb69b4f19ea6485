"""Helpers shared by subcommands: argument types, up-front checks, building benchmarks from names.

This module imports nothing heavy: the parsers are built from it for ``gates-nas --help``, which must
not wait for torch. The choices below mirror constants of modules that import torch;
``tests/test_cli.py`` checks that they agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Callable
from functools import cache
from typing import Any

#: NB201 datasets (``gates_sampler.benchmarks.nb201.DATASETS``)
NB201_DATASETS = ("cifar10", "cifar100", "imagenet")
#: names of the built-in spaces (``gates_sampler.spaces.BUILTIN_SPACES``)
BUILTIN_SPACE_NAMES = ("nb201", "darts", "nb101")
#: ``gates_sampler.searcher.CANDIDATE_MODES``
CANDIDATE_MODES = ("auto", "random", "mutation", "mixed", "local", "staged", "evolve")
#: ``gates_sampler.predictor.losses.LOSSES``
LOSSES = ("hinge", "bce", "comparator", "listmle", "mse")
#: ``gates_sampler.experiments.predictor_quality.SPLITS``
SPLITS = ("random", "first")
#: ``gates_sampler.experiments.predictor_quality.PAPER_SEEDS``
PAPER_SEEDS = (21, 2021, 202121)
#: NB301 surrogate fidelities
NB301_EPOCHS = (1, 98)


class UsageError(ValueError):
    """A command-line argument that cannot work; reported with exit code 2 before any work starts."""


def int_at_least(low: int, what: str) -> Callable[[str], int]:
    """An argparse type: an int >= ``low``, described as ``what`` in the error message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "an integer >= 0")


def epoch(text: str) -> int:
    """An argparse type: an NB301 surrogate fidelity."""
    lo, hi = NB301_EPOCHS
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an epoch {lo}..{hi}, got {text!r}") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"expected an epoch {lo}..{hi}, got {text!r}")
    return value


def add_benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--benchmark", choices=["nb201", "nb301"], default="nb201", help="look-up benchmark (default: nb201)"
    )
    p.add_argument("--nb301-path", default=None, help="folder of the NB301 ONNX surrogate (for --benchmark nb301)")
    p.add_argument("--epoch", type=epoch, default=98, help="NB301 surrogate fidelity 1..98 (default 98)")


def check_benchmark_args(args: argparse.Namespace) -> None:
    """``--nb301-path`` is given and is a folder when ``--benchmark nb301``."""
    if args.benchmark != "nb301":
        return
    if args.nb301_path is None:
        raise UsageError(
            "--benchmark nb301 needs --nb301-path FOLDER (the YAHPO nb301 surrogate: new_model.onnx or "
            "model.onnx plus encoding.json)"
        )
    if not os.path.isdir(args.nb301_path):
        raise UsageError(f"--nb301-path {args.nb301_path!r} is not a folder; pass the folder of the NB301 surrogate")


def check_output_file(path: str | None, flag: str) -> None:
    """Fail now, not after hours of work, if ``path`` cannot be written."""
    if path is None:
        return
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a folder; pass a file name")
    check_output_folder(os.path.dirname(os.path.abspath(path)), flag, path)


def check_output_folder(folder: str, flag: str, path: str, create: bool = False) -> None:
    """``folder`` exists and is writable, or (``create``) its nearest existing ancestor is writable."""
    folder = os.path.abspath(folder)
    probe = folder
    if create:
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        what = "does not exist" if not os.path.exists(probe) else "is not a folder"
        fix = "create it first or pass another path" if not create else "pass another path"
        raise UsageError(f"cannot write {flag} {path!r}: {probe} {what}; {fix}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {flag} {path!r}: no write permission in {probe}; pass another path")


def check_device(device: str) -> None:
    """The device exists here (imports torch, so only called once the arguments are parsed)."""
    from gates_sampler.utils import resolve_device

    try:
        resolve_device(device)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None


def check_importable(module: str, feature: str, extra: str, alternative: str = "") -> None:
    """``module`` is installed, else a message naming the extra to install."""
    if importlib.util.find_spec(module) is None:
        hint = f" or {alternative}" if alternative else ""
        raise UsageError(
            f"{feature} needs {module}, which is not installed: pip install 'gates-sampler[{extra}]'{hint}"
        )


@cache
def make_benchmark(kind: str, dataset: str, nb301_path: str | None = None, epoch: int = 98) -> Any:
    """Build (once per process) the benchmark named on the command line."""
    if kind == "nb201":
        from gates_sampler.benchmarks import NB201Benchmark

        return NB201Benchmark(dataset)
    if kind == "nb301":
        from gates_sampler.benchmarks import NB301Benchmark

        if nb301_path is None:
            raise ValueError("--benchmark nb301 needs --nb301-path pointing at the surrogate folder")
        return NB301Benchmark(path=nb301_path, epoch=epoch)
    raise ValueError(f"unknown benchmark {kind!r}; choose nb201 or nb301")


def benchmark_optimum(bench: Any) -> tuple[Any, float] | None:
    """The benchmark's best architecture and value, or ``None`` where it has none (a surrogate)."""
    try:
        return bench.optimum()
    except (AttributeError, NotImplementedError):
        return None
