"""Multi-objective and constrained predictor-based search: accuracy against latency, size, FLOPs.

:class:`MultiObjectiveGatesSearcher` searches for the Pareto front of several objectives. Each
*expensive* objective (one that needs an evaluation, such as accuracy or a measured latency) gets its
own GATES predictor, trained with the ranking loss on the told values; each *cheap* objective (one the
user can compute exactly for any cell, such as parameters or FLOPs) is computed, never predicted.

A learned objective after the first (say a latency measured in the objective function) may instead be
predicted by an *additive* model: a ridge regression of its told values on how often each operation
occurs in each cell (:meth:`~gates_sampler.spaces.base.SearchSpace.op_counts`), as hardware-aware
searches model latency by summing per-operation costs. Which of the two predicts it is decided by a
cross-validation on the told cells (Kendall's tau of the out-of-fold predictions), made when
``n_startup`` cells are told and again each time the told cells double. The first learned objective
(put the accuracy first in ``directions``) always keeps its GATES predictor. The model of each learned
constraint is chosen the same way. Why: on NAS-Bench-201 a sum over operations ranks a measured
latency better from a few dozen cells than the GATES predictor does, and the search's loss against one
given the latency exactly came mostly from that ranking (README, "Multi-objective search").

The proposal rule. A predictor's score ranks cells but is not on the value scale, so each expensive
objective's scores are mapped onto it by rank matching: the told cells' sorted scores are paired with
their sorted told values, and a candidate's value is read off that monotone map (linearly extended past
the best and worst told cells, so that a candidate scored above every told cell is predicted above
them). Every candidate then has a predicted point (exact in the cheap objectives). The proposal is the
candidate whose predicted point adds most hypervolume to the front of the evaluated feasible cells
(objectives scaled to the range of the told values; the reference point lies 10 % of that range below
the worst told value of each objective). A batch is chosen greedily: each chosen point joins the front
before the next choice, so a batch spreads along the front rather than crowding one spot. Every
fourth guided proposal (counted over the cells seen, so a batch takes its turns in order) is instead
the candidate that the first learned objective's predictor ranks first, as a single-objective search
would propose: a cell ranked above every told one is calibrated only a little above the best told
value, so the hypervolume rule alone can settle along the front short of the most accurate cells
(put the accuracy first in ``directions``). When no
candidate is predicted to extend the front, the one predicted closest to it is proposed: the smallest
gain in the predicted objectives that would put it on the front (a cheap objective is exact and cannot
gain).

Constraints, as Optuna's ``constraints_func`` defines them: a vector of numbers per cell, feasible
when every entry is ``<= 0``. A cheap constraint (``constraints=fn``, computed from the cell) keeps
infeasible cells out of every proposal. Constraint values told with a result (``tell(arch, values,
constraints=...)``, e.g. a measured latency minus its bound) are learned with one predictor per entry,
and candidates predicted infeasible are proposed only when no candidate is predicted feasible.
Infeasible results train the predictors but never join the front.

With one direction the searcher is a constrained single-objective search (the rule reduces to taking
the highest predicted value among the candidates predicted feasible).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from gates_sampler.base_searcher import AskTellSearcher, Observation, as_value
from gates_sampler.predictor import Predictor
from gates_sampler.predictor.factory import ZeroShot
from gates_sampler.searcher import GatesPredictorSearcher, SearchSettings
from gates_sampler.spaces.base import Arch, SearchSpace, short_repr
from gates_sampler.utils import check_rng_state, kendall_tau

logger = logging.getLogger("gates_sampler")

__all__ = [
    "MultiObjectiveGatesSearcher",
    "MultiObservation",
    "hypervolume",
    "nondominated_mask",
    "nondominated_ranks",
]

DIRECTIONS = ("maximize", "minimize")
#: each learned objective's predictor is refitted at every ask as a single-objective search refits its own
#: (warm epochs by space size); 5 epochs per refit left the predictors too weak (README, "Multi-objective search")
DEFAULT_SETTINGS = SearchSettings()
#: how the proposal rule scales each objective: by the told values' range, or by their empirical distribution
SCALINGS = ("range", "rank")
#: how far below the worst told value (in units of the told range) the proposal rule's reference point lies
REFERENCE_MARGIN = 0.1
#: every this many guided proposals, one is the candidate ranked first by the first learned objective's predictor
#: (README, "Multi-objective search": the hypervolume rule alone stalls short of the most accurate cells)
TOP_PICK_EVERY = 4
#: strengths of the additive cost model's ridge penalty; each fit takes the one with the least leave-one-out error
RIDGE_STRENGTHS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: folds of the cross-validation that chooses the model of each learned objective after the first
MODEL_CHOICE_FOLDS = 3


# ----- Pareto utilities (every objective maximised) ------------------------------------------------
def nondominated_mask(points: np.ndarray) -> np.ndarray:
    """Which rows of ``points`` (n x d, every column maximised) no other row dominates.

    A row dominates another when it is at least as good in every column and better in one; equal
    rows do not dominate each other, so duplicates are all kept.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n points x d objectives), got shape {p.shape}")
    if p.shape[1] == 2:
        return _nondominated_mask_2d(p)
    n = len(p)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        ge = np.all(p >= p[i], axis=1)
        gt = np.any(p > p[i], axis=1)
        if np.any(ge & gt):
            mask[i] = False
    return mask


def _nondominated_mask_2d(p: np.ndarray) -> np.ndarray:
    """:func:`nondominated_mask` for two objectives by one sweep in ``O(n log n)``."""
    order = np.lexsort((-p[:, 1], -p[:, 0]))  # first objective descending, ties by the second descending
    mask = np.zeros(len(p), dtype=bool)
    best_prev = -np.inf  # best second objective among points with a strictly larger first objective
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and p[order[j], 0] == p[order[i], 0]:
            j += 1
        group = order[i:j]
        top = p[group[0], 1]
        if top > best_prev:
            mask[group[p[group, 1] == top]] = True
        best_prev = max(best_prev, top)
        i = j
    return mask


def nondominated_ranks(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting: rank 0 for the front of ``points`` (maximised), 1 for the front of the rest, ..."""
    p = np.asarray(points, dtype=np.float64)
    ranks = np.full(len(p), -1, dtype=np.int64)
    left = np.arange(len(p))
    rank = 0
    while len(left):
        front = nondominated_mask(p[left])
        ranks[left[front]] = rank
        left = left[~front]
        rank += 1
    return ranks


def hypervolume(points: np.ndarray, reference: Sequence[float] | np.ndarray) -> float:
    """Exact hypervolume dominated by ``points`` (every column maximised) above ``reference``.

    Points not strictly better than the reference in every objective add nothing. Two objectives are
    swept in ``O(n log n)``; more are sliced along the last objective (exact, for small fronts).
    """
    ref = np.asarray(reference, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64).reshape(-1, len(ref))
    p = p[np.all(p > ref, axis=1)]
    if len(p) == 0:
        return 0.0
    if len(ref) == 1:
        return float(p[:, 0].max() - ref[0])
    if len(ref) == 2:
        order = np.argsort(-p[:, 0], kind="stable")
        volume, best_y = 0.0, ref[1]
        for x, y in p[order]:
            if y > best_y:
                volume += (x - ref[0]) * (y - best_y)
                best_y = y
        return float(volume)
    p = p[nondominated_mask(p)]
    levels = np.sort(np.unique(p[:, -1]))[::-1]
    volume = 0.0
    for i, z in enumerate(levels):
        below = levels[i + 1] if i + 1 < len(levels) else ref[-1]
        volume += hypervolume(p[p[:, -1] >= z][:, :-1], ref[:-1]) * (z - below)
    return float(volume)


def _hv_gains(front: np.ndarray, candidates: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hypervolume each candidate would add to ``front`` on its own."""
    if len(reference) == 2:
        return _hv_gains_2d(front, candidates, reference)
    base = hypervolume(front, reference)
    return np.array([hypervolume(np.vstack([front, c[None]]), reference) - base for c in candidates])


def _hv_gains_2d(front: np.ndarray, candidates: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """:func:`_hv_gains` for two objectives, vectorised over any leading axes of ``candidates`` (``[..., 2]``).

    The front's dominated region is a staircase; a candidate adds, over each step of the staircase
    between the reference and its first coordinate, its height above the step.
    """
    f = np.asarray(front, dtype=np.float64).reshape(-1, 2)
    f = f[np.all(f > reference, axis=1)]
    if len(f):
        f = f[nondominated_mask(f)]
    f = f[np.argsort(f[:, 0])]  # first objective ascending, so the second descends
    # steps: (reference_x, x_1], (x_1, x_2], ..., (x_k, inf) with heights y_1, y_2, ..., y_k, reference_y
    lefts = np.concatenate([[reference[0]], f[:, 0]])
    rights = np.concatenate([f[:, 0], [np.inf]])
    heights = np.concatenate([f[:, 1], [reference[1]]])
    c = np.asarray(candidates, dtype=np.float64)
    x, y = c[..., 0, None], c[..., 1, None]
    width = np.clip(np.minimum(x, rights) - lefts, 0.0, None)
    return (width * np.clip(y - heights, 0.0, None)).sum(-1)


def _epsilon_distance(front: np.ndarray, candidates: np.ndarray, exact: Sequence[int] = ()) -> np.ndarray:
    """Smallest amount each candidate must gain in every predicted objective to be dominated by no front point.

    Objectives in ``exact`` (computed, not predicted) cannot gain: a front point at least as good in
    all of them must be overtaken in a predicted one. Without that, a cell that ties a front point in
    an exact cost would look as close as can be, however poor its predicted accuracy.
    """
    if len(front) == 0:
        return np.zeros(len(candidates))
    gap = front[None, :, :] - candidates[:, None, :]  # candidates x front points x objectives
    cols = list(exact)
    # a front point that is worse in an exact objective can never dominate the candidate
    cannot = np.any(gap[:, :, cols] < 0, axis=2)
    gap[:, :, cols] = np.inf
    # for each candidate and front point: how much the candidate trails that point in its best predicted objective
    trail = np.min(gap, axis=2)
    trail[cannot] = -np.inf
    return np.maximum(trail.max(axis=1), 0.0)


def _rank_scale(told: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` on the scale of the told values' empirical distribution (0: the worst told, 1: the best),
    linear past the ends; ties share their mean position."""
    s = np.sort(np.asarray(told, dtype=np.float64))
    u = np.unique(s)
    x = np.asarray(x, dtype=np.float64)
    if len(u) == 1:
        return np.where(x > u[0], 1.0, np.where(x < u[0], 0.0, 0.5))
    q = (np.searchsorted(s, u, "left") + np.searchsorted(s, u, "right") - 1) / (2.0 * (len(s) - 1))
    out = np.interp(x, u, q)
    out = np.where(x > u[-1], q[-1] + (x - u[-1]) * (q[-1] - q[-2]) / (u[-1] - u[-2]), out)
    return np.where(x < u[0], q[0] + (x - u[0]) * (q[1] - q[0]) / (u[1] - u[0]), out)


def rank_calibrate(told_scores: np.ndarray, told_values: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Map predictor ``scores`` onto the value scale by matching the told cells' score ranks to their values.

    The sorted told scores are paired with the sorted told values (a monotone map, whatever the
    predictor's calibration); scores beyond the told ones follow the slope of the outer fifth.
    """
    s = np.sort(np.asarray(told_scores, dtype=np.float64))
    v = np.sort(np.asarray(told_values, dtype=np.float64))
    x = np.asarray(scores, dtype=np.float64)
    if len(s) == 1 or s[-1] - s[0] <= 0:
        return np.full(len(x), float(v.mean()))
    out = np.interp(x, s, v)
    k = max(1, len(s) // 5)
    hi_slope = (v[-1] - v[-1 - k]) / max(s[-1] - s[-1 - k], 1e-12)
    lo_slope = (v[k] - v[0]) / max(s[k] - s[0], 1e-12)
    out = np.where(x > s[-1], v[-1] + (x - s[-1]) * hi_slope, out)
    return np.where(x < s[0], v[0] + (x - s[0]) * lo_slope, out)


# ----- the additive cost model -----------------------------------------------------------------------
def fit_additive(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A ridge regression of ``y`` on the features ``x`` (``n x f``) with an unpenalised intercept, the
    strength from :data:`RIDGE_STRENGTHS` by exact leave-one-out error; returns ``predict(x_new)``.

    The model of a cost that adds up over a cell's operations: with ``x`` from
    :meth:`~gates_sampler.spaces.base.SearchSpace.op_counts`, each operation's weight is its share.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    design = np.c_[x, np.ones(len(x))]
    best: tuple[float, np.ndarray] | None = None
    for lam in RIDGE_STRENGTHS:
        inverse = np.linalg.pinv(design.T @ design + np.diag(np.r_[np.full(x.shape[1], lam), 0.0]))
        w = inverse @ design.T @ y
        leverage = np.einsum("ij,jk,ik->i", design, inverse, design)
        # the leave-one-out residual of a linear smoother, without refitting n times
        error = float(np.mean(((y - design @ w) / np.maximum(1.0 - leverage, 1e-9)) ** 2))
        if best is None or error < best[0]:
            best = (error, w)
    assert best is not None
    weights = best[1]

    def predict(x_new: np.ndarray) -> np.ndarray:
        x_new = np.asarray(x_new, dtype=np.float64)
        return np.c_[x_new, np.ones(len(x_new))] @ weights

    return predict


# ----- the searcher ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MultiObservation(Observation):
    """One told result of a multi-objective search.

    ``values`` holds every objective as told (``None`` for a failure), ``constraints`` the told
    constraint values (``None`` when none were told); ``value`` is the first objective, for code
    written for one objective.
    """

    values: tuple[float, ...] | None = None
    constraints: tuple[float, ...] | None = None


def _check_directions(directions: Any) -> tuple[str, ...]:
    if isinstance(directions, str) or not isinstance(directions, Sequence) or not directions:
        raise ValueError(
            f"directions must be a non-empty list of 'maximize' / 'minimize', got {short_repr(directions)}"
        )
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"directions must each be 'maximize' or 'minimize', got {short_repr(bad[0])}")
    return tuple(directions)


class MultiObjectiveGatesSearcher(AskTellSearcher):
    """Predictor-based search for the Pareto front of several objectives, optionally constrained.

    See the module docstring for the proposal rule. Until ``n_startup`` cells have finite values, ask
    proposes random cells (satisfying a cheap constraint).

    Args:
        space: the search space.
        directions: one of ``"maximize"`` / ``"minimize"`` per objective (as Optuna's ``directions``).
        cheap_objectives: ``{index: fn}`` for objectives computed exactly from the cell, ``fn(arch) ->
            float`` (in the objective's own direction, e.g. a parameter count to minimise). They are
            never predicted. The values told for them are still what the front is built from.
        constraints: a cheap constraint, ``fn(arch) -> sequence of float`` (feasible when every entry
            is ``<= 0``), computed for every candidate: no infeasible cell is ever proposed.
        n_startup: random proposals before the predictors are used.
        n_candidates: random unseen candidates per ask; up to as many neighbours of the evaluated front join them.
        predictor, zero_shot, device, settings: as for
            :class:`~gates_sampler.searcher.GatesPredictorSearcher`, for each objective's predictor;
            ``settings=None`` is :data:`DEFAULT_SETTINGS` (each predictor refitted as a single-objective
            search refits its own). ``settings.acquisition`` does not apply: the proposal rule above
            reads each predictor's score.
        seed: fixes every random draw.
        scaling: how the proposal rule scales each objective before measuring hypervolume: ``"range"``
            (default: linearly, from the worst to the best told value) or ``"rank"`` (by the told values'
            empirical distribution, so that a few cells that do not train at all do not stretch the
            accuracy axis).
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        directions: Sequence[str],
        cheap_objectives: Mapping[int, Callable[[Arch], float]] | None = None,
        constraints: Callable[[Arch], Sequence[float]] | None = None,
        n_startup: int = 10,
        n_candidates: int = 150,
        predictor: Predictor | dict[str, Any] | None = None,
        zero_shot: ZeroShot = "auto",
        seed: int | None = None,
        device: str | torch.device = "auto",
        settings: SearchSettings | Mapping[str, Any] | None = None,
        scaling: str = "range",
    ) -> None:
        self.directions = _check_directions(directions)
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
        self.scaling = scaling
        super().__init__(space, direction=self.directions[0], seed=seed)
        cheap = {} if cheap_objectives is None else cheap_objectives
        if not isinstance(cheap, Mapping):
            raise ValueError(f"cheap_objectives must be a dict {{objective index: fn(arch)}}, got {short_repr(cheap)}")
        for i, fn in cheap.items():
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.directions):
                raise ValueError(
                    f"cheap_objectives: {short_repr(i)} is not an objective index; "
                    f"allowed: 0..{len(self.directions) - 1}"
                )
            if not callable(fn):
                raise ValueError(f"cheap_objectives[{i}] must be a function fn(arch) -> float, got {short_repr(fn)}")
        if constraints is not None and not callable(constraints):
            raise ValueError(
                f"constraints must be a function fn(arch) -> sequence of float, got {short_repr(constraints)}"
            )
        if isinstance(n_startup, bool) or not isinstance(n_startup, int) or n_startup < 2:
            raise ValueError(f"n_startup must be an int >= 2 (the predictors need pairs), got {n_startup!r}")
        if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates < 1:
            raise ValueError(f"n_candidates must be a positive int, got {n_candidates!r}")
        self.cheap_objectives: dict[int, Callable[[Arch], float]] = dict(cheap)
        self.constraints_fn = constraints
        self.n_startup = n_startup
        self.n_candidates = n_candidates
        self.settings = SearchSettings.coerce(DEFAULT_SETTINGS if settings is None else settings)
        if isinstance(predictor, Predictor):
            raise ValueError("predictor must be a dict of options here: each expensive objective builds its own")
        self._model_kwargs: dict[str, Any] = dict(
            predictor=dict(predictor) if predictor else None,
            zero_shot=zero_shot,
            device=device,
            # the models are used as predictors only; "mean" is the acquisition that reads the predictor
            settings=replace(self.settings, acquisition="mean"),
            n_startup=2,
        )
        self._zero_shot_setting = zero_shot if isinstance(zero_shot, (bool, str)) or zero_shot is None else "custom"
        self.expensive = [i for i in range(len(self.directions)) if i not in self.cheap_objectives]
        self._models = [self._new_model(j) for j in range(len(self.expensive))]
        self._constraint_models: list[GatesPredictorSearcher] = []
        self._vectors: dict[str, list[np.ndarray]] = {}  # canonical key -> internal (maximised) value vectors
        self._told_constraints: dict[str, list[np.ndarray]] = {}
        self._n_constraints: int | None = None
        self._mo_history: list[MultiObservation] = []
        # (learned quantity j: objectives, then constraints; told cells it was chosen on) -> "gates" or
        # "additive"; a function of the told cells, so a searcher rebuilt from a study chooses the same
        self._model_choices: dict[tuple[int, int], str] = {}
        self.ask_seconds: list[float] = []

    def _new_model(self, j: int) -> GatesPredictorSearcher:
        """The predictor of the ``j``-th learned quantity (expensive objectives first, then constraints)."""
        seed = None if self.seed is None else int(np.random.SeedSequence([self.seed, j]).generate_state(1)[0])
        return GatesPredictorSearcher(self.space, direction="maximize", seed=seed, **self._model_kwargs)

    # ----- public ---------------------------------------------------------------------------------
    @property
    def n_objectives(self) -> int:
        return len(self.directions)

    @property
    def objective_models(self) -> dict[int, str]:
        """What predicts each learned objective in the latest proposal: ``"gates"`` or ``"additive"`` (see
        the module docstring). Before the first guided proposal every learned objective reads ``"gates"``."""
        latest = self._latest_model_choices()
        return {i: latest.get(j, "gates") for j, i in enumerate(self.expensive)}

    @property
    def constraint_models(self) -> list[str]:
        """What predicts each learned constraint (told with the results) in the latest proposal, as
        :attr:`objective_models` says for the objectives; empty before the first constraint is told."""
        latest = self._latest_model_choices()
        return [latest.get(len(self.expensive) + c, "gates") for c in range(len(self._constraint_models))]

    def _latest_model_choices(self) -> dict[int, str]:
        """Learned quantity ``j`` -> the model chosen on the most told cells."""
        return {j: kind for (j, _), kind in sorted(self._model_choices.items())}

    @property
    def history(self) -> list[MultiObservation]:  # type: ignore[override]
        """Every told result in order (failures included), with all its objective values."""
        return list(self._mo_history)

    @property
    def best(self) -> tuple[Arch, float] | None:
        """One objective: the best feasible cell and its value. Several: ``None`` (see :meth:`pareto_front`)."""
        if self.n_objectives != 1:
            return None
        front = self.pareto_front()
        return (front[0][0], front[0][1][0]) if front else None

    def _internal_vec(self, values: Sequence[float]) -> np.ndarray:
        sign = np.array([1.0 if d == "maximize" else -1.0 for d in self.directions])
        return sign * np.asarray(values, dtype=np.float64)

    _external_vec = _internal_vec  # a sign flip is its own inverse

    def feasible(self, arch: Arch | str | dict) -> bool:
        """Whether an evaluated cell satisfies every constraint (cheap and told); ``True`` without constraints."""
        arch = self.space.coerce(arch)
        key = self.space.canonical_key(arch)
        told = self._told_constraints.get(key)
        if told and np.any(np.mean(told, axis=0) > 0):
            return False
        return self.constraints_fn is None or bool(np.all(self._cheap_constraints([arch])[0] <= 0))

    def pareto_front(self) -> list[tuple[Arch, tuple[float, ...]]]:
        """The evaluated feasible cells no other evaluated feasible cell dominates, with their values
        (means over repeated tells, in the user's directions), ordered by the first objective (best first)."""
        keys = [k for k in self._vectors if self.feasible(self._arch_of[k])]
        if not keys:
            return []
        points = np.array([np.mean(self._vectors[k], axis=0) for k in keys])
        idx = np.flatnonzero(nondominated_mask(points))
        idx = idx[np.argsort(-points[idx, 0], kind="stable")]
        return [(self._arch_of[keys[i]], tuple(float(x) for x in self._external_vec(points[i]))) for i in idx]

    def training_data(self) -> tuple[list[Arch], np.ndarray]:  # type: ignore[override]
        """Distinct evaluated cells and their mean internal (maximised) value vectors (n x objectives)."""
        keys = list(self._vectors)
        values = np.array([np.mean(self._vectors[k], axis=0) for k in keys]).reshape(len(keys), self.n_objectives)
        return [self._arch_of[k] for k in keys], values

    # ----- tell -----------------------------------------------------------------------------------
    def _as_values(self, values: Any) -> tuple[float, ...] | None:
        """The told vector checked (``None`` when any objective failed, or for ``None``: a failed evaluation)."""
        if values is None:
            return None
        if self.n_objectives == 1 and not isinstance(values, (Sequence, np.ndarray)):
            values = [values]
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise ValueError(
                f"values must be a sequence of {self.n_objectives} numbers (one per direction), "
                f"got {short_repr(values)}"
            )
        values = list(values)
        if len(values) != self.n_objectives:
            raise ValueError(
                f"values must hold {self.n_objectives} numbers (one per direction {list(self.directions)}), "
                f"got {len(values)}: {short_repr(values)}"
            )
        checked = [as_value(v) for v in values]
        if any(v is None for v in checked):
            return None
        return tuple(float(v) for v in checked if v is not None)

    def _as_constraints(self, constraints: Any) -> tuple[float, ...] | None:
        if constraints is None:
            return None
        if isinstance(constraints, (str, bytes)) or not isinstance(constraints, (Sequence, np.ndarray)):
            raise ValueError(
                f"constraints must be a sequence of numbers (<= 0: satisfied), got {short_repr(constraints)}"
            )
        out = []
        for c in constraints:
            v = as_value(c)
            if v is None:
                raise ValueError(f"constraint values must be finite numbers, got {short_repr(list(constraints))}")
            out.append(v)
        if self._n_constraints is not None and len(out) != self._n_constraints:
            raise ValueError(
                f"constraints must hold {self._n_constraints} values, as told before; got {len(out)}: {short_repr(out)}"
            )
        return tuple(out)

    def tell(  # type: ignore[override]
        self, arch: Arch | str | dict, values: Any, constraints: Sequence[float] | None = None
    ) -> MultiObservation:
        """Record the result of an architecture: one value per direction (a plain number with one direction).

        ``values=None`` records a failed evaluation, and so does a ``None``, NaN or infinite value in
        any objective (recorded, never proposed again, not trained on). A vector of the wrong length, a
        value that is not a number, or non-finite ``constraints`` raise ``ValueError`` and record
        nothing. ``constraints``: the constraint values measured with the result (feasible when every
        entry is ``<= 0``).
        """
        arch = self.space.coerce(arch)
        vec = self._as_values(values)
        cons = self._as_constraints(constraints) if vec is not None else None
        key, asked = self._claim(arch)
        obs = MultiObservation(arch, None if vec is None else vec[0], asked, values=vec, constraints=cons)
        self._history.append(obs)
        self._mo_history.append(obs)
        if vec is None:
            logger.info("failed evaluation recorded for %s", arch)
            self._record_value(key, None)
            for model in [*self._models, *self._constraint_models]:
                model.tell(arch, None)
            return obs
        internal = self._internal_vec(vec)
        # ``_values`` marks the key as evaluated for the shared bookkeeping; the vectors live in ``_vectors``
        self._record_value(key, float(internal[0]))
        self._vectors.setdefault(key, []).append(internal)
        for model, i in zip(self._models, self.expensive):
            model.tell(arch, float(internal[i]))
        if cons is not None:
            if self._n_constraints is None:
                self._n_constraints = len(cons)
                self._constraint_models = [self._new_model(len(self.expensive) + j) for j in range(self._n_constraints)]
                self._replay_constraint_models()
            self._told_constraints.setdefault(key, []).append(np.asarray(cons, dtype=np.float64))
            for model, c in zip(self._constraint_models, cons):
                model.tell(arch, -c)  # maximised: higher is more feasible
        return obs

    def _replay_constraint_models(self) -> None:
        """Failures told before the first constraint vector are never proposed by the new models either."""
        for o in self._mo_history:
            if o.values is None:
                for model in self._constraint_models:
                    model.tell(o.arch, None)

    # ----- proposals ------------------------------------------------------------------------------
    def _cheap_constraints(self, archs: Sequence[Arch]) -> np.ndarray:
        assert self.constraints_fn is not None
        rows = []
        for a in archs:
            c = np.atleast_1d(np.asarray(self.constraints_fn(a), dtype=np.float64))
            if not np.all(np.isfinite(c)):
                raise ValueError(f"constraints({a}) returned a non-finite value: {c.tolist()}")
            rows.append(c)
        return np.array(rows).reshape(len(archs), -1)

    def _cheap_feasible(self, pool: list[Arch]) -> list[Arch]:
        if self.constraints_fn is None or not pool:
            return pool
        ok = np.all(self._cheap_constraints(pool) <= 0, axis=1)
        return [a for a, keep in zip(pool, ok) if keep]

    def _random_pool(self, n: int, exclude: set[str]) -> list[Arch]:
        """``n`` random unseen cells satisfying the cheap constraint (fewer if it is hard to satisfy)."""
        out: list[Arch] = []
        keys = set(exclude)
        for _ in range(20):
            batch = self.space.sample_unique(
                self._rng,
                max(n, 1) if not out else 2 * (n - len(out)),
                exclude=keys,
                reduced=self.settings.distinct_sampling,
            )
            if not batch:
                break
            keys.update(self.space.canonical_key(a) for a in batch)
            out += self._cheap_feasible(batch)
            if len(out) >= n:
                break
        return out[:n]

    def _candidate_pool(self) -> list[Arch]:
        """Random unseen feasible cells plus the unseen single-edit neighbours of the evaluated front's cells."""
        seen = self.seen_keys()
        pool = self._random_pool(self.n_candidates, seen)
        keys = {self.space.canonical_key(a) for a in pool}
        parents = [a for a, _ in self.pareto_front()] or [self._arch_of[k] for k in self._vectors]
        children: list[Arch] = []
        # every single-edit neighbour of the front (in random parent order), up to n_candidates
        for p in self._rng.permutation(len(parents)):
            for child in self.space.neighbors(parents[int(p)]):
                k = self.space.canonical_key(child)
                if k not in seen and k not in keys:
                    keys.add(k)
                    children.append(child)
            if len(children) >= self.n_candidates:
                break
        return pool + self._cheap_feasible(children)

    def _model_kind(self, j: int, archs: list[Arch], values: np.ndarray) -> str:
        """The model of the ``j``-th learned quantity (learned objectives first, then learned constraints).

        The first learned objective always has the GATES predictor; any other is chosen by a
        :data:`MODEL_CHOICE_FOLDS`-fold cross-validation (Kendall's tau of the out-of-fold predictions)
        between the GATES predictor and :func:`fit_additive` on the cell's operation counts, made on the
        first ``n_startup * 2**k`` told cells, so again each time the told cells double."""
        n = len(archs)
        if (j == 0 and self.expensive) or n < 2 * MODEL_CHOICE_FOLDS:
            return "gates"
        checkpoint = self.n_startup * 2 ** int(np.floor(np.log2(max(n / self.n_startup, 1.0))))
        checkpoint = min(checkpoint, n)
        if (j, checkpoint) in self._model_choices:
            return self._model_choices[(j, checkpoint)]
        archs, values = archs[:checkpoint], values[:checkpoint]
        seq = [0 if self.seed is None else self.seed, j, checkpoint]
        fold = np.random.default_rng(np.random.SeedSequence(seq)).permutation(checkpoint) % MODEL_CHOICE_FOLDS
        counts = self.space.op_counts(archs)
        gates = np.zeros(checkpoint)
        additive = np.zeros(checkpoint)
        for f in range(MODEL_CHOICE_FOLDS):
            train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            additive[test] = fit_additive(counts[train], values[train])(counts[test])
            model = GatesPredictorSearcher(
                self.space,
                direction="maximize",
                seed=int(np.random.SeedSequence([*seq, f]).generate_state(1)[0]),
                **self._model_kwargs,
            )
            for i in train:
                model.tell(archs[i], float(values[i]))
            scores = model.score_candidates([archs[i] for i in train], [archs[i] for i in test])
            gates[test] = rank_calibrate(scores[: len(train)], values[train], scores[len(train) :])
        tau_gates, tau_additive = kendall_tau(values, gates), kendall_tau(values, additive)
        kind = "additive" if tau_additive > tau_gates else "gates"
        logger.info(
            "%s: %s model (cross-validated Kendall tau on %d cells: GATES %.3f, additive %.3f)",
            f"objective {self.expensive[j]}" if j < len(self.expensive) else f"constraint {j - len(self.expensive)}",
            kind,
            checkpoint,
            tau_gates,
            tau_additive,
        )
        self._model_choices[(j, checkpoint)] = kind
        return kind

    def _learned_values(
        self, j: int, model: GatesPredictorSearcher, archs: list[Arch], values: np.ndarray, pool: list[Arch]
    ) -> np.ndarray:
        """The ``j``-th learned quantity (maximised; ``values`` told for ``archs``) predicted for ``pool`` on
        the value scale, by the model :meth:`_model_kind` chooses."""
        if self._model_kind(j, archs, values) == "additive":
            return fit_additive(self.space.op_counts(archs), values)(self.space.op_counts(pool))
        scores = model.score_candidates(archs, pool)
        return rank_calibrate(scores[: len(archs)], values, scores[len(archs) :])

    def _predicted_points(self, pool: list[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted internal objective vectors of ``pool`` (exact for cheap objectives) and the predicted
        largest constraint value (``-inf`` without learned constraints)."""
        points = np.zeros((len(pool), self.n_objectives))
        for i, fn in self.cheap_objectives.items():
            sign = 1.0 if self.directions[i] == "maximize" else -1.0
            points[:, i] = sign * np.array([float(fn(a)) for a in pool])
        archs, told = self.training_data()
        for j, (model, i) in enumerate(zip(self._models, self.expensive)):
            points[:, i] = self._learned_values(j, model, archs, told[:, i], pool)
        violation = np.full(len(pool), -np.inf)
        if self._constraint_models:
            c_keys = list(self._told_constraints)
            c_archs = [self._arch_of[k] for k in c_keys]
            c_told = np.array([np.mean(self._told_constraints[k], axis=0) for k in c_keys])
            for j, model in enumerate(self._constraint_models):
                # the constraint models learn -c (maximised: higher is more feasible)
                predicted = -self._learned_values(len(self.expensive) + j, model, c_archs, -c_told[:, j], pool)
                violation = np.maximum(violation, predicted)
        return points, violation

    def _select(self, pool: list[Arch], n: int) -> list[Arch]:
        """The proposal rule: greedy hypervolume gain of the predicted points over the evaluated front."""
        if not pool:
            return []
        points, violation = self._predicted_points(pool)
        allowed = violation <= 0
        if not np.any(allowed):  # nothing predicted feasible: the least violating first
            allowed = violation <= np.min(violation)
        _, told = self.training_data()
        keys = list(self._vectors)
        feasible = np.array([self.feasible(self._arch_of[k]) for k in keys], dtype=bool)
        if self.scaling == "rank":
            scaled = np.column_stack([_rank_scale(told[:, j], points[:, j]) for j in range(self.n_objectives)])
            front = np.column_stack([_rank_scale(told[:, j], told[feasible, j]) for j in range(self.n_objectives)])
        else:
            lo, hi = told.min(axis=0), told.max(axis=0)
            span = np.where(hi - lo > 0, hi - lo, 1.0)
            scaled = (points - lo) / span
            front = (told[feasible] - lo) / span
        front = front[nondominated_mask(front)] if len(front) else np.zeros((0, self.n_objectives))
        reference = np.full(self.n_objectives, -REFERENCE_MARGIN)
        exact = sorted(self.cheap_objectives)
        chosen: list[int] = []
        available = allowed.copy()
        # the guided proposals are numbered by the cells seen so far, not by a counter, so a searcher rebuilt
        # from a study or restored from a state keeps its turns
        turn = len(self.seen_keys()) - self.n_startup
        while len(chosen) < n and np.any(available):
            idx = np.flatnonzero(available)
            if self.expensive and (turn + len(chosen)) % TOP_PICK_EVERY == TOP_PICK_EVERY - 1:
                # the predictor's own first choice: a calibrated prediction never lies far above the best told
                # value, so the hypervolume gain of a cell ranked above every told one looks small
                pick = int(idx[int(np.argmax(points[idx, self.expensive[0]]))])
            elif (gains := _hv_gains(front, scaled[idx], reference)).max() > 1e-12:
                pick = int(idx[int(np.argmax(gains))])
            else:
                pick = int(idx[int(np.argmin(_epsilon_distance(front, scaled[idx], exact)))])
            chosen.append(pick)
            available[pick] = False
            front = np.vstack([front, scaled[pick][None]])
            front = front[nondominated_mask(front)]
        if len(chosen) < n:  # more asked than predicted feasible: the rest by least predicted violation
            rest = [i for i in np.argsort(violation, kind="stable") if i not in set(chosen)]
            chosen += [int(i) for i in rest[: n - len(chosen)]]
        return [pool[i] for i in chosen]

    def _propose(self, n: int) -> list[Arch]:
        start = time.perf_counter()
        if self.n_complete < self.n_startup or (not self.expensive and not self._vectors):
            out = self._random_pool(n, self.seen_keys())
        else:
            pool = self._candidate_pool()
            if len(pool) < n:  # nearly exhausted: every unseen feasible cell is a candidate
                pool += self._random_pool(n - len(pool), self.seen_keys() | {self.space.canonical_key(a) for a in pool})
            out = self._select(pool, n)
        self.ask_seconds.append(time.perf_counter() - start)
        return out

    def _propose_fixed(self, n: int, fixed: Mapping[str, str]) -> list[Arch]:
        start = time.perf_counter()
        pool = self._cheap_feasible(self._agreeing_unseen(max(n, self.n_candidates), fixed))
        if self.n_complete < self.n_startup:
            out = pool[:n]
        else:
            out = self._select(pool, n)
        self.ask_seconds.append(time.perf_counter() - start)
        return out

    # ----- persistence ----------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            "directions": list(self.directions),
            "cheap_objectives": sorted(self.cheap_objectives),
            "constraints": self.constraints_fn is not None,
            "seed": self.seed,
            "n_startup": self.n_startup,
            "n_candidates": self.n_candidates,
            "zero_shot": self._zero_shot_setting,
            "settings": asdict(self.settings),
            "predictor": self._model_kwargs["predictor"],
            "scaling": self.scaling,
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["history"] = [
            (
                str(o.arch),
                None if o.values is None else list(o.values),
                o.asked,
                None if o.constraints is None else list(o.constraints),
            )
            for o in self._mo_history
        ]
        state["models"] = [m.state_dict() for m in self._models]
        state["constraint_models"] = [m.state_dict() for m in self._constraint_models]
        return state

    def _restore(self, state: dict[str, Any]) -> MultiObjectiveGatesSearcher:  # type: ignore[override]
        """Validate the whole state and rebuild it in a detached copy (``self`` is not changed)."""
        self._check_header(state)
        history, pending = state["history"], state.get("pending", [])
        if not isinstance(history, (list, tuple)):
            raise ValueError(
                f"history: expected a list of (arch, values, asked, constraints), got {short_repr(history)}"
            )
        if not isinstance(pending, (list, tuple)):
            raise ValueError(f"pending: expected a list of architecture strings, got {short_repr(pending)}")
        rng_state = check_rng_state(state.get("rng"))
        fresh = type(self)(
            self.space,
            directions=self.directions,
            cheap_objectives=self.cheap_objectives,
            constraints=self.constraints_fn,
            n_startup=self.n_startup,
            n_candidates=self.n_candidates,
            predictor=self._model_kwargs["predictor"],
            zero_shot=self._model_kwargs["zero_shot"],
            seed=self.seed,
            device=self._model_kwargs["device"],
            settings=self.settings,
            scaling=self.scaling,
        )
        for i, entry in enumerate(history):
            if not (isinstance(entry, (list, tuple)) and len(entry) == 4):
                raise ValueError(
                    f"history[{i}]: expected an (arch, values, asked, constraints) entry, got {short_repr(entry)}"
                )
            arch_s, values, asked, cons = entry
            if not isinstance(asked, bool):
                raise ValueError(f"history[{i}]: 'asked' must be a bool, got {short_repr(asked)}")
            for name, vec in (("values", values), ("constraints", cons)):
                if vec is not None and not (
                    isinstance(vec, (list, tuple))
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vec)
                ):
                    raise ValueError(f"history[{i}]: {name} must be a list of numbers or None, got {short_repr(vec)}")
            try:
                arch = self.space.parse(arch_s)
                if asked:
                    fresh._pending[self.space.canonical_key(arch)] = arch
                fresh.tell(arch, values, constraints=cons)
            except ValueError as exc:
                raise ValueError(f"history[{i}]: {exc}") from None
        fresh._pending.update(self._parse_pending(pending))
        for name, models in (("models", fresh._models), ("constraint_models", fresh._constraint_models)):
            saved = state.get(name)
            if not isinstance(saved, (list, tuple)) or len(saved) != len(models):
                raise ValueError(f"{name}: expected {len(models)} predictor states, got {short_repr(saved)}")
            for model, s in zip(models, saved):
                model.load_state_dict(s)
        fresh._rng.bit_generator.state = rng_state
        fresh.meta = dict(state.get("meta", {}))
        fresh.ask_seconds = list(self.ask_seconds)
        return fresh

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a refused state raises ``ValueError`` and changes nothing."""
        fresh = self._restore(state)
        self.__dict__.update(fresh.__dict__)

    @classmethod
    def _settings_from_state(cls, config: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        cheap = config.pop("cheap_objectives", [])
        if cheap and "cheap_objectives" not in overrides:
            raise ValueError(
                f"the state was saved with cheap objectives {cheap}: pass them again, load(path, cheap_objectives=...)"
            )
        if config.pop("constraints", False) and "constraints" not in overrides:
            raise ValueError("the state was saved with a cheap constraint: pass it again, load(path, constraints=fn)")
        if config.get("zero_shot") == "custom" and "zero_shot" not in overrides:
            raise ValueError("the state was saved with a custom zero-shot provider: pass it again, zero_shot=provider")
        return config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space!r}, directions={list(self.directions)!r}, told={self.n_told})"
