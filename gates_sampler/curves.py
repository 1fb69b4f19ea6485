"""Learning curves of trials and the rule that ranks trials which ended early.

A trial reports intermediate values (``step -> value``, higher is better here: the searcher flips a
minimised metric before it gets here). It then either completes with a final value, or ends early
(pruned, stopped by a scheduler) at the last step it reported. The predictor learns from pairs of
trials whose order is known; :func:`better_matrix` states which.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LearningCurves", "better_matrix", "check_step", "extrapolate_finals"]


def check_step(step: Any) -> int:
    """``step`` as an int, or ``ValueError`` unless it is a non-negative integer (not a bool)."""
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be a non-negative int (an epoch or iteration number), got {step!r}")
    return int(step)


class LearningCurves:
    """Intermediate values per architecture key and the step at which early-ended trials stopped."""

    def __init__(self) -> None:
        self._values: dict[str, dict[int, list[float]]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # key -> (steps, means), ascending steps
        #: key -> last step of a trial that ended early (``None``: it ended before reporting anything)
        self.stops: dict[str, int | None] = {}

    def report(self, key: str, step: int, value: float) -> None:
        self._values.setdefault(key, {}).setdefault(step, []).append(value)
        self._arrays.pop(key, None)

    def keys(self) -> list[str]:
        """Keys with at least one intermediate value."""
        return list(self._values)

    def arrays(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, mean values)`` of ``key``, ascending steps (empty arrays when nothing was reported)."""
        if key not in self._arrays:
            steps = self._values.get(key, {})
            order = sorted(steps)
            self._arrays[key] = (
                np.array(order, dtype=np.int64),
                np.array([np.mean(steps[s]) for s in order], dtype=np.float64),
            )
        return self._arrays[key]

    def stop(self, key: str, step: int | None) -> None:
        """Record that the trial of ``key`` ended early at ``step`` (the latest such record wins)."""
        self.stops[key] = step

    def curve(self, key: str) -> dict[int, float]:
        """Step -> mean value, in step order."""
        steps, vals = self.arrays(key)
        return dict(zip(steps.tolist(), vals.tolist()))

    def last_step(self, key: str) -> int | None:
        steps = self._values.get(key)
        return max(steps) if steps else None

    def value_at(self, key: str, step: int | None) -> float:
        """The value at the latest reported step ``<= step`` (NaN when there is none)."""
        steps, vals = self.arrays(key)
        if step is None:
            return float("nan")
        pos = int(np.searchsorted(steps, step, side="right")) - 1
        return float(vals[pos]) if pos >= 0 else float("nan")

    def better_matrix(self, keys: Sequence[str], finals: np.ndarray) -> np.ndarray:
        """:func:`better_matrix` for ``keys``; ``finals[i]`` is the final value of ``keys[i]`` (NaN: ended early)."""
        stops = np.array(
            [-1 if np.isfinite(f) else self.stops.get(k, -1) for k, f in zip(keys, finals)], dtype=np.int64
        )
        columns = sorted({int(s) for s in stops if s >= 0})
        at = np.full((len(keys), len(columns)), np.nan)
        for i, k in enumerate(keys):
            steps, vals = self.arrays(k)
            if not len(steps):
                continue
            pos = np.searchsorted(steps, np.asarray(columns, dtype=np.int64), side="right") - 1
            ok = pos >= 0
            at[i, ok] = vals[pos[ok]]
        return better_matrix(np.asarray(finals, dtype=np.float64), stops, at, columns)


def better_matrix(finals: np.ndarray, stops: np.ndarray, at: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """Which trial is known to be better than which: ``better[i, j]`` is true when ``i`` ranks above ``j``.

    The rule (values are higher-is-better):

    - two completed trials compare on their final values, as without intermediate results;
    - a trial ``j`` that ended early at step ``e`` ranks below every trial ``i`` that reached step ``e``
      (``i`` completed, or ended early at a step ``>= e``) and was better at step ``e``: its value at
      ``e`` (the latest value it reported at or before ``e``) exceeds ``j``'s. A completed trial that
      reported no intermediate value at or before ``e`` stands in with its final value (training
      improves a network, so a cell whose final result is below another's value at ``e`` is not better);
    - otherwise the pair carries no order: a trial that ended early never ranks above one that went
      further (a pruner's decision is made on other trials' values too), and a trial never ranks above
      one that stopped earlier but was better there.

    Args:
        finals: ``[N]`` final values, NaN for the trials that ended early.
        stops: ``[N]`` the step each early-ended trial stopped at (ignored where ``finals`` is finite).
        at: ``[N, len(columns)]`` each trial's value at each step of ``columns`` (NaN: none reported).
        columns: the distinct steps the early-ended trials stopped at, ascending.
    """
    n = len(finals)
    complete = np.isfinite(finals)
    better = np.zeros((n, n), dtype=bool)
    fc = finals[complete]
    better[np.ix_(complete, complete)] = fc[:, None] > fc[None, :]
    col = {int(s): c for c, s in enumerate(columns)}
    for j in np.flatnonzero(~complete):
        c = col[int(stops[j])]
        vj = at[j, c]
        if not np.isfinite(vj):
            continue
        reached = complete | (stops >= stops[j])
        vi = np.where(complete & ~np.isfinite(at[:, c]), finals, at[:, c])
        with np.errstate(invalid="ignore"):
            wins = reached & (vi > vj)
        wins[j] = False
        better[wins, j] = True
    return better


#: fewest completed trials with a value at a step from which the final values of trials stopped there
#: are extrapolated (a line and its residual spread need a few more points than parameters)
MIN_EXTRAPOLATION_PAIRS = 8


def extrapolate_finals(
    finals: np.ndarray, finals_at: np.ndarray, stopped_at: np.ndarray, columns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The final values of trials that ended early, extrapolated from completed trials' curves.

    At each step ``e`` where trials stopped, the completed trials that reported a value at or before
    ``e`` give pairs (value at ``e``, final value); a least-squares line through them maps a stopped
    trial's value at ``e`` to a final value, whose variance is the line's predictive variance (the
    residual variance plus the line's own uncertainty at that value). Where fewer than
    :data:`MIN_EXTRAPOLATION_PAIRS` completed trials reached ``e``, or their values there do not vary,
    the result is NaN: nothing is known.

    Args:
        finals: ``[Nc]`` final values of the completed trials.
        finals_at: ``[Nc, S]`` their values at each of the ``S`` stop steps (NaN: none reported).
        stopped_at: ``[Np]`` each stopped trial's value at the step it stopped at.
        columns: ``[Np]`` the index (into the ``S`` steps) of the step each stopped trial stopped at.

    Returns:
        ``(mean, variance)``, each ``[Np]``.
    """
    finals = np.asarray(finals, dtype=np.float64)
    stopped_at = np.asarray(stopped_at, dtype=np.float64)
    columns = np.asarray(columns, dtype=np.int64)
    mean = np.full(len(stopped_at), np.nan)
    var = np.full(len(stopped_at), np.nan)
    for c in np.unique(columns):
        x = finals_at[:, c]
        ok = np.isfinite(x) & np.isfinite(finals)
        n = int(ok.sum())
        if n < MIN_EXTRAPOLATION_PAIRS:
            continue
        x, y = x[ok], finals[ok]
        xbar = float(x.mean())
        sxx = float(((x - xbar) ** 2).sum())
        if sxx <= 0:
            continue
        slope = float(((x - xbar) * (y - y.mean())).sum()) / sxx
        intercept = float(y.mean()) - slope * xbar
        s2 = float(((y - intercept - slope * x) ** 2).sum()) / (n - 2)
        rows = columns == c
        v = stopped_at[rows]
        mean[rows] = intercept + slope * v
        var[rows] = s2 * (1.0 + 1.0 / n + (v - xbar) ** 2 / sxx)
    return mean, var
