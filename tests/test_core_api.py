"""The public core API the adapters are built on: ask / ask_batch, fixed parameters, pending, reseed."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import QUICK

from gates_sampler import GatesPredictorSearcher
from gates_sampler.base_searcher import SpaceExhausted
from gates_sampler.baselines import RandomSearcher
from gates_sampler.benchmarks import NB201Benchmark
from gates_sampler.spaces import CellSpace, DartsSpace, NB201Space

FAST = QUICK


@pytest.fixture(scope="module")
def bench() -> NB201Benchmark:
    return NB201Benchmark("cifar10")


def test_ask_returns_one_arch_and_ask_batch_a_list(bench: NB201Benchmark) -> None:
    s = GatesPredictorSearcher(NB201Space(), seed=0, **FAST)
    one = s.ask()
    assert not isinstance(one, list) and s.space.validate(one) == one
    batch = s.ask_batch(3)
    assert isinstance(batch, list) and len({s.space.canonical_key(a) for a in batch + [one]}) == 4
    assert len(s.pending) == 4
    legacy = s.ask(2)  # kept for existing callers: a list, like ask_batch
    assert isinstance(legacy, list) and len(legacy) == 2
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="n must be a positive int"):
            s.ask_batch(bad)


def test_fixed_parameters_are_respected_before_and_after_startup(bench: NB201Benchmark) -> None:
    space = NB201Space()
    s = GatesPredictorSearcher(space, seed=1, **FAST)
    names = list(space.distributions())
    fixed = {names[0]: "nor_conv_3x3", names[3]: "skip_connect"}
    keys = set()
    for _ in range(10):  # crosses n_startup: random, then predictor-ranked
        arch = s.ask(fixed=fixed)
        params = space.to_params(arch)
        assert all(params[k] == v for k, v in fixed.items())
        keys.add(space.canonical_key(arch))
        s.tell(arch, bench.query(arch))
    assert len(keys) == 10
    batch = s.ask_batch(3, fixed=fixed)
    assert all(space.to_params(a)[names[0]] == "nor_conv_3x3" for a in batch)


def test_fixed_proposal_is_the_best_scored_agreeing_candidate(bench: NB201Benchmark) -> None:
    space = NB201Space()
    s = GatesPredictorSearcher(space, seed=2, **FAST)
    for _ in range(6):
        a = s.ask()
        s.tell(a, bench.query(a))
    name = list(space.distributions())[0]
    state = s.state_dict()
    got = s.ask(fixed={name: "avg_pool_3x3"})
    # same generator state: draw the same agreeing candidates and rank them with the predictor
    twin = GatesPredictorSearcher(space, seed=2, **FAST)
    twin.load_state_dict(state)
    pool = twin._agreeing_unseen(twin.n_candidates, {name: "avg_pool_3x3"})
    scores = twin.predict(pool)
    assert str(got) == str(pool[int(scores.argmax())])


def test_fixing_a_parameter_with_one_choice_changes_nothing() -> None:
    """DARTS node 2's inputs are always "0,1": every architecture agrees, so fixing that parameter
    (Optuna does, answering a one-choice parameter without the sampler) proposes what no fixing
    proposes, from the searcher's full candidate pool (random cells and mutations of the best)."""
    space = DartsSpace()
    single = {k: c[0] for k, c in space.distributions().items() if len(c) == 1}
    assert single  # the premise: DARTS has such parameters
    rng = np.random.default_rng(0)
    told = space.sample_unique(rng, 6)
    searchers = [GatesPredictorSearcher(space, seed=4, **FAST) for _ in range(2)]
    for s in searchers:
        for i, a in enumerate(told):
            s.tell(a, float(i))
    plain = [searchers[0].ask() for _ in range(3)]
    fixed = [searchers[1].ask(fixed=single) for _ in range(3)]
    assert [str(a) for a in fixed] == [str(a) for a in plain]


def test_bad_fixed_parameters_name_the_problem() -> None:
    s = RandomSearcher(NB201Space(), seed=0)
    with pytest.raises(ValueError, match="not a parameter"):
        s.ask(fixed={"lr": 0.1})
    with pytest.raises(ValueError, match="allowed"):
        s.ask(fixed={list(NB201Space().distributions())[0]: "conv7x7"})
    assert s.pending == []


def test_set_pending_replaces_and_excludes() -> None:
    space = NB201Space()
    s = RandomSearcher(space, seed=0)
    rng = np.random.default_rng(0)
    held = [space.sample(rng) for _ in range(3)]
    s.set_pending(held)
    assert {space.canonical_key(a) for a in s.pending} == {space.canonical_key(a) for a in held}
    s.set_pending([str(held[0])])
    assert [space.canonical_key(a) for a in s.pending] == [space.canonical_key(held[0])]
    s.add_pending([held[1]])
    assert len(s.pending) == 2
    with pytest.raises(ValueError):
        s.set_pending(["not a cell"])
    assert len(s.pending) == 2  # a bad input loses nothing


def test_reseed_changes_the_stream_and_keeps_history(bench: NB201Benchmark) -> None:
    a, b = RandomSearcher(NB201Space(), seed=0), RandomSearcher(NB201Space(), seed=0)
    x = a.ask()
    a.tell(x, 1.0)
    b.tell(x, 1.0)
    a.reseed(5)
    b.reseed(5)
    assert str(a.ask()) == str(b.ask())
    assert a.n_told == 1


def test_tiny_space_exhaustion_is_a_space_exhausted_error() -> None:
    space = CellSpace(kind="node", ops=("conv",), max_vertices=3, max_edges=3, name="tiny")
    s = RandomSearcher(space, seed=0)
    seen = []
    with pytest.raises(SpaceExhausted, match="exhausted"):
        for _ in range(100):
            seen.append(s.ask())
    assert 0 < len(seen) < 100
    assert isinstance(SpaceExhausted("x"), RuntimeError)  # callers catching RuntimeError keep working
