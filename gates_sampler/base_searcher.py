"""Shared ask/tell bookkeeping: history, pending architectures, failures, best, persistence."""

from __future__ import annotations

import abc
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np

from gates_sampler.curves import LearningCurves, check_step, extrapolate_finals
from gates_sampler.spaces import BUILTIN_SPACES
from gates_sampler.spaces.base import Arch, SearchSpace, short_repr
from gates_sampler.utils import atomic_torch_save, check_rng_state, safe_torch_load

logger = logging.getLogger("gates_sampler")

STATE_VERSION = 1
_S = TypeVar("_S", bound="AskTellSearcher")


class SpaceExhausted(RuntimeError):
    """No unseen architecture is left to propose (evaluated, failed and pending ones excluded)."""


@dataclass(frozen=True)
class Observation:
    """One told result: the architecture, its value as told (``None`` for a failure), and whether it was asked.

    A trial that ended early (:meth:`AskTellSearcher.tell_pruned`) has ``pruned=True``, ``step`` the last
    step it reached and ``value`` its value at that step (``None`` when it reported nothing): an
    intermediate value, never a final one.
    """

    arch: Arch
    value: float | None
    asked: bool
    pruned: bool = False
    step: int | None = None

    @property
    def failed(self) -> bool:
        return self.value is None


#: largest magnitude a value may have: the predictor trains in float32
MAX_ABS_VALUE = float(np.finfo(np.float32).max)


def as_value(value: Any) -> float | None:
    """A finite float, or ``None`` for a failed evaluation.

    - ``None``, NaN and +-inf are failed evaluations (``None``).
    - Finite numbers beyond the float32 range (``abs(value) > MAX_ABS_VALUE``, about 3.4e38, such as
      ``1e39`` or ``10**400``) are failed evaluations too, with a warning: the predictor trains in
      float32, and such a value is almost always a diverged run rather than a measurement.
    - Anything that is not a number (bool, str, bytes, containers, objects without ``__float__``)
      raises ``ValueError``.
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_, str, bytes, bytearray)):
        raise ValueError(f"value must be a number (or None for a failed evaluation), got {short_repr(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int such as 10**400: finite, far outside the range
        logger.warning(
            "value %s is beyond the float32 range +-%.4g: recorded as a failed evaluation",
            short_repr(value),
            MAX_ABS_VALUE,
        )
        return None
    except Exception:  # TypeError, ValueError, or whatever a foreign __float__ raises
        raise ValueError(
            f"value must be a number (or None/NaN for a failed evaluation), got {short_repr(value)}"
        ) from None
    if not math.isfinite(v):
        return None
    if abs(v) > MAX_ABS_VALUE:
        logger.warning("value %r is beyond the float32 range +-%.4g: recorded as a failed evaluation", v, MAX_ABS_VALUE)
        return None
    return v


def _is_plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is JSON-like plain data (what a state file may hold besides tensors)."""
    if depth > 20:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


def _space_for(state: Mapping[str, Any], space: SearchSpace | None) -> SearchSpace:
    """``space``, or the built-in space the state names."""
    if space is not None:
        return space
    name = state.get("space")
    if not isinstance(name, str) or name not in BUILTIN_SPACES:
        built_in = sorted(BUILTIN_SPACES)
        raise ValueError(f"the state's space {short_repr(name)} is not built in ({built_in}); pass space=...")
    return BUILTIN_SPACES[name]()


class AskTellSearcher(abc.ABC):
    """Base class of the ask/tell searchers (GATES, random search, regularized evolution).

    Values are told in the user's direction; internally "higher is better". An architecture that was
    evaluated, failed, or is still pending (asked, not yet told) is never proposed again; identity is
    ``space.canonical_key``.
    """

    def __init__(self, space: SearchSpace, *, direction: str = "maximize", seed: int | None = None) -> None:
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space must be a SearchSpace (e.g. NB201Space()), got {type(space).__name__}")
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
        self.space = space
        self.direction = direction
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._history: list[Observation] = []
        self._pending: dict[str, Arch] = {}
        self._values: dict[str, list[float]] = {}  # canonical key -> internal (maximised) values
        self._arch_of: dict[str, Arch] = {}
        self._failed: set[str] = set()
        self._reports: list[tuple[Arch, int, float]] = []  # every recorded report, as told (for the state)
        # intermediate results (report) and trials that ended early (tell_pruned), internal values
        self._curves = LearningCurves()
        #: free-form plain data saved with the state, e.g. ``{"benchmark": "nb201", "dataset": "cifar100"}``:
        #: where the told values come from, so that a resumed run can check it continues the same problem
        self.meta: dict[str, Any] = {}

    # ----- public bookkeeping -----------------------------------------------------------------
    @property
    def history(self) -> list[Observation]:
        """Every told result in order (failures included)."""
        return list(self._history)

    @property
    def pending(self) -> list[Arch]:
        """Architectures asked and not yet told."""
        return list(self._pending.values())

    @property
    def n_told(self) -> int:
        return len(self._history)

    @property
    def n_complete(self) -> int:
        """Number of distinct architectures with at least one finite value."""
        return len(self._values)

    @property
    def best(self) -> tuple[Arch, float] | None:
        """The best architecture so far and its value (mean of its values), or ``None``."""
        if not self._values:
            return None
        key = max(self._values, key=lambda k: float(np.mean(self._values[k])))
        return self._arch_of[key], self._external(float(np.mean(self._values[key])))

    @property
    def n_pruned(self) -> int:
        """Number of distinct architectures that ended early (:meth:`tell_pruned`) and have no final value."""
        return len(self._pruned_keys())

    def seen_keys(self) -> set[str]:
        """Canonical keys that must not be proposed: evaluated, failed, pruned or pending."""
        return set(self._values) | self._failed | set(self._pending) | set(self._curves.stops)

    def _pruned_keys(self) -> list[str]:
        """Keys of the architectures that ended early with a value at their last step and no final value."""
        return [k for k in self._curves.stops if k not in self._values and self._curves.stops[k] is not None]

    def curve(self, arch: Arch | str | dict) -> dict[int, float]:
        """The intermediate values reported for ``arch`` (step -> mean of the values at that step), in the
        user's direction; empty when nothing was reported."""
        key = self.space.canonical_key(self.space.coerce(arch))
        return {step: self._external(v) for step, v in self._curves.curve(key).items()}

    def _internal(self, v: float) -> float:
        return v if self.direction == "maximize" else -v

    def _external(self, v: float) -> float:
        return v if self.direction == "maximize" else -v

    def training_data(self) -> tuple[list[Arch], np.ndarray]:
        """Distinct evaluated architectures and their mean internal (higher-is-better) values."""
        keys = list(self._values)
        return [self._arch_of[k] for k in keys], np.array([np.mean(self._values[k]) for k in keys], dtype=np.float64)

    def fidelity_data(self) -> tuple[list[Arch], np.ndarray, np.ndarray]:
        """:meth:`training_data` followed by the trials that ended early, with the step of each value.

        Returns ``(archs, values, steps)``: completed architectures with their mean final values (step:
        their last reported step, NaN when they reported no curve), then those that ended early with
        their internal value at the step they reached (as in :meth:`ranking_data`).
        """
        archs, values = self.training_data()
        steps = [self._curves.last_step(k) for k in self._values]
        pruned = self._pruned_keys()
        stops = [self._curves.stops[k] for k in pruned]
        last = [self._curves.value_at(k, s) for k, s in zip(pruned, stops)]
        return (
            archs + [self._arch_of[k] for k in pruned],
            np.concatenate([values, np.array(last, dtype=np.float64)]),
            np.array([np.nan if s is None else float(s) for s in steps + stops], dtype=np.float64),
        )

    def extrapolated_data(self) -> tuple[list[Arch], np.ndarray, np.ndarray]:
        """:meth:`training_data` followed by the trials that ended early, at extrapolated final values.

        Returns ``(archs, values, variances)``: completed architectures with their mean final values
        (variance 0), then each trial that ended early whose final value can be extrapolated from the
        completed trials' curves (:func:`gates_sampler.curves.extrapolate_finals`), with the variance of
        that extrapolation; the others are left out.
        """
        archs, values = self.training_data()
        pruned = self._pruned_keys()
        zero = np.zeros(len(values))
        if not pruned or not len(values):
            return archs, values, zero
        stops = [int(self._curves.stops[k]) for k in pruned]  # type: ignore[arg-type]  # _pruned_keys: not None
        steps = sorted(set(stops))
        col = {s: c for c, s in enumerate(steps)}
        at = np.array([[self._curves.value_at(k, s) for s in steps] for k in self._values], dtype=np.float64)
        last = np.array([self._curves.value_at(k, s) for k, s in zip(pruned, stops)], dtype=np.float64)
        mean, var = extrapolate_finals(values, at, last, np.array([col[s] for s in stops], dtype=np.int64))
        ok = np.isfinite(mean) & np.isfinite(var)
        return (
            archs + [self._arch_of[k] for k, good in zip(pruned, ok) if good],
            np.concatenate([values, mean[ok]]),
            np.concatenate([zero, var[ok]]),
        )

    def ranking_data(self) -> tuple[list[Arch], np.ndarray, np.ndarray | None]:
        """Training data including the trials that ended early, as pairs to rank.

        Returns ``(archs, values, better)``: the architectures of :meth:`training_data` (same order,
        same mean final values) followed by those that ended early (:meth:`tell_pruned`), whose entry
        in ``values`` is their internal value at the last step they reached; and ``better[i, j]``, true
        when ``archs[i]`` is known to rank above ``archs[j]`` by the rule of
        :func:`gates_sampler.curves.better_matrix`. ``better`` is ``None`` when no trial ended early:
        then the pairs are exactly those of the final values.
        """
        archs, values, _ = self.fidelity_data()
        pruned = self._pruned_keys()
        if not pruned:
            return archs, values, None
        finals = np.concatenate([values[: len(self._values)], np.full(len(pruned), np.nan)])
        return archs, values, self._curves.better_matrix(list(self._values) + pruned, finals)

    # ----- ask / tell -------------------------------------------------------------------------
    @overload
    def ask(self, n: None = None, *, fixed: Mapping[str, Any] | None = None) -> Arch: ...

    @overload
    def ask(self, n: int, *, fixed: Mapping[str, Any] | None = None) -> list[Arch]: ...

    def ask(self, n: int | None = None, *, fixed: Mapping[str, Any] | None = None) -> Arch | list[Arch]:
        """Propose one new architecture and mark it pending.

        Args:
            n: leave out. ``ask(n)`` is :meth:`ask_batch` (a list), kept for existing callers.
            fixed: architecture parameters (a subset of ``space.distributions()``) that the proposal
                must agree with; the best-scored unseen architecture that does is proposed.

        Raises:
            SpaceExhausted: no unseen architecture (agreeing with ``fixed``) is left.
        """
        if n is not None:
            return self.ask_batch(n, fixed=fixed)
        return self.ask_batch(1, fixed=fixed)[0]

    def ask_batch(self, n: int, *, fixed: Mapping[str, Any] | None = None) -> list[Arch]:
        """Propose ``n`` distinct new architectures (e.g. one per parallel worker) and mark them pending.

        Args:
            n: how many (a positive int).
            fixed: as in :meth:`ask`.

        Raises:
            SpaceExhausted: fewer than ``n`` unseen architectures (agreeing with ``fixed``) are left;
                nothing is marked pending then.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        k = int(n)
        fixed_params = self._check_fixed(fixed)
        archs = self._propose_fixed(k, fixed_params) if fixed_params else self._propose(k)
        if len(archs) < k:
            what = f" agreeing with {fixed_params}" if fixed_params else ""
            raise SpaceExhausted(
                f"the search space is exhausted: only {len(archs)} unseen architecture(s){what} left, {k} asked"
            )
        for a in archs:
            self._pending[self.space.canonical_key(a)] = a
        return archs

    def set_pending(self, archs: Iterable[Arch | str | Mapping[str, Any]]) -> None:
        """Replace the pending set (asked, not yet told) with ``archs``.

        For adapters that rebuild the state from a framework's storage, where other processes hold
        architectures this searcher never asked for. Pending architectures are never proposed.
        """
        pending: dict[str, Arch] = {}
        for a in archs:
            arch = self.space.coerce(a)
            pending[self.space.canonical_key(arch)] = arch
        self._pending = pending

    def add_pending(self, archs: Iterable[Arch | str | Mapping[str, Any]]) -> None:
        """Mark ``archs`` pending in addition to those already pending (see :meth:`set_pending`)."""
        self.set_pending([*self._pending.values(), *archs])

    def reseed(self, seed: int | None = None) -> None:
        """Replace the proposal generator with one seeded by ``seed`` (``None``: fresh entropy).

        The history, the pending set and a fitted predictor are kept.
        """
        self._rng = np.random.default_rng(seed)

    def _check_fixed(self, fixed: Mapping[str, Any] | None) -> dict[str, str]:
        if fixed is None:
            return {}
        if not isinstance(fixed, Mapping):
            raise ValueError(f"fixed must be a mapping of architecture parameter to choice, got {type(fixed).__name__}")
        dists = self.space.distributions()
        out: dict[str, str] = {}
        for name, value in fixed.items():
            if name not in dists:
                raise ValueError(
                    f"fixed parameter {name!r} is not a parameter of {self.space.name}; expected: {list(dists)}"
                )
            if str(value) not in dists[name]:
                raise ValueError(f"fixed parameter {name!r} has value {value!r}; allowed: {dists[name]}")
            # A parameter with one choice (DARTS: node 2's inputs are always 0 and 1) holds that value in
            # every architecture; Optuna answers it without asking the sampler, so it arrives "fixed" in
            # every trial. Kept, it would send every proposal down the path for constrained ones.
            if len(dists[name]) > 1:
                out[name] = str(value)
        return out

    def _agreeing_unseen(self, n: int, fixed: Mapping[str, str]) -> list[Arch]:
        """Up to ``n`` distinct unseen valid architectures agreeing with ``fixed``, drawn at random."""
        seen = self.seen_keys()
        out: dict[str, Arch] = {}
        for _ in range(50 * n + 100):
            if len(out) >= n:
                break
            try:
                arch = self.space.from_params({**self.space.random_params(self._rng), **fixed})
            except ValueError:  # constrained spaces: not every combination is a valid cell
                continue
            key = self.space.canonical_key(arch)
            if key not in seen:
                out.setdefault(key, arch)
        return list(out.values())

    def _propose_fixed(self, n: int, fixed: Mapping[str, str]) -> list[Arch]:
        """Up to ``n`` new architectures agreeing with ``fixed``; subclasses rank the candidates."""
        return self._agreeing_unseen(n, fixed)

    def tell(self, arch: Arch | str | dict, value: Any) -> Observation:
        """Record the result of an architecture.

        ``value`` ``None``, NaN, inf or a number beyond the float32 range (see :func:`as_value`) marks a
        failed evaluation: recorded, never proposed again and excluded from training. A value that is
        not a number raises ``ValueError`` and records nothing. A valid architecture that was never
        asked is accepted as extra data. Telling the same architecture twice keeps both values; training
        uses their mean. Returns the :class:`Observation` recorded (its ``value`` is ``None`` for a failure).
        """
        arch = self.space.coerce(arch)
        v = as_value(value)  # both checked before anything is recorded: a rejected tell changes nothing
        key, asked = self._claim(arch)
        observation = Observation(arch, v, asked)
        self._history.append(observation)
        if v is None:
            logger.info("failed evaluation recorded for %s", arch)
        self._record_value(key, None if v is None else self._internal(v))
        self._on_tell(arch, v)
        return observation

    def _claim(self, arch: Arch) -> tuple[str, bool]:
        """A result for ``arch`` arrives: it is no longer pending. Returns its canonical key and whether
        it was pending (asked)."""
        key = self.space.canonical_key(arch)
        asked = self._pending.pop(key, None) is not None
        self._arch_of.setdefault(key, arch)
        return key, asked

    def _record_value(self, key: str, internal: float | None) -> None:
        """A final result of ``key``: a value (internal, maximised) joins its values; ``None`` marks it
        failed unless it has values already."""
        if internal is None:
            if key not in self._values:
                self._failed.add(key)
        else:
            self._values.setdefault(key, []).append(internal)
            self._failed.discard(key)

    def report(self, arch: Arch | str | dict, step: int, value: Any) -> None:
        """Record an intermediate result of a trial still running, e.g. its validation accuracy after epoch ``step``.

        Intermediate results never count as final values; they rank a trial that ends early
        (:meth:`tell_pruned`) against the others, and a trial that completes can report its curve too,
        so that early-ended trials are compared with it at the step they stopped. Reporting the same
        step twice keeps both values (their mean is used). ``value`` ``None``, NaN or inf records
        nothing (a diverged step says nothing about the ranking); a ``step`` that is not a
        non-negative int or a ``value`` that is not a number raises ``ValueError`` and records nothing.
        Reporting does not change what is pending.
        """
        arch = self.space.coerce(arch)
        step = check_step(step)
        v = as_value(value)
        if v is None:
            logger.info("intermediate value at step %d of %s is not finite: not recorded", step, arch)
            return
        key = self.space.canonical_key(arch)
        self._arch_of.setdefault(key, arch)
        self._curves.report(key, step, self._internal(v))
        self._reports.append((arch, step, v))
        self._on_report(arch, step, v)

    def tell_pruned(self, arch: Arch | str | dict, step: int | None = None, value: Any = None) -> Observation:
        """Record that a trial ended early (pruned by an Optuna pruner, stopped by an ASHA / HyperBand
        scheduler): its last intermediate value is not a final value.

        ``step`` and ``value``, when given, are reported first (:meth:`report`). The trial stopped at the
        last step reported for it; it is never proposed again, and it trains the predictor by the rule of
        :func:`gates_sampler.curves.better_matrix` (ranked below the trials that were better at the step
        it stopped at). A trial that ends early without any finite intermediate value is recorded as a
        failed evaluation. Returns the :class:`Observation` recorded (``pruned=True``).
        """
        arch = self.space.coerce(arch)
        if step is not None or value is not None:
            if step is None:
                raise ValueError("tell_pruned: a value needs the step it was reached at (step=...)")
            check_step(step)
            as_value(value)  # both checked before anything is recorded
            self.report(arch, step, value)
        return self._record_pruned(arch, self._curves.last_step(self.space.canonical_key(arch)))

    def _record_pruned(self, arch: Arch, last: int | None) -> Observation:
        """Record that ``arch`` ended early at step ``last`` (``None``: before reporting anything)."""
        key, asked = self._claim(arch)
        if last is not None and not math.isfinite(self._curves.value_at(key, last)):
            last = None  # a hand-made state naming a step before any report
        self._curves.stop(key, last)
        if last is None:
            logger.info("%s ended early without an intermediate value: recorded as a failed evaluation", arch)
            self._record_value(key, None)
            observation = Observation(arch, None, asked, pruned=True, step=None)
        else:
            value_at = self._external(self._curves.value_at(key, last))
            observation = Observation(arch, value_at, asked, pruned=True, step=last)
        self._history.append(observation)
        self._on_tell_pruned(arch, last)
        return observation

    def _parse_pending(self, pending: Iterable[Any]) -> dict[str, Arch]:
        """A saved state's pending architecture strings, by canonical key; ``ValueError`` names the bad entry."""
        out: dict[str, Arch] = {}
        for i, arch_s in enumerate(pending):
            try:
                arch = self.space.parse(arch_s)
            except ValueError as exc:
                raise ValueError(f"pending[{i}]: {exc}") from None
            out[self.space.canonical_key(arch)] = arch
        return out

    def _on_report(self, arch: Arch, step: int, value: float) -> None:  # noqa: B027 - an optional hook
        """Hook for subclasses: called after every recorded intermediate value."""

    def _on_tell_pruned(self, arch: Arch, step: int | None) -> None:  # noqa: B027 - an optional hook
        """Hook for subclasses: called after every :meth:`tell_pruned` (``step`` ``None``: nothing reported)."""

    def _on_tell(self, arch: Arch, value: float | None) -> None:  # noqa: B027 - an optional hook, not abstract
        """Hook for subclasses: called after every tell (``value`` ``None`` for a failure)."""

    @abc.abstractmethod
    def _propose(self, n: int) -> list[Arch]:
        """Return up to ``n`` new architectures (distinct, none seen)."""

    def _random_unseen(self, n: int, exclude: set[str] | None = None, reduced: bool = False) -> list[Arch]:
        return self.space.sample_unique(self._rng, n, exclude=self.seen_keys() | (exclude or set()), reduced=reduced)

    # ----- persistence ------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"direction": self.direction, "seed": self.seed}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the search exactly: history, pending, RNG and model state.

        Only plain data and tensors, so that the state loads with ``torch.load(..., weights_only=True)``.
        """
        if not _is_plain(self.meta) or not isinstance(self.meta, dict):
            raise ValueError(
                "meta must be a dict of plain data (str keys; str, int, float, bool, None, lists, dicts), "
                f"got {short_repr(self.meta)}"
            )
        return {
            "version": STATE_VERSION,
            "class": type(self).__name__,
            "space": self.space.name,
            "space_fingerprint": self.space.fingerprint(),
            "config": self._config(),
            "meta": dict(self.meta),
            # an entry of a trial that ended early carries a fourth item, {"pruned": last step or None}
            "history": [
                (str(o.arch), o.value, o.asked, {"pruned": o.step}) if o.pruned else (str(o.arch), o.value, o.asked)
                for o in self._history
            ],
            "reports": [(str(a), step, v) for a, step, v in self._reports],
            "pending": [str(a) for a in self._pending.values()],
            "rng": self._rng.bit_generator.state,
        }

    def _same_config(self, config: Any) -> bool:
        """Whether a state's recorded settings are this searcher's."""
        return bool(config == self._config())

    def has_ended(self, arch: Arch | str | dict) -> bool:
        """Whether ``arch`` has a final value or ended early (and is not pending again)."""
        key = self.space.canonical_key(self.space.coerce(arch))
        return (key in self._values or key in self._curves.stops) and key not in self._pending

    def _check_header(self, state: Any) -> None:
        """Refuse a state of another class, version, space or settings (nothing is changed)."""
        if not isinstance(state, dict) or "history" not in state or "version" not in state:
            raise ValueError("not a searcher state: expected a dict from state_dict() with 'version' and 'history'")
        version = state["version"]
        if type(version) is not int or version != STATE_VERSION:
            raise ValueError(
                f"unsupported state version {short_repr(version)}; this release reads version {STATE_VERSION}"
            )
        if state.get("class") != type(self).__name__:
            raise ValueError(f"state was saved by {short_repr(state.get('class'))}, not {type(self).__name__}")
        if state.get("space") != self.space.name:
            raise ValueError(
                f"state was saved for space {short_repr(state.get('space'))}, "
                f"this searcher searches {self.space.name!r}"
            )
        if state.get("space_fingerprint") != self.space.fingerprint():
            raise ValueError(
                f"state was saved for another space named {self.space.name!r} (different operations, cells or "
                f"parameters: fingerprint {short_repr(state.get('space_fingerprint'))}, "
                f"this space {self.space.fingerprint()!r})"
            )
        try:
            same = self._same_config(state.get("config"))
        except Exception:  # a hand-made state whose settings cannot even be compared
            same = False
        if not same:
            raise ValueError(
                f"state was saved with different settings: {short_repr(state.get('config'))} vs {self._config()}"
            )
        meta = state.get("meta", {})
        if not isinstance(meta, dict) or not _is_plain(meta):
            raise ValueError(f"meta: expected a dict of plain data, got {short_repr(meta)}")

    def _restore(self, state: dict[str, Any]) -> AskTellSearcher:
        """Validate the whole base state and rebuild it in a detached copy (``self`` is not changed)."""
        self._check_header(state)
        history, pending = state["history"], state.get("pending", [])
        if not isinstance(history, (list, tuple)):
            raise ValueError(f"history: expected a list of (arch, value, asked) entries, got {type(history).__name__}")
        if not isinstance(pending, (list, tuple)):
            raise ValueError(f"pending: expected a list of architecture strings, got {type(pending).__name__}")
        rng_state = check_rng_state(state.get("rng"))
        fresh = type(self).__new__(type(self))
        fresh.__dict__.update(self.__dict__)
        AskTellSearcher.__init__(fresh, self.space, direction=self.direction, seed=self.seed)
        reports = state.get("reports", [])  # states written before intermediate results have none
        if not isinstance(reports, (list, tuple)):
            raise ValueError(f"reports: expected a list of (arch, step, value) entries, got {type(reports).__name__}")
        for i, entry in enumerate(reports):
            if not (isinstance(entry, (list, tuple)) and len(entry) == 3):
                raise ValueError(f"reports[{i}]: expected an (arch, step, value) entry, got {short_repr(entry)}")
            arch_s, step, value = entry
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"reports[{i}]: the value must be a number, got {short_repr(value)}")
            try:
                AskTellSearcher.report(fresh, self.space.parse(arch_s), step, value)
            except ValueError as exc:
                raise ValueError(f"reports[{i}]: {exc}") from None
        for i, entry in enumerate(history):
            if not (isinstance(entry, (list, tuple)) and len(entry) in (3, 4)):
                raise ValueError(f"history[{i}]: expected an (arch, value, asked) entry, got {short_repr(entry)}")
            arch_s, value, asked = entry[:3]
            pruned = entry[3] if len(entry) == 4 else None
            if pruned is not None and not (
                isinstance(pruned, dict)
                and set(pruned) == {"pruned"}
                and (pruned["pruned"] is None or type(pruned["pruned"]) is int and pruned["pruned"] >= 0)
            ):
                raise ValueError(f"history[{i}]: expected {{'pruned': step or None}}, got {short_repr(pruned)}")
            if not isinstance(asked, bool):
                raise ValueError(f"history[{i}]: 'asked' must be a bool, got {short_repr(asked)}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"history[{i}]: the value must be a number or None, got {short_repr(value)}")
            try:
                arch = self.space.parse(arch_s)
            except ValueError as exc:
                raise ValueError(f"history[{i}]: {exc}") from None
            if asked:
                fresh._pending[self.space.canonical_key(arch)] = arch
            if pruned is not None:
                AskTellSearcher._record_pruned(fresh, arch, pruned["pruned"])
            else:
                AskTellSearcher.tell(fresh, arch, value)
        fresh._pending.update(self._parse_pending(pending))
        fresh._rng.bit_generator.state = rng_state
        fresh.meta = dict(state.get("meta", {}))
        return fresh

    def _commit(self, fresh: AskTellSearcher) -> None:
        for k in ("_rng", "_history", "_pending", "_values", "_arch_of", "_failed", "_curves", "_reports", "meta"):
            setattr(self, k, getattr(fresh, k))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (into a searcher built with the same space and settings).

        The whole state is checked first (class, version, space and its fingerprint, settings, every
        history entry, the random generator state); a refused state raises ``ValueError`` and leaves
        this searcher exactly as it was.
        """
        self._commit(self._restore(state))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` atomically, with a checksum that :meth:`load` verifies."""
        atomic_torch_save(self.state_dict(), path)

    @staticmethod
    def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read a state file written by :meth:`save`, without running any code stored in it.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the file is not a searcher state, fails its checksum, or holds anything other
                than plain data and tensors (the message names the file).
        """
        state = safe_torch_load(path, what="searcher state")
        if not isinstance(state, dict) or "version" not in state or "history" not in state:
            raise ValueError(f"{os.fspath(path)!r} is not a searcher state file")
        return state

    @classmethod
    def load(cls: type[_S], path: str | os.PathLike[str], space: SearchSpace | None = None, **kwargs: Any) -> _S:
        """Build a searcher from a file written by :meth:`save`.

        ``space`` may be left out for the built-in spaces; settings saved in the file are used unless
        overridden by ``kwargs`` (which must then match them).
        """
        return cls.from_state(cls.read_state(path), space, **kwargs)

    @classmethod
    def from_state(cls: type[_S], state: Mapping[str, Any], space: SearchSpace | None = None, **kwargs: Any) -> _S:
        """Build a searcher from a state read by :meth:`read_state` (see :meth:`load`)."""
        state = dict(state)
        config = state.get("config")
        if not isinstance(config, dict):
            raise ValueError(f"config: expected a dict of settings, got {short_repr(config)}")
        config = cls._settings_from_state(dict(config), kwargs)
        space = _space_for(state, space)
        try:
            searcher = cls(space, **{**config, **kwargs})
        except TypeError as exc:  # a setting this release does not know
            raise ValueError(f"config: the state's settings do not fit this release ({exc})") from None
        searcher.load_state_dict(state)
        return searcher

    @classmethod
    def _settings_from_state(cls, config: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor settings recorded in a state; subclasses check their own entries."""
        return config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space!r}, direction={self.direction!r}, told={self.n_told})"
