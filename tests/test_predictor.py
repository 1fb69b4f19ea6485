"""GATES predictor: every loss learns a ranking, reproducibility, persistence, input checks,
isomorphism invariance (paper Table 2) and the predictor-quality harness."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from conftest import make_spaces
from test_spaces import permute_edge_cell, permute_node_arch

from gates_sampler.benchmarks import NB201Benchmark
from gates_sampler.experiments import predictor_quality as ev
from gates_sampler.predictor import LOSSES, GatesEncoder, Predictor, PredictorSettings
from gates_sampler.spaces import CellBatch, DartsArch, DartsSpace, GraphBatch, NB101Space, NB201Space

# a smaller GATES than the default keeps the tests fast; it ranks NB201 cells about as well
SMALL = PredictorSettings(hidden=64, op_dim=32, n_layers=4, head_hidden=(128, 128))
TINY = PredictorSettings(hidden=32, op_dim=16, n_layers=3, head_hidden=(64, 64))


@pytest.fixture(scope="module")
def nb201_data() -> tuple[list, np.ndarray, list, np.ndarray]:
    """60 training and 400 held-out NB201 cells with their cifar10 validation accuracy."""
    space = NB201Space()
    bench = NB201Benchmark("cifar10")
    rng = np.random.default_rng(0)
    archs = space.sample_unique(rng, 460)
    values = bench.query_many(archs)
    return archs[:60], values[:60], archs[60:], values[60:]


# ----- every loss learns ------------------------------------------------------------------------
@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_ranks_held_out_cells(loss: str, nb201_data) -> None:
    train_a, train_y, test_a, test_y = nb201_data
    pred = Predictor(NB201Space(), loss=loss, epochs=40, seed=0, device="cpu", settings=SMALL)
    pred.fit(train_a, train_y)
    tau = ev.kendall_tau(test_y, pred.score(test_a))
    # measured about 0.68 for every loss; an untrained predictor is near 0
    assert tau > 0.5, f"{loss}: Kendall's tau {tau:.3f} on held-out cells"


def test_untrained_predictor_does_not_rank(nb201_data) -> None:
    # the bar above is meaningful: an untrained predictor is far from it
    _, _, test_a, test_y = nb201_data
    untrained = [Predictor(NB201Space(), seed=s, device="cpu", settings=SMALL) for s in range(3)]
    taus = [ev.kendall_tau(test_y, p.score(test_a)) for p in untrained]
    assert np.mean(np.abs(taus)) < 0.5


def test_mlp_encoder_fits(nb201_data) -> None:
    train_a, train_y, test_a, test_y = nb201_data
    one_layer = PredictorSettings(head_hidden=(64,))
    untrained = Predictor(NB201Space(), encoder="mlp", epochs=20, seed=0, device="cpu", settings=one_layer)
    before = [ev.kendall_tau(y, untrained.score(a)) for a, y in ((train_a, train_y), (test_a, test_y))]
    pred = Predictor(NB201Space(), encoder="mlp", epochs=20, seed=0, device="cpu", settings=one_layer)
    pred.fit(train_a, train_y)
    # the same network before and after fitting: it fits its training set and generalises
    # (measured 0.98 and 0.61; untrained 0.04 and 0.10)
    assert ev.kendall_tau(train_y, pred.score(train_a)) > before[0] + 0.5
    assert ev.kendall_tau(test_y, pred.score(test_a)) > before[1] + 0.3


# ----- reproducibility and persistence ------------------------------------------------------------
def test_fit_is_reproducible_with_a_seed(nb201_data) -> None:
    # with dropout in the score head: its masks must come from the seed as well
    train_a, train_y, test_a, _ = nb201_data
    scores = []
    for draw in range(2):
        torch.manual_seed(draw)  # the caller's global torch state must not matter
        pred = Predictor(NB201Space(), epochs=10, seed=7, device="cpu", settings=TINY)
        scores.append(pred.fit(train_a, train_y).score(test_a))
    np.testing.assert_array_equal(scores[0], scores[1])
    other = Predictor(NB201Space(), epochs=10, seed=8, device="cpu", settings=TINY).fit(train_a, train_y).score(test_a)
    assert not np.allclose(scores[0], other)


@pytest.mark.parametrize("loss", ["hinge", "comparator"])
def test_state_dict_round_trip_gives_identical_scores(loss: str, nb201_data) -> None:
    train_a, train_y, test_a, _ = nb201_data
    pred = Predictor(NB201Space(), loss=loss, epochs=5, seed=1, device="cpu", settings=TINY).fit(train_a, train_y)
    state = pred.state_dict()
    buf = pred.to_bytes()
    expected = pred.score(test_a)
    clone = Predictor(NB201Space(), loss=loss, epochs=5, seed=99, device="cpu", settings=TINY)
    clone.load_state_dict(state)
    np.testing.assert_array_equal(clone.score(test_a), expected)
    assert clone.trained
    import io

    again = Predictor(NB201Space(), loss=loss, epochs=5, seed=5, device="cpu", settings=TINY)
    again.load_state_dict(torch.load(io.BytesIO(buf), weights_only=True))
    np.testing.assert_array_equal(again.score(test_a), expected)


def test_load_state_dict_rejects_other_configuration(nb201_data) -> None:
    state = Predictor(NB201Space(), epochs=5, seed=1, device="cpu", settings=TINY).state_dict()
    with pytest.raises(ValueError, match="different configuration.*hidden"):
        other = Predictor(NB201Space(), epochs=5, seed=1, device="cpu", settings=replace(TINY, hidden=16))
        other.load_state_dict(state)


def test_warm_start_continues_training(nb201_data) -> None:
    train_a, train_y, test_a, _ = nb201_data
    pred = Predictor(NB201Space(), epochs=5, seed=3, device="cpu", settings=TINY).fit(train_a, train_y)
    before = pred.score(test_a)
    weights = {k: v.clone() for k, v in pred.net.state_dict().items()}
    fresh = copy.deepcopy(pred)
    pred.fit(train_a, train_y, epochs=2, warm_start=True)
    fresh.fit(train_a, train_y, epochs=2)
    assert not np.allclose(before, pred.score(test_a))

    def drift(p: Predictor) -> float:
        return max(float((p.net.state_dict()[k] - w).abs().max()) for k, w in weights.items())

    # a warm start moves the weights a little; the same fit without it re-initialises them
    # (measured 0.002 against 4.3)
    assert 0 < drift(pred) < 0.1 * drift(fresh)


# ----- input checks ------------------------------------------------------------------------------
def test_fit_rejects_bad_values(nb201_data) -> None:
    train_a, train_y, _, _ = nb201_data
    pred = Predictor(NB201Space(), epochs=2, seed=0, device="cpu", settings=TINY)
    bad = np.array(train_y, dtype=float)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        pred.fit(train_a, bad)
    bad[3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        pred.fit(train_a, bad)
    with pytest.raises(ValueError, match="60 architectures but 59 values"):
        pred.fit(train_a, train_y[:59])
    with pytest.raises(ValueError, match="at least 2"):
        pred.fit(train_a[:1], train_y[:1])


def test_constructor_rejects_bad_options() -> None:
    space = NB201Space()
    with pytest.raises(ValueError, match="encoder must be one of"):
        Predictor(space, encoder="lstm")
    with pytest.raises(ValueError, match="loss must be one of"):
        Predictor(space, loss="l1")
    with pytest.raises(ValueError, match="need the gates encoder"):
        Predictor(space, encoder="mlp", op_feature_dim=3)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        Predictor(space, epochs=0)
    with pytest.raises(TypeError, match="settings must be a PredictorSettings"):
        Predictor(space, settings={"hidden": 16})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        PredictorSettings(batch_size=1)
    # options that measurement rejected are gone; a flat dict names the ones that exist
    with pytest.raises(ValueError, match=r"unknown predictor option\(s\) \['activation'\]; allowed: .*'head_dropout'"):
        Predictor.from_config(space, {"activation": "relu"})


def _zs_op(space, archs, dim: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(c.ops.shape + (dim,), generator=g) for c in space.encode(archs).cells]


def test_zero_shot_inputs_are_required_and_checked(nb201_data) -> None:
    train_a, train_y, test_a, test_y = nb201_data
    space = NB201Space()
    pred = Predictor(space, epochs=3, seed=0, device="cpu", op_feature_dim=4, aux_dim=2, settings=TINY)
    zs_op = _zs_op(space, train_a, 4)
    zs_arch = np.random.default_rng(0).normal(size=(len(train_a), 2))
    with pytest.raises(ValueError, match="pass zs_op"):
        pred.fit(train_a, train_y, zs_arch=zs_arch)
    with pytest.raises(ValueError, match="pass zs_arch"):
        pred.fit(train_a, train_y, zs_op=zs_op)
    with pytest.raises(ValueError, match=r"zs_arch must have shape \(60, 2\)"):
        pred.fit(train_a, train_y, zs_op=zs_op, zs_arch=zs_arch[:, :1])
    with pytest.raises(ValueError, match="one tensor per cell"):
        pred.fit(train_a, train_y, zs_op=zs_op * 2, zs_arch=zs_arch)
    pred.fit(train_a, train_y, zs_op=zs_op, zs_arch=zs_arch)
    with pytest.raises(ValueError, match="pass zs_op"):
        pred.score(test_a)
    zs_test = _zs_op(space, test_a, 4, seed=1)
    scores = pred.score(test_a, zs_op=zs_test)
    assert scores.shape == (len(test_a),) and np.isfinite(scores).all()
    # row i of zs_op belongs to architecture i: scoring a reordered slice reorders the scores
    order = [7, 3, 0, 5]
    sliced = pred.score([test_a[i] for i in order], zs_op=[t[order] for t in zs_test])
    np.testing.assert_allclose(sliced, scores[order], rtol=1e-5, atol=1e-6)
    mixed = pred.score([test_a[i] for i in order], zs_op=[t[[0, 1, 2, 3]] for t in zs_test])
    assert not np.allclose(mixed, scores[order])


def _conv_counts(archs) -> np.ndarray:
    """A learnable architecture-level target: how many 3x3 / 1x1 convolutions and empty edges a cell has."""
    return np.array(
        [[sum(o == name for o in a.ops) for name in ("nor_conv_3x3", "nor_conv_1x1", "none")] for a in archs],
        dtype=float,
    )


def test_unlabeled_architectures_train_the_auxiliary_head(nb201_data) -> None:
    train_a, train_y, test_a, _ = nb201_data
    space = NB201Space()
    extra, held_out = test_a[:300], test_a[300:]

    def aux_error(**fit_kw) -> float:
        pred = Predictor(space, epochs=150, seed=0, device="cpu", aux_dim=3, settings=TINY)
        pred.fit(train_a[:10], train_y[:10], zs_arch=_conv_counts(train_a[:10]), **fit_kw)
        with torch.no_grad():
            out = pred.net.aux_head(pred.embed(held_out)) * pred.aux_std + pred.aux_mean
        return float(((out.numpy() - _conv_counts(held_out)) ** 2).mean())

    # 300 unlabeled cells teach the encoder what 10 labeled ones cannot
    assert aux_error(aux_archs=extra, aux_zs_arch=_conv_counts(extra)) < 0.5 * aux_error()


def test_unlabeled_architectures_are_checked(nb201_data) -> None:
    train_a, train_y, test_a, _ = nb201_data
    space = NB201Space()
    plain = Predictor(space, epochs=2, seed=0, device="cpu", settings=TINY)
    with pytest.raises(ValueError, match="aux_dim=0"):
        plain.fit(train_a, train_y, aux_archs=test_a[:5], aux_zs_arch=np.zeros((5, 3)))
    pred = Predictor(space, epochs=2, seed=0, device="cpu", aux_dim=3, settings=TINY)
    zs = _conv_counts(train_a)
    with pytest.raises(ValueError, match="pass aux_zs_arch"):
        pred.fit(train_a, train_y, zs_arch=zs, aux_archs=test_a[:5])
    with pytest.raises(ValueError, match=r"aux_zs_arch must have shape \(5, 3\)"):
        pred.fit(train_a, train_y, zs_arch=zs, aux_archs=test_a[:5], aux_zs_arch=np.zeros((4, 3)))
    bad = np.zeros((5, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pred.fit(train_a, train_y, zs_arch=zs, aux_archs=test_a[:5], aux_zs_arch=bad)
    with pytest.raises(ValueError, match="aux_batch"):
        PredictorSettings(aux_batch=0)


def test_arch_input_feeds_zero_shot_targets_to_the_head(nb201_data) -> None:
    train_a, train_y, test_a, _ = nb201_data
    space = NB201Space()
    with pytest.raises(ValueError, match="aux_dim > 0"):
        Predictor(space, arch_input=True)
    pred = Predictor(space, epochs=5, seed=0, device="cpu", aux_dim=3, arch_input=True, settings=TINY)
    pred.fit(train_a, train_y, zs_arch=_conv_counts(train_a))
    with pytest.raises(ValueError, match="pass zs_arch"):
        pred.score(test_a)
    with pytest.raises(ValueError, match=r"zs_arch must have shape \(400, 3\)"):
        pred.score(test_a, zs_arch=_conv_counts(test_a)[:, :2])
    a = pred.score(test_a, zs_arch=_conv_counts(test_a))
    b = pred.score(test_a, zs_arch=_conv_counts(test_a)[::-1].copy())
    assert not np.allclose(a, b)  # the scores read the features
    # the flat config rebuilds the same predictor (constructor keywords and settings side by side)
    clone = Predictor.from_config(space, pred.config, seed=1, device="cpu")
    assert clone.config == pred.config and clone.settings == TINY
    clone.load_state_dict(pred.state_dict())
    assert np.array_equal(clone.score(test_a, zs_arch=_conv_counts(test_a)), a)


def test_fit_callback_runs_after_every_epoch_in_eval_mode(nb201_data) -> None:
    train_a, train_y, test_a, _ = nb201_data
    pred = Predictor(NB201Space(), epochs=4, seed=0, device="cpu", settings=TINY)
    seen = []

    def callback(epoch: int) -> None:
        seen.append((epoch, pred.net.training))
        pred.score(test_a[:10])

    pred.fit(train_a, train_y, callback=callback)
    assert seen == [(1, False), (2, False), (3, False), (4, False)]
    # scoring in the callback does not disturb training: same weights as a fit without it
    other = Predictor(NB201Space(), epochs=4, seed=0, device="cpu", settings=TINY).fit(train_a, train_y)
    assert np.allclose(pred.score(test_a), other.score(test_a))


def test_op_features_change_the_score(nb201_data) -> None:
    # GATES++ EES: the per-op features enter the gates, so different features give different scores
    _, _, test_a, _ = nb201_data
    space = NB201Space()
    pred = Predictor(space, seed=0, device="cpu", op_feature_dim=3, settings=TINY)
    a = pred.score(test_a[:20], zs_op=_zs_op(space, test_a[:20], 3, seed=1))
    b = pred.score(test_a[:20], zs_op=_zs_op(space, test_a[:20], 3, seed=2))
    assert not np.allclose(a, b)


# ----- isomorphism invariance (paper Table 2) --------------------------------------------------------
def _random_values(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


def _predictors(space, archs) -> list[Predictor]:
    untrained = Predictor(space, seed=0, device="cpu")
    trained = Predictor(space, epochs=30, seed=1, device="cpu").fit(archs, _random_values(len(archs), 2))
    return [untrained, trained]


def _assert_same_prediction(pred: Predictor, archs: list, others: list) -> None:
    # the embeddings (what Table 2 is about) and the scores agree to float precision
    emb, emb_other = pred.embed(archs), pred.embed(others)
    assert (emb - emb_other).abs().max() < 1e-5 * max(1.0, float(emb.abs().max()))
    assert np.abs(pred.score(others) - pred.score(archs)).max() < 1e-5
    # ... while different cells do get different embeddings
    assert float((emb - emb.mean(0)).abs().max()) > 1e-3


def test_darts_scores_invariant_under_node_permutation_and_input_swap() -> None:
    space = DartsSpace()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(40)]
    permuted = [space.validate(DartsArch(tuple(permute_edge_cell(space, c, rng) for c in a.cells))) for a in archs]
    swapped = [space.validate(DartsArch(tuple(tuple(n[::-1] for n in c) for c in a.cells))) for a in archs]
    assert sum(p != a for p, a in zip(permuted, archs)) > 20
    untrained, trained = _predictors(space, archs[:20])
    for pred in (untrained, trained):
        _assert_same_prediction(pred, archs, permuted)
        _assert_same_prediction(pred, archs, swapped)
    assert np.ptp(trained.score(archs)) > 1e-3  # the scores themselves do differ between cells


def test_darts_mlp_baseline_is_not_invariant() -> None:
    # the check above can fail: a sequence encoder sees the relabelling
    space = DartsSpace()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(40)]
    permuted = [
        space.validate(DartsArch(tuple(permute_edge_cell(space, c, rng, shuffle_inputs=False) for c in a.cells)))
        for a in archs
    ]
    pred = Predictor(space, encoder="mlp", seed=0, device="cpu", settings=PredictorSettings(head_hidden=(64,)))
    assert np.abs(pred.score(permuted) - pred.score(archs)).max() > 1e-4


def test_nb101_scores_invariant_under_vertex_relabelling() -> None:
    space = NB101Space()
    rng = np.random.default_rng(1)
    archs = [a for a in (space.sample(rng) for _ in range(300)) if a.num_vertices >= 5][:40]
    permuted = [permute_node_arch(space, a, rng) for a in archs]
    assert sum(p != a for p, a in zip(permuted, archs)) > 10
    untrained, trained = _predictors(space, archs[:20])
    for pred in (untrained, trained):
        _assert_same_prediction(pred, archs, permuted)
    assert np.ptp(trained.score(archs)) > 1e-3


def _permute_batch(batch: GraphBatch, perm: list[int]) -> GraphBatch:
    """Reorder the node axis of every tensor of a batch (``perm[new] = old``)."""
    p = torch.as_tensor(perm)
    cells = []
    for c in batch.cells:
        if batch.kind == "edge":
            ops = c.ops[:, p][:, :, p]
        else:
            ops = c.ops[:, p]
        adj = None if c.adj is None else c.adj[:, p][:, :, p]
        cells.append(CellBatch(ops=ops, readout=c.readout[:, p], adj=adj))
    return GraphBatch(batch.kind, cells, batch.n_inputs, batch.size)


@pytest.mark.parametrize("space_id", ["nb201", "darts", "nb101", "edge", "node"])
def test_encoder_invariant_to_node_axis_permutation(space_id: str) -> None:
    space = make_spaces()[space_id]
    archs = [space.sample(np.random.default_rng(s)) for s in range(16)]
    batch = space.encode(archs)
    enc = GatesEncoder(
        space.kind,
        len(space.op_names),
        n_cells=len(space.cell_names),
        n_inputs=space.n_inputs,
        hidden=32,
        op_dim=16,
        n_layers=4,
    )
    enc.eval()
    base = enc(batch)
    rng = np.random.default_rng(0)
    for _ in range(5):
        # input nodes stay in front (they receive the input embedding); every other node moves anywhere
        rest = list(range(space.n_inputs, space.max_nodes))
        perm = list(range(space.n_inputs)) + [rest[i] for i in rng.permutation(len(rest))]
        assert torch.allclose(enc(_permute_batch(batch, perm)), base, atol=1e-5)


def test_encoder_invariant_to_edge_slot_order() -> None:
    # several edges between the same two nodes (repeated inputs) are summed, in any slot order
    space = CellSpaceRepeated()
    archs = [space.sample(np.random.default_rng(s)) for s in range(16)]
    batch = space.encode(archs)
    enc = GatesEncoder("edge", len(space.op_names), n_inputs=1, hidden=32, op_dim=16, n_layers=3)
    flipped = GraphBatch("edge", [CellBatch(ops=c.ops.flip(-1), readout=c.readout) for c in batch.cells], 1, batch.size)
    assert torch.allclose(enc(flipped), enc(batch), atol=1e-5)


def CellSpaceRepeated():
    from gates_sampler.spaces import CellSpace

    return CellSpace(kind="edge", ops=("a", "b", "c"), n_nodes=3, n_inputs=1, inputs_per_node=2, distinct_inputs=False)


def test_nb201_isomorphic_cells_score_equal() -> None:
    space = NB201Space()
    pred = Predictor(space, seed=0, device="cpu")
    # nodes 1 and 2 swapped (edge 2<-1 is none) and dead edges changed
    a = space.from_ops(["nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3"])
    b = space.from_ops(["avg_pool_3x3", "nor_conv_3x3", "none", "skip_connect", "nor_conv_3x3", "nor_conv_1x1"])
    c = space.from_ops(["none", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "nor_conv_3x3"])
    d = space.from_ops(["none", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_3x3"])
    s = pred.score([a, b, c, d])
    assert abs(s[0] - s[1]) < 1e-5
    # c and d differ only in edges out of node 1, which gets no input: the encoder masks "none" but
    # still propagates zeros from node 1, so both are equal as well
    assert abs(s[2] - s[3]) < 1e-5


# ----- harness -----------------------------------------------------------------------------------
def test_ranking_metrics_by_hand() -> None:
    true = np.array([10.0, 9.0, 8.0, 7.0, 6.0, 5.0])
    perfect = true.copy()
    assert ev.kendall_tau(true, perfect) == pytest.approx(1.0)
    assert ev.kendall_tau(true, -perfect) == pytest.approx(-1.0)
    pred = np.array([1.0, 6.0, 5.0, 4.0, 3.0, 2.0])  # the best cell is predicted worst
    assert ev.n_at_k(true, pred, 1) == 2
    assert ev.n_at_k(true, pred, 5) == 2
    assert ev.n_at_k(true, pred, 6) == 1
    assert ev.precision_at_k(true, pred, 2) == pytest.approx(0.5)  # true top-2 {0,1}, predicted {1,2}
    assert ev.precision_at_k(true, pred, 5) == pytest.approx(0.8)
    assert ev.precision_at_k(true, perfect, 3) == 1.0
    # the 5 pairs with the best cell are discordant, the other 10 concordant: (10 - 5) / 15
    assert ev.kendall_tau(true, pred) == pytest.approx(1 / 3)
    m = ev.ranking_metrics(true, pred, ks=(1, 2))
    assert m == pytest.approx({"tau": 1 / 3, "N@1": 2.0, "N@2": 2.0, "P@1": 0.0, "P@2": 0.5})
    with pytest.raises(ValueError, match="same length"):
        ev.kendall_tau(true, pred[:3])
    with pytest.raises(ValueError, match="finite"):
        ev.n_at_k(true, np.r_[pred[:5], np.nan], 2)
    with pytest.raises(ValueError, match="K must be a positive int"):
        ev.precision_at_k(true, pred, 0)


def test_split_and_subset_sizes() -> None:
    tr, te = ev.split_indices(15625, 7813, seed=0)
    assert len(tr) == 7813 and len(te) == 7812 and not set(tr) & set(te)
    assert [ev.train_size(7813, r) for r in ev.PAPER_RATIOS] == [7, 39, 78, 195, 781]
    a = ev.draw_subset(7813, 39, 0)
    assert np.array_equal(a, ev.draw_subset(7813, 39, 0)) and not np.array_equal(a, ev.draw_subset(7813, 39, 1))
    with pytest.raises(ValueError, match="ratio must be in"):
        ev.train_size(7813, 0.0)


def test_paper_split_is_the_first_half_in_benchmark_index_order() -> None:
    split = ev.nb201_split("cifar10", split="first")
    bench = NB201Benchmark("cifar10")
    order = [str(a) for a in bench.archs()]
    assert len(order) == len(set(order)) == 15625
    assert [str(a) for a in split.train_archs] == order[:7813]
    assert [str(a) for a in split.test_archs] == order[7813:]
    assert np.array_equal(split.train_values, bench.query_many(split.train_archs))
    random_split = ev.nb201_split("cifar10")
    assert {str(a) for a in random_split.train_archs} != set(order[:7813])
    with pytest.raises(ValueError, match="split must be one of .*'first'.*got 'paper'"):
        ev.nb201_split("cifar10", split="paper")
    with pytest.raises(ValueError, match="pool_size must be between 1 and 15624"):
        ev.nb201_split("cifar10", split="first", pool_size=15625)


def _tiny_split(n_train: int = 120, n_test: int = 200) -> ev.PredictorSplit:
    space = NB201Space()
    bench = NB201Benchmark("cifar10")
    archs = space.sample_unique(np.random.default_rng(5), n_train + n_test)
    y = bench.query_many(archs)
    return ev.PredictorSplit(space, archs[:n_train], y[:n_train], archs[n_train:], y[n_train:], "tiny")


def test_evaluate_predictor_grid_and_table() -> None:
    split = _tiny_split()
    seen = []
    runs = ev.evaluate_predictor(
        split,
        (0.25, 0.5),
        n_subsets=2,
        seeds=(21, 2021),
        epochs=3,
        device="cpu",
        predictor_kwargs=asdict(TINY),
        on_result=seen.append,
    )
    assert len(runs) == len(seen) == 2 * 2 * 2
    assert [r.n_train for r in runs[:4]] == [30] * 4
    rows = ev.summarize(runs)
    assert [(r.ratio, r.runs) for r in rows] == [(0.25, 4), (0.5, 4)]
    table = ev.format_table(rows, ev.PAPER_TABLE4_NB201["gates"])
    assert "tau" in table and "N@5" in table and "P@10" in table and "25%" in table
    record = json.loads(json.dumps(ev.results_to_json({"epochs": 3}, runs)))
    assert len(record["runs"]) == 8 and len(record["summary"]) == 2
    with pytest.raises(ValueError, match="encoder must be"):
        ev.evaluate_predictor(split, (0.5,), encoder="lstm")
    with pytest.raises(ValueError, match="need zero_shot"):
        ev.evaluate_predictor(split, (0.5,), encoder="gates++")


class FakeZeroShot:
    """Stands in for ZeroShotProvider: deterministic features derived from the architecture."""

    op_feature_dim = 2
    arch_feature_dim = 3

    def __init__(self, space) -> None:
        self.space = space
        self.calls = 0

    def op_features(self, archs):
        self.calls += 1
        out = []
        for cell in self.space.encode(archs).cells:
            ops = cell.ops.float().unsqueeze(-1)
            out.append(torch.cat([ops / 5.0, (ops > 0).float()], dim=-1))
        return out

    def arch_features(self, archs):
        ops = np.array([[NB201Space().op_names.index(o) for o in a.ops] for a in archs], dtype=float)
        return np.stack([ops.sum(1), (ops == 3).sum(1), (ops == 0).sum(1)], axis=1)


def test_ablation_variants_share_subsets_and_use_zero_shot() -> None:
    split = _tiny_split()
    zs = FakeZeroShot(split.space)
    runs = ev.evaluate_predictor(
        split,
        (0.5,),
        n_subsets=1,
        seeds=(21,),
        epochs=3,
        device="cpu",
        variants=list(ev.ABLATION_VARIANTS),
        zero_shot=zs,
        predictor_kwargs=asdict(TINY),
    )
    assert [r.variant for r in runs] == ["GATES", "+EES", "+ETS", "GATES++"]
    assert zs.calls == 2  # features computed once for the pool cells and once for the test set
    taus = [r.metrics["tau"] for r in runs]
    assert len(set(np.round(taus, 8))) > 1  # the zero-shot variants train different models
    text = ev.format_ablation_table(ev.summarize(runs), ev.PAPER_TABLE7_NB201)
    assert "GATES++" in text and "+EES" in text


def test_tau_is_averaged_over_the_last_epochs() -> None:
    split = _tiny_split()
    kw = dict(n_subsets=1, seeds=(21,), epochs=6, device="cpu", predictor_kwargs=asdict(TINY))
    last = ev.evaluate_predictor(split, (0.25,), tau_epochs=1, **kw)[0].metrics
    assert last["tau"] == last["tau_final"]
    five = ev.evaluate_predictor(split, (0.25,), tau_epochs=5, **kw)[0].metrics
    assert five["tau_final"] == last["tau_final"]  # same training, only the averaging differs
    assert five["tau"] != five["tau_final"]
    with pytest.raises(ValueError, match="tau_epochs"):
        ev.evaluate_predictor(split, (0.25,), tau_epochs=0, **kw)


def test_aux_pool_fits_the_auxiliary_head_on_the_unlabeled_pool() -> None:
    split = _tiny_split()
    zs = FakeZeroShot(split.space)
    kw = dict(
        n_subsets=1,
        seeds=(21,),
        epochs=3,
        device="cpu",
        variants=["GATES", "+ETS"],
        zero_shot=zs,
        predictor_kwargs=asdict(TINY),
    )
    plain = ev.evaluate_predictor(split, (0.1,), **kw)
    pooled = ev.evaluate_predictor(split, (0.1,), aux_pool=True, **kw)
    assert plain[0].metrics == pooled[0].metrics  # GATES has no auxiliary head: unchanged
    assert plain[1].metrics["tau"] != pooled[1].metrics["tau"]


def test_cli_eval_predictor(tmp_path, monkeypatch, capsys) -> None:
    from gates_sampler import cli

    out = tmp_path / "runs.json"
    code = cli.main(
        [
            "eval-predictor",
            "--ratios",
            "0.1",
            "--subsets",
            "1",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--test-cells",
            "500",
            "--no-timing",
            "--no-progress",
            "--device",
            "cpu",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "0.1%" in printed and "paper tau" in printed and "0.4309" in printed and "test 500 cells" in printed
    record = json.loads(out.read_text())
    assert record["runs"][0]["n_train"] == 7 and record["config"]["seeds_used"] == [21]

    def missing(space):
        raise ImportError("no zero-shot package in this build")

    monkeypatch.setattr("gates_sampler.commands.eval_predictor.load_zero_shot", missing)
    assert cli.main(["eval-predictor", "--encoder", "gates++", "--no-timing"]) == 3
    assert "no zero-shot package" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["eval-predictor", "--ratios", "150"])


def test_better_pairs_skip_ties() -> None:
    from gates_sampler.predictor.losses import better_pairs

    y = torch.tensor([0.3, 0.1, 0.9, 0.5, 0.5])
    hi, lo = better_pairs(y)
    # 10 pairs, one tie (3, 4); listed by hand as (better, worse)
    expected = {(0, 1), (2, 0), (2, 1), (2, 3), (2, 4), (3, 0), (3, 1), (4, 0), (4, 1)}
    assert len(hi) == 9 and set(zip(hi.tolist(), lo.tolist())) == expected


def test_cli_eval_predictor_passes_zero_shot_options(monkeypatch, capsys) -> None:
    from gates_sampler import cli

    seen: dict = {}

    def fake(split, ratios, **kw):
        seen.update(kw)
        return []

    monkeypatch.setattr("gates_sampler.commands.eval_predictor.load_zero_shot", lambda space: "provider")
    monkeypatch.setattr("gates_sampler.commands.eval_predictor.evaluate_predictor", fake)
    cli.main(
        [
            "eval-predictor",
            "--encoder",
            "gates++",
            "--aux-pool",
            "--arch-input",
            "--aux-weight",
            "0.1",
            "--ratios",
            "0.5",
            "--no-timing",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert seen["aux_pool"] is True and seen["zero_shot"] == "provider"
    assert seen["predictor_kwargs"] == {"arch_input": True, "aux_weight": 0.1}
    seen.clear()
    cli.main(["eval-predictor", "--ratios", "0.5", "--no-timing", "--no-progress", "--device", "cpu"])
    assert seen["predictor_kwargs"] is None and seen["aux_pool"] is False
    assert "split seed 0" in capsys.readouterr().out
    cli.main(
        ["eval-predictor", "--split", "first", "--ratios", "0.5", "--no-timing", "--no-progress", "--device", "cpu"]
    )
    assert "first 7813 in benchmark index order" in capsys.readouterr().out
    assert cli.main(["eval-predictor", "--aux-weight", "nan", "--no-timing", "--device", "cpu"]) != 0
    assert "--aux-weight must be a finite number >= 0, got nan" in capsys.readouterr().err


# ----- NAS-Bench-301 split --------------------------------------------------------------------------
class _FakeNB301:
    """Labels DARTS cells by a fixed function of their genotype text, so the split runs without the surrogate."""

    space = DartsSpace()
    direction = "maximize"
    epoch = 98
    metric = "val_acc"

    def query_many(self, archs):
        return np.array([sum(map(ord, str(a))) % 997 / 10.0 for a in archs])


def test_nb301_split_is_disjoint_and_fixed_by_its_seed() -> None:
    bench = _FakeNB301()
    a = ev.nb301_split(seed=3, pool_size=40, test_size=30, benchmark=bench)
    b = ev.nb301_split(seed=3, pool_size=40, test_size=30, benchmark=bench)
    c = ev.nb301_split(seed=4, pool_size=40, test_size=30, benchmark=bench)
    assert (a.pool_size, len(a.test_archs)) == (40, 30)
    assert a.train_archs == b.train_archs and a.test_archs == b.test_archs
    assert a.train_archs != c.train_archs
    keys = [bench.space.canonical_key(x) for x in a.train_archs + a.test_archs]
    assert len(set(keys)) == 70  # no cell twice, in particular none in both pool and test set
    np.testing.assert_array_equal(a.train_values, bench.query_many(a.train_archs))
    np.testing.assert_array_equal(a.test_values, bench.query_many(a.test_archs))
    with pytest.raises(ValueError, match="test_size must be an int >= 2"):
        ev.nb301_split(pool_size=40, test_size=1, benchmark=bench)


def test_cli_eval_predictor_nb301_passes_sizes_and_preset(monkeypatch, capsys, tmp_path) -> None:
    from gates_sampler import cli

    seen: dict = {}

    def split(path, seed, pool_size, test_size, epoch):
        seen.update(path=path, seed=seed, pool_size=pool_size, test_size=test_size, epoch=epoch)
        return ev.nb301_split(seed=seed, pool_size=pool_size, test_size=test_size, benchmark=_FakeNB301())

    def fake(split, ratios, **kw):
        seen.update(ratios=list(ratios), **kw)
        return []

    monkeypatch.setattr("gates_sampler.commands.eval_predictor.nb301_split", split)
    monkeypatch.setattr("gates_sampler.commands.eval_predictor.evaluate_predictor", fake)
    argv = ["eval-predictor", "--benchmark", "nb301", "--nb301-path", str(tmp_path), "--no-timing", "--no-progress"]
    assert cli.main([*argv, "--device", "cpu", "--pool-size", "50", "--test-size", "20", "--split-seed", "7"]) == 0
    assert (seen["pool_size"], seen["test_size"], seen["seed"], seen["epoch"]) == (50, 20, 7, 98)
    assert seen["ratios"] == [0.005, 0.01, 0.025, 0.1]  # the NB301 default training sizes
    assert seen["predictor_kwargs"] is None
    assert "NAS-Bench-301 surrogate (epoch 98)" in capsys.readouterr().out
    assert cli.main([*argv, "--device", "cpu", "--preset", "paper-nb301", "--ratios", "1"]) == 0
    assert (seen["pool_size"], seen["test_size"]) == (5896, 5000)
    assert seen["predictor_kwargs"] == {"op_dim": 32, "hidden": 64, "n_layers": 4}


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_edge_list_encoding_equals_the_padded_form(space_name: str) -> None:
    """encode_cell gates and sums the list of existing edges; it must compute what the padded [B, V, V, D]
    form of Eq. 5/6 computes, values and gradients, with and without per-op zero-shot features."""
    space = NB201Space() if space_name == "nb201" else DartsSpace()
    rng = np.random.default_rng(0)
    batch = space.encode([space.sample(rng) for _ in range(40)])
    n_ops = int(max(int(cell.ops.max()) for cell in batch.cells))
    for features in (0, 3):
        torch.manual_seed(0)
        kw = dict(n_cells=len(batch.cells), n_inputs=batch.n_inputs, op_dim=8, hidden=16, n_layers=3)
        enc = GatesEncoder("edge", n_ops, op_feature_dim=features, **kw)
        cells = [
            CellBatch(c.ops, c.readout, op_features=torch.randn(*c.ops.shape, features) if features else None)
            for c in batch.cells
        ]
        sparse = torch.cat([enc.encode_cell(i, c) for i, c in enumerate(cells)], dim=-1)
        grads = torch.autograd.grad(sparse.square().sum(), list(enc.parameters()), allow_unused=True)
        dense = torch.cat([enc.encode_cell_dense(i, c) for i, c in enumerate(cells)], dim=-1)
        ref = torch.autograd.grad(dense.square().sum(), list(enc.parameters()), allow_unused=True)
        assert torch.allclose(sparse, dense, atol=1e-6)
        for g, r in zip(grads, ref):
            assert (g is None and r is None) or torch.allclose(g, r, atol=1e-5)
