"""Shared ask/tell bookkeeping: history, pending architectures, failures, best, persistence."""

from __future__ import annotations

import abc
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, overload

import numpy as np
import torch

from gates_sampler.spaces import DartsSpace, NB101Space, NB201Space
from gates_sampler.spaces.base import Arch, SearchSpace
from gates_sampler.utils import atomic_torch_save

logger = logging.getLogger("gates_sampler")

STATE_VERSION = 1
_BUILTIN_SPACES = {"nb201": NB201Space, "darts": DartsSpace, "nb101": NB101Space}


class SpaceExhausted(RuntimeError):
    """No unseen architecture is left to propose (evaluated, failed and pending ones excluded)."""


@dataclass(frozen=True)
class Observation:
    """One told result: the architecture, its value as told (``None`` for a failure), and whether it was asked."""

    arch: Arch
    value: float | None
    asked: bool

    @property
    def failed(self) -> bool:
        return self.value is None


def as_value(value: Any) -> float | None:
    """A finite float, or ``None`` for a failed evaluation (``None``, NaN, +-inf)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"value must be a number (or None for a failed evaluation), got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"value must be a number (or None/NaN for a failed evaluation), got {value!r}") from None
    return v if math.isfinite(v) else None


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

    def seen_keys(self) -> set[str]:
        """Canonical keys that must not be proposed: evaluated, failed or pending."""
        return set(self._values) | self._failed | set(self._pending)

    def _internal(self, v: float) -> float:
        return v if self.direction == "maximize" else -v

    def _external(self, v: float) -> float:
        return v if self.direction == "maximize" else -v

    def training_data(self) -> tuple[list[Arch], np.ndarray]:
        """Distinct evaluated architectures and their mean internal (higher-is-better) values."""
        keys = list(self._values)
        return [self._arch_of[k] for k in keys], np.array([np.mean(self._values[k]) for k in keys], dtype=np.float64)

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

    def tell(self, arch: Arch | str | dict, value: Any) -> None:
        """Record the result of an architecture.

        ``value`` ``None``, NaN or inf marks a failed evaluation: recorded, never proposed again and
        excluded from training. A valid architecture that was never asked is accepted as extra data.
        Telling the same architecture twice keeps both values; training uses their mean.
        """
        arch = self.space.coerce(arch)
        v = as_value(value)
        key = self.space.canonical_key(arch)
        asked = self._pending.pop(key, None) is not None
        self._history.append(Observation(arch, v, asked))
        self._arch_of.setdefault(key, arch)
        if v is None:
            logger.info("failed evaluation recorded for %s", arch)
            if key not in self._values:
                self._failed.add(key)
        else:
            self._values.setdefault(key, []).append(self._internal(v))
            self._failed.discard(key)
        self._on_tell(arch, v)

    def _on_tell(self, arch: Arch, value: float | None) -> None:
        """Hook for subclasses."""

    @abc.abstractmethod
    def _propose(self, n: int) -> list[Arch]:
        """Return up to ``n`` new architectures (distinct, none seen)."""

    def _random_unseen(self, n: int, exclude: set[str] | None = None, reduced: bool = False) -> list[Arch]:
        return self.space.sample_unique(self._rng, n, exclude=self.seen_keys() | (exclude or set()), reduced=reduced)

    # ----- persistence ------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"direction": self.direction, "seed": self.seed}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the search exactly: history, pending, RNG and model state."""
        return {
            "version": STATE_VERSION,
            "class": type(self).__name__,
            "space": self.space.name,
            "config": self._config(),
            "history": [(str(o.arch), o.value, o.asked) for o in self._history],
            "pending": [str(a) for a in self._pending.values()],
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (into a searcher built with the same space and settings)."""
        if not isinstance(state, dict) or "history" not in state or "version" not in state:
            raise ValueError("not a searcher state: expected a dict from state_dict() with 'version' and 'history'")
        if state["version"] != STATE_VERSION:
            raise ValueError(f"unsupported state version {state['version']!r}; this release reads version {STATE_VERSION}")
        if state.get("space") != self.space.name:
            raise ValueError(f"state was saved for space {state.get('space')!r}, this searcher searches {self.space.name!r}")
        if state.get("class") != type(self).__name__:
            raise ValueError(f"state was saved by {state.get('class')}, not {type(self).__name__}")
        if state["config"] != self._config():
            raise ValueError(f"state was saved with different settings: {state['config']} vs {self._config()}")
        fresh = type(self).__new__(type(self))
        fresh.__dict__.update(self.__dict__)
        AskTellSearcher.__init__(fresh, self.space, direction=self.direction, seed=self.seed)
        for arch_s, value, asked in state["history"]:
            arch = self.space.parse(arch_s)
            if asked:
                fresh._pending[self.space.canonical_key(arch)] = arch
            AskTellSearcher.tell(fresh, arch, value)
        for arch_s in state["pending"]:
            arch = self.space.parse(arch_s)
            fresh._pending[self.space.canonical_key(arch)] = arch
        fresh._rng.bit_generator.state = state["rng"]
        # commit only once everything parsed, so a bad state leaves this searcher untouched
        for k in ("_rng", "_history", "_pending", "_values", "_arch_of", "_failed"):
            setattr(self, k, getattr(fresh, k))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` atomically (a crash never leaves a half-written file)."""
        atomic_torch_save(self.state_dict(), path)

    @staticmethod
    def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read a state file written by :meth:`save`, with a clear error if it is not one."""
        try:
            state = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{os.fspath(path)!r} is not a readable searcher state file ({type(exc).__name__}: {exc})") from None
        if not isinstance(state, dict) or "version" not in state or "history" not in state:
            raise ValueError(f"{os.fspath(path)!r} is not a searcher state file")
        return state

    @classmethod
    def load(cls, path: str | os.PathLike[str], space: SearchSpace | None = None, **kwargs: Any) -> "AskTellSearcher":
        """Build a searcher from a file written by :meth:`save`.

        ``space`` may be left out for the built-in spaces; settings saved in the file are used unless
        overridden by ``kwargs`` (which must then match them).
        """
        state = cls.read_state(path)
        if space is None:
            if state.get("space") not in _BUILTIN_SPACES:
                raise ValueError(f"the state's space {state.get('space')!r} is not built in; pass space=...")
            space = _BUILTIN_SPACES[state["space"]]()
        searcher = cls(space, **{**state["config"], **kwargs})
        searcher.load_state_dict(state)
        return searcher

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space!r}, direction={self.direction!r}, told={self.n_told})"

