"""Helpers shared by subcommands: building benchmarks from command-line names."""

from __future__ import annotations

import argparse
from functools import lru_cache
from typing import Any


def add_benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", choices=["nb201", "nb301"], default="nb201", help="look-up benchmark (default: nb201)")
    p.add_argument("--nb301-path", default=None, help="folder of the NB301 ONNX surrogate (for --benchmark nb301)")
    p.add_argument("--epoch", type=int, default=98, help="NB301 surrogate fidelity 1..98 (default 98)")


@lru_cache(maxsize=None)
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
