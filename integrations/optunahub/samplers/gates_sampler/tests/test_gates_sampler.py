from __future__ import annotations

from pathlib import Path

import optuna
import optunahub

import gates_sampler
from gates_sampler.benchmarks import NB201Benchmark

REGISTRY_ROOT = str(Path(__file__).resolve().parents[3])
module = optunahub.load_local_module(package="samplers/gates_sampler", registry_root=REGISTRY_ROOT)


def test_reexports_the_pypi_package() -> None:
    assert module.GatesSampler is gates_sampler.GatesSampler


def test_short_study_on_nas_bench_201() -> None:
    bench = NB201Benchmark("cifar10")
    space = module.NB201Space()

    def objective(trial: optuna.Trial) -> float:
        return bench.query(space.suggest(trial))

    sampler = module.GatesSampler(
        space, n_startup_trials=4, n_candidates=20, predictor={"epochs": 5}, device="cpu", seed=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=8)

    assert len(study.trials) == 8
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    cells = {space.canonical_key(space.from_params(t.params)) for t in study.trials}
    assert len(cells) == 8  # never proposes a cell twice
    assert study.best_value == max(t.value for t in study.trials)
