"""GatesSampler under Optuna pruners: pruned trials and learning curves reach the core."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from conftest import TINY

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from gates_sampler.benchmarks import NB201Benchmark  # noqa: E402
from gates_sampler.integrations.optuna import GatesSampler  # noqa: E402
from gates_sampler.searcher import SearchSettings  # noqa: E402
from gates_sampler.spaces import NB201Space  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST: dict[str, Any] = {
    "n_startup_trials": 4,
    "n_candidates": 30,
    "settings": SearchSettings(warm_epochs=1),
    "predictor": TINY,
    "zero_shot": None,
    "device": "cpu",
}
STEPS = 6

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def bench() -> NB201Benchmark:
    return NB201Benchmark("cifar10")


def curve_objective(bench: NB201Benchmark):
    space = bench.space

    def objective(trial: Any) -> float:
        final = bench.query(space.suggest(trial))
        for step in range(1, STEPS + 1):
            trial.report(final - 30.0 / step, step)
            if step < STEPS and trial.should_prune():
                raise optuna.TrialPruned()
        return final

    return objective


def key_of(space: NB201Space, trial: Any) -> str:
    return space.canonical_key(space.from_params({k: trial.params[k] for k in space.distributions()}))


@pytest.mark.parametrize(
    "pruner",
    [
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
        optuna.pruners.HyperbandPruner(min_resource=1, max_resource=STEPS, reduction_factor=2),
    ],
    ids=["median", "sha", "hyperband"],
)
def test_pruned_trials_reach_the_core_with_their_curves(bench, pruner):
    space = bench.space
    study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=0, **FAST), pruner=pruner)
    study.optimize(curve_objective(bench), n_trials=16)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert pruned and complete
    keys = [key_of(space, t) for t in pruned + complete]
    assert len(set(keys)) == len(keys) == 16  # no architecture proposed twice
    core = study.sampler.searcher
    assert core.n_pruned == len(pruned) and core.n_complete == len(complete)
    for t in pruned:
        arch = space.from_params({k: t.params[k] for k in space.distributions()})
        assert core.curve(arch) == pytest.approx(t.intermediate_values)
        obs = next(o for o in core.history if o.pruned and space.canonical_key(o.arch) == key_of(space, t))
        assert obs.step == t.last_step
    archs, _, better = core.ranking_data()
    assert better is not None and len(archs) == 16
    assert better[:, len(complete) :].any()  # pruned trials are ranked: they train the predictor


def test_a_fresh_sampler_rebuilds_pruned_trials_from_the_storage(bench, tmp_path):
    space = bench.space
    url = f"sqlite:///{tmp_path / 'study.db'}"
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    study = optuna.create_study(
        study_name="s", storage=url, direction="maximize", sampler=GatesSampler(space, seed=0, **FAST), pruner=pruner
    )
    study.optimize(curve_objective(bench), n_trials=10)
    fresh = GatesSampler(space, seed=1, **FAST)
    resumed = optuna.load_study(study_name="s", storage=url, sampler=fresh, pruner=pruner)
    resumed.optimize(curve_objective(bench), n_trials=2)
    n_pruned = len(resumed.get_trials(states=(TrialState.PRUNED,)))
    assert n_pruned and fresh.searcher is not None and fresh.searcher.n_pruned == n_pruned
    keys = [key_of(space, t) for t in resumed.get_trials(states=(TrialState.PRUNED, TrialState.COMPLETE))]
    assert len(set(keys)) == len(keys) == 12


@pytest.mark.slow
def test_sqlite_three_processes_with_a_pruner(tmp_path):
    """3 worker processes on one SQLite file under HyperbandPruner: trials get pruned, and no architecture
    is ever proposed twice (a pruned one is never proposed again, in any process)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "examples", "optuna_distributed.py"),
        *("--workers", "3", "--trials", "12", "--storage", url, "--study-name", "mp", "--seed", "0"),
        *("--sleep", "0.04", "--n-startup", "4", "--n-candidates", "30", "--warm-epochs", "1"),
        *("--pruner", "hyperband", "--predictor", json.dumps(TINY)),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    study = optuna.load_study(study_name="mp", storage=url)
    trials = study.get_trials()
    assert len(trials) == 36
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.state in (TrialState.PRUNED, TrialState.COMPLETE) for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 3
    archs = [t.user_attrs["arch"] for t in trials]
    assert len(set(archs)) == 36, "an architecture was proposed twice"
