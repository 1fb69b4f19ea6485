"""Every script in examples/ runs end to end with tiny settings, and a missing data path gives a clear error."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import DATA_DIR

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NB301_DIR = DATA_DIR / "nasbench301" / "slds-lmu_yahpo_data" / "v1_initial_3a646b8"


def load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``examples/<name>.py`` as module ``name``; spawned worker processes find it on sys.path too."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_ask_tell_nb201(monkeypatch, capsys) -> None:
    load("ask_tell_nb201", monkeypatch).main(["--dataset", "cifar100", "--budget", "12", "--workers", "2"])
    assert "best after 12:" in capsys.readouterr().out


def test_optuna_nb201(monkeypatch, capsys) -> None:
    pytest.importorskip("optuna")
    load("optuna_nb201", monkeypatch).main(["--trials", "6", "--n-startup", "4"])
    out = capsys.readouterr().out
    assert "6 trials in" in out and "table optimum: 91.607" in out


def test_optuna_multi_objective(monkeypatch, capsys) -> None:
    pytest.importorskip("optuna")
    module = load("optuna_multi_objective", monkeypatch)
    module.main(["--trials", "6", "--n-startup", "4"])
    out = capsys.readouterr().out
    assert "6 trials in" in out and "Pareto front" in out and "model_size" in out
    module.main(["--trials", "5", "--n-startup", "4", "--cost", "latency", "--max-latency", "0.012"])
    assert "latency" in capsys.readouterr().out


@pytest.mark.slow
def test_optuna_distributed(monkeypatch, capsys, tmp_path) -> None:
    pytest.importorskip("optuna")
    load("optuna_distributed", monkeypatch).main(
        ["--workers", "2", "--trials", "2", "--sleep", "0", "--storage", f"sqlite:///{tmp_path / 'study.db'}"]
    )
    assert "4 trials completed by 2 workers" in capsys.readouterr().out


def test_optuna_nb301_surrogate_needs_a_path(monkeypatch, capsys, tmp_path) -> None:
    pytest.importorskip("optuna")
    module = load("optuna_nb301_surrogate", monkeypatch)
    monkeypatch.delenv(module.PATH_VARIABLE, raising=False)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--trials", "2"])
    assert exit_.value.code == 2
    assert "pass --path FOLDER (or set GATES_NB301_PATH)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main(["--path", str(tmp_path / "absent")])
    assert "does not exist" in capsys.readouterr().err
    pytest.importorskip("onnxruntime")
    with pytest.raises(SystemExit):
        module.main(["--path", str(tmp_path)])  # a folder without the surrogate's files
    assert "new_model.onnx" in capsys.readouterr().err


def test_optuna_nb301_surrogate_runs(monkeypatch, capsys) -> None:
    pytest.importorskip("optuna")
    pytest.importorskip("onnxruntime")
    if not NB301_DIR.is_dir():
        pytest.skip(f"NB301 surrogate files not found at {NB301_DIR} (they live outside the repository)")
    module = load("optuna_nb301_surrogate", monkeypatch)
    monkeypatch.setenv(module.PATH_VARIABLE, str(NB301_DIR))
    module.main(["--trials", "4", "--startup", "2"])
    assert "best found by GATES" in capsys.readouterr().out


def test_optuna_real_training(monkeypatch, capsys) -> None:
    pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    module = load("optuna_real_training", monkeypatch)
    module.main(["--quick", "--C", "4"])
    out = capsys.readouterr().out
    assert "seed 0 gates" in out and "seed 0 random" in out
    assert "gates : test accuracy" in out and "random: test accuracy" in out


@pytest.mark.slow
def test_ray_tune_nb201(tmp_path) -> None:
    # run as a script, as users do: Ray's workers then receive the trainable by value from __main__
    pytest.importorskip("ray")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "ray_tune_nb201.py"),
            "--trials",
            "3",
            "--concurrency",
            "1",
            "--storage",
            str(tmp_path),
        ],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        # a guard against a hung cluster, not a speed target: each trial starts a Ray worker that
        # imports torch, about a minute apiece on a loaded 2-core machine
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 trials: 3 cells evaluated, 0 failed" in done.stdout
