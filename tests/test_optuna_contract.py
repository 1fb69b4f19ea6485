"""GatesSampler against Optuna's sampler contract.

Optuna's generic sampler cases (``optuna.testing.pytest_samplers``) run here unchanged where they apply
to a sampler whose own parameters are categorical architecture choices: the basic cases (every other
parameter goes to the independent sampler) and the multi-objective case (a study with several
``directions``). Its relative-sampler cases do not apply (GatesSampler samples no arbitrary relative
space; see ``test_relative_space_*``). The cases of Optuna's own
``tests/samplers_tests/test_samplers.py`` that apply are rewritten below for an architecture space.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any
from unittest import mock

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from optuna.distributions import CategoricalDistribution  # noqa: E402
from optuna.samplers import BaseSampler, PartialFixedSampler  # noqa: E402
from optuna.testing.pytest_samplers import (  # noqa: E402
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
)
from optuna.trial import TrialState  # noqa: E402

from gates_sampler.integrations.optuna import CLAIM_ATTR, GatesSampler  # noqa: E402
from gates_sampler.searcher import SearchSettings  # noqa: E402
from gates_sampler.spaces import CellSpace, NB201Space  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"epochs": 3, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16], "head_dropout": 0.0}
FAST = {
    "n_startup_trials": 3,
    "n_candidates": 20,
    "settings": SearchSettings(warm_epochs=1),
    "predictor": TINY,
    "zero_shot": None,
    "device": "cpu",
}
SPACE = NB201Space()
NAMES = list(SPACE.distributions())


def make_sampler(seed: int | None = 0, **kwargs: Any) -> GatesSampler:
    return GatesSampler(SPACE, seed=seed, **{**FAST, **kwargs})


def score(arch: Any) -> float:
    """A cheap deterministic objective over NB201 cells (no benchmark file needed)."""
    return float(sum((i + 1) * len(v) for i, v in enumerate(SPACE.to_params(arch).values())))


def arch_objective(trial: Any) -> float:
    return score(SPACE.suggest(trial))


def trial_keys(study: Any, states: tuple = (TrialState.COMPLETE,)) -> list[str]:
    return [
        SPACE.canonical_key(SPACE.from_params({k: t.params[k] for k in NAMES}))
        for t in study.get_trials(states=states)
        if all(k in t.params for k in NAMES)
    ]


# ----- Optuna's own generic cases, run as they are ------------------------------------------------
class TestOptunaBasicSamplerCases(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return make_sampler


class TestOptunaMultiObjectiveSamplerCases(MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return make_sampler


# ----- multi-objective: the architecture comes from the multi-objective core ------------------------
def test_multi_objective_study_proposes_distinct_architectures_and_keeps_hyperparameters_independent() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler())
    study.optimize(lambda t: (arch_objective(t), t.suggest_float("lr", 1e-4, 1e-1, log=True)), n_trials=8)
    keys = trial_keys(study)
    assert len(keys) == len(set(keys)) == 8
    assert all(1e-4 <= t.params["lr"] <= 1e-1 for t in study.trials)
    assert study.sampler.searcher.n_objectives == 2
    assert {t.number for t in study.best_trials} <= {t.number for t in study.trials}


# ----- reseed_rng / reproducibility / pickling ----------------------------------------------------
def test_reseed_rng_reseeds_the_architecture_stream_and_the_independent_sampler() -> None:
    def run(sampler: GatesSampler) -> list[dict]:
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: arch_objective(t) + t.suggest_float("x", 0, 1), n_trials=6)
        return [t.params for t in study.trials]

    reseeded = make_sampler(seed=1)
    independent = reseeded._independent_sampler
    with mock.patch.object(independent, "reseed_rng", wraps=independent.reseed_rng) as spy:
        reseeded.reseed_rng()
        assert spy.call_count == 1
    a, b = run(make_sampler(seed=1)), run(reseeded)
    assert [{k: p[k] for k in NAMES} for p in a] != [{k: p[k] for k in NAMES} for p in b]


def test_reproducible_for_a_seed_and_different_across_seeds() -> None:
    def run(seed: int) -> list[dict]:
        study = optuna.create_study(sampler=make_sampler(seed=seed))
        study.optimize(lambda t: arch_objective(t) + t.suggest_int("n", 1, 9), n_trials=8)
        return [t.params for t in study.trials]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_reproducible_in_another_process() -> None:
    """Same proposals in a fresh interpreter with another string-hash seed (no dependence on hashing)."""
    code = (
        "import json, optuna, torch; torch.set_num_threads(1)\n"
        "from tests.test_optuna_contract import arch_objective, make_sampler\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        "s = optuna.create_study(sampler=make_sampler(seed=4)); s.optimize(arch_objective, n_trials=6)\n"
        "print(json.dumps([t.params for t in s.trials]))\n"
    )
    outs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": ROOT}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False
        )
        assert out.returncode == 0, out.stderr[-2000:]
        outs.append(out.stdout.strip().splitlines()[-1])
    assert outs[0] == outs[1]


def test_pickled_sampler_proposes_what_the_original_would() -> None:
    """A sampler pickled before use (as Optuna's distributed runners ship it) behaves as the original;
    pickling after use is covered by test_optuna.py's round trip."""
    sampler = make_sampler(seed=2)
    twin = pickle.loads(pickle.dumps(sampler))
    runs = []
    for s in (sampler, twin):
        study = optuna.create_study(sampler=s)
        study.optimize(arch_objective, n_trials=6)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


# ----- objective values: nan, inf, pruned, failed; after_trial -------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_failures_never_proposed_again(bad: float) -> None:
    study = optuna.create_study(direction="minimize", sampler=make_sampler())
    calls = {"n": 0}

    def objective(trial: Any) -> float:
        calls["n"] += 1
        value = arch_objective(trial)
        return bad if calls["n"] % 3 == 0 else value

    study.optimize(objective, n_trials=9)
    all_keys = trial_keys(study, states=(TrialState.COMPLETE, TrialState.FAIL))
    assert len(all_keys) == 9 and len(set(all_keys)) == 9
    searcher = study.sampler.searcher
    assert searcher.n_complete == len([t for t in study.trials if t.value is not None and math.isfinite(t.value)])
    # Optuna keeps +-inf as complete values; the sampler neither trains on them nor repeats them
    assert math.isfinite(searcher.best[1])
    assert {SPACE.canonical_key(a) for a in searcher.training_data()[0]}.isdisjoint(
        SPACE.canonical_key(SPACE.from_params({k: t.params[k] for k in NAMES}))
        for t in study.trials
        if t.value is None or not math.isfinite(t.value)
    )


def test_after_trial_tells_failed_and_pruned_trials_at_once() -> None:
    sampler = make_sampler()
    study = optuna.create_study(sampler=sampler)

    def objective(trial: Any) -> float:
        arch = SPACE.suggest(trial)
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise RuntimeError("diverged")
        return score(arch)

    study.optimize(objective, n_trials=4, catch=(RuntimeError,))
    told = sampler.searcher.history
    assert [o.value is None for o in told] == [False, True, True, False]
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    assert {SPACE.canonical_key(o.arch) for o in told} == set(trial_keys(study, finished))


# ----- search spaces: conditional, dynamic, none -------------------------------------------------------
def test_objective_without_architecture_parameters_claims_nothing() -> None:
    sampler = make_sampler()
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("y", 0, 3), n_trials=5)
    assert all(CLAIM_ATTR not in t.system_attrs for t in study.trials)
    assert sampler.searcher is None  # no architecture was ever proposed


def test_conditional_architecture_only_in_some_trials() -> None:
    sampler = make_sampler()
    study = optuna.create_study(sampler=sampler)

    def objective(trial: Any) -> float:
        if trial.suggest_categorical("use_nas", [True, False]):
            return arch_objective(trial)
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=12)
    with_arch = [t for t in study.trials if t.params["use_nas"]]
    without = [t for t in study.trials if not t.params["use_nas"]]
    assert with_arch and without
    assert all(CLAIM_ATTR in t.system_attrs for t in with_arch)
    assert all(CLAIM_ATTR not in t.system_attrs for t in without)
    assert sampler.searcher.n_complete == len(with_arch) == len(set(trial_keys(study)))


def test_dynamic_other_parameters_and_a_redefined_architecture_parameter() -> None:
    study = optuna.create_study(sampler=make_sampler())
    study.optimize(lambda t: arch_objective(t) + t.suggest_int("y", 0, 10), n_trials=4)
    study.optimize(lambda t: arch_objective(t) + t.suggest_int("y", 20, 30), n_trials=4)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len(set(trial_keys(study))) == 8
    # a parameter with an architecture name but other choices is not the architecture's: independent
    other = optuna.create_study(sampler=make_sampler())
    other.optimize(lambda t: float(t.suggest_categorical(NAMES[0], [1, 2])), n_trials=2)
    assert [t.params[NAMES[0]] in (1, 2) for t in other.trials] == [True, True]
    assert all(CLAIM_ATTR not in t.system_attrs for t in other.trials)


def test_relative_space_is_the_architecture_and_relative_sampling_is_deferred() -> None:
    """Optuna's relative-sampler cases sample arbitrary spaces; GatesSampler declares only the
    architecture relative and proposes it at the first architecture parameter, so sample_relative is
    empty and the trial falls back to sample_independent for those names."""
    study = optuna.create_study(sampler=make_sampler())
    trial = study.ask()
    space = study.sampler.infer_relative_search_space(study, study.trials[0])
    assert space == {k: CategoricalDistribution(c) for k, c in SPACE.distributions().items()}
    assert study.sampler.sample_relative(study, study.trials[0], space) == {}
    SPACE.suggest(trial)
    assert CLAIM_ATTR in study.trials[0].system_attrs


# ----- fixed parameters: enqueue_trial, PartialFixedSampler -------------------------------------------
def test_partial_fixed_sampler_is_respected() -> None:
    fixed = {NAMES[0]: "nor_conv_3x3", NAMES[2]: "skip_connect", NAMES[5]: "nor_conv_1x1"}
    base = make_sampler()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(sampler=PartialFixedSampler(fixed, base))
    study.optimize(arch_objective, n_trials=5)
    keys = trial_keys(study)
    assert len(keys) == 5 and len(set(keys)) == 5
    for t in study.trials:
        assert all(t.params[k] == v for k, v in fixed.items())
        assert SPACE.parse(t.system_attrs[CLAIM_ATTR]) == SPACE.from_params({k: t.params[k] for k in NAMES})


def test_partial_fixed_sampler_on_a_constrained_space_gives_valid_cells() -> None:
    space = CellSpace(kind="node", ops=("conv", "pool"), max_vertices=4, max_edges=5, name="small-node")
    names = list(space.distributions())
    fixed = {names[-1]: space.distributions()[names[-1]][0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = PartialFixedSampler(fixed, GatesSampler(space, seed=0, **FAST))
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(len(str(space.suggest(t)))), n_trials=5)
    archs = [space.from_params({k: t.params[k] for k in names}) for t in study.trials]  # valid, or it raises
    assert len({space.canonical_key(a) for a in archs}) == 5
    assert all(t.params[names[-1]] == fixed[names[-1]] for t in study.trials)


def test_enqueued_partial_architecture_is_completed_with_an_unseen_cell() -> None:
    study = optuna.create_study(sampler=make_sampler())
    study.optimize(arch_objective, n_trials=4)
    study.enqueue_trial({NAMES[1]: "none", NAMES[4]: "avg_pool_3x3"})
    study.optimize(arch_objective, n_trials=1)
    last = study.trials[-1]
    assert last.params[NAMES[1]] == "none" and last.params[NAMES[4]] == "avg_pool_3x3"
    assert len(set(trial_keys(study))) == 5


# ----- parallelism and storages ------------------------------------------------------------------------
def test_n_jobs_two_threads_never_share_an_architecture() -> None:
    study = optuna.create_study(sampler=make_sampler())
    study.optimize(arch_objective, n_trials=10, n_jobs=2)
    keys = trial_keys(study)
    assert len(keys) == 10 and len(set(keys)) == 10


def test_rdb_storage_resumed_by_a_fresh_sampler(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="rdb", storage=url, sampler=make_sampler())
    study.optimize(arch_objective, n_trials=4)
    sampler = make_sampler()
    resumed = optuna.load_study(study_name="rdb", storage=url, sampler=sampler)
    resumed.optimize(arch_objective, n_trials=3)
    keys = trial_keys(resumed)
    assert len(keys) == 7 and len(set(keys)) == 7
    assert sampler.searcher.n_complete == 7


# ----- small spaces and logging ---------------------------------------------------------------------
TINY_SPACE_SCRIPT = """
import optuna, torch
torch.set_num_threads(1)
from gates_sampler import GatesSampler
from gates_sampler.spaces import CellSpace
space = CellSpace(kind="node", ops=("conv", "pool"), max_vertices=3, max_edges=3, name="tiny")
sampler = GatesSampler(space, seed=0, n_startup_trials=2, n_candidates=20, zero_shot=None, device="cpu",
                       predictor={"epochs": 3, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16]})
calls = []
propose = sampler._propose
sampler._propose = lambda fixed, attempt: calls.append(attempt) or propose(fixed, attempt)
study = optuna.create_study(sampler=sampler)
study.optimize(lambda t: float(len(str(space.suggest(t)))), n_trials=12)
print("PROPOSALS", len(calls), max(calls))
"""


def test_exhausted_tiny_space_warns_once_on_optunas_logger_and_never_loops() -> None:
    """A tiny space (5 cells) with 12 trials in one process: one exhaustion warning, shown by Optuna's
    own handler in Optuna's format on stderr as any Optuna warning is; no clash warnings; one
    proposal per trial (no claim rounds)."""
    out = subprocess.run(
        [sys.executable, "-c", TINY_SPACE_SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ROOT},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    warnings_seen = [line for line in out.stderr.splitlines() if line.startswith("[W ")]
    assert len(warnings_seen) == 1, out.stderr
    assert "every architecture of tiny has been evaluated" in warnings_seen[0]
    assert "clashing" not in out.stderr
    assert out.stdout.split()[-2:] == ["12", "0"]  # one proposal per trial, never a second round


def test_sampler_logger_follows_optuna_verbosity() -> None:
    from gates_sampler.integrations import optuna as adapter

    assert adapter.logger.name.startswith("optuna.")  # propagates to Optuna's handler
    before = optuna.logging.get_verbosity()
    try:
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        assert not adapter.logger.isEnabledFor(30)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        assert adapter.logger.isEnabledFor(30)
    finally:
        optuna.logging.set_verbosity(before)


def test_claims_are_made_once_per_trial_on_a_large_space() -> None:
    sampler = make_sampler()
    calls: list[int] = []
    propose = sampler._propose
    sampler._propose = lambda fixed, attempt: calls.append(attempt) or propose(fixed, attempt)  # type: ignore
    study = optuna.create_study(sampler=sampler)
    study.optimize(arch_objective, n_trials=6)
    assert calls == [0] * 6
    assert np.all([CLAIM_ATTR in t.system_attrs for t in study.trials])
