"""The OptunaHub registry package in ``integrations/optunahub``: loaded as OptunaHub loads it, it re-exports
the installed gates-sampler (never a copy) and runs a short study; its files follow the registry's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="the OptunaHub package needs optuna: pip install 'gates-sampler[optuna]'")
optunahub = pytest.importorskip(
    "optunahub", reason="optunahub is not installed: pip install optunahub (it is in the dev extra)"
)

REGISTRY_ROOT = Path(__file__).resolve().parents[1] / "integrations" / "optunahub"
PACKAGE = "samplers/gates_sampler"
FILES = ("__init__.py", "README.md", "LICENSE", "example.py", "requirements.txt", "tests/test_gates_sampler.py")


@pytest.fixture(scope="module")
def module():
    return optunahub.load_local_module(package=PACKAGE, registry_root=str(REGISTRY_ROOT))


def test_loads_and_reexports_the_installed_package(module) -> None:
    import gates_sampler
    from gates_sampler.spaces import NB201Space

    assert module.__name__ == "optunahub_registry.package.samplers.gates_sampler"
    assert module.GatesSampler is gates_sampler.GatesSampler and module.NB201Space is NB201Space


def test_short_study_through_the_registry_package(module) -> None:
    from gates_sampler.benchmarks import NB201Benchmark

    bench = NB201Benchmark("cifar100")
    space = module.NB201Space()

    def objective(trial):
        return bench.query(space.suggest(trial))

    sampler = module.GatesSampler(
        space, n_startup_trials=4, n_candidates=20, predictor={"epochs": 5}, device="cpu", seed=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=8)
    values = [t.value for t in study.trials]
    assert len(values) == 8 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert len({space.canonical_key(space.from_params(t.params)) for t in study.trials}) == 8
    assert study.best_value == max(values) and 0 < study.best_value <= bench.optimum()[1]


def test_follows_the_registry_layout() -> None:
    folder = REGISTRY_ROOT / PACKAGE
    for name in FILES:
        assert (folder / name).is_file(), name
    for path in folder.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            path.read_text(encoding="utf-8")  # the registry accepts no binary files
    assert not (folder / "tests" / "__init__.py").exists()  # it would shadow the gates_sampler package
    head = (folder / "README.md").read_text().split("---")[1]
    fields = dict(line.split(": ", 1) for line in head.strip().splitlines())
    assert set(fields) == {"author", "title", "description", "tags", "optuna_versions", "license"}
    assert fields["license"] == "MIT License" and (folder / "LICENSE").read_text().startswith("MIT License")
    assert fields["tags"].startswith("[sampler,")
    assert "gates-sampler" in (folder / "requirements.txt").read_text()
    assert "gates_sampler" not in {p.name for p in folder.iterdir() if p.is_dir()}  # not vendored
