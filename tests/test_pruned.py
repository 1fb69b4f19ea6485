"""Trials that end early (pruned, stopped by a scheduler): intermediate results, the pairs rule,
training on them, and their place in a saved state."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import QUICK, TINY

from gates_sampler import GatesPredictorSearcher
from gates_sampler.benchmarks import NB201Benchmark
from gates_sampler.curves import better_matrix
from gates_sampler.searcher import SearchSettings
from gates_sampler.spaces import NB201Space


@pytest.fixture(scope="module")
def bench() -> NB201Benchmark:
    return NB201Benchmark("cifar10")


@pytest.fixture
def space() -> NB201Space:
    return NB201Space()


def distinct(space: NB201Space, n: int, seed: int = 0) -> list[Any]:
    return space.sample_unique(np.random.default_rng(seed), n)


# ----- the rule ---------------------------------------------------------------------------------
def test_pairs_rule_by_hand():
    nan = float("nan")
    # 0, 1 completed (final 90, 80); 2 pruned at step 1 (value 50); 3 pruned at step 2 (value 70); 4 pruned at
    # step 1 (value 60). Values at steps 1 and 2 (columns):
    finals = np.array([90.0, 80.0, nan, nan, nan])
    stops = np.array([-1, -1, 1, 2, 1])
    at = np.array(
        [
            [55.0, 75.0],  # 0: better than 2 at step 1 (not than 4), than 3 at step 2
            [40.0, 65.0],  # 1: worse than 2 and 4 at step 1 and than 3 at step 2: no pair with them
            [50.0, 50.0],  # 2 (stopped at 1; its value carried forward)
            [45.0, 70.0],  # 3: worse than 2 at step 1, but went further: no pair with 2; below 4 at 1: no pair
            [60.0, 60.0],  # 4: above 2 at step 1, both stopped there: 4 > 2
        ]
    )
    b = better_matrix(finals, stops, at, [1, 2])
    expected = {(0, 1), (0, 2), (0, 3), (4, 2)}
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(b))} == expected


def test_completed_trial_without_a_curve_stands_in_with_its_final_value():
    nan = float("nan")
    finals = np.array([80.0, 50.0, nan])
    stops = np.array([-1, -1, 3])
    at = np.array([[nan], [nan], [60.0]])
    b = better_matrix(finals, stops, at, [3])
    assert b[0, 2] and not b[1, 2] and not b[2, 1] and not b[2, 0]


# ----- the core API ------------------------------------------------------------------------------
def test_report_and_tell_pruned(space):
    s = GatesPredictorSearcher(space, seed=0, **QUICK)
    a, b = s.ask_batch(2)
    s.report(a, 1, 50.0)
    s.report(a, 2, 60.0)
    s.report(a, 2, 62.0)
    assert s.curve(a) == {1: 50.0, 2: 61.0}
    assert set(s.pending) == {a, b}  # reports do not end a trial
    obs = s.tell_pruned(a)
    assert obs.pruned and obs.step == 2 and obs.value == 61.0 and obs.asked and not obs.failed
    assert s.n_pruned == 1 and s.n_complete == 0 and s.best is None  # an intermediate value is not final
    assert s.space.canonical_key(a) in s.seen_keys() and s.pending == [b]
    # ended before reporting anything: a failure, never proposed again
    obs = s.tell_pruned(b)
    assert obs.failed and obs.step is None and s.n_pruned == 1
    assert s.space.canonical_key(b) in s.seen_keys()


def test_tell_pruned_with_its_last_step_and_minimize(space):
    s = GatesPredictorSearcher(space, direction="minimize", seed=0, **QUICK)
    a = s.ask()
    s.tell_pruned(a, step=3, value=0.7)
    assert s.curve(a) == {3: 0.7} and s.history[-1].value == 0.7
    _, values, _ = s.ranking_data()
    assert values.tolist() == [-0.7]  # internal values are higher-is-better


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda s, a: s.report(a, -1, 1.0), "step must be a non-negative int"),
        (lambda s, a: s.report(a, 1.5, 1.0), "step must be a non-negative int"),
        (lambda s, a: s.report(a, True, 1.0), "step must be a non-negative int"),
        (lambda s, a: s.report(a, 1, "high"), "value must be a number"),
        (lambda s, a: s.tell_pruned(a, value=1.0), "needs the step"),
        (lambda s, a: s.tell_pruned(a, step=2, value="x"), "value must be a number"),
    ],
)
def test_bad_reports_record_nothing(space, call, match):
    s = GatesPredictorSearcher(space, seed=0, **QUICK)
    a = s.ask()
    s.report(a, 1, 10.0)
    with pytest.raises(ValueError, match=match):
        call(s, a)
    assert s.curve(a) == {1: 10.0} and s.pending == [a] and s.n_told == 0


def test_non_finite_report_is_not_recorded(space):
    s = GatesPredictorSearcher(space, seed=0, **QUICK)
    a = s.ask()
    s.report(a, 1, float("nan"))
    s.report(a, 2, None)
    assert s.curve(a) == {}


# ----- training ----------------------------------------------------------------------------------
def _told(space, bench, learn: bool = True) -> tuple[GatesPredictorSearcher, list[Any], list[Any]]:
    """4 completed cells with curves, 6 pruned at step 1 with curves."""
    s = GatesPredictorSearcher(space, seed=0, **{**QUICK, "settings": SearchSettings(learn_from_pruned=learn)})
    archs = distinct(space, 10)
    finals, pruned = archs[:4], archs[4:]
    for a in finals:
        v = bench.query(a)
        s.report(a, 1, v - 20)
        s.report(a, 2, v - 5)
        s.tell(a, v)
    for a in pruned:
        s.tell_pruned(a, step=1, value=bench.query(a) - 20)
    return s, finals, pruned


def _fit_inputs(s, monkeypatch) -> dict[str, Any]:
    """The architectures and pair matrix the searcher's next fit passes to the predictor."""
    seen: dict[str, Any] = {}

    def fit(archs, values, *args, **kwargs):
        seen.update(archs=list(archs), better=kwargs.get("better"))
        return s.predictor

    monkeypatch.setattr(s.predictor, "fit", fit)
    s.fit_predictor()
    return seen


def test_the_predictor_trains_on_pairs_with_pruned_trials(space, bench, monkeypatch):
    s, finals, pruned = _told(space, bench)
    seen = _fit_inputs(s, monkeypatch)
    keys = [space.canonical_key(a) for a in seen["archs"]]
    assert keys == [space.canonical_key(a) for a in finals + pruned]
    better = seen["better"]
    assert better is not None and better.shape == (10, 10)
    # every pair the rule orders, and only those: pruned cells take part in them
    f_vals = [bench.query(a) for a in finals]
    p_vals = [bench.query(a) - 20 for a in pruned]
    at1 = [v - 20 for v in f_vals] + p_vals
    for i in range(10):
        for j in range(10):
            if i < 4 and j < 4:
                expected = f_vals[i] > f_vals[j]
            elif j >= 4:
                expected = at1[i] > at1[j]
            else:
                expected = False  # a pruned cell never ranks above a completed one
            assert better[i, j] == expected, (i, j)
    assert better[:, 4:].any()


def test_without_learning_pruned_trials_are_only_excluded(space, bench, monkeypatch):
    s, finals, pruned = _told(space, bench, learn=False)
    seen = _fit_inputs(s, monkeypatch)
    assert len(seen["archs"]) == 4 and seen["better"] is None
    assert {space.canonical_key(a) for a in pruned} <= s.seen_keys()


def test_pruned_trials_shape_the_ranking(space):
    """Two completed cells mislead about ``avg_pool_3x3`` on the edge 0 -> 3; 30 pruned cells do: the
    predictor that learns from them ranks cells with it below those without, the one that ignores them cannot."""
    rng = np.random.default_rng(1)
    params = [space.random_params(rng) for _ in range(600)]
    archs, seen_keys = [], set()
    for p in params:
        a = space.from_params(p)
        if space.canonical_key(a) not in seen_keys:
            seen_keys.add(space.canonical_key(a))
            archs.append(a)

    def bad(a):
        return space.to_params(a)["node3_from0"] == "avg_pool_3x3"

    with_none = [a for a in archs if bad(a)]
    without = [a for a in archs if not bad(a)]
    train_p = with_none[:15] + without[:15]
    test = with_none[15:40] + without[15:40]
    settings = dict(QUICK, predictor={**TINY, "epochs": 60}, n_startup=2)

    def auc(learn: bool) -> float:
        s = GatesPredictorSearcher(space, seed=3, **{**settings, "settings": SearchSettings(learn_from_pruned=learn)})
        # the one completed pair points the other way
        s.tell(with_none[40], 80.0)
        s.tell(without[40], 79.0)
        for i, a in enumerate(train_p):
            s.tell_pruned(a, step=1, value=(10.0 if bad(a) else 40.0) + 0.01 * i)
        scores = s.predict(test)
        bad_s, good_s = scores[:25], scores[25:]
        return float((good_s[:, None] > bad_s[None, :]).mean())

    assert auc(True) > 0.9
    assert auc(False) < 0.5


def test_reports_without_pruned_trials_change_nothing(space, bench):
    """Curves of completed trials alone: the proposals are those of a run without any reports."""

    def run(with_curves: bool) -> list[str]:
        s = GatesPredictorSearcher(space, seed=5, **QUICK)
        out = []
        for _ in range(7):
            a = s.ask()
            out.append(str(a))
            if with_curves:
                s.report(a, 1, bench.query(a) - 30)
            s.tell(a, bench.query(a))
        return out

    assert run(True) == run(False)


def test_startup_counts_pruned_trials_once_one_completed(space, bench):
    s = GatesPredictorSearcher(space, seed=0, **QUICK)
    for a in distinct(space, 5, seed=2):
        s.tell_pruned(a, step=1, value=bench.query(a) - 20)
    assert s.n_trained == 0  # no completed trial yet: still random
    s.ask()
    assert not s.predictor.trained
    s.tell(distinct(space, 6, seed=2)[5], 90.0)
    assert s.n_trained == 6
    s.ask()
    assert s.predictor.trained


def test_an_ei_search_without_fidelity_inputs_ends_its_random_start_on_completed_trials(space, bench, monkeypatch):
    """Unless gp_pruned="fidelity", its Gaussian process reads stopped trials only through completed ones
    (extrapolated from their curves) or not at all: trials that ended early do not end the random start
    (one completed trial and five stopped ones would leave the process one value)."""
    import gates_sampler.searcher as searcher_module

    s = GatesPredictorSearcher(space, seed=0, **{**QUICK, "settings": SearchSettings(acquisition="ei", warm_epochs=1)})
    fits: list[int] = []
    real = searcher_module.fit_feature_gp

    def spy(x, y, **kwargs):
        fits.append(len(y))
        return real(x, y, **kwargs)

    monkeypatch.setattr(searcher_module, "fit_feature_gp", spy)
    archs = distinct(space, 9, seed=3)
    s.tell(archs[0], bench.query(archs[0]))
    for a in archs[1:6]:
        s.tell_pruned(a, step=1, value=bench.query(a) - 20)
    assert s.n_trained == 6 >= s.n_startup
    s.ask()
    assert fits == []  # still the random start
    for a in archs[6:9]:
        s.tell(a, bench.query(a))
    s.ask()
    assert fits == [4]  # the four completed trials


def test_yes_no_settings_read_true_and_false_as_written_in_a_method_spec():
    """``gates[learn_from_pruned=false]`` must switch it off (``bool("false")`` is true); other values are
    refused."""
    assert SearchSettings(learn_from_pruned="false").learn_from_pruned is False
    assert SearchSettings(learn_from_pruned="False").learn_from_pruned is False
    assert SearchSettings(distinct_sampling="true").distinct_sampling is True
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="learn_from_pruned must be true or false"):
            SearchSettings(learn_from_pruned=bad)


def test_predictor_refuses_inconsistent_pairs(space):
    s = GatesPredictorSearcher(space, seed=0, **QUICK)
    archs = distinct(space, 3)
    bad = np.zeros((3, 3), dtype=bool)
    bad[0, 1] = bad[1, 0] = True
    with pytest.raises(ValueError, match="both ways"):
        s.predictor.fit(archs, [1.0, 2.0, 3.0], better=bad)
    with pytest.raises(ValueError, match="shape"):
        s.predictor.fit(archs, [1.0, 2.0, 3.0], better=np.zeros((2, 2), dtype=bool))
    mse = GatesPredictorSearcher(space, seed=0, **{**QUICK, "predictor": {**TINY, "loss": "mse"}})
    with pytest.raises(ValueError, match="pairwise loss"):
        mse.predictor.fit(archs, [1.0, 2.0, 3.0], better=np.zeros((3, 3), dtype=bool))


# ----- state -------------------------------------------------------------------------------------
def test_state_round_trip_keeps_curves_and_pruned(space, bench, tmp_path):
    s, finals, pruned = _told(space, bench)
    running = s.ask()
    s.report(running, 1, 33.0)
    s.ask()
    path = tmp_path / "state.pt"
    s.save(path)
    r = GatesPredictorSearcher.load(path, space, **{k: v for k, v in QUICK.items() if k != "settings"})
    assert r.n_pruned == s.n_pruned == 6
    assert r.curve(running) == {1: 33.0} and r.curve(finals[0]) == s.curve(finals[0])
    assert [(o.pruned, o.step, o.value) for o in r.history] == [(o.pruned, o.step, o.value) for o in s.history]
    a1, v1, b1 = s.ranking_data()
    a2, v2, b2 = r.ranking_data()
    assert [str(a) for a in a1] == [str(a) for a in a2] and np.array_equal(v1, v2)
    assert b1 is not None and b2 is not None and np.array_equal(b1, b2)
    assert [str(a) for a in r.ask_batch(3)] == [str(a) for a in s.ask_batch(3)]


def test_old_state_without_intermediate_results_loads(space, bench):
    s = GatesPredictorSearcher(space, seed=0, **QUICK)
    for a in distinct(space, 5):
        s.tell(a, bench.query(a))
    state = s.state_dict()
    # as written before intermediate results existed
    del state["reports"]
    del state["config"]["settings"]["learn_from_pruned"]
    r = GatesPredictorSearcher(space, seed=0, **QUICK)
    r.load_state_dict(state)
    assert r.n_complete == 5 and r.n_pruned == 0
    assert [str(a) for a in r.ask_batch(2)] == [str(a) for a in s.ask_batch(2)]


def test_bad_pruned_entries_are_refused_and_change_nothing(space, bench):
    s, _, _ = _told(space, bench)
    for breakage in (
        lambda st: st["history"].__setitem__(-1, (*st["history"][-1][:3], {"pruned": -3})),
        lambda st: st["history"].__setitem__(-1, (*st["history"][-1][:3], {"stopped": 1})),
        lambda st: st["reports"].__setitem__(0, (st["reports"][0][0], "one", 1.0)),
        lambda st: st.__setitem__("reports", "none"),
    ):
        state = s.state_dict()
        state["history"] = list(state["history"])
        state["reports"] = list(state["reports"])
        breakage(state)
        r = GatesPredictorSearcher(space, seed=0, **QUICK)
        with pytest.raises(ValueError):
            r.load_state_dict(state)
        assert r.n_told == 0 and r.n_pruned == 0


def _process_inputs_of_one_ask(space, bench, monkeypatch, settings, finals, pruned) -> tuple[dict[str, Any], Any]:
    """An "ei" searcher told ``finals`` (curve: value - 20 at step 1, value - 5 at step 2, then the value)
    and ``pruned`` (stopped at step 1 at value - 20) asks once; returns what its Gaussian process was
    fitted on (``x``, ``y``, ``noise``) and the proposal."""
    import gates_sampler.searcher as searcher_module

    s = GatesPredictorSearcher(space, seed=0, **{**QUICK, "settings": settings})
    for a in finals:
        s.report(a, 1, bench.query(a) - 20)
        s.report(a, 2, bench.query(a) - 5)
        s.tell(a, bench.query(a))
    for a in pruned:
        s.tell_pruned(a, step=1, value=bench.query(a) - 20)
    seen: dict[str, Any] = {}
    real = searcher_module.fit_feature_gp

    def spy(x, y, **kwargs):
        seen.update(x=x, y=np.asarray(y), noise=kwargs.get("noise"))
        return real(x, y, **kwargs)

    monkeypatch.setattr(searcher_module, "fit_feature_gp", spy)
    return seen, s.ask()


@pytest.mark.parametrize(("learn", "mode"), [(True, "fidelity"), (True, "none"), (False, "fidelity")])
def test_expected_improvement_reads_pruned_trials_at_their_fidelity(space, bench, monkeypatch, learn, mode):
    """acquisition="ei", gp_pruned="fidelity": a trial that ended early is a value at a lower fidelity.
    With learn_from_pruned the Gaussian process gets it, with its step (log-scaled, completed trials at
    1) as one more input; with "none", or without learn_from_pruned, it sees the completed trials only."""

    settings = SearchSettings(learn_from_pruned=learn, acquisition="ei", warm_epochs=1, gp_pruned=mode)
    archs = distinct(space, 10)
    finals, pruned = archs[:4], archs[4:]
    seen, proposal = _process_inputs_of_one_ask(space, bench, monkeypatch, settings, finals, pruned)
    assert space.canonical_key(proposal) not in {space.canonical_key(a) for a in archs}
    fidelity_on = learn and mode == "fidelity"
    expected = [bench.query(a) for a in finals] + ([bench.query(a) - 20 for a in pruned] if fidelity_on else [])
    assert seen["y"] == pytest.approx(expected)
    if fidelity_on:
        onehot, fidelity = seen["x"]
        assert onehot.shape[0] == 10
        assert fidelity[:4, 0] == pytest.approx(1.0)
        assert fidelity[4:, 0] == pytest.approx(np.log1p(1) / np.log1p(2))
    else:
        assert len(seen["x"]) == 1 and seen["x"][0].shape[0] == 4


def test_extrapolate_finals_maps_a_stopped_value_through_the_completed_trials_line():
    """Per stop step: a least-squares line through the completed trials' (value there, final) pairs; the
    variance is the line's predictive variance, larger away from the pairs' mean; too few pairs (or no
    spread in the values) gives NaN."""
    from gates_sampler.curves import MIN_EXTRAPOLATION_PAIRS, extrapolate_finals

    rng = np.random.default_rng(0)
    at1 = rng.uniform(40, 60, size=12)
    at9 = rng.uniform(80, 90, size=12)
    finals = 0.5 * at9 + 48.0  # exact at step 9
    finals_at = np.column_stack([at1, at9])
    mean, var = extrapolate_finals(finals, finals_at, np.array([85.0, 70.0]), np.array([1, 1]))
    assert mean == pytest.approx([0.5 * 85 + 48, 0.5 * 70 + 48])
    assert var == pytest.approx([0.0, 0.0], abs=1e-9)
    noisy = finals + rng.normal(0, 0.5, size=12)
    mean, var = extrapolate_finals(noisy, finals_at, np.array([at9.mean(), 70.0, 50.0]), np.array([1, 1, 0]))
    assert np.isfinite(mean).all() and (var > 0).all()
    assert var[1] > var[0]  # far below every completed value at the step: less sure
    few = finals_at.copy()
    few[MIN_EXTRAPOLATION_PAIRS - 1 :, 0] = np.nan  # fewer than the minimum reached step 1
    mean, var = extrapolate_finals(finals, few, np.array([50.0, 85.0]), np.array([0, 1]))
    assert np.isnan(mean[0]) and np.isnan(var[0]) and np.isfinite(mean[1])
    flat = np.column_stack([np.full(12, 50.0), at9])
    assert np.isnan(extrapolate_finals(finals, flat, np.array([50.0]), np.array([0]))[0][0])


@pytest.mark.parametrize(("learn", "n_complete"), [(True, 10), (False, 10), (True, 7)])
def test_expected_improvement_reads_pruned_trials_at_extrapolated_final_values(
    space, bench, monkeypatch, learn, n_complete
):
    """acquisition="ei" with the default gp_pruned="extrapolate": every completed trial's final value is
    its value at step 1 plus 20, so a trial stopped at step 1 enters the Gaussian process at its value
    there plus 20, with (nearly) no extra noise. Without learn_from_pruned, or with fewer completed
    trials than a line needs, the process sees the completed trials only."""
    assert SearchSettings().gp_pruned == "extrapolate"
    settings = SearchSettings(learn_from_pruned=learn, acquisition="ei", warm_epochs=1)
    archs = distinct(space, n_complete + 5, seed=4)
    finals, pruned = archs[:n_complete], archs[n_complete:]
    seen, _ = _process_inputs_of_one_ask(space, bench, monkeypatch, settings, finals, pruned)
    expected = [bench.query(a) for a in finals]
    if learn and n_complete >= 8:
        expected += [bench.query(a) for a in pruned]  # extrapolated: value at step 1 plus 20
        assert seen["noise"] == pytest.approx(np.zeros(len(expected)), abs=1e-6)
    assert seen["y"] == pytest.approx(expected)
    assert seen["x"][0].shape[0] == len(expected)


def test_gp_fidelity_in_a_saved_state_maps_to_gp_pruned():
    """States saved when the setting was the yes/no ``gp_fidelity`` load as the search they describe."""
    assert SearchSettings.coerce({"gp_fidelity": True}).gp_pruned == "fidelity"
    assert SearchSettings.coerce({"gp_fidelity": False}).gp_pruned == "none"
    assert SearchSettings.coerce({"gp_fidelity": True, "gp_pruned": "extrapolate"}).gp_pruned == "extrapolate"
    with pytest.raises(ValueError, match="gp_pruned must be one of"):
        SearchSettings(gp_pruned="fidelty")
