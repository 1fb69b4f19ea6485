"""GatesSearcher with schedulers that stop trials early (ASHA): intermediate results reach the core, and a
stopped trial's last result is never taken for a final value."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from conftest import local_ray

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

from gates_sampler import GatesSearcher  # noqa: E402
from gates_sampler.benchmarks import NB201Benchmark  # noqa: E402
from gates_sampler.spaces import NB201Space  # noqa: E402

SMALL = {"epochs": 5, "hidden": 16, "n_layers": 2, "op_dim": 8, "head_hidden": [16]}
KW: dict[str, Any] = dict(n_startup=3, n_candidates=20, predictor=SMALL, zero_shot=None, device="cpu")
MAX_T = 6
NAMES = list(NB201Space().distributions())


@pytest.fixture(scope="module")
def table() -> dict[tuple[str, ...], float]:
    bench = NB201Benchmark("cifar10")
    space = bench.space
    ops = space.distributions()[NAMES[0]]
    return {
        combo: bench.query(space.from_params(dict(zip(NAMES, combo))))
        for combo in itertools.product(ops, repeat=len(NAMES))
    }


def curve(final: float, step: int) -> float:
    return final - 30.0 / step


# ----- protocol (no Ray runtime) -----------------------------------------------------------------
def test_stopped_trial_is_told_as_ended_early(table):
    space = NB201Space()
    s = GatesSearcher(space, metric="acc", mode="max", seed=0, max_t=MAX_T, **KW)
    a, b = s.suggest("a"), s.suggest("b")
    fa, fb = table[tuple(a[n] for n in NAMES)], table[tuple(b[n] for n in NAMES)]
    for step in range(1, MAX_T + 1):
        s.on_trial_result("a", {"acc": curve(fa, step), "training_iteration": step})
    s.on_trial_complete("a", {"acc": curve(fa, MAX_T), "training_iteration": MAX_T, "done": True})
    s.on_trial_result("b", {"acc": curve(fb, 1), "training_iteration": 1})
    # the scheduler stops b after its second result, which Tune passes to on_trial_complete only
    s.on_trial_complete("b", {"acc": curve(fb, 2), "training_iteration": 2, "done": True})
    arch_a, arch_b = space.from_params(a), space.from_params(b)
    assert s.core.n_complete == 1 and s.core.n_pruned == 1
    assert [space.canonical_key(x) for x in s.core.training_data()[0]] == [space.canonical_key(arch_a)]
    assert s.core.curve(arch_b) == pytest.approx({1: curve(fb, 1), 2: curve(fb, 2)})
    assert s.best is not None and s.best[1] == pytest.approx(curve(fa, MAX_T))  # b's last value is not final
    last = s.history[-1]
    assert last.pruned and last.step == 2
    assert space.canonical_key(arch_b) in s.core.seen_keys()


def test_without_max_t_a_completed_trial_is_final(table):
    space = NB201Space()
    s = GatesSearcher(space, metric="acc", mode="max", seed=0, **KW)
    b = s.suggest("b")
    s.on_trial_result("b", {"acc": 50.0, "training_iteration": 1})
    s.on_trial_complete("b", {"acc": 55.0, "training_iteration": 2, "done": True})
    assert s.core.n_complete == 1 and s.core.n_pruned == 0
    assert s.core.curve(space.from_params(b)) == {1: 50.0, 2: 55.0}  # the last result is on its curve too


def test_bad_max_t():
    with pytest.raises(ValueError, match="max_t"):
        GatesSearcher(NB201Space(), metric="acc", mode="max", max_t=0)


def test_add_evaluated_point_pruned_with_its_curve():
    space = NB201Space()
    s = GatesSearcher(space, metric="acc", mode="max", seed=0, **KW)
    params = space.to_params(space.sample(__import__("numpy").random.default_rng(0)))
    s.add_evaluated_point(params, None, pruned=True, intermediate_values=[40.0, 45.0])
    assert s.core.n_pruned == 1 and s.core.curve(params) == {1: 40.0, 2: 45.0}


# ----- a real ASHA run ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local() -> Any:
    with local_ray(__name__):
        yield


def curve_objective(config: dict, table: dict) -> None:
    final = table[tuple(config[k] for k in NAMES)]
    for step in range(1, MAX_T + 1):
        tune.report({"acc": curve(final, step)})


def test_asha_stopped_trials_are_not_final(ray_local, table, tmp_path):
    space = NB201Space()
    searcher = GatesSearcher(space, metric="acc", mode="max", seed=0, max_t=MAX_T, **KW)
    scheduler = tune.schedulers.ASHAScheduler(max_t=MAX_T, grace_period=1, reduction_factor=2)
    tuner = tune.Tuner(
        tune.with_parameters(curve_objective, table=table),
        tune_config=tune.TuneConfig(
            metric="acc",
            mode="max",
            search_alg=tune.search.ConcurrencyLimiter(searcher, max_concurrent=2),
            scheduler=scheduler,
            num_samples=8,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="asha", verbose=0),
    )
    grid = tuner.fit()
    iterations = {str(space.from_params(r.config)): r.metrics["training_iteration"] for r in grid}
    stopped = {a for a, it in iterations.items() if it < MAX_T}
    full = {a for a, it in iterations.items() if it == MAX_T}
    assert stopped and full, iterations
    core = searcher.core
    finals = {str(a) for a in core.training_data()[0]}
    assert finals == full  # a stopped trial's last value is not a final value
    assert core.n_pruned == len(stopped)
    for r in grid:
        arch = space.from_params(r.config)
        assert max(core.curve(arch)) == r.metrics["training_iteration"]  # every step reached the core
    archs, _, better = core.ranking_data()
    assert better is not None and len(archs) == 8 and better[:, len(full) :].any()
