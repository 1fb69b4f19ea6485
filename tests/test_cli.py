"""The gates-nas commands: end to end on tiny budgets, and every bad argument rejected before any work."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path

from gates_sampler.cli import main
from gates_sampler.experiments import comparison as ex

REPO = Path(__file__).resolve().parents[1]
#: a path whose parent "folder" is a file
UNDER_A_FILE = f"{Path(__file__).resolve()}/out"

NB301_DIR = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "nasbench301"
    / "slds-lmu_yahpo_data"
    / "v1_initial_3a646b8"
)


def test_compare_prints_tables_and_writes_raw_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(
        [
            "compare",
            "--datasets",
            "cifar100",
            "--methods",
            "random",
            "rea",
            "tpe-cached",
            "--seeds",
            "2",
            "--budget",
            "12",
            "--checkpoints",
            "5",
            "10",
            "--out",
            str(out),
            "--no-plot",
        ]
    )
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


def test_compare_objectives_prints_hypervolume_regret_tables(tmp_path, capsys):
    out = tmp_path / "mo"
    argv = ["compare", "--objectives", "val_acc", "model_size", "--datasets", "cifar10", "--methods", "tpe"]
    argv += ["nsga2", "random", "--seeds", "2", "--budget", "15", "--checkpoints", "5", "--out", str(out)]
    assert main(argv + ["--no-plot"]) == 0
    text = capsys.readouterr().out
    assert "val_acc vs model_size: hypervolume regret" in text and "TPESampler (Optuna's default)" in text
    runs = json.loads((tmp_path / "mo_cifar10_val_acc_model_size.json").read_text())
    assert len(runs) == 6 and all(len(r["points"]) == 15 for r in runs)
    from gates_sampler.experiments.multi_objective import NB201Problem

    problem = NB201Problem("cifar10", ("val_acc", "model_size"))
    for r in runs:
        assert 0 <= problem.regret(r["points"]) <= problem.regret(r["points"][:5]) <= problem.true_hv


def test_compare_rejects_unknown_method_before_running(capsys):
    assert main(["compare", "--methods", "gates", "hyperband", "--seeds", "1", "--budget", "5"]) == 2
    assert "unknown method 'hyperband'" in capsys.readouterr().err


def test_parse_method_settings():
    assert ex.parse_method("gates[candidates='mixed', n_candidates=500]") == (
        "gates",
        {"candidates": "mixed", "n_candidates": 500},
    )
    with pytest.raises(ValueError, match="key=value"):
        ex.parse_method("gates[mixed]")


def test_method_spec_research_settings_reach_the_searcher() -> None:
    # SearchSettings fields are named one by one in a spec and gathered into settings=
    from gates_sampler.spaces import NB201Space

    bench = type("Bench", (), {"space": NB201Space(), "direction": "maximize"})()
    name, kwargs = ex.parse_method("gates[refit=scratch,warm_epochs=3,candidates=mixed,zero_shot=False]")
    ex.check_method("gates[refit=scratch,warm_epochs=3,candidates=mixed,zero_shot=False]", bench.space)
    s = ex._make_searcher(name, kwargs, bench, seed=0)
    assert (s.settings.refit, s.settings.warm_epochs, s.candidates, s.zero_shot) == ("scratch", 3, "mixed", None)
    assert s.refit == "scratch" and s.warm_epochs == 3


def test_search_resumes_from_its_state_file(tmp_path, capsys):
    state = tmp_path / "run.pt"
    args = [
        "search",
        "--dataset",
        "cifar10",
        "--n-startup",
        "4",
        "--n-candidates",
        "20",
        "--state",
        str(state),
        "--device",
        "cpu",
    ]
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

    monkeypatch.setattr("gates_sampler.searcher.GatesPredictorSearcher", fake)
    for flag, expected in ((["--zero-shot"], True), (["--no-zero-shot"], False), ([], "auto")):
        with pytest.raises(Stop):
            main(["search", "--budget", "3", "--device", "cpu", *flag])
        assert seen["zero_shot"] == expected


@pytest.mark.skipif(
    not NB301_DIR.is_dir(),
    reason=f"NB301 surrogate files not found at {NB301_DIR} (shared benchmark data absent)",
)
def test_compare_on_the_nb301_surrogate_has_no_regret_column(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the NB301 surrogate needs onnxruntime ([nb301] extra)")
    rc = main(
        [
            "compare",
            "--benchmark",
            "nb301",
            "--nb301-path",
            str(NB301_DIR),
            "--methods",
            "random",
            "--seeds",
            "1",
            "--budget",
            "6",
            "--checkpoints",
            "3",
            "6",
            "--out",
            str(tmp_path / "n"),
            "--no-plot",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "NAS-Bench-301 surrogate (epoch 98), validation accuracy (%)" in text and "regret" not in text


def test_eval_predictor_on_the_nb301_surrogate_end_to_end(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the NB301 surrogate needs onnxruntime ([nb301] extra)")
    folder = data_path("nasbench301", "slds-lmu_yahpo_data", "v1_initial_3a646b8")
    out = tmp_path / "p.json"
    argv = ["eval-predictor", "--benchmark", "nb301", "--nb301-path", str(folder), "--pool-size", "60"]
    argv += ["--test-size", "60", "--ratios", "10", "--subsets", "1", "--seeds", "2", "--epochs", "5"]
    argv += ["--no-progress", "--device", "cpu", "--preset", "paper-nb301", "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "NAS-Bench-301 surrogate (epoch 98) validation accuracy: pool 60 / test 60 cells" in text
    assert "0.7430" in text  # the paper's NB301 tau at 10 % stands next to the measured one
    record = json.loads(out.read_text())
    assert record["complete"] and [r["n_train"] for r in record["runs"]] == [6, 6]
    assert record["config"]["predictor_settings"] == {"op_dim": 32, "hidden": 64, "n_layers": 4}
    assert [r["seed"] for r in record["runs"]] == [21, 2021] and record["config"]["test_size"] == 60


def test_eval_predictor_with_the_cost_features_of_darts_cells(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the NB301 surrogate needs onnxruntime ([nb301] extra)")
    folder = data_path("nasbench301", "slds-lmu_yahpo_data", "v1_initial_3a646b8")
    argv = ["eval-predictor", "--benchmark", "nb301", "--nb301-path", str(folder), "--pool-size", "40"]
    argv += ["--test-size", "40", "--ratios", "25", "--subsets", "1", "--seeds", "1", "--epochs", "5"]
    argv += ["--no-progress", "--no-timing", "--device", "cpu", "--preset", "paper-nb301"]
    argv += ["--ablation", "--cost-features", "--arch-input", "--json", str(tmp_path / "c.json")]
    assert main(argv) == 0
    record = json.loads((tmp_path / "c.json").read_text())
    assert [r["variant"] for r in record["runs"]] == ["GATES", "+ETS"]


def test_compare_runs_optunas_gp_sampler(tmp_path, capsys):
    pytest.importorskip("optuna")
    argv = ["compare", "--datasets", "cifar10", "--methods", "gp", "--seeds", "1", "--budget", "6"]
    assert main([*argv, "--checkpoints", "3", "--out", str(tmp_path / "gp"), "--no-plot"]) == 0
    runs = json.loads((tmp_path / "gp_nb201_cifar10.json").read_text())
    assert [len(r["values"]) for r in runs if r["method"] == "gp"] == [6]


# ----- arguments checked before any work ---------------------------------------------------------------

#: every bad command line -> a fragment of its message
BAD_INPUTS = [
    (["compare", "--seeds", "0"], "argument --seeds: expected a positive integer, got '0'"),
    (["compare", "--budget", "-5"], "argument --budget: expected a positive integer, got '-5'"),
    (["compare", "--budget", "0"], "argument --budget: expected a positive integer, got '0'"),
    (["compare", "--first-seed", "-1"], "argument --first-seed: expected an integer >= 0"),
    (["compare", "--jobs", "0"], "argument --jobs: expected a positive integer"),
    (["compare", "--datasets", "cifar-10"], "argument --datasets: invalid choice: 'cifar-10'"),
    (["compare", "--epoch", "99"], "argument --epoch: expected an epoch 1..98"),
    (["compare", "--methods", "gates", "hyperband"], "unknown method 'hyperband'"),
    (["compare", "--methods", "rea", "random", "rea"], "--methods lists 'rea' more than once; name each once"),
    (["compare", "--datasets", "cifar10", "cifar10"], "--datasets lists 'cifar10' more than once"),
    (["compare", "--methods", "gates[foo=1]"], "unknown setting(s) ['foo']; gates takes ['n_startup'"),
    (["compare", "--methods", "gates[n_candidates=abc]"], "setting n_candidates must be int, got 'abc'"),
    (
        ["compare", "--methods", "gates[candidates=foo]"],
        "candidates must be one of ('auto', 'random', 'mutation', 'mixed', 'local', 'staged', 'evolve')",
    ),
    (["compare", "--methods", "rea[population_size=1]"], "need population_size >= 2"),
    (["compare", "--methods", "tpe[n_startup_trial=5]"], "unknown setting(s) ['n_startup_trial']; tpe takes"),
    (["compare", "--methods", "gates[seed=3]"], "unknown setting(s) ['seed']"),
    (["compare", "--methods", "gates[refit=sometimes]"], "refit must be one of ('warm', 'scratch')"),
    (["compare", "--methods", "gates[warm_epochs=0]"], "warm_epochs must be None or an int >= 1, got 0"),
    (["compare", "--methods", "gates[distinct_sampling=1]"], "setting distinct_sampling must be bool, got 1"),
    (["compare", "--methods", "gates[settings=1]"], "unknown setting(s) ['settings']"),
    (["compare", "--methods", "gates[mixed]"], "must look like key=value"),
    (["compare", "--budget", "50", "--checkpoints", "20", "100"], "--checkpoints 100 exceed --budget 50"),
    (["compare", "--benchmark", "nb301"], "--benchmark nb301 needs --nb301-path"),
    (["compare", "--objectives", "latency", "val_acc"], "--objectives must be val_acc and one cost"),
    (["compare", "--objectives", "val_acc", "flops"], "argument --objectives: invalid choice: 'flops'"),
    (["compare", "--objectives", "val_acc", "latency", "--methods", "rea"], "--methods rea: this comparison takes"),
    (["compare", "--constraint", "latency:2"], "--constraint must look like latency:QUANTILE"),
    (
        ["compare", "--constraint", "latency:0.2", "--objectives", "val_acc", "latency"],
        "pass either --objectives or --constraint",
    ),
    (["compare", "--benchmark", "nb301", "--nb301-path", "/nonexistent"], "is not a folder"),
    (
        ["compare", "--out", UNDER_A_FILE],
        f"cannot write --out '{UNDER_A_FILE}': {Path(__file__).resolve()} is not a folder; pass another path",
    ),
    (
        ["search", "--json", "/missing/dir/x.json"],
        "cannot write --json '/missing/dir/x.json': /missing/dir does not exist; create it first or pass another path",
    ),
    (["search", "--json", "/"], "--json '/' is a folder; pass a file name"),
    (["search", "--state", UNDER_A_FILE], "cannot write --state"),
    (["search", "--budget", "0"], "argument --budget: expected a positive integer, got '0'"),
    (["search", "--n-startup", "1"], "argument --n-startup: expected an integer >= 2 (the predictor needs pairs)"),
    (["search", "--n-candidates", "0"], "argument --n-candidates: expected a positive integer"),
    (["search", "--seed", "-1"], "argument --seed: expected an integer >= 0"),
    (["search", "--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist'"),
    (["search", "--candidates", "best"], "argument --candidates: invalid choice: 'best'"),
    (["search", "--device", "tpu"], "--device: device must be 'auto', 'cpu', 'cuda'"),
    (["search", "--benchmark", "nb301"], "--benchmark nb301 needs --nb301-path"),
    (["eval-predictor", "--ablation", "--encoder", "mlp"], "drop --encoder mlp (or --ablation)"),
    (["eval-predictor", "--cost-features"], "--cost-features counts DARTS cells: use it with --benchmark nb301"),
    (["eval-predictor", "--aux-weight", "nan"], "--aux-weight must be a finite number >= 0, got nan"),
    (["eval-predictor", "--aux-weight", "-1"], "--aux-weight must be a finite number >= 0, got -1.0"),
    (["eval-predictor", "--json", "/missing/x.json"], "cannot write --json"),
    (["eval-predictor", "--split-seed", "-3"], "argument --split-seed: expected an integer >= 0"),
    (["eval-predictor", "--ratios", "0"], "argument --ratios: a training ratio is a percent of the pool in (0, 100]"),
    (["eval-predictor", "--device", "tpu"], "--device: device must be"),
    (["eval-predictor", "--benchmark", "nb301"], "--benchmark nb301 needs --nb301-path"),
    (["eval-predictor", "--benchmark", "nb301", "--nb301-path", "/nonexistent"], "is not a folder"),
    (
        ["eval-predictor", "--benchmark", "nb301", "--nb301-path", str(REPO), "--split", "first"],
        "--split first is NAS-Bench-201's index order",
    ),
    (["eval-predictor", "--pool-size", "100"], "--pool-size sizes the NB301 split"),
    (["eval-predictor", "--test-size", "100"], "--test-size sizes the NB301 split"),
    (["eval-predictor", "--pool-size", "1"], "argument --pool-size: expected an integer >= 2, got '1'"),
    (["eval-predictor", "--preset", "paper"], "argument --preset: invalid choice: 'paper'"),
    (["eval-predictor", "--preset", "paper-nb301", "--encoder", "mlp"], "drop it with --encoder mlp"),
    (["precompute-zeroshot", "--space", "darts"], "pass --limit N"),
    (["precompute-zeroshot", "--limit", "0"], "argument --limit: expected a positive integer"),
    (["precompute-zeroshot", "--jobs", "0"], "argument --jobs: expected a positive integer"),
    (["precompute-zeroshot", "--cache", "/"], "--cache '/' is a folder"),
    (["precompute-zeroshot", "--export", UNDER_A_FILE], "cannot write --export"),
]


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command's work function, and loading a benchmark, fail the test if reached."""

    def work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the arguments were checked")

    for module in ("search", "compare", "eval_predictor", "precompute_zeroshot"):
        monkeypatch.setattr(f"gates_sampler.commands.{module}.run", work)
    monkeypatch.setattr("gates_sampler.benchmarks.nb201.NB201Benchmark.__init__", work)
    monkeypatch.setattr("gates_sampler.commands._common.make_benchmark", work)
    monkeypatch.setattr(ex, "run_method", work)


def exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


@pytest.mark.parametrize("argv, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_arguments_exit_2_before_any_work(argv, message, no_work, capsys) -> None:
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and "work started" not in err


def test_compare_without_matplotlib_names_the_extra_before_any_run(monkeypatch, no_work, capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert exit_status(["compare", "--seeds", "1", "--budget", "5"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'gates-sampler[plot]' or pass --no-plot" in err


def test_building_the_parser_imports_no_torch() -> None:
    code = (
        "import sys, gates_sampler.cli as c; c.build_parser(); "
        "heavy = [m for m in ('torch', 'optuna', 'ray', 'matplotlib', 'scipy') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_mirrored_choices_agree_with_their_sources() -> None:
    from gates_sampler.benchmarks.nb201 import DATASETS
    from gates_sampler.commands import _common
    from gates_sampler.experiments.predictor_quality import PAPER_SEEDS, SPLITS
    from gates_sampler.predictor.losses import LOSSES
    from gates_sampler.searcher import CANDIDATE_MODES
    from gates_sampler.spaces import BUILTIN_SPACES

    assert _common.NB201_DATASETS == DATASETS and _common.CANDIDATE_MODES == CANDIDATE_MODES
    assert _common.LOSSES == LOSSES and _common.SPLITS == SPLITS and _common.PAPER_SEEDS == PAPER_SEEDS
    assert _common.BUILTIN_SPACE_NAMES == tuple(BUILTIN_SPACES)
    from gates_sampler.commands import eval_predictor as ep
    from gates_sampler.experiments import predictor_quality as pq

    assert ep.PRESETS == tuple(pq.PREDICTOR_PRESETS) and ep.NB301_SIZES == (pq.NB301_POOL_SIZE, pq.NB301_TEST_SIZE)


# ----- the compare table and plot ----------------------------------------------------------------------


def test_ask_window_covers_the_budget() -> None:
    assert ex.ask_window(150) == (91, 110)
    assert ex.ask_window(50) == (31, 50)
    assert ex.ask_window(12) == (1, 12)


def test_small_budget_table_shows_the_budget_and_the_ask_time(tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    seen: dict[str, str] = {}
    save = Figure.savefig

    def spy(fig: Figure, *args: object, **kwargs: object) -> None:
        ax = fig.axes[0]
        seen.update(title=ax.get_title(), ylabel=ax.get_ylabel())
        save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    rc = main(
        [
            "compare",
            "--datasets",
            "cifar100",
            "--methods",
            "random",
            "--seeds",
            "2",
            "--budget",
            "12",
            "--out",
            str(tmp_path / "c"),
        ]
    )
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(line for line in lines if line.startswith("method"))
    assert "N=12" in head and "regret@12" in head and "ask s (trials 1-12)" in head
    row = next(line for line in lines if line.startswith("random")).split()
    assert row[-1] != "-" and float(row[-1]) >= 0
    assert seen["title"].startswith("NAS-Bench-201 cifar100, validation accuracy (%)")
    assert "Benchmark(" not in seen["title"]
    assert seen["ylabel"] == "best validation accuracy so far (%)"
    assert (tmp_path / "c_nb201_cifar100.png").stat().st_size > 0


def test_default_checkpoints_stop_at_the_budget() -> None:
    from gates_sampler.cli import build_parser
    from gates_sampler.commands.compare import checkpoints

    parse = build_parser().parse_args
    assert checkpoints(parse(["compare", "--budget", "30"])) == [20, 30]
    assert checkpoints(parse(["compare", "--budget", "150"])) == [20, 50, 100, 150]
    assert checkpoints(parse(["compare", "--budget", "12", "--checkpoints", "5"])) == [5, 12]


def test_summary_ask_time_reads_the_window() -> None:
    run = ex.Run("m", "b", 0, values=list(range(30)), ask_seconds=[0.0] * 10 + [1.0] * 20)
    row = ex.summarize([run], "maximize", None, [30])[0]
    assert row["ask_window"] == (11, 30) and row["median_ask_s_late"] == 1.0
    assert np.isclose(row["median_ask_s"], 1.0)


def test_summary_reports_the_standard_error_over_seeds() -> None:
    # best values 1, 2, 3, 6 at N=2: mean 3, sample std sqrt(14/3), standard error that over 2
    runs = [ex.Run("m", "b", s, values=[0.0, v], ask_seconds=[0.0, 0.0]) for s, v in enumerate([1.0, 2.0, 3.0, 6.0])]
    mean, se = ex.summarize(runs, "maximize", None, [2])[0]["best@2"]
    assert mean == 3.0 and np.isclose(se, np.sqrt(14 / 3) / 2)
    assert ex.standard_error([5.0]) == 0.0
