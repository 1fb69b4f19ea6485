"""Search NAS-Bench-201 (CIFAR-10 validation accuracy, a table look-up that ships with gates-sampler)
with GatesSampler loaded through OptunaHub.

    pip install optunahub -r requirements.txt
    python example.py

It loads this folder; once the package is registered, ``optunahub.load_module("samplers/gates_sampler")``
loads it from the registry.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import optunahub

from gates_sampler.benchmarks import NB201Benchmark

# the registry root is the folder that holds samplers/
registry_root = str(Path(__file__).resolve().parents[2])
module = optunahub.load_local_module(package="samplers/gates_sampler", registry_root=registry_root)

bench = NB201Benchmark("cifar10")
space = module.NB201Space()


def objective(trial: optuna.Trial) -> float:
    arch = space.suggest(trial)  # the six operations of the cell, proposed together by GATES++
    return bench.query(arch)


optuna.logging.set_verbosity(optuna.logging.WARNING)
sampler = module.GatesSampler(space, n_startup_trials=10, seed=0)
study = optuna.create_study(direction="maximize", sampler=sampler)
study.optimize(objective, n_trials=30)
print(f"best validation accuracy after 30 trials: {study.best_value:.3f} (table optimum {bench.optimum()[1]:.3f})")
print(space.from_params(study.best_params))
