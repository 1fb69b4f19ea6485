"""The pruned-search harness: epochs are accounted, and only completed trials count as found."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("optuna")

from gates_sampler.benchmarks import NB201Benchmark  # noqa: E402
from gates_sampler.experiments.multifidelity import (  # noqa: E402
    CurveRun,
    best_at,
    parse_curve_method,
    run_curve_study,
    summarize_curves,
)
from gates_sampler.spaces.base import Arch  # noqa: E402

TINY = {"epochs": 3, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16], "head_dropout": 0.0}


class Curves:
    """NB201 look-ups as a 9-epoch learning curve that rises to the table's value; counts the epochs served."""

    direction = "maximize"
    max_epoch = 9

    def __init__(self) -> None:
        self._bench = NB201Benchmark("cifar10")
        self.space = self._bench.space
        self.served = 0

    def query_epoch(self, arch: Arch, epoch: int) -> float:
        self.served += 1
        return self._bench.query(arch) - 20.0 / epoch


@pytest.mark.parametrize("method", ["random", "tpe", "gates[n_candidates=20,zero_shot=False,n_startup=4]"])
def test_budget_is_accounted_and_only_completed_trials_count(method):
    bench = Curves()
    extra: dict[str, Any] = {"predictor": TINY} if method.startswith("gates") else {}
    run = run_curve_study(method, "hyperband", bench, 120, seed=0, **extra)
    assert bench.served == 120  # every epoch trained is counted, and the run stops at the budget
    assert run.n_pruned > 0 and run.finals
    spent = [s for s, _ in run.finals]
    assert spent == sorted(spent) and spent[-1] <= 120
    # a completed trial's value is its value at the last epoch, from the table
    assert all(v <= 100.0 for _, v in run.finals)
    assert best_at(run, 120) == max(v for _, v in run.finals)
    assert np.isnan(best_at(run, spent[0] - 1))


def test_a_seed_fixes_the_whole_run_under_hyperband():
    """Hyperband buckets trials by a hash of the study name: the harness names its study after the seed,
    so two runs with one seed are the same run (pruned trials, finals and all)."""
    first = run_curve_study("random", "hyperband", Curves(), 300, seed=3)
    again = run_curve_study("random", "hyperband", Curves(), 300, seed=3)
    assert first.n_pruned > 0
    assert (again.finals, again.n_pruned, again.n_trials) == (first.finals, first.n_pruned, first.n_trials)


def test_without_pruner_every_trial_trains_all_epochs():
    bench = Curves()
    run = run_curve_study("random", "none", bench, 50, seed=1)
    assert run.n_pruned == 0 and [s for s, _ in run.finals] == [9, 18, 27, 36, 45]


def test_summary_mean_and_standard_error():
    runs = [CurveRun("m", "none", s, 10, [(5, v)]) for s, v in enumerate([1.0, 2.0, 3.0])]
    (row,) = summarize_curves(runs, [4, 10])
    assert row["best@10"][0] == pytest.approx(2.0) and row["best@10"][1] == pytest.approx(1 / np.sqrt(3))
    assert row["best@4"][2] == 0  # nothing completed by then


def test_method_specs():
    assert parse_curve_method("gates-nolearn[candidates=mixed]") == ("gates-nolearn", {"candidates": "mixed"})
    assert parse_curve_method("tpe") == ("tpe", {})
    with pytest.raises(ValueError, match="method must be one of"):
        parse_curve_method("rea")


def test_compare_pruner_checks_its_arguments_first(capsys, tmp_path):
    from gates_sampler.cli import main

    assert main(["compare", "--pruner", "hyperband", "--seeds", "1"]) == 2
    assert "--pruner needs learning curves" in capsys.readouterr().err
    nb301 = ["compare", "--benchmark", "nb301", "--nb301-path", str(tmp_path), "--pruner", "hyperband"]
    assert main([*nb301, "--methods", "rea"]) == 2
    assert "method must be one of" in capsys.readouterr().err
    assert main([*nb301, "--methods", "gates", "--predictor", "[1]"]) == 2
    assert "--predictor must be a JSON object" in capsys.readouterr().err
