"""GatesSearcher against Ray Tune's searcher contract.

The cases of Ray's ``python/ray/tune/tests/test_searchers.py`` and ``test_searcher_utils.py`` that apply
to a searcher over a categorical architecture space, rewritten: invalid metric values, constants kept,
save/restore in the middle without a new ``set_search_properties``, reports after completion,
``points_to_evaluate``, ``add_evaluated_point``/``add_evaluated_trials``, ``ConcurrencyLimiter`` (with
its state), ``Repeater``, nested configs through Tune's ``SearchGenerator``, and the README's Ray
snippets (``GatesSearcher`` and ``OptunaSearch``) run as written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from conftest import local_ray

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

from ray.tune.search import ConcurrencyLimiter  # noqa: E402
from ray.tune.search.repeater import Repeater  # noqa: E402

from gates_sampler import GatesSearcher  # noqa: E402
from gates_sampler.spaces import NB201Space  # noqa: E402
from gates_sampler.utils import safe_torch_load  # noqa: E402

SMALL = {"epochs": 5, "hidden": 16, "n_layers": 2, "op_dim": 8, "head_hidden": [16], "head_dropout": 0.0}
KW = dict(n_startup=3, n_candidates=20, predictor=SMALL, zero_shot=None, device="cpu")
SPACE = NB201Space()
NAMES = list(SPACE.distributions())
ROOT = Path(__file__).resolve().parents[1]


def score(params: dict) -> float:
    """A cheap deterministic metric of an NB201 cell (no benchmark file needed)."""
    return float(sum((i + 1) * len(params[k]) for i, k in enumerate(NAMES)))


def arch_of(config: dict, key: str | None = None) -> Any:
    return SPACE.from_params(config if key is None else config[key])


# ----- invalid values, constants (Ray: InvalidValuesTest) ---------------------------------------------
def test_invalid_metric_values_are_failures_and_constants_are_kept() -> None:
    spec = {"arch": SPACE, "report": tune.uniform(0.0, 5.0), "list": [1, 2, 3], "num": 4}
    s = GatesSearcher(spec, metric="_metric", mode="max", seed=0, **KW)
    bad = [float("inf"), float("-inf"), float("nan")]
    for i in range(8):
        config = s.suggest(str(i))
        assert config["list"] == [1, 2, 3] and config["num"] == 4 and 0.0 <= config["report"] <= 5.0
        s.on_trial_complete(str(i), {"_metric": bad[i] if i < 3 else config["report"]})
    told = [o.value for o in s.history]
    assert told[:3] == [None, None, None] and all(v is not None and math.isfinite(v) for v in told[3:])
    assert s.best is not None and math.isfinite(s.best[1])
    failed = {SPACE.canonical_key(o.arch) for o in s.history[:3]}
    for i in range(8, 12):
        s.suggest(str(i))
    assert failed.isdisjoint(SPACE.canonical_key(a) for a in s.live_trials.values())


def test_report_after_completion_and_a_second_completion_do_not_fail() -> None:
    s = GatesSearcher(SPACE, metric="m", mode="max", seed=0, **KW)
    config = s.suggest("t1")
    s.on_trial_result("t1", {"training_iteration": 1, "m": 1.0})
    s.on_trial_complete("t1", {"training_iteration": 2, "m": score(config)})
    s.on_trial_result("t1", {"training_iteration": 3, "m": 1.0})
    s.on_trial_complete("t1", {"training_iteration": 4, "m": 0.0})  # ignored with a warning
    assert [o.value for o in s.history] == [score(config)]


def test_on_trial_complete_with_error_is_a_failure_never_proposed_again() -> None:
    s = GatesSearcher(SPACE, metric="m", mode="min", seed=0, **KW)
    config = s.suggest("t")
    s.on_trial_complete("t", None, error=True)
    assert s.history[0].value is None and s.best is None
    key = SPACE.canonical_key(arch_of(config))
    assert key in s.core.seen_keys() and not s.live_trials


def test_multiple_metrics_are_rejected_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="metric must be the name"):
        GatesSearcher(SPACE, metric=["a", "b"], mode="max")
    with pytest.raises(ValueError, match="mode must be"):
        GatesSearcher(SPACE, metric="a", mode=["max", "min"])


# ----- set_search_properties and direction ------------------------------------------------------------
def test_mode_from_set_search_properties_is_the_core_direction() -> None:
    s = GatesSearcher(SPACE, seed=0, **KW)
    assert s.set_search_properties("loss", "min", {}) is True
    assert s.core.direction == "minimize"
    configs = [s.suggest(str(i)) for i in range(4)]
    for i, c in enumerate(configs):
        s.on_trial_complete(str(i), {"loss": score(c)})
    assert s.best[1] == min(score(c) for c in configs)  # in the metric's own units
    assert [o.value for o in s.core.history] == [score(c) for c in configs]  # told as reported, no sign flip
    with pytest.raises(ValueError, match="mode='min' but Tune passes mode='max'"):
        s.set_search_properties(None, "max", {})


def test_set_search_properties_again_recomputes_the_param_space_domains() -> None:
    s = GatesSearcher(SPACE, metric="m", mode="max", seed=0, **KW)
    s.set_search_properties(None, None, {**SPACE.tune_param_space(), "lr": tune.uniform(0.0, 1.0)})
    assert "lr" in s.suggest("a")
    s.set_search_properties(None, None, {"wd": tune.uniform(5.0, 6.0)})
    config = s.suggest("b")
    assert "lr" not in config and 5.0 <= config["wd"] <= 6.0
    with pytest.raises(ValueError, match="choices"):
        s.set_search_properties(None, None, {NAMES[0]: tune.choice(["conv"])})


# ----- save / restore in the middle (Ray: SaveRestoreCheckpointTest) ----------------------------------
def test_save_restore_in_the_middle_without_set_search_properties(tmp_path: Any) -> None:
    path = str(tmp_path / "searcher.ckpt")
    s = GatesSearcher(SPACE, seed=1, **KW)
    s.set_search_properties("metric", "max", {"a": tune.uniform(0.0, 5.0), "b": tune.qrandint(2, 20, 2)})
    for tid in ("1", "2", "not_completed"):
        s.suggest(tid)
    s.on_trial_complete("1", {"metric": 1.0, "config/a": 1.0})
    s.save(path)
    # the state is plain data and tensors: it loads without unpickling code (weights_only=True inside)
    assert isinstance(safe_torch_load(path), dict)

    r = GatesSearcher(SPACE, seed=1, **KW)
    r.restore(path)  # no set_search_properties before or after
    assert (r.metric, r.mode) == ("metric", "max") and r.core.direction == "maximize"
    assert "not_completed" in r.live_trials
    r.on_trial_complete("2", {"metric": 2.0})
    config = r.suggest("3")
    assert 0.0 <= config["a"] <= 5.0 and config["b"] % 2 == 0 and 2 <= config["b"] <= 20  # domains kept
    r.on_trial_complete("3", {"metric": 3.0})
    assert [o.value for o in r.history] == [1.0, 2.0, 3.0]

    s2 = GatesSearcher(SPACE, metric="loss", mode="min", seed=1, **KW)
    s2.suggest("x")
    s2.on_trial_complete("x", {"loss": 4.0})
    s2.save(path)
    fresh = GatesSearcher(SPACE, seed=1, **KW)  # built to maximise until the file says "min"
    fresh.restore(path)
    assert fresh.core.direction == "minimize" and fresh.best[1] == 4.0


# ----- points_to_evaluate -----------------------------------------------------------------------------
def test_points_to_evaluate_come_first_and_partial_ones_are_completed(tmp_path: Any) -> None:
    rng_archs = [
        SPACE.to_params(SPACE.parse(s))
        for s in (
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
            "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
        )
    ]
    partial = {NAMES[0]: "none", NAMES[5]: "nor_conv_1x1"}
    points = [
        {"arch": rng_archs[0], "lr": 0.5},
        {"arch": rng_archs[1]},
        {"arch": partial, "lr": 0.25},
    ]
    spec = {"arch": SPACE, "lr": tune.uniform(0.0, 0.1)}
    s = GatesSearcher(spec, metric="m", mode="max", seed=0, points_to_evaluate=points, **KW)
    c0, c1 = s.suggest("0"), s.suggest("1")
    assert c0 == {"arch": rng_archs[0], "lr": 0.5}
    assert c1["arch"] == rng_archs[1] and 0.0 <= c1["lr"] <= 0.1
    s.save(str(tmp_path / "ckpt"))
    r = GatesSearcher(spec, seed=0, **KW)
    r.restore(str(tmp_path / "ckpt"))
    for searcher in (s, r):  # the third point survives a checkpoint
        c2 = searcher.suggest("2")
        assert all(c2["arch"][k] == v for k, v in partial.items()) and c2["lr"] == 0.25
        given = {SPACE.canonical_key(SPACE.from_params(p)) for p in rng_archs}
        assert SPACE.canonical_key(arch_of(c2, "arch")) not in given
        assert "lr" in searcher.suggest("3")  # then the searcher's own proposals
    assert len({SPACE.canonical_key(a) for a in s.live_trials.values()}) == 4


@pytest.mark.parametrize(
    "points, match",
    [
        ({"arch": {}}, "must be a list"),
        (["x"], r"points_to_evaluate\[0\] must be a config dict"),
        ([{"arch": {"edge9": "none"}}], r"points_to_evaluate\[0\]: 'edge9' is not an architecture parameter"),
        ([{"arch": {NAMES[0]: "conv7"}}], "allowed"),
        ([{"arch": "cell"}], "must hold a dict"),
    ],
)
def test_bad_points_to_evaluate_name_gates_searcher(points: Any, match: str) -> None:
    with pytest.raises(ValueError, match="GatesSearcher") as info:
        GatesSearcher({"arch": SPACE}, metric="m", mode="max", points_to_evaluate=points, **KW)
    assert info.match(match)


def test_points_to_evaluate_with_flat_architecture_parameters() -> None:
    point = SPACE.to_params(SPACE.parse("|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"))
    s = GatesSearcher(SPACE, metric="m", mode="min", seed=0, points_to_evaluate=[point], **KW)
    assert s.suggest("a") == point


# ----- ConcurrencyLimiter, Repeater, SearchGenerator (Ray: test_searcher_utils) -----------------------
def test_concurrency_limiter_and_its_state() -> None:
    s = GatesSearcher(SPACE, metric="m", mode="max", seed=0, **KW)
    limiter = ConcurrencyLimiter(s, max_concurrent=2)
    c1, c2 = limiter.suggest("t1"), limiter.suggest("t2")
    assert c1 and c2 and limiter.suggest("t3") is None
    state = limiter.get_state()
    other = ConcurrencyLimiter(s, max_concurrent=3)
    other.set_state(state)
    assert other.suggest("t4") is None
    other.on_trial_complete("t1", {"m": score(c1)})
    c3 = other.suggest("t3")
    assert c3 and SPACE.canonical_key(arch_of(c3)) not in {SPACE.canonical_key(arch_of(c)) for c in (c1, c2)}
    batch = ConcurrencyLimiter(GatesSearcher(SPACE, metric="m", mode="max", seed=1, **KW), max_concurrent=2, batch=True)
    b1, b2 = batch.suggest("a"), batch.suggest("b")
    batch.on_trial_complete("a", {"m": score(b1)})
    assert batch.suggest("c") is None  # a batch finishes as a whole
    batch.on_trial_complete("b", {"m": score(b2)})
    assert batch.suggest("c") is not None


def test_repeater_tells_the_mean_of_each_group_once() -> None:
    s = GatesSearcher(SPACE, metric="m", mode="max", seed=0, **KW)
    rep = Repeater(s, repeat=3, set_index=False)
    configs = [rep.suggest(f"t{i}") for i in range(6)]
    assert configs[0] == configs[1] == configs[2] and configs[3] == configs[4] == configs[5]
    assert configs[0] != configs[3]
    for i, value in enumerate([1.0, 2.0, 6.0, 4.0, 4.0, 4.0]):
        rep.on_trial_complete(f"t{i}", {"m": value})
    assert [o.value for o in s.history] == [3.0, 4.0]


def test_nested_config_through_search_generator() -> None:
    from ray.tune.search.search_generator import SearchGenerator
    from ray.tune.utils.mock_trainable import (
        MOCK_TRAINABLE_NAME,
        register_mock_trainable,
    )

    register_mock_trainable()
    s = GatesSearcher({"net": SPACE, "opt": {"lr": 0.1}}, metric="m", mode="max", seed=0, **KW)
    gen = SearchGenerator(s)
    gen.add_configurations({"exp": {"run": MOCK_TRAINABLE_NAME, "num_samples": 2}})
    trial = gen.next_trial()
    assert trial.config["opt"] == {"lr": 0.1}
    assert SPACE.from_params(trial.config["net"]) in s.live_trials.values()
    assert "lr=0.1" in trial.experiment_tag


# ----- a real Tuner run in the README's shape ---------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: Any) -> Any:
    with local_ray(__name__):
        yield


def readme_ray_blocks() -> list[str]:
    """The python blocks of the README's "Ray Tune" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Ray Tune\n") :]
    section = section[: section.index("\n## ", 1)]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


@pytest.mark.slow
def test_readme_ray_snippets_run(ray_local: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's GatesSearcher and OptunaSearch snippets run as written (fewer samples), and
    get_best_result() works with metric/mode in TuneConfig; then add_evaluated_trials (Ray's
    AddEvaluatedPointTest) reads the finished experiment into a fresh searcher."""
    monkeypatch.setenv("HOME", str(tmp_path))  # Tune's default storage is ~/ray_results
    blocks = readme_ray_blocks()
    assert len(blocks) == 2 and "GatesSearcher(" in blocks[0] and "OptunaSearch(" in blocks[1]
    assert "num_samples=100" in blocks[0] and "num_samples=50" in blocks[1]
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compile(blocks[0].replace("num_samples=100", "num_samples=4"), "README.md", "exec"), namespace)
    results = namespace["results"]
    assert len(results) == 4 and results.num_errors == 0
    assert results.get_best_result().metrics["val_acc"] == max(r.metrics["val_acc"] for r in results)
    assert all(1e-4 <= r.config["lr"] <= 1e-1 for r in results)
    assert len({SPACE.canonical_key(arch_of(r.config, "arch")) for r in results}) == 4
    exec(compile(blocks[1].replace("num_samples=50", "num_samples=3"), "README.md", "exec"), namespace)

    fresh = GatesSearcher({"arch": SPACE}, metric="val_acc", mode="max", seed=1, **KW)
    fresh.add_evaluated_trials(tune.ExperimentAnalysis(results.experiment_path), "val_acc")
    assert fresh.core.n_complete == 4
    first = results[0].config["arch"]
    fresh.add_evaluated_point({"arch": first}, None, error=True)
    fresh.add_evaluated_point({"arch": first}, 1.0, pruned=True)
    assert [o.value for o in fresh.history[-2:]] == [None, None]
