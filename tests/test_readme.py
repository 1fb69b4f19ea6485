"""The README's standalone and Optuna snippets run as written (with a smaller budget).

The Ray Tune snippets are run by ``tests/test_ray_contract.py::test_readme_ray_snippets_run``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks of the README section that starts with ``heading``."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


def run(code: str, replacements: dict[str, str]) -> dict[str, Any]:
    for old, new in replacements.items():
        assert old in code, f"the README snippet no longer contains {old!r}: update this test"
        code = code.replace(old, new)
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_ask_tell_snippet_runs_and_its_state_file_continues_exactly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = python_blocks("## What it does")
    ns = run(block, {"range(100)": "range(12)"})
    searcher, bench = ns["searcher"], ns["bench"]
    assert searcher.n_told == 12 and searcher.best[1] == max(o.value for o in searcher.history)
    loaded = type(searcher).load(tmp_path / "search.pt")
    a, b = searcher.ask(), loaded.ask()
    assert str(a) == str(b)  # "continues exactly"
    assert math.isfinite(bench.query(a))


def test_optuna_snippet_runs() -> None:
    pytest.importorskip("optuna", reason="the Optuna snippet needs optuna (pip install 'gates-sampler[optuna]')")
    block = python_blocks("## Optuna")[0]
    ns = run(block, {"n_trials=100": "n_trials=12"})
    study = ns["study"]
    assert len(study.trials) == 12 and study.best_value == max(t.value for t in study.trials)
    assert "lr" in study.best_params and 1e-3 <= study.best_params["lr"] <= 1e-1
    space = ns["space"]
    names = space.distributions()
    archs = {space.canonical_key(space.from_params({k: t.params[k] for k in names})) for t in study.trials}
    assert len(archs) == 12  # never the same architecture twice


def test_multi_objective_snippet_runs_and_its_front_is_feasible() -> None:
    pytest.importorskip("optuna")
    (block,) = python_blocks("## Multi-objective search")
    ns = run(block, {"n_trials=100": "n_trials=12", "    seed=0,\n": "    seed=0,\n    n_startup_trials=4,\n"})
    study = ns["study"]
    assert len(study.trials) == 12 and study.best_trials
    assert all(t.user_attrs["latency"] <= 0.015 for t in study.best_trials)
    assert ns["sampler"].searcher.n_objectives == 2
