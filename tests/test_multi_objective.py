"""Multi-objective and constrained search: Pareto utilities, the core searcher, the Optuna sampler."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from gates_sampler.multi_objective import (
    TOP_PICK_EVERY,
    MultiObjectiveGatesSearcher,
    _epsilon_distance,
    _hv_gains,
    fit_additive,
    hypervolume,
    nondominated_mask,
    nondominated_ranks,
    rank_calibrate,
)
from gates_sampler.searcher import SearchSettings
from gates_sampler.spaces import CellSpace

TINY = {"epochs": 20, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16], "head_dropout": 0.0}
FAST: dict[str, Any] = {
    "n_startup": 6,
    "n_candidates": 30,
    "predictor": TINY,
    "zero_shot": None,
    "device": "cpu",
    "settings": SearchSettings(warm_epochs=5),
}

#: 64 cells: three edges, four operations each
SPACE = CellSpace(kind="edge", ops=("a", "b", "c", "d"), n_nodes=2, none_op=None, name="tiny-edge")
ALL = list(SPACE.enumerate())
GAIN = {"a": 0.0, "b": 1.0, "c": 2.5, "d": 3.0}
COST = {"a": 0.0, "b": 1.0, "c": 2.0, "d": 4.0}


def accuracy(arch: Any) -> float:
    """An expensive objective (to maximise): learned by the predictor."""
    return sum((i + 1) * GAIN[op] for i, op in enumerate(SPACE.to_params(arch).values()))


def cost(arch: Any) -> float:
    """A cheap objective (to minimise), exact from the cell."""
    return sum(COST[op] for op in SPACE.to_params(arch).values())


def true_front() -> set[tuple[float, float]]:
    points = np.array([[accuracy(a), -cost(a)] for a in ALL])
    return {(float(a), float(-c)) for a, c in points[nondominated_mask(points)]}


def searcher(**kwargs: Any) -> MultiObjectiveGatesSearcher:
    return MultiObjectiveGatesSearcher(SPACE, **{"directions": ["maximize", "minimize"], "seed": 0, **FAST, **kwargs})


# ----- Pareto utilities ------------------------------------------------------------------------------
def brute_nondominated(p: np.ndarray) -> np.ndarray:
    return np.array([not np.any(np.all(p >= q, axis=1) & np.any(p > q, axis=1)) for q in p])


def grid_volume(p: np.ndarray) -> int:
    """Hypervolume above the origin of integer points, by counting unit cells."""
    top = p.max(axis=0)
    count = 0
    for cell in itertools.product(*(range(int(t)) for t in top)):
        corner = np.array(cell) + 1
        count += bool(np.any(np.all(p >= corner, axis=1)))
    return count


@pytest.mark.parametrize("d", [2, 3])
def test_nondominated_mask_and_hypervolume_match_brute_force(d: int) -> None:
    rng = np.random.default_rng(d)
    for _ in range(40):
        p = rng.integers(0, 5, size=(int(rng.integers(1, 12)), d)).astype(float)
        assert (nondominated_mask(p) == brute_nondominated(p)).all()
        assert hypervolume(p, np.zeros(d)) == pytest.approx(grid_volume(p))


def test_hypervolume_ignores_points_not_beyond_the_reference_and_ranks_peel_fronts() -> None:
    assert hypervolume(np.array([[1.0, -1.0], [2.0, 0.0]]), [0.0, 0.0]) == 0.0
    assert hypervolume(np.array([[2.0, 3.0]]), [1.0, 1.0]) == pytest.approx(2.0)
    ranks = nondominated_ranks(np.array([[3.0, 3.0], [2.0, 2.0], [1.0, 1.0], [3.0, 1.0]]))
    assert ranks.tolist() == [0, 1, 2, 1]


def test_two_objective_gains_match_the_exact_hypervolume_difference() -> None:
    rng = np.random.default_rng(0)
    reference = np.array([0.1, -0.2])
    for _ in range(50):
        front = rng.random((int(rng.integers(0, 8)), 2))
        candidates = rng.random((20, 2)) * 1.4 - 0.2  # some beyond the front, some below the reference
        base = hypervolume(front, reference)
        exact = [hypervolume(np.vstack([front, c[None]]), reference) - base for c in candidates]
        assert _hv_gains(front, candidates, reference) == pytest.approx(exact, abs=1e-12)


def test_a_tie_in_an_exact_objective_is_not_closeness_to_the_front() -> None:
    front = np.array([[0.9, -1.0], [0.95, -5.0]])  # (accuracy, -cost), cost exact
    candidates = np.array([[0.5, -1.0], [0.89, -1.0], [0.8, -6.0], [0.5, -0.5]])
    dist = _epsilon_distance(front, candidates, exact=[1])
    # the cost cannot move: the tie at cost 1 must overtake 0.9 in accuracy, the cell at cost 6 must overtake 0.95
    assert dist == pytest.approx([0.4, 0.01, 0.15, 0.0])
    # without exact objectives a shift of the cost counts too, so every tie looks as close as can be
    assert _epsilon_distance(front, candidates)[:2] == pytest.approx([0.0, 0.0])


def test_when_nothing_is_predicted_to_extend_the_front_a_poor_cell_of_the_cheapest_front_cost_is_not_proposed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = searcher(cheap_objectives={1: cost})
    cost_one = [a for a in ALL if cost(a) == 1.0]  # the cheapest cells but one; the last stays unseen
    for arch in cost_one[:-1] + [a for a in ALL[::3] if cost(a) >= 2.0]:
        s.tell(arch, [accuracy(arch), cost(arch)])
    seen = s.seen_keys()
    unseen = [a for a in ALL if SPACE.canonical_key(a) not in seen]
    front = [values for _, values in s.pareto_front()]
    cheapest = min(front, key=lambda v: v[1])
    # a candidate with the exact cost of the cheapest front cell (no front cell dominates it in cost),
    # predicted far below it; and one predicted just below the front at a cost of its own
    tie = next(a for a in unseen if cost(a) == cheapest[1])
    other = next(a for a in unseen if cost(a) > cheapest[1] and all(cost(a) != v[1] for v in front))
    level = max(v[0] for v in front if v[1] <= cost(other))
    points = np.array([[cheapest[0] - 10.0, -cheapest[1]], [level - 0.1, -cost(other)]])
    monkeypatch.setattr(s, "_predicted_points", lambda pool: (points, np.full(2, -np.inf)))
    assert s._select([tie, other], 1) == [other]


def test_every_fourth_guided_proposal_is_the_accuracy_predictors_first_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    s = searcher(cheap_objectives={1: cost})
    told = ALL[::7][: FAST["n_startup"] + TOP_PICK_EVERY - 1]  # the next proposal is the fourth guided one
    for arch in told:
        s.tell(arch, [accuracy(arch), cost(arch)])
    best = max(accuracy(a) for a in told)
    costs = sorted(cost(a) for a in told)
    unseen = [a for a in ALL if SPACE.canonical_key(a) not in s.seen_keys()]
    pool = unseen[:2]
    # the first: predicted a little above the best told accuracy at the largest told cost (a sliver of
    # hypervolume); the second: predicted at the best told accuracy below the cheapest told cost (a large gain)
    points = np.array([[best + 0.01, -costs[-1]], [best, -(costs[0] - 1.0)]])
    monkeypatch.setattr(s, "_predicted_points", lambda pool: (points, np.full(len(pool), -np.inf)))
    assert s._select(pool, 1) == [pool[0]]
    # one more told cell (less accurate, of a middle cost): the next proposal follows the hypervolume rule
    extra = next(a for a in unseen[2:] if accuracy(a) < best and costs[0] < cost(a) < costs[-1])
    s.tell(extra, [accuracy(extra), cost(extra)])
    assert s._select(pool, 1) == [pool[1]]
    # a batch takes the turns in order: the hypervolume rule's pick, then (three turns on) the predictor's
    for _ in range(TOP_PICK_EVERY - 2):
        a = next(a for a in ALL if SPACE.canonical_key(a) not in s.seen_keys() and a not in pool)
        s.tell(a, [accuracy(a), cost(a)])
    assert s._select(pool, 2) == [pool[1], pool[0]]


def test_rank_calibration_is_monotone_and_extends_past_the_told_scores() -> None:
    told_scores, told_values = np.array([0.0, 1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    out = rank_calibrate(told_scores, told_values[::-1][::-1], np.array([-1.0, 0.5, 4.0, 5.0]))
    assert out[1] == pytest.approx(15.0)
    assert out[2] == pytest.approx(50.0)
    assert out[3] > 50.0 and out[0] < 10.0
    assert np.all(np.diff(out) > 0)


# ----- the core searcher -----------------------------------------------------------------------------
def test_op_counts_count_each_operation_per_cell() -> None:
    arch = SPACE.from_params({k: op for k, op in zip(SPACE.distributions(), ("b", "d", "b"))})
    assert SPACE.op_counts([arch]).tolist() == [[0.0, 2.0, 0.0, 1.0]]
    two = CellSpace(kind="edge", ops=("x", "y"), n_nodes=1, cell_names=("normal", "reduce"), none_op=None)
    cell = two.from_params({k: v for k, v in zip(two.distributions(), ("y", "x"))})
    assert two.op_counts([cell]).tolist() == [[0.0, 1.0, 1.0, 0.0]]  # normal: one y; reduce: one x
    node = CellSpace(kind="node", ops=("p", "q"), max_vertices=4)
    arch = node.parse("[0110,0001,0001,0000]:input,q,q,output")
    assert node.op_counts([arch]).tolist() == [[0.0, 2.0, 4.0]]  # no p, two q, four edges


def test_the_additive_model_recovers_a_cost_that_adds_up_over_operations() -> None:
    rng = np.random.default_rng(0)
    counts = SPACE.op_counts(ALL)
    noisy = np.array([cost(a) for a in ALL]) + rng.normal(0, 0.05, len(ALL))
    train = rng.choice(len(ALL), 12, replace=False)
    predicted = fit_additive(counts[train], noisy[train])(counts)
    assert np.max(np.abs(predicted - np.array([cost(a) for a in ALL]))) < 0.3
    with pytest.raises(AssertionError):  # what the tolerance means: a constant model is far off
        np.testing.assert_allclose(np.full(len(ALL), noisy[train].mean()), [cost(a) for a in ALL], atol=0.3)


def test_a_learned_cost_that_adds_up_over_operations_gets_the_additive_model() -> None:
    """The cost is learned (not declared cheap) and is a sum over the operations: the cross-validation picks
    the additive model for it, and its predictions are that model's; the first objective keeps GATES."""
    s = searcher()
    while s.n_told < 16:
        arch = s.ask()
        s.tell(arch, [accuracy(arch), cost(arch)])
    assert s.objective_models == {0: "gates", 1: "additive"}
    archs, told = s.training_data()
    pool = [a for a in ALL if SPACE.canonical_key(a) not in s.seen_keys()]
    points, _ = s._predicted_points(pool)
    expected = fit_additive(SPACE.op_counts(archs), told[:, 1])(SPACE.op_counts(pool))
    np.testing.assert_allclose(points[:, 1], expected)
    np.testing.assert_allclose(-points[:, 1], [cost(a) for a in pool], atol=0.05)  # the cost is exactly additive
    # a function of the told cells: a searcher told the same cells in the same order chooses the same
    again = searcher(seed=0)
    for o in s.history:
        again.tell(o.arch, o.values)
    again._predicted_points(pool)
    assert again._model_choices and again._model_choices.items() <= s._model_choices.items()


def test_a_learned_objective_that_does_not_add_up_keeps_the_gates_predictor() -> None:
    """A second objective that depends on how operations combine along the cell (the product of the first
    and last edge's gains), not on their counts: the additive model cannot rank it."""

    def interaction(arch: Any) -> float:
        ops = list(SPACE.to_params(arch).values())
        return (GAIN[ops[0]] - 1.5) * (GAIN[ops[-1]] - 1.5)

    s = searcher()
    while s.n_told < 16:
        arch = s.ask()
        s.tell(arch, [accuracy(arch), interaction(arch)])
    assert s.objective_models == {0: "gates", 1: "gates"}


def test_a_learned_constraint_that_adds_up_over_operations_gets_the_additive_model() -> None:
    """A constrained single-objective search: the accuracy keeps GATES, the told cost bound (a sum over the
    operations) is predicted by the additive model, exactly enough that no proposal breaks it."""
    s = MultiObjectiveGatesSearcher(SPACE, directions=["maximize"], seed=0, **FAST)
    assert s.constraint_models == []
    proposals = []
    while s.n_told < 20:
        arch = s.ask()
        proposals.append(arch)
        s.tell(arch, accuracy(arch), constraints=[cost(arch) - 5.0])
    assert s.objective_models == {0: "gates"} and s.constraint_models == ["additive"]
    assert all(cost(a) <= 5.0 for a in proposals[FAST["n_startup"] + 1 :])


def test_an_infeasible_cell_is_never_proposed_under_a_cheap_constraint() -> None:
    bound = 5.0  # about a third of the cells are feasible

    def constraint(arch: Any) -> list[float]:
        return [cost(arch) - bound]

    s = searcher(constraints=constraint, cheap_objectives={1: cost})
    asked = []
    for _ in range(8):
        batch = s.ask_batch(2)
        for arch in batch:
            s.tell(arch, [accuracy(arch), cost(arch)])
        asked += batch
    assert all(cost(a) <= bound for a in asked)
    assert all(s.feasible(a) for a, _ in s.pareto_front())


def test_told_constraints_keep_infeasible_results_off_the_front() -> None:
    s = MultiObjectiveGatesSearcher(SPACE, directions=["maximize"], seed=1, **FAST)
    for arch in ALL[:20]:
        s.tell(arch, accuracy(arch), constraints=[cost(arch) - 5.0])
    assert s.best is not None
    best_feasible = max(accuracy(a) for a in ALL[:20] if cost(a) <= 5.0)
    assert s.best[1] == best_feasible
    proposals = s.ask_batch(3)
    assert len({SPACE.canonical_key(a) for a in proposals}) == 3


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_each_learned_objective_is_refitted_as_a_single_objective_search_refits_its_predictor(space_name: str) -> None:
    from gates_sampler.searcher import GatesPredictorSearcher
    from gates_sampler.spaces import BUILTIN_SPACES

    space = BUILTIN_SPACES[space_name]()
    single = GatesPredictorSearcher(space, zero_shot=None, device="cpu")
    s = MultiObjectiveGatesSearcher(
        space, directions=["maximize", "maximize"], settings=SearchSettings(acquisition="ei"), zero_shot=None
    )
    for model in s._models:
        assert model.warm_epochs == single.warm_epochs  # 10 on NAS-Bench-201, 30 on DARTS
        assert model.acquisition == "mean"  # the proposal rule reads the predictor's score, whatever was asked


def test_a_batch_spreads_along_the_front() -> None:
    s = searcher(cheap_objectives={1: cost})
    for arch in ALL[::4]:
        s.tell(arch, [accuracy(arch), cost(arch)])
    batch = s.ask_batch(4)
    assert len({cost(a) for a in batch}) >= 3


def test_bad_input_gets_clear_errors_and_records_nothing() -> None:
    with pytest.raises(ValueError, match="'maximize' or 'minimize'"):
        MultiObjectiveGatesSearcher(SPACE, directions=["maximize", "up"])
    with pytest.raises(ValueError, match="scaling must be one of"):
        MultiObjectiveGatesSearcher(SPACE, directions=["maximize", "minimize"], scaling="log")
    with pytest.raises(ValueError, match="non-empty list"):
        MultiObjectiveGatesSearcher(SPACE, directions="maximize")
    with pytest.raises(ValueError, match="not an objective index"):
        MultiObjectiveGatesSearcher(SPACE, directions=["maximize", "minimize"], cheap_objectives={2: cost})
    s = searcher()
    arch = s.ask()
    with pytest.raises(ValueError, match="must hold 2 numbers"):
        s.tell(arch, [1.0])
    with pytest.raises(ValueError, match="must hold 2 numbers"):
        s.tell(arch, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="must be a number"):
        s.tell(arch, [1.0, "fast"])
    with pytest.raises(ValueError, match="finite numbers"):
        s.tell(arch, [1.0, 2.0], constraints=[math.nan])
    assert s.n_told == 0 and s.pending == [arch]
    failed = s.tell(arch, [1.0, math.nan])  # NaN in one objective: the whole evaluation failed
    assert failed.failed and failed.values is None
    assert SPACE.canonical_key(arch) in s.seen_keys() and s.pareto_front() == []
    s.tell(ALL[0], [1.0, 2.0], constraints=[0.0])
    with pytest.raises(ValueError, match="must hold 1 values"):
        s.tell(ALL[1], [1.0, 2.0], constraints=[0.0, 1.0])


def test_state_round_trips_the_multi_objective_history(tmp_path: Any) -> None:
    s = searcher(cheap_objectives={1: cost})
    for i in range(9):
        arch = s.ask()
        s.tell(arch, [accuracy(arch), cost(arch)] if i != 3 else None, constraints=[cost(arch) - 6.0])
    s.ask()  # one pending
    path = tmp_path / "mo.pt"
    s.save(path)
    with pytest.raises(ValueError, match="cheap objectives"):
        MultiObjectiveGatesSearcher.load(path, SPACE)
    loaded = MultiObjectiveGatesSearcher.load(path, SPACE, cheap_objectives={1: cost})
    assert [(str(o.arch), o.values, o.constraints, o.asked) for o in loaded.history] == [
        (str(o.arch), o.values, o.constraints, o.asked) for o in s.history
    ]
    assert loaded.pending == s.pending
    assert loaded.pareto_front() == s.pareto_front()
    assert loaded.ask_batch(2) == s.ask_batch(2)  # same generator and predictors: same proposals


def test_a_refused_state_changes_nothing() -> None:
    s = searcher()
    for arch in ALL[:5]:
        s.tell(arch, [accuracy(arch), cost(arch)])
    state = s.state_dict()
    before = [o.values for o in s.history]
    bad = dict(state, history=[*state["history"][:-1], (str(ALL[4]), [1.0], False, None)])
    with pytest.raises(ValueError, match=r"history\[4\]"):
        s.load_state_dict(bad)
    assert [o.values for o in s.history] == before
    with pytest.raises(ValueError, match="different settings"):
        MultiObjectiveGatesSearcher(SPACE, directions=["maximize", "maximize"], seed=0, **FAST).load_state_dict(state)


# ----- the Optuna sampler ----------------------------------------------------------------------------
SAMPLER_FAST: dict[str, Any] = {
    "n_startup_trials": 6,
    **{k: v for k, v in FAST.items() if k != "n_startup"},
}


def test_optuna_two_objective_study_on_a_tiny_space_finds_the_exact_front() -> None:
    """36 of 64 cells; 36 random cells hold the whole front with probability < 1 %."""
    optuna = pytest.importorskip("optuna")
    from gates_sampler.integrations.optuna import GatesSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = GatesSampler(SPACE, seed=0, cheap_objectives={1: cost}, **SAMPLER_FAST)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (accuracy(a := SPACE.suggest(t)), cost(a)), n_trials=36)
    assert {tuple(t.values) for t in study.best_trials} == true_front()
    assert sampler.searcher is not None and sampler.searcher.n_told == 36


def test_optuna_a_cost_computed_in_the_objective_is_learned_with_the_additive_model() -> None:
    """The cost is not declared cheap: the sampler learns it, and as it adds up over the operations the
    cross-validation gives it the additive model, as it would in the core searcher."""
    optuna = pytest.importorskip("optuna")
    from gates_sampler.integrations.optuna import GatesSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = GatesSampler(SPACE, seed=0, **SAMPLER_FAST)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (accuracy(a := SPACE.suggest(t)), cost(a)), n_trials=16)
    searcher = sampler.searcher
    assert isinstance(searcher, MultiObjectiveGatesSearcher)
    assert searcher.objective_models == {0: "gates", 1: "additive"}


def test_optuna_cheap_constraint_is_never_violated_and_constraints_func_filters_best_trials() -> None:
    optuna = pytest.importorskip("optuna")
    from gates_sampler.integrations.optuna import GatesSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bound = 5.0
    sampler = GatesSampler(
        SPACE,
        seed=0,
        cheap_constraints=lambda a: [cost(a) - bound],
        constraints_func=lambda t: [t.user_attrs["cost"] - bound],
        **SAMPLER_FAST,
    )

    def objective(trial: Any) -> float:
        arch = SPACE.suggest(trial)
        trial.set_user_attr("cost", cost(arch))
        return accuracy(arch)

    study = optuna.create_study(direction="maximize", sampler=sampler)
    # one infeasible architecture added by hand: it trains the predictors but is never best
    worst = max(ALL, key=cost)
    study.add_trial(
        optuna.trial.create_trial(
            params=SPACE.to_params(worst),
            distributions=sampler._distributions,
            value=accuracy(worst),
            system_attrs={"constraints": (cost(worst) - bound,)},
        )
    )
    study.optimize(objective, n_trials=12)
    proposed = study.trials[1:]
    assert all(t.user_attrs["cost"] <= bound for t in proposed)
    assert all(t.system_attrs["constraints"] == (t.user_attrs["cost"] - bound,) for t in proposed)
    best = study.best_trials
    assert best and all(t.number != 0 for t in best)
    assert study.best_trial.value == max(t.value for t in proposed)


def test_optuna_constraints_set_by_the_objective_are_learned_in_a_multi_objective_study() -> None:
    optuna = pytest.importorskip("optuna")
    if not hasattr(optuna.trial.Trial, "set_constraint"):
        pytest.skip("trial.set_constraint needs Optuna 5")
    from gates_sampler.integrations.optuna import GatesSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bound = 5.0
    sampler = GatesSampler(SPACE, seed=0, cheap_objectives={1: cost}, **SAMPLER_FAST)

    def objective(trial: Any) -> tuple[float, float]:
        arch = SPACE.suggest(trial)
        trial.set_constraint("cost", cost(arch) - bound)
        trial.set_constraint("a_second", -1.0)  # always met; keys are read in sorted order
        return accuracy(arch), cost(arch)

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=14)
    searcher = sampler.searcher
    assert isinstance(searcher, MultiObjectiveGatesSearcher)
    told = [SPACE.parse(str(SPACE.from_params(t.params))) for t in study.trials]
    assert any(cost(a) > bound for a in told)  # the check below is not vacuous
    assert all(searcher.feasible(a) == (cost(a) <= bound) for a in told)
    assert all(values[1] <= bound for _, values in searcher.pareto_front())


def test_optuna_constraints_set_by_the_objective_make_a_single_objective_study_constrained() -> None:
    """A single-objective sampler built without constraints learns them from the first trial that sets
    one: it rebuilds its searcher as a constrained one from the study, losing no trial, with its seed."""
    optuna = pytest.importorskip("optuna")
    if not hasattr(optuna.trial.Trial, "set_constraint"):
        pytest.skip("trial.set_constraint needs Optuna 5")
    from gates_sampler.integrations.optuna import GatesSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bound = 5.0

    def run(constrain_from: int) -> tuple[Any, Any]:
        sampler = GatesSampler(SPACE, seed=0, **SAMPLER_FAST)

        def objective(trial: Any) -> float:
            arch = SPACE.suggest(trial)
            if trial.number >= constrain_from:  # the constraint appears mid-study
                trial.set_constraint("cost", cost(arch) - bound)
            return accuracy(arch)

        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=16)
        return sampler, study

    sampler, study = run(constrain_from=3)
    searcher = sampler.searcher
    assert isinstance(searcher, MultiObjectiveGatesSearcher) and searcher.n_objectives == 1
    assert searcher.n_told == len(study.trials) == 16  # every trial, those before the first constraint too
    constrained = [SPACE.from_params(t.params) for t in study.trials[3:]]
    assert any(cost(a) > bound for a in constrained)  # the check below is not vacuous
    assert all(searcher.feasible(a) == (cost(a) <= bound) for a in constrained)
    best = searcher.best
    assert best is not None and cost(best[0]) <= bound
    # the seed still fixes the run
    again = run(constrain_from=3)[1]
    assert [t.params for t in again.trials] == [t.params for t in study.trials]


def test_optuna_constraints_set_by_the_objective_in_a_shared_sqlite_study_are_learned_by_every_worker(
    tmp_path: Any,
) -> None:
    """Two samplers on one SQLite study (two worker processes): each finds the constraint values in the
    storage, switches to the constrained search, and no architecture is proposed twice."""
    optuna = pytest.importorskip("optuna")
    if not hasattr(optuna.trial.Trial, "set_constraint"):
        pytest.skip("trial.set_constraint needs Optuna 5")
    from gates_sampler.integrations.optuna import GatesSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'so.db'}"

    def objective(trial: Any) -> float:
        arch = SPACE.suggest(trial)
        trial.set_constraint("cost", cost(arch) - 5.0)
        return accuracy(arch)

    first, second = GatesSampler(SPACE, seed=0, **SAMPLER_FAST), GatesSampler(SPACE, seed=0, **SAMPLER_FAST)
    a = optuna.create_study(direction="maximize", storage=url, study_name="so", sampler=first)
    b = optuna.load_study(study_name="so", storage=url, sampler=second)
    a.optimize(objective, n_trials=1)  # only the first worker has seen a constraint value so far
    for _ in range(4):
        b.optimize(objective, n_trials=2)
        a.optimize(objective, n_trials=2)
    keys = [SPACE.canonical_key(SPACE.from_params(t.params)) for t in a.get_trials()]
    assert len(keys) == 17 and len(set(keys)) == len(keys)
    for sampler in (first, second):
        assert isinstance(sampler.searcher, MultiObjectiveGatesSearcher)
        told = [o.arch for o in sampler.searcher.history]
        assert len(told) >= 15 and any(cost(arch) > 5.0 for arch in told)
        assert all(sampler.searcher.feasible(arch) == (cost(arch) <= 5.0) for arch in told)


def test_optuna_constraints_a_sampler_with_single_objective_only_settings_does_not_learn_them_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    optuna = pytest.importorskip("optuna")
    if not hasattr(optuna.trial.Trial, "set_constraint"):
        pytest.skip("trial.set_constraint needs Optuna 5")
    from gates_sampler.integrations.optuna import GatesSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = GatesSampler(SPACE, seed=0, candidates="mixed", **SAMPLER_FAST)

    def objective(trial: Any) -> float:
        arch = SPACE.suggest(trial)
        trial.set_constraint("cost", cost(arch) - 5.0)
        return accuracy(arch)

    study = optuna.create_study(direction="maximize", sampler=sampler)
    with caplog.at_level("WARNING", logger="gates_sampler"):
        study.optimize(objective, n_trials=3)
    warnings = [r.getMessage() for r in caplog.records if "does not learn them" in r.getMessage()]
    assert len(warnings) == 1 and "'candidates'" in warnings[0]
    assert not isinstance(sampler.searcher, MultiObjectiveGatesSearcher)


def test_optuna_rdb_study_with_two_samplers_rebuilds_the_multi_objective_history(tmp_path: Any) -> None:
    """Two samplers on one SQLite study, as two worker processes would be: each rebuilds the history
    (values and constraint values) from the storage, and no architecture is proposed twice."""
    optuna = pytest.importorskip("optuna")
    from gates_sampler.integrations.optuna import GatesSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'mo.db'}"

    def make() -> Any:
        return GatesSampler(
            SPACE,
            seed=0,
            cheap_objectives={1: cost},
            constraints_func=lambda t: [t.user_attrs["cost"] - 9.0],
            **SAMPLER_FAST,
        )

    def objective(trial: Any) -> tuple[float, float]:
        arch = SPACE.suggest(trial)
        trial.set_user_attr("cost", cost(arch))
        return accuracy(arch), cost(arch)

    first, second = make(), make()
    a = optuna.create_study(directions=["maximize", "minimize"], storage=url, study_name="mo", sampler=first)
    b = optuna.load_study(study_name="mo", storage=url, sampler=second)
    for _ in range(5):
        a.optimize(objective, n_trials=2)
        b.optimize(objective, n_trials=2)
    trials = a.get_trials()
    keys = [SPACE.canonical_key(SPACE.from_params(t.params)) for t in trials]
    assert len(trials) == 20 and len(set(keys)) == 20
    # the second sampler proposed last: it has read every trial of the first from the storage
    history = {str(o.arch): (o.values, o.constraints) for o in second.searcher.history}
    for t in trials:
        arch = str(SPACE.from_params(t.params))
        assert history[arch] == (tuple(t.values), (t.values[1] - 9.0,))
    feasible = [t for t in trials if t.values[1] <= 9.0]
    front = {tuple(t.values) for t in a.best_trials}
    points = np.array([[t.values[0], -t.values[1]] for t in feasible])
    assert front == {(float(x), float(-y)) for x, y in points[nondominated_mask(points)]}


def test_each_learned_objective_learns_the_zero_shot_targets_of_the_candidates_it_scores() -> None:
    """GATES++ fits its auxiliary head on the zero-shot targets of the candidates a search scores, not
    only of the told cells (``n_unlabeled``), as a single-objective search does; each objective's
    predictor here must get them too (without, a run on NAS-Bench-201 could stall below the top cells)."""
    from test_searcher import CountingZeroShot

    from gates_sampler.spaces import NB201Space

    space = NB201Space()
    s = MultiObjectiveGatesSearcher(
        space,
        directions=["maximize", "minimize"],
        seed=0,
        n_startup=4,
        n_candidates=20,
        zero_shot=CountingZeroShot(),
        predictor=TINY,
        device="cpu",
        settings=SearchSettings(warm_epochs=2),
    )
    seen: list[list[list[str]]] = [[] for _ in s._models]
    for j, model in enumerate(s._models):
        fit = model.predictor.fit

        def spy(*args: Any, _fit: Any = fit, _j: int = j, **kw: Any) -> Any:
            seen[_j].append([str(a) for a in kw.get("aux_archs") or []])
            return _fit(*args, **kw)

        model.predictor.fit = spy  # type: ignore[method-assign]
    for _ in range(4):
        a = s.ask()
        s.tell(a, [float(sum(o == "nor_conv_3x3" for o in a.ops)), float(sum(o != "none" for o in a.ops))])
    told = {str(a) for a in s.training_data()[0]}
    proposal = s.ask()
    for fits in seen:
        assert len(fits) == 1
        assert len(fits[0]) >= 20 and not told & set(fits[0])  # the scored candidates, none of them told
        assert str(proposal) in fits[0]
