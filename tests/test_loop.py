"""run_search: the one ask-evaluate-tell loop."""

from __future__ import annotations

import pytest

from gates_sampler.baselines import RandomSearcher
from gates_sampler.loop import Step, run_search
from gates_sampler.spaces import NB201Space


def _value(arch: object) -> float:
    """A deterministic stand-in for an evaluation: how many convolutions the cell has."""
    return float(str(arch).count("conv"))


def test_reaches_the_budget_and_tells_every_result() -> None:
    searcher = RandomSearcher(NB201Space(), seed=0)
    seen: list[Step] = []
    steps = run_search(searcher, _value, 7, callback=seen.append)
    assert len(steps) == 7 and searcher.n_told == 7
    assert seen == steps
    assert [s.value for s in steps] == [_value(s.arch) for s in steps]
    assert [str(o.arch) for o in searcher.history] == [str(s.arch) for s in steps]
    assert all(s.ask_seconds >= 0 for s in steps)


def test_pending_architectures_are_evaluated_first_and_the_budget_counts_earlier_results() -> None:
    searcher = RandomSearcher(NB201Space(), seed=1)
    first = searcher.ask()
    searcher.tell(first, 1.0)
    interrupted = searcher.ask_batch(2)  # asked, never told: as after a crash
    steps = run_search(searcher, _value, 5)
    assert [str(s.arch) for s in steps[:2]] == [str(a) for a in interrupted]
    assert len(steps) == 4 and searcher.n_told == 5 and not searcher.pending


def test_batches_ask_several_distinct_architectures_and_stop_at_the_budget() -> None:
    searcher = RandomSearcher(NB201Space(), seed=2)
    steps = run_search(searcher, _value, 10, batch_size=4)
    assert searcher.n_told == 10 and len(steps) == 10 and not searcher.pending
    keys = {searcher.space.canonical_key(s.arch) for s in steps}
    assert len(keys) == 10


def test_failed_evaluations_are_recorded_as_failures() -> None:
    searcher = RandomSearcher(NB201Space(), seed=3)
    steps = run_search(searcher, lambda a: float("nan"), 3)
    assert [s.value for s in steps] == [None, None, None]
    assert searcher.best is None and searcher.n_told == 3


@pytest.mark.parametrize("budget", [-1, 2.5, True, "3"])
def test_bad_budget_is_refused(budget: object) -> None:
    with pytest.raises(ValueError, match="budget"):
        run_search(RandomSearcher(NB201Space(), seed=0), _value, budget)  # type: ignore[arg-type]


def test_bad_batch_size_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        run_search(RandomSearcher(NB201Space(), seed=0), _value, 3, batch_size=0)
