"""NAS-Bench-301 look-ups: genotype -> NB301 config conversion and the YAHPO ONNX surrogate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from gates_sampler.benchmarks import NB301Benchmark
from gates_sampler.benchmarks.nb301 import (
    DARTS_V2,
    YAHPO_CAT_NAMES,
    arch_to_config,
    from_naslib_compact,
    to_genotype,
)
from gates_sampler.spaces import DartsSpace

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nasbench301"
YAHPO = DATA / "slds-lmu_yahpo_data" / "v1_initial_3a646b8"
NASLIB = DATA / "automl_NASLib" / "commit_6639fd1" / "zc_nasbench301.json"

SPACE = DartsSpace()


def _need_surrogate() -> None:
    pytest.importorskip("onnxruntime", reason="the NB301 surrogate needs onnxruntime ([nb301] extra)")
    if not (YAHPO / "new_model.onnx").is_file():
        pytest.skip(f"NB301 YAHPO surrogate not found at {YAHPO} (shared benchmark data absent)")


@pytest.fixture(scope="module")
def bench() -> NB301Benchmark:
    _need_surrogate()
    return NB301Benchmark(YAHPO)


# --- conversion (no data needed) -----------------------------------------------------------------


def test_darts_v2_config_follows_nb301_edge_numbering() -> None:
    config = arch_to_config(SPACE.parse(DARTS_V2))
    normal = {k: v for k, v in config.items() if "normal" in k}
    assert normal == {
        "edge_normal_0": "sep_conv_3x3",  # node 2 <- 0
        "edge_normal_1": "sep_conv_3x3",  # node 2 <- 1
        "inputs_node_normal_3": "0_1",
        "edge_normal_2": "sep_conv_3x3",  # node 3 <- 0
        "edge_normal_3": "sep_conv_3x3",  # node 3 <- 1
        "inputs_node_normal_4": "0_1",
        "edge_normal_5": "skip_connect",  # node 4 <- 0
        "edge_normal_6": "sep_conv_3x3",  # node 4 <- 1
        "inputs_node_normal_5": "0_2",
        "edge_normal_9": "skip_connect",  # node 5 <- 0
        "edge_normal_11": "dil_conv_3x3",  # node 5 <- 2
    }
    assert config["inputs_node_reduce_3"] == "1_2" and config["edge_reduce_4"] == "skip_connect"


def test_every_sampled_config_has_8_active_edges_per_cell() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        config = arch_to_config(SPACE.sample(rng))
        for cell in ("normal", "reduce"):
            assert sum(k.startswith(f"edge_{cell}_") for k in config) == 8
            for k in (3, 4, 5):
                a, b = map(int, config[f"inputs_node_{cell}_{k}"].split("_"))
                assert 0 <= a < b < k
        assert set(config) <= set(YAHPO_CAT_NAMES)


def test_genotype_tuple_round_trips_through_the_space_parser() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        arch = SPACE.sample(rng)
        g = to_genotype(arch)
        assert g.normal_concat == [2, 3, 4, 5] and len(g.normal) == 8 and len(g.reduce) == 8
        assert SPACE.parse(repr(g)) == arch


def test_naslib_compact_conversion() -> None:
    compact = (
        "[[(0, 0), (1, 5), (1, 1), (0, 1), (1, 3), (0, 3), (1, 3), (3, 2)], "
        "[(1, 0), (0, 2), (1, 3), (0, 3), (3, 0), (0, 1), (2, 0), (3, 6)]]"
    )
    arch = from_naslib_compact(compact)
    assert arch.normal[:2] == [("max_pool_3x3", 0), ("dil_conv_3x3", 1)]
    assert arch.normal[-1] == ("skip_connect", 3)
    assert arch.reduce[-1] == ("dil_conv_5x5", 3)
    with pytest.raises(ValueError, match="op index 7"):
        from_naslib_compact([[(0, 7)] + [(1, 0)] * 7, [(0, 0), (1, 0)] * 4])
    with pytest.raises(ValueError, match="2 cells"):
        from_naslib_compact([[(0, 0), (1, 0)] * 4])


def test_nasbench301_backend_hands_over_genotypes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The official package is not installed here: a stand-in module checks what it would receive."""
    received: list = []

    class FakeEnsemble:
        def predict(self, config: object, representation: str, with_noise: bool) -> float:
            received.append((config, representation, with_noise))
            return 94.0

    fake = type(sys)("nasbench301")
    fake.load_ensemble = lambda model_dir: FakeEnsemble() if model_dir == str(tmp_path) else None
    monkeypatch.setitem(sys.modules, "nasbench301", fake)
    bench = NB301Benchmark(backend="nasbench301", model_dir=tmp_path)
    arch = SPACE.parse(DARTS_V2)
    assert bench.query_many([arch, DARTS_V2]).tolist() == [94.0, 94.0]
    genotype, representation, noise = received[0]
    assert representation == "genotype" and noise is False
    assert genotype.normal == arch.normal and genotype.reduce_concat == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="epoch"):
        bench.query(arch, epoch=50)
    with pytest.raises(ValueError, match="epoch"):
        NB301Benchmark(backend="nasbench301", model_dir=tmp_path, epoch=50)


# --- argument and file errors ----------------------------------------------------------------


def test_missing_files_say_what_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="yahpo_data"):
        NB301Benchmark(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="new_model.onnx or model.onnx"):
        NB301Benchmark(tmp_path)
    monkeypatch.delenv("GATES_NB301_PATH", raising=False)
    with pytest.raises(ValueError, match="path="):
        NB301Benchmark()
    with pytest.raises(FileNotFoundError, match="model_dir"):
        NB301Benchmark(backend="nasbench301")


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="metric"):
        NB301Benchmark(YAHPO, metric="accuracy")
    with pytest.raises(ValueError, match="backend"):
        NB301Benchmark(YAHPO, backend="tabular")
    for epoch in (0, 99, 2.5, True):
        with pytest.raises(ValueError, match="epoch"):
            NB301Benchmark(YAHPO, epoch=epoch)


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (YAHPO / "new_model.onnx").is_file():
        pytest.skip(f"NB301 YAHPO surrogate not found at {YAHPO}")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ImportError, match=r"gates-sampler\[nb301\]"):
        NB301Benchmark(YAHPO)


# --- the surrogate ---------------------------------------------------------------------------


def test_darts_v2_scores_95_46(bench: NB301Benchmark) -> None:
    assert bench.direction == "maximize" and bench.metric == "val_acc"
    assert bench.query(DARTS_V2) == pytest.approx(95.46, abs=0.05)
    assert bench(SPACE.parse(DARTS_V2)) == pytest.approx(95.46, abs=0.05)


def test_runtime_metric_and_epochs(bench: NB301Benchmark) -> None:
    runtime = NB301Benchmark(YAHPO, metric="runtime")
    assert runtime.direction == "minimize"
    assert 1000 < runtime.query(DARTS_V2) < 20000  # seconds of a 98-epoch training run
    curve = bench.learning_curve(DARTS_V2, epochs=[1, 50, 98])
    assert curve[0] < 60 < curve[1] < curve[2]
    assert bench.query(DARTS_V2, epoch=1) == pytest.approx(curve[0])
    assert NB301Benchmark(YAHPO, epoch=50).query(DARTS_V2) == pytest.approx(curve[1])


def test_query_many_matches_single_queries(bench: NB301Benchmark) -> None:
    rng = np.random.default_rng(2)
    archs = [SPACE.sample(rng) for _ in range(30)]
    many = bench.query_many(archs)
    assert many.shape == (30,)
    np.testing.assert_allclose(many, [bench.query(a) for a in archs], rtol=0, atol=1e-4)
    assert np.all((many > 85) & (many < 97)) and many.std() > 0.1
    assert bench.query_many([]).shape == (0,)


def test_surrogate_ranks_naslib_cells_like_their_labels(bench: NB301Benchmark) -> None:
    if not NASLIB.is_file():
        pytest.skip(f"NASLib NB301 sample not found at {NASLIB}")
    cells = json.loads(NASLIB.read_text())["cifar10"]
    archs = [from_naslib_compact(k) for k in cells]
    labels = [v["val_accuracy"] for v in cells.values()]
    assert len(archs) == 725
    rho = spearmanr(bench.query_many(archs), labels)[0]
    assert rho >= 0.85
