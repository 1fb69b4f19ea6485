"""The gates-nas search and compare commands, end to end on tiny budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gates_sampler import experiments as ex
from gates_sampler.cli import main

NB301_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "nasbench301" / "slds-lmu_yahpo_data" / "v1_initial_3a646b8"


def test_compare_prints_tables_and_writes_raw_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--datasets", "cifar100", "--methods", "random", "rea", "tpe-cached", "--seeds", "2",
               "--budget", "12", "--checkpoints", "5", "10", "--out", str(out), "--no-plot"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "optimum 73.493" in text and "regret@10" in text
    for method in ("random", "rea", "tpe-cached"):
        assert method in text
    runs = json.loads((tmp_path / "cmp_nb201_cifar100.json").read_text())
    assert len(runs) == 6 and all(len(r["values"]) == 12 for r in runs)
    # tpe-cached counts only unique evaluations
    cached = [r for r in runs if r["method"] == "tpe-cached"]
    assert all(len(set(r["archs"])) == 12 for r in cached)


def test_compare_rejects_unknown_method_before_running(capsys):
    assert main(["compare", "--methods", "gates", "hyperband", "--seeds", "1", "--budget", "5"]) == 2
    assert "unknown method 'hyperband'" in capsys.readouterr().err


def test_parse_method_settings():
    assert ex.parse_method("gates[candidates='mixed', n_candidates=500]") == ("gates", {"candidates": "mixed", "n_candidates": 500})
    with pytest.raises(ValueError, match="key=value"):
        ex.parse_method("gates[mixed]")


def test_search_resumes_from_its_state_file(tmp_path, capsys):
    state = tmp_path / "run.pt"
    args = ["search", "--dataset", "cifar10", "--n-startup", "4", "--n-candidates", "20", "--state", str(state), "--device", "cpu"]
    assert main(args + ["--budget", "6"]) == 0
    assert main(args + ["--budget", "9", "--json", str(tmp_path / "h.json")]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "best architecture after 9 evaluations" in out
    history = json.loads((tmp_path / "h.json").read_text())
    assert len(history) == 9 and len({h["arch"] for h in history}) == 9


def test_search_zero_shot_flags_choose_the_predictor(monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def fake(space, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr("gates_sampler.commands.search.GatesPredictorSearcher", fake)
    for flag, expected in ((["--zero-shot"], True), (["--no-zero-shot"], False), ([], "auto")):
        with pytest.raises(Stop):
            main(["search", "--budget", "3", "--device", "cpu", *flag])
        assert seen["zero_shot"] == expected


@pytest.mark.skipif(not NB301_DIR.exists(), reason="NB301 surrogate files not found under ../shared/data")
def test_compare_on_the_nb301_surrogate_has_no_regret_column(tmp_path, capsys):
    rc = main(["compare", "--benchmark", "nb301", "--nb301-path", str(NB301_DIR), "--methods", "random", "--seeds", "1",
               "--budget", "6", "--checkpoints", "3", "6", "--out", str(tmp_path / "n"), "--no-plot"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "NB301Benchmark" in text and "regret" not in text
