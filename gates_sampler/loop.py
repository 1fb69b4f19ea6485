"""The ask-evaluate-tell loop, written once for the CLI, the experiments and the examples."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gates_sampler.base_searcher import AskTellSearcher
from gates_sampler.spaces.base import Arch


@dataclass(frozen=True)
class Step:
    """One evaluation of :func:`run_search`: what was evaluated, its value, and how long proposing it took."""

    arch: Arch
    value: float | None
    ask_seconds: float


def run_search(
    searcher: AskTellSearcher,
    evaluate: Callable[[Arch], Any],
    budget: int,
    *,
    batch_size: int = 1,
    callback: Callable[[Step], None] | None = None,
    progress: bool = False,
) -> list[Step]:
    """Ask, evaluate and tell until ``searcher`` holds ``budget`` told results.

    Architectures that were asked but never told (``searcher.pending``, e.g. after an interrupted run
    was resumed from a state file) are evaluated first, so nothing asked is lost. Results already told
    count against ``budget``, so a resumed search stops where a fresh one would.

    Args:
        searcher: any ask/tell searcher (GATES, random search, regularized evolution).
        evaluate: returns the value of an architecture (``None`` / NaN mark a failed evaluation).
        budget: total number of told results to reach.
        batch_size: architectures asked at once (``ask_batch``), as for parallel workers; the batch is
            then evaluated in order.
        callback: called after every tell with its :class:`Step` (e.g. to save a state file).
        progress: show a progress bar (tqdm) while a person waits.

    Returns:
        The steps run by this call, in order.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be an int >= 0, got {budget!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    from tqdm.auto import tqdm

    steps: list[Step] = []
    todo = [(a, 0.0) for a in searcher.pending]
    with tqdm(
        total=budget, initial=min(searcher.n_told, budget), desc="search", unit="arch", disable=not progress
    ) as bar:
        while searcher.n_told < budget:
            if not todo:
                start = time.perf_counter()
                batch = searcher.ask_batch(min(batch_size, budget - searcher.n_told))
                # the time of a batch is split evenly among its architectures
                each = (time.perf_counter() - start) / len(batch)
                todo = [(a, each) for a in batch]
            arch, seconds = todo.pop(0)
            # the value as recorded (None for a failure); reading history would copy it every step
            step = Step(arch, searcher.tell(arch, evaluate(arch)).value, seconds)
            steps.append(step)
            if callback is not None:
                callback(step)
            best = searcher.best
            bar.set_postfix(best=f"{best[1]:.3f}" if best else "-")
            bar.update()
    return steps
