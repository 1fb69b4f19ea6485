"""Evaluators: NAS-Bench-201 / NAS-Bench-301 look-ups and real training."""

from __future__ import annotations

from typing import Any

from gates_sampler.benchmarks.nb201 import NB201Benchmark

__all__ = ["NB201Benchmark", "NB301Benchmark", "TrainingEvaluator", "TrainingSettings"]


def __getattr__(name: str) -> Any:
    # The NB301 surrogate and the training evaluator pull in heavier optional dependencies.
    if name == "NB301Benchmark":
        from gates_sampler.benchmarks.nb301 import NB301Benchmark

        return NB301Benchmark
    if name in ("TrainingEvaluator", "TrainingSettings"):
        from gates_sampler.benchmarks import training

        return getattr(training, name)
    raise AttributeError(f"module 'gates_sampler.benchmarks' has no attribute {name!r}")
