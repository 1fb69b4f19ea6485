"""What happens to an architecture when the Optuna worker evaluating it dies.

The first tests fail trials the way Optuna's heartbeat machinery does, inside this process: a trial
records one heartbeat, then nothing, and ``fail_stale_trials`` fails it after the grace period.
The slow tests run the whole scenario with worker processes killed by SIGKILL
(``scripts/worker_death.py``) on SQLite, a journal file and, when one is available, PostgreSQL.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from optuna.distributions import CategoricalDistribution  # noqa: E402
from optuna.storages import JournalStorage, RDBStorage  # noqa: E402
from optuna.storages.journal import JournalFileBackend  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from gates_sampler.benchmarks import NB201Benchmark  # noqa: E402
from gates_sampler.integrations.optuna import CLAIM_ATTR, OBJECTIVE_FAILED_ATTR, GatesSampler  # noqa: E402
from gates_sampler.searcher import SearchSettings  # noqa: E402
from gates_sampler.spaces import CellSpace, NB201Space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY_PREDICTOR = {"epochs": 3, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16], "head_dropout": 0.0}
FAST = {
    "n_startup_trials": 3,
    "n_candidates": 30,
    "settings": SearchSettings(warm_epochs=1),
    "predictor": TINY_PREDICTOR,
    "zero_shot": None,
    "device": "cpu",
}
#: Optuna renamed the heartbeat retry callback in 4.9; the old name stays as a deprecated alias
RetryCallback = (
    getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
# heartbeats are experimental in Optuna, and asking outside Study.optimize is how these tests play a dead worker
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize"),
]


@pytest.fixture(scope="module")
def bench() -> NB201Benchmark:
    return NB201Benchmark("cifar10")


@pytest.fixture
def space() -> NB201Space:
    return NB201Space()


def heartbeat_storage(tmp_path: Path, **kwargs: Any) -> RDBStorage:
    return RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=1, **kwargs)


def start_and_abandon(study: optuna.Study, space: NB201Space) -> tuple[optuna.trial.FrozenTrial, str]:
    """Start a trial, suggest its architecture, record one heartbeat and never finish it (a dead worker)."""
    trial = study.ask()
    arch = space.suggest(trial)
    if getattr(study._storage, "get_heartbeat_interval", lambda: None)():
        study._storage.record_heartbeat(trial._trial_id)
    return study._storage.get_trial(trial._trial_id), space.canonical_key(arch)


def fail_by_heartbeat(study: optuna.Study) -> None:
    time.sleep(2.2)  # past the 1 s grace period, in whole seconds as the storage compares them
    optuna.storages.fail_stale_trials(study)


def synced_searcher(study: optuna.Study, space: NB201Space, **kwargs: Any) -> Any:
    """A fresh sampler that reads ``study`` (as another worker would) by proposing one architecture."""
    sampler = GatesSampler(space, seed=1, **{**FAST, **kwargs})
    other = optuna.load_study(study_name=study.study_name, storage=study._storage, sampler=sampler)
    probe = other.ask()
    space.suggest(probe)
    other.tell(probe, 0.0)
    return sampler.searcher


def failed_keys(searcher: Any, space: NB201Space) -> set[str]:
    return {space.canonical_key(o.arch) for o in searcher.history if o.failed}


# ----- in-process rules -------------------------------------------------------------------------
def test_trial_failed_by_heartbeat_frees_its_architecture(bench, space, tmp_path):
    """A trial failed by the heartbeat check was never evaluated: not a failure, not pending."""
    storage = heartbeat_storage(tmp_path)
    sampler = GatesSampler(space, seed=0, **FAST)
    study = optuna.create_study(storage=storage, direction="maximize", sampler=sampler)
    study.optimize(lambda t: bench.query(space.suggest(t)), n_trials=4)
    dead, key = start_and_abandon(study, space)
    assert CLAIM_ATTR in dead.system_attrs
    fail_by_heartbeat(study)
    dead = study._storage.get_trial(dead._trial_id)
    assert dead.state == TrialState.FAIL and OBJECTIVE_FAILED_ATTR not in dead.system_attrs

    for searcher in (synced_searcher(study, space), _after_one_more_trial(study, bench, space)):
        assert key not in failed_keys(searcher, space)
        assert key not in {space.canonical_key(a) for a in searcher.pending}


def _after_one_more_trial(study: optuna.Study, bench: NB201Benchmark, space: NB201Space) -> Any:
    """The worker that started the dead trial carries on with the next trial: it syncs as well."""
    study.optimize(lambda t: bench.query(space.suggest(t)), n_trials=1)
    return study.sampler.searcher


def _completed(study: optuna.Study, space: NB201Space) -> list[Any]:
    return [space.from_params(t.params) for t in study.get_trials(states=(TrialState.COMPLETE,))]


def test_heartbeat_failed_architecture_is_proposed_again(tmp_path, caplog):
    """Eligible means proposed: in a space of five architectures where four are evaluated, the
    trial after the dead one gets the dead one's architecture (not a repeat of an evaluated one)."""
    tiny = CellSpace(kind="node", ops=("conv", "pool"), max_vertices=3, max_edges=3, name="tiny")
    archs = tiny.sample_unique(np.random.default_rng(0), 100, exclude=set(), max_tries=10_000)
    assert len(archs) == 5
    dists = {k: CategoricalDistribution(v) for k, v in tiny.distributions().items()}
    study = optuna.create_study(
        storage=heartbeat_storage(tmp_path),
        direction="maximize",
        sampler=GatesSampler(tiny, seed=0, **{**FAST, "n_startup_trials": 2}),
    )
    for i, arch in enumerate(archs[:4]):
        study.add_trial(optuna.trial.create_trial(value=float(i), params=tiny.to_params(arch), distributions=dists))
    _, key = start_and_abandon(study, tiny)
    assert key == tiny.canonical_key(archs[4])
    fail_by_heartbeat(study)
    proposed: list[str] = []
    with caplog.at_level(logging.WARNING, logger="gates_sampler"):
        study.optimize(lambda t: proposed.append(tiny.canonical_key(tiny.suggest(t))) or 1.0, n_trials=1)
    assert proposed == [key]
    assert "exhausted" not in caplog.text


@pytest.mark.parametrize("how", ["raise", "nan"])
def test_trial_whose_objective_failed_stays_a_failure(bench, space, tmp_path, how):
    storage = heartbeat_storage(tmp_path)
    study = optuna.create_study(storage=storage, direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    study.optimize(lambda t: bench.query(space.suggest(t)), n_trials=3)
    keys: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        keys.append(space.canonical_key(space.suggest(trial)))
        if how == "raise":
            raise RuntimeError("out of memory")
        return math.nan

    study.optimize(objective, n_trials=1, catch=(RuntimeError,))
    failed = study.trials[-1]
    assert failed.state == TrialState.FAIL and failed.system_attrs.get(OBJECTIVE_FAILED_ATTR) is True
    fail_by_heartbeat(study)  # a later stale check must not change anything
    assert keys[0] in failed_keys(synced_searcher(study, space), space)
    assert keys[0] in failed_keys(study.sampler.searcher, space)


def test_failed_trial_added_by_hand_stays_a_failure(bench, space, tmp_path):
    """``study.add_trial(state=FAIL)`` carries no claim: it records a failure, as before."""
    storage = heartbeat_storage(tmp_path)
    study = optuna.create_study(storage=storage, direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    arch = space.sample(np.random.default_rng(0))
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.FAIL,
            params=space.to_params(arch),
            distributions=GatesSampler(space)._distributions,
        )
    )
    assert space.canonical_key(arch) in failed_keys(synced_searcher(study, space), space)


def test_retry_callback_evaluates_the_dead_trials_architecture(bench, space, tmp_path):
    """RetryFailedTrialCallback's copy runs the dead trial's architecture, which is not refused as seen."""
    new_name = "heartbeat_stale_trial_callback" in RDBStorage.__init__.__code__.co_varnames  # Optuna >= 4.9
    callback_arg = "heartbeat_stale_trial_callback" if new_name else "failed_trial_callback"
    storage = heartbeat_storage(tmp_path, **{callback_arg: RetryCallback(max_retry=2)})
    study = optuna.create_study(storage=storage, direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    study.optimize(lambda t: bench.query(space.suggest(t)), n_trials=4)
    dead, key = start_and_abandon(study, space)
    time.sleep(2.2)
    evaluated: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        evaluated.append(space.canonical_key(arch))
        return bench.query(arch)

    study.optimize(objective, n_trials=2)  # fails the stale trial, enqueues its retry and runs it first
    retry = study.trials[dead.number + 1]
    assert study.trials[dead.number].state == TrialState.FAIL
    assert RetryCallback.retried_trial_number(retry) == dead.number
    assert retry.state == TrialState.COMPLETE and evaluated[0] == key
    complete = [space.canonical_key(a) for a in _completed(study, space)]
    assert complete.count(key) == 1 and len(set(complete)) == len(complete)
    searcher = study.sampler.searcher
    assert key not in failed_keys(searcher, space) and searcher.n_complete == len(complete)


@pytest.mark.parametrize("stale_after", [None, 0.5])
def test_stale_after_frees_running_trials_without_heartbeat(space, tmp_path, stale_after):
    """On a journal file (no heartbeat) a dead worker's RUNNING trial pins its architecture until
    ``stale_after`` seconds have passed since it started."""
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.create_study(storage=storage, direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    _, key = start_and_abandon(study, space)
    time.sleep(0.7)
    searcher = synced_searcher(study, space, stale_after=stale_after)
    held = key in {space.canonical_key(a) for a in searcher.pending} or key in searcher.seen_keys()
    assert held == (stale_after is None)
    assert study.trials[0].state == TrialState.RUNNING  # the sampler frees the architecture, it fails nothing


def test_stale_after_is_ignored_when_the_storage_has_heartbeats(space, tmp_path):
    storage = RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=60)
    study = optuna.create_study(storage=storage, direction="maximize", sampler=GatesSampler(space, seed=0, **FAST))
    _, key = start_and_abandon(study, space)
    time.sleep(0.7)
    assert key in synced_searcher(study, space, stale_after=0.5).seen_keys()


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "10", True])
def test_stale_after_must_be_a_positive_number(space, bad):
    with pytest.raises(ValueError, match="stale_after"):
        GatesSampler(space, stale_after=bad)


# ----- worker processes killed with SIGKILL -----------------------------------------------------
def _scenario() -> Any:
    spec = importlib.util.spec_from_file_location("worker_death", ROOT / "scripts" / "worker_death.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["worker_death"] = module  # its worker function is pickled by name for the worker processes
    spec.loader.exec_module(module)
    return module


def _postgres_url() -> str:
    url = os.environ.get("GATES_SAMPLER_TEST_POSTGRES_URL")
    if not url:
        why = os.environ.get("GATES_SAMPLER_TEST_POSTGRES_SKIP_REASON", "GATES_SAMPLER_TEST_POSTGRES_URL is not set")
        pytest.skip(f"no PostgreSQL server: {why} (.ci/run starts one)")
    pytest.importorskip("psycopg2", reason="psycopg2 is needed for PostgreSQL: pip install psycopg2-binary")
    return url


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_killed_workers_lose_and_duplicate_nothing(kind, tmp_path):
    url = _postgres_url() if kind == "postgresql" else None
    result = _scenario().run_scenario(kind, tmp_path, url=url)
    print(result)  # the counts, shown with pytest -s or on failure
    assert result["killed"] == 2
    assert result["complete"] >= 24
    assert result["duplicated"] == 0 and result["lost"] == 0
    # the only failures are the killed trials, none of them an objective failure
    assert result["failed_objective"] == 0
    if kind == "journal":
        # a journal file has no heartbeat: the dead trials stay RUNNING, their architectures free again
        assert result["failed"] == 0 and result["left_running"] == 2 and result["waiting"] == 0
    else:
        # failed by the heartbeat check and retried: every trial ends COMPLETE or FAIL
        assert result["failed"] == 2 and result["left_running"] == 0 and result["waiting"] == 0
        assert result["retried_complete"] == 2
