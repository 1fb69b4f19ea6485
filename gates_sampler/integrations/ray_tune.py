"""Ray Tune searcher backed by the GATES predictor searcher.

:class:`GatesSearcher` is a ``ray.tune.search.Searcher`` that translates Tune's ``suggest`` /
``on_trial_complete`` calls into :meth:`GatesPredictorSearcher.ask` / :meth:`~GatesPredictorSearcher.tell`
on one core searcher. It holds no search logic of its own.

Example::

    from ray import tune
    from gates_sampler import GatesSearcher
    from gates_sampler.spaces import NB201Space

    space = NB201Space()

    def objective(config):
        arch = space.from_params(config)
        tune.report({"acc": evaluate(arch)})

    tuner = tune.Tuner(
        objective,
        tune_config=tune.TuneConfig(
            metric="acc",
            mode="max",
            search_alg=tune.search.ConcurrencyLimiter(GatesSearcher(space, metric="acc", mode="max", seed=0), 2),
            num_samples=50,
        ),
    )
    results = tuner.fit()
    print(results.get_best_result().config)

Give metric and mode to the ``TuneConfig`` (Tune's result grid needs them for ``get_best_result()``)
and to the searcher (Tune forwards the ``TuneConfig`` ones to a searcher only with a non-empty
``param_space``). The core searcher optimises in that direction itself (``mode="min"`` builds it with
``direction="minimize"``); the adapter never changes the sign of a value.

How the search space is given
-----------------------------
* ``GatesSearcher(space)``: every suggested config is ``space.to_params(arch)``, a flat dict of
  architecture parameters (the same keys as ``space.tune_param_space()``); the trainable rebuilds the
  architecture with ``space.from_params(config)``.
* ``GatesSearcher({"arch": space, "lr": tune.loguniform(1e-4, 1e-1), "epochs": 12})``: exactly one key
  maps to a :class:`SearchSpace`; the config holds the architecture parameters nested under that key
  (``space.from_params(config["arch"])``). Other keys may hold Tune domains (``tune.uniform``,
  ``tune.loguniform``, ``tune.randint``, ``tune.choice``, ...), which are **sampled at random**, independently
  of the architecture, from a generator seeded by ``seed``; or constants, which are passed through
  unchanged. The predictor models the metric as a function of the architecture only, so random
  hyperparameters act as noise on the values it learns from: fix them where you can.
  ``tune.grid_search`` and ``tune.sample_from`` are rejected with a ``ValueError``.

``Tuner(param_space=...)``
    The searcher always supplies the architecture itself. Tune forwards ``param_space`` (and the
    ``TuneConfig`` metric/mode) through :meth:`GatesSearcher.set_search_properties`: architecture entries
    in it (for instance ``space.tune_param_space()``) must match the space exactly and are otherwise
    ignored; other Tune domains in it are sampled like the hyperparameters above; constants are passed
    through by Tune. Note that Tune only calls ``set_search_properties`` when ``param_space`` is
    non-empty, so without a ``param_space`` give ``metric``/``mode`` to the searcher itself.

Concurrency
    ``set_max_concurrency`` is left to Tune's ``ConcurrencyLimiter`` (or ``TuneConfig(max_concurrent_trials=...)``,
    which wraps the searcher in one): the searcher returns ``False`` there and never limits trials
    itself. Every running trial's architecture is pending in the core, so parallel trials never share
    an architecture.

Points to evaluate
    ``points_to_evaluate=[config, ...]`` as in Tune's built-in searchers: the first suggestions are
    those configs, shaped like suggested ones. A point may fix only some architecture parameters; the
    rest is then the best unseen architecture agreeing with them. Other keys in a point are used as
    given; hyperparameters it leaves out are sampled as usual.

Schedulers that stop trials early (ASHA, HyperBand, median stopping)
    Every result a running trial reports reaches the core as an intermediate value
    (``on_trial_result``: the metric at step ``result[time_attr]``). Tune then calls
    ``on_trial_complete`` for a trial that finished *and* for one a scheduler stopped, with the same
    ``done=True`` in both results, so the searcher cannot tell them apart from the result alone. Give
    ``max_t``, the ``time_attr`` value a complete trial reaches (the scheduler's ``max_t``): a trial
    whose last result is below it ended early and is told as such (``tell_pruned``: its last value is
    not a final value; it still trains the predictor, ranked below the trials that were better at the
    step it stopped at). Without ``max_t`` every completed trial's last result counts as final.

Checkpointing
    :meth:`save` / :meth:`restore` write and read the core state (history, pending architectures, RNG
    and predictor weights) plus the running trials, the points not yet suggested and the Tune domains
    taken from ``param_space`` (as plain data), so ``Tuner.restore(...)`` resumes an interrupted
    experiment without losing any evaluation, and a restored searcher keeps sampling those
    hyperparameters even before Tune passes ``param_space`` again.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from ray.tune.search import Searcher
from ray.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform, Normal, Quantized

from gates_sampler.base_searcher import Observation, SpaceExhausted, as_value
from gates_sampler.searcher import GatesPredictorSearcher
from gates_sampler.spaces.base import Arch, SearchSpace
from gates_sampler.utils import atomic_torch_save, check_rng_state, safe_torch_load

logger = logging.getLogger("gates_sampler")

__all__ = ["GatesSearcher"]

STATE_FORMAT = "gates_sampler.GatesSearcher"
STATE_VERSION = 1
_MODES = ("min", "max")
_DIRECTION = {"max": "maximize", "min": "minimize"}
_HP_SEED_SALT = 0x4850  # keeps the hyperparameter stream independent of the core's architecture stream

Path = tuple[str, ...]


def _walk(config: Mapping[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Leaves of a nested config dict as ``(path, value)``; rejects what a searcher cannot resolve."""
    for key, value in config.items():
        path = prefix + (key,)
        if isinstance(value, Mapping) and "grid_search" in value:
            raise ValueError(
                f"{'/'.join(map(str, path))}: tune.grid_search is not supported by GatesSearcher; use tune.choice"
            )
        if isinstance(value, Mapping) and value:
            yield from _walk(value, path)
            continue
        if isinstance(value, Domain) and value.is_function():
            raise ValueError(
                f"{'/'.join(map(str, path))}: tune.sample_from is not supported by GatesSearcher; "
                "use tune.uniform/loguniform/randint/choice or a constant"
            )
        if isinstance(value, (list, tuple)) and any(isinstance(v, Domain) for v in value):
            raise ValueError(f"{'/'.join(map(str, path))}: Tune domains inside lists are not supported; use a dict")
        yield path, value


def _assign(config: dict[str, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        config = config.setdefault(key, {})
    config[path[-1]] = value


def _native(value: Any) -> Any:
    """Plain Python scalars, so configs print, compare and serialise like user-written ones."""
    return value.item() if isinstance(value, np.generic) else value


class GatesSearcher(Searcher):
    """A Ray Tune searcher proposing architectures with a GATES predictor (see the module docstring).

    Args:
        search_space: a :class:`~gates_sampler.spaces.base.SearchSpace` (flat architecture parameters), or
            a dict with exactly one ``SearchSpace`` value (architecture parameters nested under that key)
            and Tune domains (sampled at random with the seeded generator) or constants for the rest.
        metric: the result key to optimise; may instead come from ``TuneConfig(metric=...)``.
        mode: ``"max"`` or ``"min"``; may instead come from ``TuneConfig(mode=...)``. It is the core
            searcher's direction; values are told and reported in the metric's own units.
        points_to_evaluate: configs to suggest first, shaped like suggested configs (see the module
            docstring); an architecture given in part is completed by the core.
        n_startup: random architectures before the predictor is used.
        n_candidates: candidates scored per proposal.
        seed: seeds the core searcher (architectures, predictor) and the hyperparameter sampler.
        max_t: the ``time_attr`` value a trial that runs to the end reaches (e.g. the ``max_t`` of an
            ``ASHAScheduler``); a trial completed below it was stopped early (see the module docstring).
            ``None``: every completed trial is final.
        time_attr: the result key that counts a trial's progress (Tune's ``training_iteration`` by default).
        **searcher_kwargs: passed to :class:`GatesPredictorSearcher` (``predictor``, ``candidates``,
            ``zero_shot``, ``device``, ``settings``, ...); ``direction`` is not accepted (use ``mode``).

    Attributes:
        core: the :class:`GatesPredictorSearcher` every call is forwarded to.
        space: the architecture search space.
        arch_key: the config key holding the architecture parameters, or ``None`` when they are flat.
    """

    def __init__(
        self,
        search_space: SearchSpace | Mapping[str, Any],
        *,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        n_startup: int = 10,
        n_candidates: int = 200,
        seed: int | None = None,
        max_t: int | None = None,
        time_attr: str = "training_iteration",
        **searcher_kwargs: Any,
    ) -> None:
        _check_metric(metric)
        _check_mode(mode)
        if max_t is not None and (isinstance(max_t, bool) or not isinstance(max_t, int) or max_t < 1):
            raise ValueError(
                f"max_t must be None or a positive int (the {time_attr} a full trial reaches), got {max_t!r}"
            )
        if not isinstance(time_attr, str) or not time_attr:
            raise ValueError(f"time_attr must be the name (str) of a result key, got {time_attr!r}")
        self.max_t = max_t
        self.time_attr = time_attr
        if "direction" in searcher_kwargs:
            raise ValueError("GatesSearcher takes mode='max'|'min', not direction=")
        super().__init__(metric=metric, mode=mode)
        self.space, self.arch_key, self._hp_domains, self._hp_constants = self._split(search_space)
        self._space_hp_domains: dict[Path, Domain] = {}  # domains found in Tuner(param_space=...)
        self.seed = seed
        self._points = self._check_points(points_to_evaluate)
        self._core_kwargs = {"n_startup": n_startup, "n_candidates": n_candidates, "seed": seed, **searcher_kwargs}
        # the name `core`, not `searcher`: Tune treats any object with a `.searcher` as a wrapper. Until
        # the mode is known the core is built to maximise; _use_mode rebuilds it before its first use.
        self.core = GatesPredictorSearcher(self.space, direction=_DIRECTION[mode or "max"], **self._core_kwargs)
        self._hp_rng = np.random.default_rng(None if seed is None else [_HP_SEED_SALT, seed])
        self._live: dict[str, Arch] = {}  # trial id -> architecture it evaluates
        self._configs: dict[str, dict[str, Any]] = {}  # trial id -> config returned by suggest
        self._done: dict[str, tuple[Arch, bool]] = {}  # trial id -> (architecture, failed) once told
        self._steps: dict[str, int] = {}  # trial id -> last step reported to the core
        self._exhausted = False

    # ----- configuration --------------------------------------------------------------------------
    @staticmethod
    def _split(search_space: Any) -> tuple[SearchSpace, str | None, dict[Path, Domain], dict[Path, Any]]:
        if isinstance(search_space, SearchSpace):
            return search_space, None, {}, {}
        if not isinstance(search_space, Mapping):
            raise ValueError(
                "search_space must be a SearchSpace (e.g. NB201Space()) or a dict with one SearchSpace value, "
                f"got {type(search_space).__name__}"
            )
        arch_keys = [k for k, v in search_space.items() if isinstance(v, SearchSpace)]
        if len(arch_keys) != 1:
            raise ValueError(
                "a dict search_space must map exactly one key to a SearchSpace (the architecture), "
                f"found {len(arch_keys)}: {arch_keys}"
            )
        arch_key = arch_keys[0]
        if not isinstance(arch_key, str):
            raise ValueError(f"the architecture key must be a string, got {arch_key!r}")
        rest = {k: v for k, v in search_space.items() if k != arch_key}
        domains: dict[Path, Domain] = {}
        constants: dict[Path, Any] = {}
        for path, value in _walk(rest):
            if isinstance(value, SearchSpace):
                raise ValueError(f"{'/'.join(path)}: only one SearchSpace is allowed (nested under {arch_key!r})")
            if isinstance(value, Domain):
                domains[path] = value
            else:
                constants[path] = copy.deepcopy(value)
        return search_space[arch_key], arch_key, domains, constants

    def _check_points(self, points: Any) -> list[dict[str, Any]]:
        """Validate ``points_to_evaluate`` now, so that a bad point fails before any trial runs."""
        if points is None:
            return []
        if not isinstance(points, (list, tuple)):
            raise ValueError(
                f"GatesSearcher: points_to_evaluate must be a list of config dicts, got {type(points).__name__}"
            )
        dists = self.space.distributions()
        out = []
        for i, point in enumerate(points):
            where = f"GatesSearcher: points_to_evaluate[{i}]"
            if not isinstance(point, Mapping):
                raise ValueError(f"{where} must be a config dict, got {type(point).__name__}")
            params = self._point_arch_params(point, where)
            for name, value in params.items():
                if name not in dists:
                    raise ValueError(
                        f"{where}: {name!r} is not an architecture parameter of {self.space.name}; "
                        f"expected {list(dists)}"
                    )
                if str(value) not in dists[name]:
                    raise ValueError(f"{where}: {name!r} has value {value!r}; allowed: {dists[name]}")
            if len(params) == len(dists):
                self.space.from_params(params)  # a whole architecture must be a valid one
            out.append(copy.deepcopy(dict(point)))
        return out

    def _point_arch_params(self, point: Mapping[str, Any], where: str = "GatesSearcher: point") -> dict[str, Any]:
        if self.arch_key is None:
            return {k: v for k, v in point.items() if k in self.space.distributions()}
        params = point.get(self.arch_key, {})
        if not isinstance(params, Mapping):
            raise ValueError(f"{where}: {self.arch_key!r} must hold a dict of architecture parameters, got {params!r}")
        return dict(params)

    def _arch_path(self, name: str) -> Path:
        return (name,) if self.arch_key is None else (self.arch_key, name)

    def _is_arch_path(self, path: Path) -> bool:
        if self.arch_key is None:
            return len(path) == 1 and path[0] in self.space.distributions()
        return path[0] == self.arch_key

    def _absorb_param_space(self, config: Mapping[str, Any]) -> dict[Path, Domain]:
        """Check the architecture entries of a Tuner ``param_space``; return its other domains."""
        dists = self.space.distributions()
        found: dict[Path, Domain] = {}
        for path, value in _walk(config):
            if self._is_arch_path(path):
                name = path[-1]
                if len(path) != len(self._arch_path(name)) or name not in dists:
                    raise ValueError(
                        f"param_space entry {'/'.join(path)!r} is not an architecture parameter of {self.space.name}; "
                        f"expected names: {list(dists)}"
                    )
                categories = getattr(value, "categories", None)
                if not isinstance(value, Domain) or categories is None:
                    raise ValueError(
                        f"param_space fixes architecture parameter {'/'.join(path)!r} to {value!r}; the searcher "
                        "chooses architecture parameters, so leave them out or use space.tune_param_space()"
                    )
                if sorted(map(str, categories)) != sorted(dists[name]):
                    raise ValueError(
                        f"param_space entry {'/'.join(path)!r} has choices {list(categories)}; "
                        f"the space allows {dists[name]}"
                    )
            elif isinstance(value, Domain):
                if path in self._hp_domains or path in self._hp_constants:
                    raise ValueError(
                        f"{'/'.join(path)!r} is given both in the searcher's search_space and in param_space"
                    )
                found[path] = value
        return found

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        """Take metric, mode and ``param_space`` from Tune (see the module docstring); returns ``True``.

        Raises:
            ValueError: metric or mode contradict the ones given to the constructor, the mode is not
                ``"max"``/``"min"``, or ``param_space`` disagrees with the architecture space.
        """
        _check_metric(metric)
        _check_mode(mode)
        for name, given in (("metric", metric), ("mode", mode)):
            current = getattr(self, f"_{name}")
            if given is not None and current is not None and given != current:
                raise ValueError(f"GatesSearcher was built with {name}={current!r} but Tune passes {name}={given!r}")
        # recomputed (not accumulated): Tune calls this again when an experiment is restored
        self._space_hp_domains = self._absorb_param_space(config or {})
        if mode is not None:
            self._use_mode(mode)
        self._metric = self._metric if metric is None else metric
        self._mode = self._mode if mode is None else mode
        return True

    def _use_mode(self, mode: str) -> None:
        """Make the core optimise in ``mode``'s direction (rebuilt only while it holds nothing yet)."""
        direction = _DIRECTION[mode]
        if self.core.direction == direction:
            return
        if self.core.n_told or self.core.pending:
            raise ValueError(
                f"GatesSearcher already holds results for mode={self._mode!r}; it cannot switch to {mode!r}"
            )
        self.core = GatesPredictorSearcher(self.space, direction=direction, **self._core_kwargs)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Returns ``False``: concurrency is left to ``ConcurrencyLimiter``, which then limits the trials."""
        return False

    def _require_metric_and_mode(self) -> None:
        if self._metric is None or self._mode is None:
            raise ValueError(
                "GatesSearcher needs a metric and a mode: pass GatesSearcher(space, metric='acc', mode='max'), "
                "or TuneConfig(metric=..., mode=...) together with a non-empty param_space (Tune forwards them "
                "to the searcher only then)"
            )

    # ----- suggest / complete ---------------------------------------------------------------------
    def _config_for(self, arch: Arch) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for path, value in self._hp_constants.items():
            _assign(config, path, copy.deepcopy(value))
        for path, domain in {**self._hp_domains, **self._space_hp_domains}.items():
            _assign(config, path, _native(domain.sample(random_state=self._hp_rng)))
        params = self.space.to_params(arch)
        if self.arch_key is None:
            config.update(params)
        else:
            config[self.arch_key] = params
        return config

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        """A config for a new trial, or ``Searcher.FINISHED`` once every architecture was proposed.

        The architecture is never one that a running trial holds or one already evaluated or failed.
        The core can always propose while unseen architectures remain, so ``None`` is never returned.
        Asking again for a trial id that is still running returns its config again.
        """
        self._require_metric_and_mode()  # fail early with a clear message, before anything is pending
        self._use_mode(str(self._mode))
        if trial_id in self._live:
            return copy.deepcopy(self._configs[trial_id])
        if self._points:
            arch, config = self._from_point(self._points[0])
            self._points.pop(0)
        else:
            if self._exhausted:
                return Searcher.FINISHED
            try:
                arch = self.core.ask()
            except SpaceExhausted:
                logger.info("GatesSearcher: every architecture of %s has been proposed; finishing", self.space.name)
                self._exhausted = True
                return Searcher.FINISHED
            config = self._config_for(arch)
        self._live[trial_id] = arch
        self._configs[trial_id] = config
        return copy.deepcopy(config)

    def _from_point(self, point: Mapping[str, Any]) -> tuple[Arch, dict[str, Any]]:
        """The architecture and config of a point to evaluate (its architecture completed if partial)."""
        params = self._point_arch_params(point)
        if len(params) == len(self.space.distributions()):
            arch = self.space.from_params(params)
            self.core.add_pending([arch])
        else:
            arch = self.core.ask(fixed=params)
        config = self._config_for(arch)
        rest = {k: v for k, v in point.items() if k != self.arch_key and (self.arch_key is not None or k not in params)}
        for path, value in _walk(rest):
            _assign(config, path, copy.deepcopy(value))
        return arch, config

    def _value_of(self, trial_id: str, result: Mapping[str, Any] | None, error: bool) -> float | None:
        """The value to tell the core, or ``None`` for a failure."""
        self._require_metric_and_mode()
        metric = str(self._metric)
        if error:
            return None
        if not isinstance(result, Mapping) or metric not in result:
            logger.warning("trial %s finished without metric %r; recorded as a failed evaluation", trial_id, metric)
            return None
        try:
            return as_value(result[metric])
        except ValueError:
            logger.warning(
                "trial %s reported %r=%r, not a number; recorded as a failed evaluation",
                trial_id,
                metric,
                result[metric],
            )
            return None

    def _arch_in(self, params: Any) -> Arch | None:
        """The architecture a trial config describes, or ``None`` if it does not describe one."""
        if not isinstance(params, Mapping):
            return None
        if self.arch_key is not None:
            params = params.get(self.arch_key)
            if not isinstance(params, Mapping):
                return None
        names = self.space.distributions()
        try:
            return self.space.from_params({k: params[k] for k in names})
        except (KeyError, ValueError):
            return None

    def _step_of(self, result: Mapping[str, Any] | None) -> int | None:
        """``result[time_attr]`` as a non-negative int, or ``None``."""
        if not isinstance(result, Mapping):
            return None
        step = result.get(self.time_attr)
        if isinstance(step, bool) or not isinstance(step, (int, np.integer, float)) or not step >= 0:
            return None
        if isinstance(step, float) and not step.is_integer():
            return None
        return int(step)

    def _report(self, trial_id: str, arch: Arch, result: Mapping[str, Any] | None) -> None:
        """Pass one intermediate result to the core (each step of a trial once)."""
        step = self._step_of(result)
        if step is None or result is None or self._metric is None or self._metric not in result:
            return
        if step <= self._steps.get(trial_id, -1):
            return
        try:
            self.core.report(arch, step, result[self._metric])
        except ValueError:
            return  # not a number: the completion decides what the trial counts as
        self._steps[trial_id] = step

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Record a running trial's intermediate result (the metric at ``result[time_attr]``) in the core."""
        arch = self._live.get(trial_id)
        if arch is None or self._metric is None:
            return
        self._report(trial_id, arch, result)

    def _stopped_early(self, result: Mapping[str, Any] | None) -> bool:
        """Whether a completed trial's last result is below ``max_t`` (a scheduler stopped it)."""
        if self.max_t is None:
            return False
        step = self._step_of(result)
        return step is not None and step < self.max_t

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Tell the core the trial's value.

        ``error=True``, a result without the metric, or a non-finite value are recorded as a failed
        evaluation: that architecture is never proposed again and not trained on. An unknown trial id
        is ignored with a warning, unless its result's ``config`` holds an architecture of the space
        (Tune restarting a trial under a new id), which is then recorded so that no evaluation is lost.
        A trial that failed and completes again under the same id (``Tuner.restore(resume_errored=True)``)
        is recorded again; a second completion of a successful trial is ignored with a warning.
        With ``max_t``, a trial whose last ``time_attr`` is below it was stopped by a scheduler: it is
        told as ended early (``tell_pruned``), its last value not being final.
        """
        arch = self._live.pop(trial_id, None)
        self._configs.pop(trial_id, None)
        if arch is None and trial_id in self._done:
            arch, failed = self._done[trial_id]
            if not failed:
                logger.warning("trial %s was already completed; the second completion is ignored", trial_id)
                return
            logger.info("failed trial %s completed again (resumed); recorded", trial_id)
        elif arch is None:
            arch = self._arch_in(result.get("config") if isinstance(result, Mapping) else None)
            if arch is None:
                logger.warning(
                    "on_trial_complete for unknown trial %s ignored (it was not suggested by this searcher)", trial_id
                )
                return
            logger.warning("unknown trial %s evaluated %s (from its config); recorded", trial_id, arch)
            key = self.space.canonical_key(arch)
            for stale in [t for t, a in self._live.items() if self.space.canonical_key(a) == key]:
                # the same architecture under an id Tune replaced; its result arrives under the new id
                del self._live[stale]
                self._configs.pop(stale, None)
        value = self._value_of(trial_id, result, error)
        if value is not None:
            # Tune withholds from on_trial_result the result that ended a trial (a scheduler's STOP)
            self._report(trial_id, arch, result)
        self._steps.pop(trial_id, None)
        if value is not None and self._stopped_early(result):
            observation = self.core.tell_pruned(arch)
            self._done[trial_id] = (arch, observation.failed)
            return
        self.core.tell(arch, value)
        self._done[trial_id] = (arch, value is None)

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float | None,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        """Record an evaluation made outside this searcher (``parameters`` shaped like a suggested config).

        ``error`` or a ``None``/NaN value are recorded as failures. ``pruned``: the evaluation ended early
        after ``intermediate_values`` (steps 1, 2, ...): told as ended early (a failure without them).
        """
        arch = self._arch_in(parameters)
        if arch is None:
            raise ValueError(
                f"parameters do not describe a {self.space.name} architecture; expected "
                + ("flat keys " if self.arch_key is None else f"a dict under {self.arch_key!r} with keys ")
                + f"{list(self.space.distributions())}"
            )
        self._require_metric_and_mode()
        self._use_mode(str(self._mode))
        if pruned and not error:
            for step, v in enumerate(intermediate_values or [], start=1):
                self.core.report(arch, step, v)
            self.core.tell_pruned(arch)
            return
        self.core.tell(arch, None if error or pruned else as_value(value))

    # ----- results ----------------------------------------------------------------------------------
    @property
    def best(self) -> tuple[Arch, float] | None:
        """The best architecture and its value in the metric's own units, or ``None`` before any result."""
        self._require_metric_and_mode()
        return self.core.best

    @property
    def history(self) -> list[Observation]:
        """Every told result in order, values in the metric's own units (``None`` for failures)."""
        return self.core.history

    @property
    def live_trials(self) -> dict[str, Arch]:
        """Running trials (suggested, not yet completed) and their architectures."""
        return dict(self._live)

    # ----- checkpointing ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`restore` needs: the core state, metric/mode, running trials, RNG state."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "arch_key": self.arch_key,
            "metric": self._metric,
            "mode": self._mode,
            "core": self.core.state_dict(),
            "live": {tid: str(a) for tid, a in self._live.items()},
            "configs": copy.deepcopy(self._configs),
            "done": {tid: (str(a), failed) for tid, (a, failed) in self._done.items()},
            "exhausted": self._exhausted,
            "hp_rng": self._hp_rng.bit_generator.state,
            "points": copy.deepcopy(self._points),
            "param_space_domains": [[list(path), _domain_state(d)] for path, d in self._space_hp_domains.items()],
        }

    def save(self, checkpoint_path: str) -> None:
        """Write :meth:`state_dict` to ``checkpoint_path`` atomically (Tune calls this on every checkpoint)."""
        atomic_torch_save(self.state_dict(), checkpoint_path, prefix=".gates-searcher-")

    def restore(self, checkpoint_path: str) -> None:
        """Load a file written by :meth:`save` into this searcher (built with the same space and settings).

        Raises:
            ValueError: the file is not a GatesSearcher checkpoint, or was written with another space,
                architecture key, metric, mode or core settings. On error this searcher is unchanged.
        """
        path = os.fspath(checkpoint_path)
        state = safe_torch_load(path, what="GatesSearcher checkpoint")
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"{path!r} is not a GatesSearcher checkpoint")
        if type(state.get("version")) is not int or state["version"] != STATE_VERSION:
            raise ValueError(
                f"unsupported GatesSearcher checkpoint version {state.get('version')!r}; "
                f"this release reads {STATE_VERSION}"
            )
        needed = ("arch_key", "metric", "mode", "core", "live", "configs", "done", "exhausted", "hp_rng")
        missing = [k for k in needed if k not in state]
        if missing:
            raise ValueError(f"{path!r} is not a complete GatesSearcher checkpoint: it lacks {missing}")
        if state["arch_key"] != self.arch_key:
            raise ValueError(
                f"checkpoint keeps the architecture under {state['arch_key']!r}, this searcher under {self.arch_key!r}"
            )
        for name in ("metric", "mode"):
            current = getattr(self, f"_{name}")
            if state[name] is not None and current is not None and state[name] != current:
                raise ValueError(
                    f"checkpoint was written with {name}={state[name]!r}, this searcher has {name}={current!r}"
                )
        tables_ok = all(isinstance(state[k], dict) for k in ("live", "configs", "done"))
        if not tables_ok or not isinstance(state["exhausted"], bool):
            raise ValueError(f"{path!r}: 'live', 'configs' and 'done' must be dicts and 'exhausted' a bool")
        try:
            live = {tid: self.space.parse(s) for tid, s in state["live"].items()}
            done = {tid: (self.space.parse(s), bool(failed)) for tid, (s, failed) in state["done"].items()}
            domains = {tuple(path): _domain_from_state(d) for path, d in state.get("param_space_domains", [])}
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(
                f"{path!r}: a trial's architecture or a saved parameter domain is malformed ({exc})"
            ) from None
        hp_rng = check_rng_state(state["hp_rng"], f"{path!r}: 'hp_rng'")
        if state["mode"] not in (None, *_DIRECTION):
            raise ValueError(f"{path!r}: mode must be one of {sorted(_DIRECTION)} or None, got {state['mode']!r}")
        mode = self._mode if state["mode"] is None else state["mode"]
        core = self.core
        if mode is not None and core.direction != _DIRECTION[mode]:
            core = GatesPredictorSearcher(self.space, direction=_DIRECTION[mode], **self._core_kwargs)
        core.load_state_dict(state["core"])  # validates space and settings; atomic
        self.core = core
        # a param_space passed to this searcher since it was built wins over the saved one
        self._space_hp_domains = self._space_hp_domains or domains
        self._points = copy.deepcopy(state.get("points", []))
        self._metric = self._metric if state["metric"] is None else state["metric"]
        self._mode = self._mode if state["mode"] is None else state["mode"]
        self._live = live
        self._configs = copy.deepcopy(state["configs"])
        self._done = done
        self._exhausted = state["exhausted"]
        self._hp_rng.bit_generator.state = hp_rng

    def __repr__(self) -> str:
        return (
            f"GatesSearcher(space={self.space!r}, metric={self._metric!r}, mode={self._mode!r}, "
            f"told={self.core.n_told}, running={len(self._live)})"
        )


def _check_mode(mode: Any) -> None:
    if mode is not None and mode not in _MODES:
        raise ValueError(f"mode must be 'max' or 'min' (or None to take it from TuneConfig), got {mode!r}")


def _check_metric(metric: Any) -> None:
    if metric is not None and not isinstance(metric, str):
        raise ValueError(f"metric must be the name (str) of one reported result key, got {metric!r}")


def _domain_state(domain: Domain) -> dict[str, Any]:
    """A Tune domain as plain data (no pickled objects), for :meth:`GatesSearcher.save`."""
    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, Quantized):
        q, sampler = sampler.q, sampler.get_sampler()
    state: dict[str, Any] = {"q": q, "sampler": "uniform"}
    if isinstance(sampler, LogUniform):
        state["sampler"] = "loguniform"
    elif isinstance(sampler, Normal):
        state.update(sampler="normal", mean=sampler.mean, sd=sampler.sd)
    if isinstance(domain, Categorical):
        state.update(kind="choice", categories=list(domain.categories))
    elif isinstance(domain, (Float, Integer)):
        state.update(kind="float" if isinstance(domain, Float) else "int", lower=domain.lower, upper=domain.upper)
    else:
        raise ValueError(f"GatesSearcher cannot save the Tune domain {domain!r}; use uniform/loguniform/randint/choice")
    return state


def _domain_from_state(state: Mapping[str, Any]) -> Domain:
    """Rebuild a domain written by :func:`_domain_state`."""
    domain: Any
    if state["kind"] == "choice":
        domain = Categorical(state["categories"]).uniform()
    else:
        domain = (Float if state["kind"] == "float" else Integer)(state["lower"], state["upper"])
        if state["sampler"] == "loguniform":
            domain = domain.loguniform()
        elif state["sampler"] == "normal":
            domain = domain.normal(state["mean"], state["sd"])
        else:
            domain = domain.uniform()
    return domain if state["q"] is None else domain.quantized(state["q"])
