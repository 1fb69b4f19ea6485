"""GatesSampler: the Optuna door into the GATES loop."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import zlib
from typing import Any

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from gates_sampler import GatesPredictorSearcher  # noqa: E402
from gates_sampler.benchmarks import NB201Benchmark  # noqa: E402
from gates_sampler.integrations.optuna import (  # noqa: E402
    CLAIM_ATTR,
    MAX_CLAIM_ROUNDS,
    GatesSampler,
    run_optuna_gates,
)
from gates_sampler.predictor import Predictor  # noqa: E402
from gates_sampler.searcher import SearchSettings  # noqa: E402
from gates_sampler.spaces import DartsSpace, NB201Space  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a predictor small enough that a test trial costs milliseconds; no dropout, whose draws would come
# from torch's global generator and make the sampler-vs-core comparisons depend on test order
TINY_PREDICTOR = {"epochs": 3, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16], "head_dropout": 0.0}
QUICK_REFIT = SearchSettings(warm_epochs=1)
COMMON = {"n_candidates": 30, "settings": QUICK_REFIT, "predictor": TINY_PREDICTOR, "zero_shot": None, "device": "cpu"}
FAST = {"n_startup_trials": 4, **COMMON}
CORE_FAST = {"n_startup": 4, **COMMON}

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def bench() -> NB201Benchmark:
    return NB201Benchmark("cifar10")


@pytest.fixture
def space() -> NB201Space:
    return NB201Space()


def arch_objective(bench: NB201Benchmark):
    def objective(trial: Any) -> float:
        return bench.query(bench.space.suggest(trial))

    return objective


def trial_archs(study: Any, space: NB201Space, states=(TrialState.COMPLETE,)) -> list[str]:
    return [
        space.canonical_key(space.from_params({k: t.params[k] for k in space.distributions()}))
        for t in study.get_trials(states=states)
    ]


# ----- basics -----------------------------------------------------------------------------------
def test_lazy_reexport():
    import gates_sampler

    assert gates_sampler.GatesSampler is GatesSampler


def test_in_memory_study_matches_the_core_loop(bench, space):
    """A sequential study proposes exactly what the core searcher with the same seed proposes:
    the sampler only translates."""
    study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=3, **FAST))
    study.optimize(arch_objective(bench), n_trials=12)
    got = [space.from_params(t.params) for t in study.trials]

    core = GatesPredictorSearcher(space, seed=3, **CORE_FAST)
    expected = []
    for _ in range(12):
        a = core.ask()
        core.tell(a, bench.query(a))
        expected.append(a)
    assert [str(a) for a in got] == [str(a) for a in expected]
    assert len({space.canonical_key(a) for a in got}) == 12
    sampler = study.sampler
    assert sampler.searcher is not None and sampler.searcher.n_complete == 12
    assert sampler.searcher.best[1] == pytest.approx(study.best_value)
    # every proposal was claimed on its trial
    assert all(t.system_attrs[CLAIM_ATTR] == str(space.from_params(t.params)) for t in study.trials)


def test_in_memory_study_matches_the_core_loop_on_darts():
    """The same on DARTS, whose one-choice parameters (node 2's inputs) Optuna answers without the
    sampler: the proposals still come from the core's full candidate pool, not from the path for
    proposals constrained by fixed parameters (random cells only)."""
    space = DartsSpace()

    def value(arch: Any) -> float:
        # a deterministic stand-in for an accuracy: separable convolutions help, the rest is noise
        params = space.to_params(arch).values()
        return sum(p.startswith("sep_conv") for p in params) + zlib.crc32(str(arch).encode()) / 2**32

    study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=2, **FAST))
    study.optimize(lambda t: value(space.suggest(t)), n_trials=9)
    got = [space.from_params(t.params) for t in study.trials]

    core = GatesPredictorSearcher(space, seed=2, **CORE_FAST)
    expected = []
    for _ in range(9):
        a = core.ask()
        core.tell(a, value(a))
        expected.append(a)
    assert [str(a) for a in got] == [str(a) for a in expected]


def test_minimize_flips_direction(bench, space):
    """Minimising -f proposes exactly what maximising f proposes."""
    up = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=1, **FAST))
    up.optimize(arch_objective(bench), n_trials=9)
    down = optuna.create_study(direction="minimize", sampler=GatesSampler(space, seed=1, **FAST))
    down.optimize(lambda t: -bench.query(space.suggest(t)), n_trials=9)
    assert [t.params for t in up.trials] == [t.params for t in down.trials]
    assert down.sampler.searcher.direction == "minimize"
    assert down.best_value == pytest.approx(-up.best_value)
    _, values = down.sampler.searcher.training_data()
    assert values.max() == pytest.approx(up.best_value)  # internal values are higher-is-better


def test_no_refit_without_new_results(bench, space, monkeypatch):
    calls = []
    original = Predictor.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "fit", counting_fit)
    study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    study.optimize(arch_objective(bench), n_trials=6)
    n_fits = len(calls)
    assert n_fits == 2  # results 5 and 6 arrived after the 4 random startup trials
    running = [study.ask() for _ in range(4)]
    archs = [space.suggest(t) for t in running]
    assert len(calls) == n_fits + 1  # one fit for the 6th result, none for the proposals after it
    assert len({space.canonical_key(a) for a in archs}) == 4
    seen = set(trial_archs(study, space))
    assert not seen & {space.canonical_key(a) for a in archs}  # pending trials are never re-proposed


def test_n_jobs_threads(bench, space):
    study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    study.optimize(arch_objective(bench), n_trials=12, n_jobs=2)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 12
    keys = trial_archs(study, space)
    assert len(set(keys)) == 12
    assert study.sampler.searcher.n_complete == 12


def test_clash_with_a_simultaneous_claim_is_resolved(bench, space):
    """Another worker claims the very architecture this one just proposed, before this one's re-read:
    the sampler must notice after claiming and propose something else."""
    sampler = GatesSampler(space, seed=0, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(arch_objective(bench), n_trials=6)
    rival = study.ask()  # stands in for a trial of another process, not yet holding an architecture
    me = study.ask()
    proposed = []
    original = sampler._propose

    def racing_propose(fixed, attempt):
        arch = original(fixed, attempt)
        if not proposed:  # the rival claims the same cell at the same moment
            study._storage.set_trial_system_attr(rival._trial_id, CLAIM_ATTR, str(arch))
        proposed.append(arch)
        return arch

    sampler._propose = racing_propose
    got = space.suggest(me)
    assert len(proposed) == 2
    assert space.canonical_key(got) != space.canonical_key(proposed[0])
    assert study.trials[me.number].system_attrs[CLAIM_ATTR] == str(got)


def test_workers_whose_predictors_agree_do_not_end_in_a_duplicate(bench, space):
    """Rivals that claim every cell this worker's predictor proposes, at the same moment: the sampler
    must leave the predictor's picks and claim an unseen cell, never keep a clashing one."""
    sampler = GatesSampler(space, seed=0, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(arch_objective(bench), n_trials=6)
    rivals = [study.ask() for _ in range(5 * MAX_CLAIM_ROUNDS)]  # enough for every pick of every round
    me = study.ask()
    searcher = sampler.searcher
    claimed: list[str] = []

    def rival_claims(method):
        def wrapped(*args, **kwargs):
            out = method(*args, **kwargs)
            for arch in out if isinstance(out, list) else [out]:
                study._storage.set_trial_system_attr(rivals[len(claimed)]._trial_id, CLAIM_ATTR, str(arch))
                claimed.append(space.canonical_key(arch))
                if len(claimed) == len(rivals):
                    break
            return out

        return wrapped

    searcher.ask = rival_claims(searcher.ask)
    searcher.ask_batch = rival_claims(searcher.ask_batch)
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    sampler_logger = logging.getLogger("optuna.gates_sampler")
    sampler_logger.addHandler(handler)
    try:
        got = space.suggest(me)
    finally:
        sampler_logger.removeHandler(handler)
    assert claimed, "the predictor was never asked"
    assert space.canonical_key(got) not in claimed
    assert not [w for w in warnings if "clashing" in w]


def test_reseed_rng_keeps_history(bench, space):
    sampler = GatesSampler(space, seed=0, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(arch_objective(bench), n_trials=6)
    predictor = sampler.searcher.predictor
    sampler.reseed_rng()
    assert sampler.searcher.n_complete == 6 and sampler.searcher.predictor is predictor
    study.optimize(arch_objective(bench), n_trials=2)
    assert len(set(trial_archs(study, space))) == 8


def pruned_objective(bench, space):
    """An objective reporting three steps of a learning curve and obeying the pruner."""

    def objective(trial):
        value = bench.query(space.suggest(trial))
        for step in range(3):
            trial.report(value - 3 + step, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


def test_hyperband_bracket_studies(bench, space):
    """With HyperbandPruner the sampler sees per-bracket views of the study; it must still sync."""

    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=3)
    study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=0, **FAST), pruner=pruner)
    study.optimize(pruned_objective(bench, space), n_trials=10)
    keys = trial_archs(study, space, states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(keys) == 10 and len(set(keys)) == 10


def test_hyperband_trials_of_other_brackets_are_told_and_held(bench, space):
    """Optuna shows samplers only the current bracket's trials under HyperbandPruner; a worker that
    joins the study must still learn every finished trial and avoid every claim, whatever its bracket."""

    storage = optuna.storages.InMemoryStorage()
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9)
    first = optuna.create_study(
        study_name="hb",
        storage=storage,
        direction="maximize",
        sampler=GatesSampler(space, seed=0, **FAST),
        pruner=pruner,
    )
    first.optimize(pruned_objective(bench, space), n_trials=12)
    held = [first.ask() for _ in range(6)]  # running trials of the first worker, in several brackets
    for t in held:
        space.suggest(t)
    joining = GatesSampler(space, seed=1, **FAST)
    second = optuna.load_study(study_name="hb", storage=storage, sampler=joining, pruner=pruner)
    trial = second.ask()
    arch = space.suggest(trial)
    brackets = {pruner._get_bracket_id(first, t) for t in first.trials}
    assert len(brackets) > 1, "the test needs trials in several brackets"
    searcher = joining.searcher
    assert searcher.n_complete + searcher.n_pruned == 12
    held_keys = {space.canonical_key(space.from_params(t.params)) for t in held}
    assert held_keys <= searcher.seen_keys()
    assert space.canonical_key(arch) not in held_keys


# ----- mixed objectives and hand-set trials -----------------------------------------------------
class RecordingSampler(optuna.samplers.RandomSampler):
    def __init__(self) -> None:
        super().__init__(seed=0)
        self.names: list[str] = []

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.names.append(param_name)
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_mixed_objective_float_goes_to_independent_sampler(bench, space):
    rec = RecordingSampler()
    study = optuna.create_study(
        direction="maximize", sampler=GatesSampler(space, seed=0, independent_sampler=rec, **FAST)
    )

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        arch = space.suggest(trial)
        trial.suggest_int("batch", 32, 256)
        return bench.query(arch) - 10 * abs(np.log10(lr) + 2)

    study.optimize(objective, n_trials=8)
    assert sorted(set(rec.names)) == ["batch", "lr"]
    assert rec.names.count("lr") == 8
    assert len({t.params["lr"] for t in study.trials}) == 8
    assert len(set(trial_archs(study, space))) == 8
    assert study.sampler.searcher.n_complete == 8

    # the default independent sampler is TPE
    assert isinstance(GatesSampler(space, seed=0)._independent_sampler, optuna.samplers.TPESampler)


def test_failed_and_pruned_trials_are_never_proposed_again(bench, space):
    state = {"n": 0}
    bad: dict[str, str] = {}

    def objective(trial):
        state["n"] += 1
        arch = space.suggest(trial)
        key = space.canonical_key(arch)
        if state["n"] % 4 == 1:
            bad[key] = "fail"
            raise RuntimeError("training diverged")
        if state["n"] % 4 == 2:
            bad[key] = "prune"
            raise optuna.TrialPruned()
        return bench.query(arch)

    study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    study.optimize(objective, n_trials=16, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 4 and states.count(TrialState.PRUNED) == 4
    all_keys = trial_archs(study, space, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED))
    assert len(all_keys) == 16 and len(set(all_keys)) == 16
    searcher = study.sampler.searcher
    archs, _ = searcher.training_data()
    trained = {space.canonical_key(a) for a in archs}
    assert trained.isdisjoint(bad) and len(trained) == 8
    assert set(bad) <= searcher.seen_keys()


def test_trial_failing_before_its_architecture_is_complete(bench, space):
    """A trial that crashed half-way through suggesting keeps its claim: not proposed again."""

    def crashing(trial):
        trial.suggest_categorical("node1_from0", space.distributions()["node1_from0"])
        raise RuntimeError("crash")

    sampler = GatesSampler(space, seed=0, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(crashing, n_trials=1, catch=(RuntimeError,))
    claimed = space.canonical_key(space.parse(study.trials[0].system_attrs[CLAIM_ATTR]))
    study.optimize(arch_objective(bench), n_trials=5)
    assert claimed not in trial_archs(study, space)
    assert claimed in sampler.searcher.seen_keys()
    assert sampler.searcher.n_complete == 5


def test_enqueued_and_added_trials(bench, space):
    rng = np.random.default_rng(123)
    fixed_arch = space.sample(rng)
    manual_arch = space.sample(rng)
    study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    study.add_trial(
        optuna.trial.create_trial(
            params=space.to_params(manual_arch),
            distributions={
                k: optuna.distributions.CategoricalDistribution(c) for k, c in space.distributions().items()
            },
            value=bench.query(manual_arch),
        )
    )
    study.optimize(arch_objective(bench), n_trials=5)
    study.enqueue_trial(space.to_params(fixed_arch))
    study.enqueue_trial({"node3_from2": "avg_pool_3x3", "node1_from0": "none"})  # a partial architecture
    study.optimize(arch_objective(bench), n_trials=4)

    trials = study.trials
    assert space.from_params(trials[6].params) == fixed_arch  # fixed params are not overridden
    assert trials[7].params["node3_from2"] == "avg_pool_3x3" and trials[7].params["node1_from0"] == "none"
    keys = trial_archs(study, space)
    assert len(keys) == 10 and len(set(keys)) == 10  # the partial one was completed with an unseen arch
    archs, _ = study.sampler.searcher.training_data()
    trained = {space.canonical_key(a) for a in archs}
    assert {space.canonical_key(fixed_arch), space.canonical_key(manual_arch)} <= trained


def test_waiting_enqueued_architecture_is_pending(bench, space):
    study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    study.optimize(arch_objective(bench), n_trials=5)
    waiting = space.sample(np.random.default_rng(1))
    study.enqueue_trial(space.to_params(waiting))
    running = study.ask()  # pops the waiting trial; its architecture is not suggested yet
    other = study.ask()
    assert space.canonical_key(space.suggest(other)) != space.canonical_key(waiting)
    assert space.suggest(running) == waiting


# ----- errors -----------------------------------------------------------------------------------
def test_single_objective_settings_in_a_multi_objective_study_are_refused(space):
    sampler = GatesSampler(space, seed=0, candidates="mixed", **FAST)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with pytest.raises(ValueError, match="single-objective studies only"):
        study.optimize(lambda t: (len(str(space.suggest(t))), 2.0), n_trials=1)
    assert study.trials[0].state == TrialState.FAIL


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"direction": "minimize"}, "direction comes from the study"),
        ({"n_startup": 3}, "n_startup_trials"),
        ({"n_startup_trials": 1}, "n_startup"),
        ({"n_candidates": 0}, "n_candidates"),
        ({"settings": {"refit": "sometimes"}}, "refit"),
        ({"seed": -1}, "seed"),
        ({"independent_sampler": "tpe"}, "independent_sampler"),
    ],
)
def test_bad_settings(space, kwargs, match):
    with pytest.raises(ValueError, match=match):
        GatesSampler(space, **kwargs)


def test_bad_space():
    with pytest.raises(ValueError, match="SearchSpace"):
        GatesSampler("nb201")  # type: ignore[arg-type]


# ----- persistence ------------------------------------------------------------------------------
def test_pickle_round_trip_continues_exactly(bench, space):
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        study_name="s", storage=storage, direction="maximize", sampler=GatesSampler(space, seed=0, **FAST)
    )
    study.optimize(arch_objective(bench), n_trials=7)
    blob = pickle.dumps(study.sampler)

    copy_storage = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name="s", from_storage=storage, to_storage=copy_storage)
    study.optimize(arch_objective(bench), n_trials=3)

    restored = pickle.loads(blob)
    resumed = optuna.load_study(study_name="s", storage=copy_storage, sampler=restored)
    resumed.optimize(arch_objective(bench), n_trials=3)
    assert [t.params for t in resumed.trials] == [t.params for t in study.trials]
    pickle.dumps(restored)  # still picklable after use (its lock is rebuilt)


def test_journal_storage_resumed_with_a_fresh_sampler(bench, space, tmp_path):
    def storage():
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log")))

    study = optuna.create_study(
        study_name="j", storage=storage(), direction="maximize", sampler=GatesSampler(space, seed=0, **FAST)
    )
    study.optimize(arch_objective(bench), n_trials=6)
    first = set(trial_archs(study, space))

    sampler = GatesSampler(space, seed=0, **FAST)
    resumed = optuna.load_study(study_name="j", storage=storage(), sampler=sampler)
    resumed.optimize(arch_objective(bench), n_trials=4)
    keys = trial_archs(resumed, space)
    assert len(keys) == 10 and len(set(keys)) == 10
    assert first <= set(keys)
    assert sampler.searcher.n_complete == 10  # rebuilt from the stored trials
    assert sampler.searcher.predictor.trained  # past the 4 startup trials at once: the predictor was used


@pytest.mark.slow
def test_sqlite_three_processes(tmp_path):
    """3 worker processes x 20 trials on one SQLite file: all complete, and no two trials running at
    the same time hold the same architecture."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "examples", "optuna_distributed.py"),
        "--workers",
        "3",
        "--trials",
        "20",
        "--storage",
        url,
        "--study-name",
        "mp",
        "--seed",
        "0",
        "--sleep",
        "0.05",
        "--n-startup",
        "4",
        "--n-candidates",
        "30",
        "--warm-epochs",
        "1",
        "--predictor",
        json.dumps(TINY_PREDICTOR),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]

    study = optuna.load_study(study_name="mp", storage=url)
    trials = study.get_trials()
    assert len(trials) == 60 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 3
    for i, a in enumerate(trials):
        for b in trials[i + 1 :]:
            overlap = a.user_attrs["start"] < b.user_attrs["end"] and b.user_attrs["start"] < a.user_attrs["end"]
            assert not (overlap and a.user_attrs["arch"] == b.user_attrs["arch"]), (a.number, b.number)
    # the claims make clashes impossible, so in fact no architecture is evaluated twice
    assert len({t.user_attrs["arch"] for t in trials}) == 60


# ----- the compare hook -------------------------------------------------------------------------
def test_run_optuna_gates(bench):
    values = run_optuna_gates(bench, 8, 0, **FAST)
    core = GatesPredictorSearcher(bench.space, seed=0, **CORE_FAST)
    expected = []
    for _ in range(8):
        a = core.ask()
        expected.append(bench.query(a))
        core.tell(a, expected[-1])
    assert values == expected
    with pytest.raises(ValueError, match="n_trials"):
        run_optuna_gates(bench, 0, 0)


def test_default_sampler_on_nb201_is_gates_plus_plus_without_computing(bench, space, monkeypatch, tmp_path):
    from gates_sampler.zeroshot import ZeroShotProvider

    monkeypatch.setenv("GATES_SAMPLER_CACHE", str(tmp_path / "empty.sqlite"))
    monkeypatch.setattr(ZeroShotProvider, "compute_one", lambda *_a, **_k: pytest.fail("computed zero-shot metrics"))
    fast = {k: v for k, v in FAST.items() if k != "zero_shot"}
    sampler = GatesSampler(space, seed=0, **fast)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(arch_objective(bench), n_trials=7)
    s = sampler.searcher
    assert s is not None and s.zero_shot is not None and s.predictor.config["aux_dim"] == 5 and s.predictor.trained
