"""GatesSearcher, the Ray Tune adapter: protocol unit tests, then real Tuner runs on NB201 look-ups."""

from __future__ import annotations

import itertools
import logging
import math
import os
import signal
import time
from typing import Any

import numpy as np
import pytest
from conftest import local_ray

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

from ray.tune.search import ConcurrencyLimiter, Searcher  # noqa: E402

from gates_sampler import GatesPredictorSearcher, GatesSearcher  # noqa: E402
from gates_sampler.benchmarks import NB201Benchmark  # noqa: E402
from gates_sampler.spaces import CellSpace, NB201Space  # noqa: E402

SMALL = {"epochs": 20, "hidden": 32, "n_layers": 2, "op_dim": 16}  # a fast predictor for tests
KW = dict(n_startup=4, n_candidates=30, predictor=SMALL)


def tiny_space() -> CellSpace:
    """8 architectures (3 edges, 2 ops, no isomorphisms): small enough to exhaust."""
    return CellSpace(kind="edge", ops=("conv", "pool"), n_nodes=2, none_op=None, name="tiny")


@pytest.fixture(scope="module")
def nb201() -> NB201Benchmark:
    return NB201Benchmark("cifar10")


@pytest.fixture(scope="module")
def table(nb201: NB201Benchmark) -> dict[tuple[str, ...], float]:
    """Validation accuracy per tuple of parameter values: a plain dict, so Ray workers need no torch."""
    space = nb201.space
    names = list(space.distributions())
    ops = space.distributions()[names[0]]
    return {
        combo: nb201.query(space.from_params(dict(zip(names, combo))))
        for combo in itertools.product(ops, repeat=len(names))
    }


def complete(searcher: GatesSearcher, trial_id: str, value: Any) -> None:
    searcher.on_trial_complete(trial_id, {"m": value})


# ---------------------------------------------------------------------------------------------
# protocol (no Ray runtime)
# ---------------------------------------------------------------------------------------------


def test_suggest_flat_params_never_repeats_running_or_evaluated(nb201: NB201Benchmark) -> None:
    space = nb201.space
    s = GatesSearcher(space, metric="m", mode="max", seed=0, **KW)
    running: list[str] = []
    keys: list[str] = []
    for i in range(24):
        config = s.suggest(f"t{i}")
        assert set(config) == set(space.distributions())
        arch = space.from_params(config)
        keys.append(space.canonical_key(arch))
        running.append(f"t{i}")
        if len(running) == 3:  # three trials in flight, the oldest finishes
            tid = running.pop(0)
            complete(s, tid, nb201.query(s.live_trials[tid]))
    assert len(set(keys)) == len(keys)
    assert set(s.live_trials) == set(running)
    assert {space.canonical_key(a) for a in s.live_trials.values()} <= s.core.seen_keys()
    assert s.core.n_told == 22


def test_sequential_proposals_equal_the_core_loop(nb201: NB201Benchmark) -> None:
    """The adapter only translates: same seed, same settings -> the same architectures and best."""
    space = nb201.space
    s = GatesSearcher(space, metric="acc", mode="max", seed=3, **KW)
    core = GatesPredictorSearcher(space, seed=3, **KW)
    for i in range(10):
        arch_core = core.ask()
        arch_tune = space.from_params(s.suggest(str(i)))
        assert arch_tune == arch_core
        v = nb201.query(arch_core)
        core.tell(arch_core, v)
        s.on_trial_complete(str(i), {"acc": v})
    assert s.best == core.best


def test_mode_min_is_flipped_for_the_core() -> None:
    space = tiny_space()
    s = GatesSearcher(space, metric="m", mode="min", seed=0, **KW)
    values = {}
    for i in range(5):
        arch = space.from_params(s.suggest(str(i)))
        values[arch] = 10.0 + i
        complete(s, str(i), 10.0 + i)
    arch, value = s.best
    assert value == 10.0 and values[arch] == 10.0
    _, internal = s.core.training_data()
    assert sorted(internal) == [-14.0, -13.0, -12.0, -11.0, -10.0]  # the core maximises
    assert [o.value for o in s.history] == [10.0, 11.0, 12.0, 13.0, 14.0]


def test_failures_are_recorded_and_never_proposed_again() -> None:
    space = tiny_space()
    s = GatesSearcher(space, metric="m", mode="max", seed=1, **KW)
    failed = {}
    for tid, how in [("err", "error"), ("nan", "nan"), ("missing", "missing"), ("none", "none"), ("text", "text")]:
        failed[tid] = space.canonical_key(space.from_params(s.suggest(tid)))
        if how == "error":
            s.on_trial_complete(tid, None, error=True)
        elif how == "nan":
            complete(s, tid, float("nan"))
        elif how == "missing":
            s.on_trial_complete(tid, {"other": 1.0})
        elif how == "none":
            s.on_trial_complete(tid, None)
        else:
            complete(s, tid, "n/a")
    assert [o.value for o in s.history] == [None] * 5
    assert s.best is None
    rest = []
    while (config := s.suggest(f"r{len(rest)}")) != Searcher.FINISHED:
        rest.append(space.canonical_key(space.from_params(config)))
        complete(s, f"r{len(rest) - 1}", float(len(rest)))
    assert len(rest) == 3 and not set(rest) & set(failed.values())  # 8 archs, 5 failed, 3 left
    assert s.suggest("after") == Searcher.FINISHED


def test_exhausted_space_finishes_while_trials_still_run() -> None:
    space = tiny_space()
    s = GatesSearcher(space, metric="m", mode="max", seed=0, **KW)
    configs = [s.suggest(str(i)) for i in range(8)]
    assert len({space.canonical_key(space.from_params(c)) for c in configs}) == 8
    assert s.suggest("9") == Searcher.FINISHED  # nothing unseen is left, even though nothing finished
    complete(s, "0", 1.0)
    assert s.suggest("10") == Searcher.FINISHED


def test_unknown_and_repeated_trial_ids(caplog: pytest.LogCaptureFixture) -> None:
    space = tiny_space()
    s = GatesSearcher(space, metric="m", mode="max", seed=0, **KW)
    c0 = s.suggest("a")
    assert s.suggest("a") == c0  # asking again for a running trial gives its config again
    complete(s, "a", 1.0)
    with caplog.at_level(logging.WARNING, logger="gates_sampler"):
        complete(s, "a", 5.0)  # completed twice: the second is ignored
        s.on_trial_complete("ghost", {"m": 2.0})  # never suggested, no config: ignored
    assert "already completed" in caplog.text and "unknown trial ghost" in caplog.text
    assert [o.value for o in s.history] == [1.0]
    # Tune restarting a trial gives it a new id; its config still names the architecture: kept
    c1 = s.suggest("b")
    with caplog.at_level(logging.WARNING, logger="gates_sampler"):
        s.on_trial_complete("b-restarted", {"m": 3.0, "config": c1})
    assert [o.value for o in s.history] == [1.0, 3.0]
    assert s.live_trials == {}  # the replaced id no longer holds the architecture
    # an errored trial resumed under its old id (Tuner.restore(resume_errored=True)) counts again
    s.suggest("c")
    arch_c = s.live_trials["c"]
    s.on_trial_complete("c", None, error=True)
    complete(s, "c", 4.0)
    assert [(o.arch, o.value) for o in s.history][-2:] == [(arch_c, None), (arch_c, 4.0)]
    assert s.best == (arch_c, 4.0)


def test_metric_and_mode_errors() -> None:
    space = tiny_space()
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        GatesSearcher(space, metric="m", mode="maximize")
    with pytest.raises(ValueError, match="metric must be the name"):
        GatesSearcher(space, metric=["a", "b"], mode="max")
    with pytest.raises(ValueError, match="not direction"):
        GatesSearcher(space, direction="minimize")
    with pytest.raises(ValueError, match="search_space must be a SearchSpace"):
        GatesSearcher(["nb201"])
    with pytest.raises(ValueError, match="exactly one key"):
        GatesSearcher({"lr": tune.uniform(0, 1)})
    s = GatesSearcher(space, **KW)
    with pytest.raises(ValueError, match="needs a metric and a mode"):
        s.suggest("x")
    assert s.live_trials == {} and s.core.pending == []  # nothing was marked pending
    assert s.set_search_properties("m", "min", {}) is True
    assert (s.metric, s.mode) == ("m", "min")
    with pytest.raises(ValueError, match="mode='min' but Tune passes mode='max'"):
        s.set_search_properties("m", "max", {})
    with pytest.raises(ValueError, match="mode must be"):
        s.set_search_properties("m", "up", {})
    assert s.set_max_concurrency(4) is False  # left to ConcurrencyLimiter


def test_param_space_is_checked_and_extra_domains_are_sampled() -> None:
    space = NB201Space()
    s = GatesSearcher(space, metric="m", mode="max", seed=0, **KW)
    assert s.set_search_properties(
        None, None, {**space.tune_param_space(), "lr": tune.loguniform(1e-4, 1e-1), "bs": 32}
    )
    config = s.suggest("0")
    assert 1e-4 <= config["lr"] <= 1e-1 and "bs" not in config  # constants are passed through by Tune
    space.from_params({k: config[k] for k in space.distributions()})
    bad = space.tune_param_space()
    bad["node1_from0"] = tune.choice(["none", "skip_connect"])
    with pytest.raises(ValueError, match="node1_from0.*the space allows"):
        s.set_search_properties(None, None, bad)
    with pytest.raises(ValueError, match="fixes architecture parameter 'node2_from1'"):
        s.set_search_properties(None, None, {"node2_from1": "none"})
    with pytest.raises(ValueError, match="grid_search is not supported"):
        s.set_search_properties(None, None, {"lr": tune.grid_search([0.1, 0.2])})
    with pytest.raises(ValueError, match="sample_from is not supported"):
        s.set_search_properties(None, None, {"lr": tune.sample_from(lambda _: 0.1)})


def test_arch_under_one_key_with_seeded_hyperparameters() -> None:
    space = NB201Space()

    def make() -> GatesSearcher:
        spec = {
            "arch": space,
            "lr": tune.loguniform(1e-4, 1e-1),
            "opt": {"name": tune.choice(["sgd", "adam"]), "wd": 5e-4},
        }
        return GatesSearcher(spec, metric="m", mode="max", seed=7, **KW)

    a, b = make(), make()
    ca = [a.suggest(str(i)) for i in range(5)]
    cb = [b.suggest(str(i)) for i in range(5)]
    assert ca == cb  # same seed, same hyperparameters and architectures
    assert len({c["lr"] for c in ca}) == 5 and {c["opt"]["wd"] for c in ca} == {5e-4}
    assert all(c["opt"]["name"] in ("sgd", "adam") and isinstance(c["lr"], float) for c in ca)
    assert space.from_params(ca[0]["arch"]) == a.live_trials["0"]
    # the architecture stream does not depend on the hyperparameters: it matches a flat searcher
    flat = GatesSearcher(space, metric="m", mode="max", seed=7, **KW)
    assert [space.from_params(flat.suggest(str(i))) for i in range(5)] == [space.from_params(c["arch"]) for c in ca]
    a.set_search_properties(None, None, {"arch": space.tune_param_space()})  # nested param_space: accepted
    with pytest.raises(ValueError, match="not an architecture parameter"):
        a.set_search_properties(None, None, {"arch": {"bogus": tune.choice(["x"])}})
    with pytest.raises(ValueError, match="both in the searcher's search_space and in param_space"):
        a.set_search_properties(None, None, {"lr": tune.uniform(0, 1)})
    extra = space.sample(np.random.default_rng(123))
    assert space.canonical_key(extra) not in a.core.seen_keys()
    a.add_evaluated_point({"arch": space.to_params(extra), "lr": 0.1}, 71.0)
    assert (a.core.history[-1].arch, a.core.history[-1].value) == (extra, 71.0)
    with pytest.raises(ValueError, match="do not describe a nb201 architecture"):
        a.add_evaluated_point({"lr": 0.1}, 1.0)


def test_save_restore_continues_exactly(tmp_path: Any, nb201: NB201Benchmark) -> None:
    space = nb201.space
    spec = {"arch": space, "lr": tune.uniform(0.0, 1.0)}
    s = GatesSearcher(spec, metric="acc", mode="min", seed=5, **KW)
    for i in range(7):
        s.suggest(str(i))
    for i in range(5):  # trials 5 and 6 are still running at the checkpoint
        s.on_trial_complete(str(i), {"acc": nb201.query(s.live_trials[str(i)])})
    path = tmp_path / "searcher-state.pkl"
    s.save(str(path))
    r = GatesSearcher({"arch": space, "lr": tune.uniform(0.0, 1.0)}, seed=5, **KW)  # metric/mode come from the file
    r.restore(str(path))
    assert (r.metric, r.mode) == ("acc", "min")
    assert r.live_trials == s.live_trials
    assert [(o.arch, o.value) for o in r.history] == [(o.arch, o.value) for o in s.history]
    for searcher in (s, r):  # the interrupted trials finish after the restore, under their old ids
        for i in (5, 6):
            searcher.on_trial_complete(str(i), {"acc": nb201.query(searcher.live_trials[str(i)])})
    for i in range(7, 12):
        assert r.suggest(str(i)) == s.suggest(str(i))
        v = nb201.query(s.live_trials[str(i)])
        s.on_trial_complete(str(i), {"acc": v})
        r.on_trial_complete(str(i), {"acc": v})
    assert r.best == s.best
    with pytest.raises(ValueError, match="not a readable GatesSearcher checkpoint"):
        (tmp_path / "junk").write_text("junk")
        r.restore(str(tmp_path / "junk"))
    with pytest.raises(ValueError, match="mode='min', this searcher has mode='max'"):
        GatesSearcher(spec, metric="acc", mode="max", seed=5, **KW).restore(str(path))
    with pytest.raises(ValueError, match="different settings"):
        GatesSearcher(spec, metric="acc", mode="min", seed=6, **KW).restore(str(path))


# ---------------------------------------------------------------------------------------------
# real Tuner runs (one local Ray instance for the module)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local() -> Any:
    with local_ray(__name__):
        yield


NAMES = list(NB201Space().distributions())


def nb201_objective(config: dict, table: dict, metric: str, bad_op: str) -> None:
    """NB201 look-up; raises for cells whose first edge is ``bad_op`` (a crashing training run)."""
    if config["node1_from0"] == bad_op:
        raise RuntimeError("simulated training crash")
    acc = table[tuple(config[k] for k in NAMES)]
    tune.report({metric: acc if metric == "acc" else 100.0 - acc})


@pytest.mark.parametrize("mode,metric", [("max", "acc"), ("min", "err")])
def test_tuner_nb201_concurrency_two(ray_local: Any, table: dict, tmp_path: Any, mode: str, metric: str) -> None:
    space = NB201Space()
    # the first (random, seeded) proposal's first-edge op crashes, so the run surely has a failure
    bad_op = GatesSearcher(space, metric=metric, mode=mode, seed=11, **KW).suggest("probe")["node1_from0"]
    searcher = GatesSearcher(space, metric=metric, mode=mode, seed=11, **KW)
    tuner = tune.Tuner(
        tune.with_parameters(nb201_objective, table=table, metric=metric, bad_op=bad_op),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=2), num_samples=12, reuse_actors=True
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="nb201", verbose=0),
    )
    grid = tuner.fit()
    assert len(grid) == 12
    failed = [r for r in grid if r.error is not None]
    ok = [r for r in grid if r.error is None]
    assert failed and ok
    assert all(r.config["node1_from0"] == bad_op for r in failed)
    hist = searcher.history
    assert len(hist) == 12 and not searcher.live_trials and not searcher.core.pending
    assert len({space.canonical_key(o.arch) for o in hist}) == 12  # no architecture evaluated twice
    told = {str(o.arch): o.value for o in hist}
    for r in ok:
        assert told[str(space.from_params(r.config))] == pytest.approx(r.metrics[metric])
    for r in failed:
        assert told[str(space.from_params(r.config))] is None
    values = [r.metrics[metric] for r in ok]
    assert searcher.best[1] == pytest.approx(max(values) if mode == "max" else min(values))
    assert max(searcher.core.training_data()[1]) == pytest.approx(max(values) if mode == "max" else -min(values))


def interruptible_objective(config: dict, table: dict, log: str, marker: str, driver_pid: int, k: int) -> None:
    """Logs each finished evaluation; the first trial to find ``k`` logged ones interrupts the driver
    (as Ctrl+C would) and hangs, so it is unfinished when the experiment stops."""
    with open(log) as f:
        done = sum(1 for _ in f)
    if done >= k and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(driver_pid, signal.SIGUSR1)  # Tune's graceful "stop and checkpoint" signal
        time.sleep(120)
    acc = table[tuple(config[n] for n in NAMES)]
    with open(log, "a") as f:
        f.write(f"{'/'.join(config[n] for n in NAMES)} {acc!r}\n")
    tune.report({"acc": acc})


def test_tuner_interrupted_and_restored_keeps_every_evaluation(ray_local: Any, table: dict, tmp_path: Any) -> None:
    space = NB201Space()
    log, marker = tmp_path / "evaluations.txt", tmp_path / "stop-requested"
    log.write_text("")
    trainable = tune.with_parameters(
        interruptible_objective, table=table, log=str(log), marker=str(marker), driver_pid=os.getpid(), k=4
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(GatesSearcher(space, metric="acc", mode="max", seed=2, **KW), 2),
            num_samples=10,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="interrupted", verbose=0),
    )
    first = tuner.fit()
    assert marker.exists()
    n_before = sum("acc" in (r.metrics or {}) for r in first)
    assert 4 <= n_before < 10
    exp = str(tmp_path / "interrupted")
    assert tune.Tuner.can_restore(exp)
    grid = tune.Tuner.restore(exp, trainable=trainable).fit()
    assert len(grid) == 10 and grid.num_errors == 0
    # the searcher state Tune wrote at the end holds every evaluation, before and after the interruption
    final = GatesSearcher(space, metric="acc", mode="max", seed=2, **KW)
    final.restore_from_dir(exp)
    told = {str(o.arch): o.value for o in final.history}
    assert len(final.history) == 10 and None not in told.values() and not final.live_trials
    for r in grid:
        assert told[str(space.from_params(r.config))] == pytest.approx(r.metrics["acc"])
    logged = {line.split()[0] for line in log.read_text().splitlines()}
    assert logged == {"/".join(space.to_params(o.arch)[n] for n in NAMES) for o in final.history}


def test_optuna_search_with_gates_sampler(ray_local: Any, table: dict, tmp_path: Any) -> None:
    """The zero-code path: Ray's own OptunaSearch driving the Optuna adapter."""
    # only optuna itself may be absent: an import error inside the adapter must fail the test, not skip it
    pytest.importorskip("optuna", reason="OptunaSearch needs optuna: pip install 'gates-sampler[optuna]'")
    from ray.tune.search.optuna import OptunaSearch

    from gates_sampler.integrations.optuna import GatesSampler

    space = NB201Space()
    sampler = GatesSampler(space, n_startup_trials=4, n_candidates=30, seed=0, predictor=SMALL)
    search = OptunaSearch(space=None, metric="acc", mode="max", sampler=sampler)
    tuner = tune.Tuner(
        tune.with_parameters(nb201_objective, table=table, metric="acc", bad_op="-"),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(search, max_concurrent=1), num_samples=8, reuse_actors=True
        ),
        param_space=space.tune_param_space(),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="optuna", verbose=0),
    )
    grid = tuner.fit()
    assert len(grid) == 8 and grid.num_errors == 0
    archs = [space.from_params({k: r.config[k] for k in NAMES}) for r in grid]
    assert len({space.canonical_key(a) for a in archs}) == 8
    best = grid.get_best_result("acc", "max")
    assert best.metrics["acc"] == pytest.approx(max(table[tuple(r.config[k] for k in NAMES)] for r in grid))
    assert not math.isnan(best.metrics["acc"]) and np.isfinite(best.metrics["acc"])


def nb201_two_objectives(config: dict, table: dict, sizes: dict) -> None:
    key = tuple(config[k] for k in NAMES)
    tune.report({"acc": table[key], "size": sizes[key]})


def test_optuna_search_with_gates_sampler_multi_objective(ray_local: Any, table: dict, tmp_path: Any) -> None:
    """Tune searchers take one metric; the multi-objective path is OptunaSearch with a metric list."""
    pytest.importorskip("optuna", reason="OptunaSearch needs optuna: pip install 'gates-sampler[optuna]'")
    from ray.tune.search.optuna import OptunaSearch

    from gates_sampler.integrations.optuna import GatesSampler

    space = NB201Space()
    size = NB201Benchmark("cifar10", metric="model_size")
    sizes = {key: size.query(space.from_params(dict(zip(NAMES, key)))) for key in table}
    sampler = GatesSampler(
        space, n_startup_trials=4, n_candidates=30, seed=0, predictor=SMALL, cheap_objectives={1: size.query}
    )
    search = OptunaSearch(space=None, metric=["acc", "size"], mode=["max", "min"], sampler=sampler)
    tuner = tune.Tuner(
        tune.with_parameters(nb201_two_objectives, table=table, sizes=sizes),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(search, max_concurrent=1), num_samples=6, reuse_actors=True
        ),
        param_space=space.tune_param_space(),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="optuna-mo", verbose=0),
    )
    grid = tuner.fit()
    assert len(grid) == 6 and grid.num_errors == 0
    archs = [space.from_params({k: r.config[k] for k in NAMES}) for r in grid]
    assert len({space.canonical_key(a) for a in archs}) == 6
    core = sampler.searcher
    assert core is not None and core.n_objectives == 2 and core.n_told >= 5
    told = {str(o.arch): o.values for o in core.history}
    for r in grid:
        arch = str(space.from_params({k: r.config[k] for k in NAMES}))
        if arch in told:
            assert told[arch] == (pytest.approx(r.metrics["acc"]), pytest.approx(r.metrics["size"]))
