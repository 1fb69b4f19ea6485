"""GatesPredictorSearcher and the baselines: ask/tell semantics, failures, persistence, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_spaces

import gates_sampler.searcher as searcher_module
from gates_sampler import GatesPredictorSearcher
from gates_sampler.baselines import RandomSearcher, REASearcher
from gates_sampler.benchmarks import NB201Benchmark
from gates_sampler.searcher import SearchSettings
from gates_sampler.spaces import DartsSpace, NB101Space, NB201Space

FAST = {"epochs": 15, "hidden": 32, "op_dim": 16, "n_layers": 4}
FAST_HEAD_WIDTH = 300  # the default score head's last hidden layer


@pytest.fixture(scope="module")
def bench() -> NB201Benchmark:
    return NB201Benchmark("cifar10")


def make(seed: int = 0, **kw) -> GatesPredictorSearcher:
    """A fast searcher; keywords that name a :class:`SearchSettings` field go into its settings."""
    research = {k: kw.pop(k) for k in list(kw) if k in SearchSettings.names()}
    kw.setdefault("predictor", FAST)
    kw.setdefault("n_startup", 5)
    kw.setdefault("n_candidates", 50)
    kw.setdefault("zero_shot", False)
    return GatesPredictorSearcher(NB201Space(), seed=seed, device="cpu", settings=SearchSettings(**research), **kw)


def drive(searcher, bench, steps: int) -> list[str]:
    proposed = []
    for _ in range(steps):
        a = searcher.ask()
        proposed.append(str(a))
        searcher.tell(a, bench.query(a))
    return proposed


def test_ask_returns_distinct_unseen_architectures(bench):
    s = make()
    seen = set()
    for _ in range(12):
        batch = s.ask(3)
        keys = {s.space.canonical_key(a) for a in batch}
        assert len(keys) == 3, "ask(n) must return n distinct architectures"
        assert not keys & seen, "an evaluated or pending architecture was proposed again"
        seen |= keys
        for a in batch:
            s.tell(a, bench.query(a))
    assert s.n_told == 36 and not s.pending


def test_pending_architectures_are_never_proposed(bench):
    s = make()
    drive(s, bench, 6)
    held = s.ask(4)  # four "workers" hold these
    held_keys = {s.space.canonical_key(a) for a in held}
    for _ in range(5):
        a = s.ask()
        assert s.space.canonical_key(a) not in held_keys
        s.tell(a, bench.query(a))
    assert {s.space.canonical_key(a) for a in s.pending} == held_keys


def test_uses_predictor_after_startup_and_beats_random_on_average(bench):
    # 25 evaluations, 3 seeds: the predictor-guided phase must improve over random search's best.
    gates, rand = [], []
    for seed in range(3):
        g = make(seed, n_candidates=100)
        drive(g, bench, 25)
        gates.append(g.best[1])
        r = RandomSearcher(NB201Space(), seed=seed)
        drive(r, bench, 25)
        rand.append(r.best[1])
    assert g.predictor.trained
    assert np.mean(gates) > np.mean(rand)


def test_failures_are_recorded_never_reproposed_and_not_trained_on(bench):
    s = make()
    failed = []
    for i in range(12):
        a = s.ask()
        value = [None, math.nan, math.inf][i % 3] if i % 2 == 0 else bench.query(a)
        if i % 2 == 0:
            failed.append(s.space.canonical_key(a))
        s.tell(a, value)
    assert sum(o.failed for o in s.history) == 6
    archs, values = s.training_data()
    assert len(archs) == 6 and np.all(np.isfinite(values))
    for _ in range(10):
        a = s.ask()
        assert s.space.canonical_key(a) not in failed
        s.tell(a, bench.query(a))


def test_tell_accepts_unasked_architectures_and_duplicates(bench):
    s = make()
    a = NB201Space().parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    )
    s.tell(a, 90.0)
    s.tell(str(a), 92.0)  # the string notation is accepted too
    assert s.history[0].asked is False
    archs, values = s.training_data()
    assert len(archs) == 1 and values[0] == pytest.approx(91.0)
    assert s.best == (a, pytest.approx(91.0))
    for _ in range(8):
        assert s.space.canonical_key(s.ask()) != s.space.canonical_key(a)


@pytest.mark.parametrize(
    "arch, value, match",
    [
        ("|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|", 1.0, "unknown operation"),
        ("not an arch", 1.0, "cannot parse"),
        ({"node1_from0": "none"}, 1.0, "missing parameter"),
        (42, 1.0, "expected an architecture"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "high", "value must be a number"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", True, "value must be a number"),
    ],
)
def test_tell_rejects_bad_input_and_keeps_history(bench, arch, value, match):
    s = make()
    drive(s, bench, 3)
    before = s.history
    with pytest.raises(ValueError, match=match):
        s.tell(arch, value)
    assert s.history == before


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="direction"):
        GatesPredictorSearcher(NB201Space(), direction="up")
    with pytest.raises(ValueError, match="candidates"):
        GatesPredictorSearcher(NB201Space(), candidates="best")
    with pytest.raises(ValueError, match="n_startup"):
        GatesPredictorSearcher(NB201Space(), n_startup=1)
    with pytest.raises(ValueError, match="refit must be one of"):
        GatesPredictorSearcher(NB201Space(), settings={"refit": "sometimes"})
    with pytest.raises(ValueError, match=r"unknown search setting\(s\) \['refits'\]; allowed: \['refit', "):
        GatesPredictorSearcher(NB201Space(), settings={"refits": "scratch"})
    with pytest.raises(TypeError, match="refit"):  # research settings are no constructor keywords
        GatesPredictorSearcher(NB201Space(), refit="scratch")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="n must be"):
        make().ask(0)


def test_same_seed_same_proposals(bench):
    assert drive(make(3), bench, 14) == drive(make(3), bench, 14)
    assert drive(make(3), bench, 14) != drive(make(4), bench, 14)


@pytest.mark.parametrize("refit", ["warm", "scratch"])
def test_save_load_mid_run_reproduces_the_uninterrupted_run(bench, tmp_path, refit):
    full = make(7, refit=refit)
    reference = drive(full, bench, 16)

    first = make(7, refit=refit)
    part = drive(first, bench, 9)
    pending = first.ask(1)  # an architecture handed out before the interruption survives too
    path = tmp_path / "state.pt"
    first.save(path)
    resumed = GatesPredictorSearcher.load(path, NB201Space(), device="cpu")
    assert resumed.settings == first.settings and resumed.refit == refit  # the state recorded the settings
    assert [str(a) for a in resumed.pending] == [str(a) for a in pending]
    resumed.tell(pending[0], bench.query(pending[0]))
    rest = drive(resumed, bench, 6)
    assert part + [str(pending[0])] + rest == reference


def test_no_refit_when_nothing_new(bench):
    s = make()
    drive(s, bench, 8)
    s.ask()
    weights = {k: v.clone() for k, v in s.predictor.net.state_dict().items()}
    s.ask()  # nothing told in between
    assert all((weights[k] == v).all() for k, v in s.predictor.net.state_dict().items())


def test_corrupt_or_foreign_state_files_raise_clearly(bench, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"definitely not a state")
    with pytest.raises(ValueError, match="not a readable searcher state"):
        GatesPredictorSearcher.load(bad)
    s = make()
    drive(s, bench, 4)
    good = tmp_path / "good.pt"
    s.save(good)
    with pytest.raises(ValueError, match="space"):
        GatesPredictorSearcher.load(good, DartsSpace())
    other = make(seed=1)
    with pytest.raises(ValueError, match="different settings"):
        other.load_state_dict(GatesPredictorSearcher.read_state(good))
    assert other.n_told == 0  # nothing half-loaded


def test_minimize_direction(bench):
    s = make(direction="minimize")
    down = []
    for _ in range(10):
        a = s.ask()
        down.append(str(a))
        s.tell(a, -bench.query(a))
    arch, value = s.best
    assert value == min(o.value for o in s.history) and value == -bench.query(arch)
    # minimising -f is maximising f: the same seed proposes the same architectures
    assert down == drive(make(), bench, 10)


def _record_candidate_pools(searcher: GatesPredictorSearcher) -> list[list]:
    """Keep a copy of every candidate pool the searcher draws (a spy on this one object)."""
    pools: list[list] = []
    original = searcher._candidate_pool

    def pool(n: int) -> list:
        pools.append(list(original(n)))
        return pools[-1]

    searcher._candidate_pool = pool  # type: ignore[method-assign]
    return pools


def test_candidate_modes_and_other_spaces(bench):
    for mode in ("mutation", "mixed"):
        s = make(candidates=mode)
        drive(s, bench, 8)
        assert s.n_complete == 8
        if mode == "mutation":
            # after the 5 random startup cells, each proposal is one edit away from an evaluated cell
            for i in range(5, 8):
                parents = [o.arch for o in s.history[:i]]
                near = {s.space.canonical_key(nb) for p in parents for nb in s.space.neighbors(p)}
                assert s.space.canonical_key(s.history[i].arch) in near
    for space in (DartsSpace(), NB101Space()):
        s = GatesPredictorSearcher(
            space,
            seed=0,
            n_startup=4,
            n_candidates=20,
            candidates="random",
            predictor=FAST,
            device="cpu",
            settings={"acquisition": "mean"},  # the predictor's top-1 (large spaces default to "ei")
        )
        rng = np.random.default_rng(0)
        for _ in range(7):
            a = s.ask()
            s.tell(a, float(rng.normal()))
        pools = _record_candidate_pools(s)
        asked = s.ask(3)
        assert s.predictor.trained and len(pools) == 1 and len(pools[0]) == 20
        # the three proposals are the three candidates the trained predictor scores highest
        scores = s.predict(pools[0])
        top = [pools[0][i] for i in np.argsort(-scores)[:3]]
        assert {str(a) for a in asked} == {str(a) for a in top}
        np.testing.assert_array_equal(s.predict(asked), s.predictor.score(asked))


def test_rea_and_random_baselines(bench, tmp_path):
    for cls in (RandomSearcher, REASearcher):
        s = cls(NB201Space(), seed=0)
        drive(s, bench, 30)
        keys = [s.space.canonical_key(o.arch) for o in s.history]
        assert len(set(keys)) == 30
        if cls is REASearcher:
            # after 10 random cells, each proposal is one edit away from a parent that won a tournament of 3
            # in the population (the last 10 results): the parent is never one of the population's 2 worst
            for i in range(10, 30):
                population = sorted(s.history[i - 10 : i], key=lambda o: o.value)[2:]
                near = {s.space.canonical_key(nb) for o in population for nb in s.space.neighbors(o.arch)}
                assert keys[i] in near, i
        s.save(tmp_path / "b.pt")
        t = cls.load(tmp_path / "b.pt")
        assert drive(t, bench, 5) == drive(s, bench, 5)


def test_space_exhaustion_raises():
    from gates_sampler.spaces import CellSpace

    tiny = CellSpace(kind="edge", ops=["a", "b"], n_nodes=1, n_inputs=1, name="tiny")
    s = RandomSearcher(tiny, seed=0)
    for a in s.ask(2):
        s.tell(a, 1.0)
    with pytest.raises(RuntimeError, match="exhausted"):
        s.ask()


class CountingZeroShot:
    """A cheap FeatureProvider: per-op one-hot flags and operation counts as architecture targets."""

    op_feature_dim = 1
    arch_feature_dim = 2

    def __init__(self) -> None:
        self.space = NB201Space()

    def op_features(self, archs):
        return [(c.ops == 4).float().unsqueeze(-1) for c in self.space.encode(archs).cells]

    def arch_features(self, archs):
        return np.array(
            [[sum(o == "nor_conv_3x3" for o in a.ops), sum(o == "none" for o in a.ops)] for a in archs], dtype=float
        )


def test_scored_candidates_train_the_auxiliary_head(bench, monkeypatch):
    s = make(zero_shot=CountingZeroShot(), n_unlabeled=120)
    fits = []
    original = s.predictor.fit

    def spy(*args, **kw):
        fits.append(len(kw.get("aux_archs") or []))
        return original(*args, **kw)

    monkeypatch.setattr(s.predictor, "fit", spy)
    drive(s, bench, 9)
    # 5 random proposals, then 4 predictor asks of 50 candidates each: the set is capped at 120
    assert fits == [50, 100, 120, 120]
    assert len(s._unlabeled) == 120 and s._unlabeled_zs[1].shape == (120, 2)
    assert s._unlabeled_zs[0][0].shape[0] == 120

    reads = make(zero_shot=CountingZeroShot(), predictor={**FAST, "arch_input": True})
    assert len(set(drive(reads, bench, 8))) == 8

    off = make(zero_shot=CountingZeroShot(), n_unlabeled=0)
    drive(off, bench, 7)
    assert off._unlabeled == []
    with pytest.raises(ValueError, match="n_unlabeled"):
        make(n_unlabeled=-1)


def test_save_load_with_unlabeled_set_reproduces_the_run(bench, tmp_path):
    a = make(seed=4, zero_shot=CountingZeroShot(), n_unlabeled=80)
    drive(a, bench, 8)
    a.save(tmp_path / "s.pt")
    b = GatesPredictorSearcher.load(tmp_path / "s.pt", zero_shot=CountingZeroShot())
    assert [str(x) for x in b._unlabeled] == [str(x) for x in a._unlabeled]
    assert drive(a, bench, 3) == drive(b, bench, 3)


def test_default_is_gates_plus_plus_on_nb201_from_the_bundled_table(bench, monkeypatch, tmp_path):
    from gates_sampler.zeroshot import ZeroShotProvider

    monkeypatch.setenv("GATES_SAMPLER_CACHE", str(tmp_path / "empty.sqlite"))  # nothing cached: the table must serve
    monkeypatch.setattr(ZeroShotProvider, "compute_one", lambda *_a, **_k: pytest.fail("computed zero-shot metrics"))
    s = GatesPredictorSearcher(NB201Space(), seed=0, device="cpu", n_startup=4, n_candidates=30, predictor=FAST)
    assert s.zero_shot is not None and s.zero_shot.table is not None
    c = s.predictor.config
    assert (c["op_feature_dim"], c["aux_dim"], c["arch_input"]) == (6, 5, True)
    drive(s, bench, 7)
    assert s.predictor.trained and s._unlabeled  # scored candidates joined the auxiliary head's set


def test_auto_falls_back_to_plain_gates_where_features_would_be_computed(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="gates_sampler"):
        darts = GatesPredictorSearcher(DartsSpace(), seed=0, device="cpu")
    assert darts.zero_shot is None and darts.predictor.config["op_feature_dim"] == 0
    assert "zero_shot=True" in caplog.text
    # predictors that cannot read zero-shot inputs keep plain GATES on NB201 too
    from gates_sampler.predictor import Predictor

    sp = NB201Space()
    assert GatesPredictorSearcher(sp, predictor={"encoder": "mlp"}, device="cpu").zero_shot is None
    assert GatesPredictorSearcher(sp, predictor=Predictor(sp, device="cpu"), device="cpu").zero_shot is None
    assert GatesPredictorSearcher(sp, zero_shot=False, device="cpu").predictor.config["aux_dim"] == 0
    # a predictor asking for zero-shot inputs (as a saved GATES++ state does) gets a provider that computes them
    wants = GatesPredictorSearcher(DartsSpace(), predictor={"op_feature_dim": 6, "aux_dim": 5}, device="cpu")
    assert wants.zero_shot is not None and wants.zero_shot.table is None


def test_make_predictor_assembles_what_the_searcher_uses() -> None:
    import torch

    from gates_sampler.predictor import Predictor, make_predictor

    sp = NB201Space()
    pred, provider = make_predictor(sp, zero_shot=False, predictor={**FAST, "device": "cpu"}, seed=3)
    assert provider is None and pred.device.type == "cpu"
    assert pred.config["epochs"] == 15 and pred.settings.hidden == 32 and pred.config["aux_dim"] == 0
    # unset options take the search's defaults: 100 epochs; with a provider, the full GATES++ scheme
    plain, _ = make_predictor(sp, zero_shot=False, seed=3, device="cpu")
    gpp, zs = make_predictor(sp, seed=3, device="cpu")
    assert plain.config["epochs"] == 100 and zs is not None and zs.table is not None
    assert (gpp.config["op_feature_dim"], gpp.config["aux_dim"], gpp.config["arch_input"]) == (6, 5, True)
    # the seed fixes the initial weights; the searcher's state records pred.config, which rebuilds it
    again, _ = make_predictor(sp, zero_shot=False, predictor=plain.config, seed=3, device="cpu")
    assert again.config == plain.config
    assert all(torch.equal(a, b) for a, b in zip(plain.net.state_dict().values(), again.net.state_dict().values()))
    with pytest.raises(ValueError, match="another space object"):
        make_predictor(sp, predictor=Predictor(NB201Space(), device="cpu"))
    with pytest.raises(TypeError, match="predictor must be a Predictor, a dict"):
        make_predictor(sp, predictor=["gates"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="zero_shot=True needs a built-in network"):
        make_predictor(make_spaces()["edge"], zero_shot=True)


# ----- candidates="evolve" ------------------------------------------------------------------------------
EVOLVE = {"candidates": "evolve", "n_candidates": 30, "evolve_rounds": 2, "evolve_children": 40, "evolve_parents": 5}


def test_evolve_never_proposes_seen_or_pending_cells(bench):
    s = make(**EVOLVE)
    drive(s, bench, 6)
    held = s.ask(4)  # four workers hold these
    seen = {s.space.canonical_key(a) for a in held} | {s.space.canonical_key(o.arch) for o in s.history}
    for _ in range(4):
        batch = s.ask(3)
        keys = {s.space.canonical_key(a) for a in batch}
        assert len(keys) == 3 and not keys & seen
        seen |= keys
        for a in batch:
            s.tell(a, bench.query(a))


def test_evolve_is_deterministic_and_differs_from_the_random_pool(bench):
    first = drive(make(3, **EVOLVE), bench, 10)
    assert first == drive(make(3, **EVOLVE), bench, 10)
    assert first != drive(make(3, **{**EVOLVE, "candidates": "mixed"}), bench, 10)


def test_evolve_scores_every_round_and_returns_the_top_scored(bench, monkeypatch):
    s = make(**EVOLVE)
    drive(s, bench, 6)
    scored: list = []
    real = s.predictor.score

    def score(archs, *args, **kwargs):
        out = real(archs, *args, **kwargs)
        scored.append((list(archs), out))
        return out

    monkeypatch.setattr(s.predictor, "score", score)
    best = s.ask()
    # the pool of "mixed" (30 random + 30 mutations of the best told cells), then two rounds of 40 children
    assert [len(a) for a, _ in scored] == [60, 40, 40]
    top = max(zip((x for a, _ in scored for x in a), (v for _, o in scored for v in o)), key=lambda t: t[1])
    assert str(best) == str(top[0])


def test_top_by_lineage_spreads_a_batch_over_lineages():
    from gates_sampler.searcher import top_by_lineage

    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    lineage = ["a", "a", "b", "a", "c"]
    assert top_by_lineage(scores, lineage, 1) == [0]
    assert top_by_lineage(scores, lineage, 3) == [0, 2, 4]
    assert top_by_lineage(scores, lineage, 5) == [0, 2, 4, 1, 3]


def test_evolve_settings_are_checked():
    with pytest.raises(ValueError, match="evolve_children must be an int >= 1, got 0"):
        SearchSettings(evolve_children=0)
    with pytest.raises(ValueError, match="evolve_rounds must be an int >= 0, got -1"):
        SearchSettings(evolve_rounds=-1)


def test_defaults_follow_the_size_of_the_space():
    """candidates="auto" and the predictor's sizes follow SearchSpace.is_large; explicit choices win."""
    small, large = NB201Space(), DartsSpace()
    assert not small.is_large and large.is_large and NB101Space().is_large
    assert 4 < small.log10_size < 5 < 6 < large.log10_size
    s_small = GatesPredictorSearcher(small, seed=0, zero_shot=False, device="cpu")
    s_large = GatesPredictorSearcher(large, seed=0, device="cpu")
    assert (s_small.candidates, s_large.candidates) == ("staged", "mixed")
    assert s_small.pool_mode == "random"  # the paper's pool until SearchSettings.local_from results
    assert (s_small.warm_epochs, s_large.warm_epochs) == (10, 30)
    assert GatesPredictorSearcher(large, seed=0, settings={"warm_epochs": 4}, device="cpu").warm_epochs == 4
    with pytest.raises(ValueError, match="warm_epochs must be None or an int >= 1, got 0"):
        SearchSettings(warm_epochs=0)
    assert s_small.predictor.config["hidden"] == 128 and s_small.predictor.config["n_layers"] == 5
    assert (s_large.predictor.config["op_dim"], s_large.predictor.config["hidden"]) == (32, 64)
    assert s_large.predictor.config["n_layers"] == 4
    explicit = GatesPredictorSearcher(large, seed=0, candidates="random", predictor={"hidden": 96}, device="cpu")
    assert explicit.candidates == "random" and explicit.predictor.config["hidden"] == 96
    assert explicit.predictor.config["op_dim"] == 32  # the other sizes keep the large-space default
    # a large-space searcher proposes from random cells and mutations of the best ones
    rng = np.random.default_rng(0)
    s = GatesPredictorSearcher(large, seed=0, n_startup=4, n_candidates=20, predictor=FAST, device="cpu")
    for _ in range(6):
        a = s.ask()
        s.tell(a, float(rng.normal()))
    pools = _record_candidate_pools(s)
    s.ask()
    assert len(pools) == 1 and len(pools[0]) == 40


# ----- candidates="local" and acquisition="thompson" ---------------------------------------------------
def test_local_scores_every_unseen_neighbour_of_the_best_cells(bench, monkeypatch):
    s = make(candidates="local", n_mutation_parents=3, n_candidates=20)
    drive(s, bench, 8)
    held = s.ask()  # pending: must not be scored again
    scored: list = []
    real = s.predictor.score

    def score(archs, *args, **kwargs):
        scored.append(list(archs))
        return real(archs, *args, **kwargs)

    monkeypatch.setattr(s.predictor, "score", score)
    s.ask()
    (pool,) = scored
    keys = [s.space.canonical_key(a) for a in pool]
    seen = {s.space.canonical_key(o.arch) for o in s.history} | {s.space.canonical_key(held)}
    archs, values = s.training_data()
    parents = [archs[i] for i in np.argsort(-values)[:3]]
    neighbours = {s.space.canonical_key(n) for p in parents for n in s.space.neighbors(p)} - seen
    assert len(keys) == len(set(keys)) and not set(keys) & seen
    assert neighbours <= set(keys)  # the whole neighbourhood, not a sample of it
    assert len(set(keys) - neighbours) > 0  # plus the paper's random candidates


def test_thompson_draws_one_posterior_function_per_ask(bench):
    s = make(acquisition="thompson", predictor={**FAST, "head_dropout": 0.5})
    drive(s, bench, 8)
    pool = s.space.sample_unique(np.random.default_rng(1), 60)
    mean = s.predictor.score(pool)
    draws = [s.predictor.score(pool, sample=True) for _ in range(2)]
    assert not np.allclose(draws[0], draws[1]) and not np.allclose(draws[0], mean)
    # a seeded searcher proposes the same cells again; they differ from top-1 of the mean scores
    assert drive(make(3, acquisition="thompson"), bench, 10) == drive(make(3, acquisition="thompson"), bench, 10)
    assert drive(make(3, acquisition="thompson"), bench, 12) != drive(make(3), bench, 12)


def test_thompson_needs_dropout_in_the_score_head():
    with pytest.raises(ValueError, match="acquisition must be one of"):
        SearchSettings(acquisition="ucb")
    with pytest.raises(ValueError, match="head_dropout > 0"):
        make(acquisition="thompson", predictor={**FAST, "head_dropout": 0.0})
    with pytest.raises(ValueError, match="candidates other than 'evolve'"):
        make(acquisition="thompson", candidates="evolve")


def test_ei_proposes_the_candidate_of_highest_expected_improvement(bench, monkeypatch):
    """acquisition="ei": a Gaussian process on the predictor's head features of the evaluated cells,
    expected improvement over the best value; the proposal is its argmax, not the predictor's top-1."""
    from gates_sampler.predictor.gp import expected_improvement, fit_feature_gp

    s = make(acquisition="ei", gp_inputs="features")
    drive(s, bench, 8)
    pools = _record_candidate_pools(s)
    proposal = s.ask()
    (pool,) = pools
    archs, values = s.training_data()
    gp = fit_feature_gp(s.predictor.head_features(archs), values)
    mean, std = gp.predict(s.predictor.head_features(pool))
    ei = expected_improvement(mean, std, values.max())
    assert s.space.canonical_key(proposal) == s.space.canonical_key(pool[int(np.argmax(ei))])
    # the same seed proposes the same cells; the proposals differ from the predictor's top-1
    assert drive(make(3, acquisition="ei", gp_inputs="features"), bench, 10) == drive(
        make(3, acquisition="ei", gp_inputs="features"), bench, 10
    )
    assert drive(make(3, acquisition="ei", gp_inputs="features"), bench, 14) != drive(make(3), bench, 14)


def test_ei_with_evolve_scores_every_round_against_one_process(bench, monkeypatch):
    """candidates="evolve" with acquisition="ei": one Gaussian process per ask, and the children of every
    round are ranked by their expected improvement under it, not by the predictor's score."""
    import gates_sampler.searcher as searcher_module

    s = make(
        acquisition="ei",
        gp_inputs="features",
        candidates="evolve",
        evolve_rounds=2,
        evolve_children=20,
        n_candidates=20,
    )
    drive(s, bench, 8)
    fits: list = []
    real_fit = searcher_module.fit_feature_gp

    def counting_fit(x, y, **kwargs):
        fits.append(len(y))
        return real_fit(x, y, **kwargs)

    monkeypatch.setattr(searcher_module, "fit_feature_gp", counting_fit)
    scored: list = []
    monkeypatch.setattr(s.predictor, "score", lambda *a, **k: scored.append(a) or np.zeros(len(a[0])))
    s.ask()
    assert fits == [len(s.training_data()[1])] and not scored
    assert drive(make(3, acquisition="ei", gp_inputs="features", candidates="evolve"), bench, 12) != drive(
        make(3, candidates="evolve"), bench, 12
    )


def test_ei_on_the_one_hot_encoding_fits_no_predictor_and_proposes_the_same(bench, monkeypatch):
    """gp_inputs="onehot": the Gaussian process reads only the encoding, so the predictor is not refitted
    on every ask; fitting it anyway (as before) changes no proposal."""
    lean = make(4, acquisition="ei", gp_inputs="onehot")
    proposals = drive(lean, bench, 12)
    assert not lean.predictor.trained
    assert lean.predict([lean.space.sample(np.random.default_rng(0))]).shape == (1,)  # fitted on demand
    monkeypatch.setattr(GatesPredictorSearcher, "_ranks_with_predictor", property(lambda self: True))
    fitted = make(4, acquisition="ei", gp_inputs="onehot")
    assert drive(fitted, bench, 12) == proposals and fitted.predictor.trained


def test_ei_shortlist_ranks_only_the_predictors_top_cells(bench, monkeypatch):
    s = make(acquisition="ei", gp_inputs="onehot", ei_shortlist=5, n_candidates=40)
    drive(s, bench, 8)
    pools: list = []
    real = s._score_pool_with

    def spy(pool):
        out = real(pool)
        pools.append((pool, out[0]))
        return out

    monkeypatch.setattr(s, "_score_pool_with", spy)
    proposal = s.ask()
    ((pool, scores),) = pools
    shortlist = set(np.argsort(-s.predictor.score(pool), kind="stable")[:5].tolist())
    assert set(np.flatnonzero(np.isfinite(scores)).tolist()) == shortlist
    assert pool.index(proposal) in shortlist


def test_ei_batch_is_picked_one_by_one_with_the_earlier_picks_believed(bench, monkeypatch):
    """ask(n) under expected improvement: each pick joins the process at its predicted value before the
    next one is scored (kriging believer), and cells still pending join it the same way."""
    from gates_sampler.predictor.gp import expected_improvement, fit_feature_gp

    s = make(acquisition="ei", gp_inputs="onehot", n_candidates=40)
    drive(s, bench, 8)
    pools = _record_candidate_pools(s)
    batch = s.ask(3)
    (pool,) = pools
    archs, values = s.training_data()

    def onehot(cells):
        return [s.space.one_hot(cells).reshape(len(cells), -1).double().numpy()]

    gp = fit_feature_gp(onehot(archs), values)
    expected: list[int] = []
    for _ in range(3):
        ei = expected_improvement(*gp.predict(onehot(pool)), values.max())
        ei[expected] = -np.inf
        expected.append(int(np.argmax(ei)))
        x = onehot([pool[expected[-1]]])
        gp = gp.condition(x, gp.predict(x)[0])
    assert [s.space.canonical_key(a) for a in batch] == [s.space.canonical_key(pool[i]) for i in expected]
    plain = expected_improvement(*fit_feature_gp(onehot(archs), values).predict(onehot(pool)), values.max())
    assert expected != [int(i) for i in np.argsort(-plain, kind="stable")[:3]]  # not simply the top 3
    # the three are pending now: the next ask's process holds them at their predicted values
    believed: list = []
    real_believe = searcher_module._ExpectedImprovement.believe
    monkeypatch.setattr(
        searcher_module._ExpectedImprovement,
        "believe",
        lambda self, cells, op, arch: believed.append(len(cells)) or real_believe(self, cells, op, arch),
    )
    s.ask()
    assert believed == [3]


def test_ei_needs_a_scoring_head():
    with pytest.raises(ValueError, match="use gp_inputs='onehot'"):
        make(acquisition="ei", gp_inputs="features", predictor={**FAST, "loss": "comparator"})
    with pytest.raises(ValueError, match="gp_inputs must be one of"):
        SearchSettings(gp_inputs="graph")
    make(acquisition="ei", predictor={**FAST, "loss": "comparator"})  # the encoding needs no score head


def test_auto_acquisition_is_expected_improvement_on_large_spaces_only():
    small = make()
    assert small.acquisition == "mean" and small.settings.acquisition == "auto"
    large = GatesPredictorSearcher(DartsSpace(), seed=0, device="cpu", predictor=FAST, zero_shot=False)
    assert large.acquisition == "ei" and large.settings.gp_inputs == "onehot"
    explicit = GatesPredictorSearcher(
        DartsSpace(), seed=0, predictor=FAST, zero_shot=False, settings={"acquisition": "mean"}
    )
    assert explicit.acquisition == "mean"


def test_head_features_are_what_the_score_is_linear_in(bench):
    s = make()
    drive(s, bench, 8)
    pool = s.space.sample_unique(np.random.default_rng(2), 30)
    feats = s.predictor.head_features(pool)
    last = s.predictor.net.head[-1]
    linear = feats @ last.weight.detach().double().numpy().T + last.bias.detach().double().numpy()
    assert feats.shape == (30, FAST_HEAD_WIDTH)
    assert np.allclose(linear[:, 0], s.predictor.score(pool), atol=1e-5)
    assert s.predictor.head_features([]).shape == (0, FAST_HEAD_WIDTH)
    with pytest.raises(ValueError, match="comparator"):
        make(predictor={**FAST, "loss": "comparator"}).predictor.head_features(pool)


def test_staged_scores_the_random_pool_then_the_local_one(bench):
    """candidates="staged": the paper's random pool until local_from results, then the "local" pool; the
    proposals before the switch are exactly those of candidates="random"."""
    staged = make(candidates="staged", local_from=8)
    modes = []
    for _ in range(12):
        modes.append(staged.pool_mode)
        a = staged.ask()
        staged.tell(a, bench.query(a))
    assert modes == ["random"] * 8 + ["local"] * 4
    history = [str(o.arch) for o in staged.history]
    assert history[:8] == drive(make(candidates="random"), bench, 8)
    assert history != drive(make(candidates="random"), bench, 12)
    with pytest.raises(ValueError, match="local_from must be an int >= 0"):
        SearchSettings(local_from=-1)
