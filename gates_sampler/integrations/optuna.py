"""GATES++ as an Optuna sampler.

In the objective, ``arch = space.suggest(trial)`` suggests the architecture's flat categorical
parameters; :class:`GatesSampler` proposes the whole architecture from the core
:class:`~gates_sampler.searcher.GatesPredictorSearcher` loop when the trial suggests its first
architecture parameter, and answers the others from that proposal. Every other parameter (learning
rate, batch size, ...) goes to an independent sampler (TPE by default). A trial that suggests no
architecture parameter never gets an architecture proposed, claimed or marked pending.

Architecture parameters fixed by hand are respected: ``study.enqueue_trial`` (whole or partial), and
``optuna.samplers.PartialFixedSampler(fixed, GatesSampler(...))``, whose fixed values the sampler asks
the wrapper for (its public ``sample_independent``), so the proposal is the best unseen architecture
agreeing with them.

Logging: the sampler logs to ``optuna.gates_sampler``, a child of Optuna's library logger, so its
warnings appear exactly like Optuna's (same handler and format) and ``optuna.logging.set_verbosity``
controls them. The core searcher keeps logging to ``gates_sampler`` (silent unless configured).

The sampler keeps no knowledge of its own that the study does not also hold: before every proposal
it reads the study's trials and tells the core searcher what is new (completed trials train the
predictor; failed ones are never proposed again; running and waiting ones are pending).

Pruners. The intermediate values a trial reported (``trial.report(value, step)``) of COMPLETE and
PRUNED trials go to the core (``report``); a PRUNED trial is told as ended early (``tell_pruned``) at
the last step it reported: it is never proposed again, and it trains the predictor, ranked below
every trial that was better at that step (``gates_sampler.curves.better_matrix``). Any Optuna pruner
works (``MedianPruner``, ``SuccessiveHalvingPruner``, ``HyperbandPruner``, ...): the sampler reads only
what the study stores. ``settings=SearchSettings(learn_from_pruned=False)`` keeps pruned trials out
of training (they are then only never proposed again).
So several processes sharing one RDB or journal storage cooperate without sharing memory, and a
study resumed with a fresh sampler continues where it stopped.

Two processes proposing at the same moment could pick the same architecture. Each proposal is
therefore written to the trial's system attributes (a *claim*) before the sampler re-reads the
study; if any other trial holds or claims the same architecture, the sampler proposes again. Because
each process writes its claim before reading the others', of two clashing processes at least the
later reader sees the clash, so two running trials never hold the same architecture (on storages
whose writes are immediately visible, as SQLite, other RDBs and the journal file are).

Worker death. A trial can end in FAIL for two reasons, and Optuna stores both the same way (state
FAIL, no value, no reason attribute). Either the objective failed (raised, returned ``None`` or
NaN, or ``study.tell`` was called with ``state=FAIL``): then Optuna calls the sampler's
``after_trial`` *before* it stores the state, and the sampler marks the trial
(:data:`OBJECTIVE_FAILED_ATTR`). Or the worker died and something outside the objective failed the
trial: Optuna's heartbeat check (``heartbeat_interval`` / ``grace_period`` on ``RDBStorage``,
applied by ``optuna.storages.fail_stale_trials`` before each new trial) writes the FAIL state
straight to the storage, with no ``after_trial``. So:

- a FAIL trial with the mark is a failed evaluation: its architecture is never proposed again;
- a FAIL trial without the mark that this sampler proposed (it holds a claim) or that was enqueued
  with fixed parameters was never evaluated: its architecture is free again and may be proposed
  anew. FAIL trials added by hand (``study.add_trial``) carry neither and stay failures;
- a retry made by ``RetryFailedTrialCallback`` (a WAITING copy of the dead trial, parameters
  included) holds the architecture while it waits and evaluates exactly that architecture;
- a RUNNING trial pins its architecture while it runs. Storages without heartbeats (in-memory,
  ``JournalStorage``, an ``RDBStorage`` without ``heartbeat_interval``) never fail a dead worker's
  trial; with ``stale_after=seconds`` a RUNNING trial started longer ago than that stops pinning its
  architecture (it stays RUNNING in the storage). The age is read from the trial's start time, so
  the workers' clocks must agree; with heartbeats ``stale_after`` is ignored.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

try:
    import optuna
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name == "optuna":
        raise ImportError("GatesSampler needs optuna: pip install 'gates-sampler[optuna]'") from exc
    raise
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from gates_sampler.base_searcher import SpaceExhausted
from gates_sampler.multi_objective import MultiObjectiveGatesSearcher
from gates_sampler.searcher import GatesPredictorSearcher
from gates_sampler.spaces.base import Arch, SearchSpace

__all__ = ["GatesSampler", "run_optuna_gates"]

# A child of Optuna's library logger: Optuna users see its warnings as they see Optuna's own.
logger = optuna.logging.get_logger("optuna.gates_sampler")

#: trial system attribute holding the architecture string this sampler proposed for the trial
CLAIM_ATTR = "gates_sampler:arch"
#: trial system attribute set when the objective itself failed (as opposed to the worker dying)
OBJECTIVE_FAILED_ATTR = "gates_sampler:objective_failed"
#: how often a proposal is retried after clashing with another process's claim
MAX_CLAIM_ROUNDS = 10
_PENDING_STATES = (TrialState.RUNNING, TrialState.WAITING)
_RESERVED_KWARGS = ("direction", "directions", "n_startup", "space", "constraints")
#: the trial system attribute where Optuna's samplers keep the values of ``constraints_func``
#: (``optuna.study._constrained_optimization._CONSTRAINTS_KEY``); ``study.best_trials`` reads it
CONSTRAINTS_ATTR = "constraints"
#: core settings a multi-objective or constrained study's searcher takes
_MO_KWARGS = ("n_startup", "n_candidates", "predictor", "zero_shot", "device", "settings")
_Searcher = GatesPredictorSearcher | MultiObjectiveGatesSearcher


class GatesSampler(BaseSampler):
    """Optuna sampler that proposes architectures with GATES(++) predictor-based search.

    Use ``arch = search_space.suggest(trial)`` in the objective. Parameters of ``search_space`` are
    sampled jointly by the GATES loop; any other parameter goes to ``independent_sampler``.

    Example:

        .. code-block:: python

            space = NB201Space()
            bench = NB201Benchmark("cifar10")

            def objective(trial):
                return bench.query(space.suggest(trial))

            study = optuna.create_study(direction="maximize", sampler=GatesSampler(space, seed=0))
            study.optimize(objective, n_trials=50)

    Args:
        search_space: the architecture search space (e.g. ``NB201Space()``).
        n_startup_trials: random architectures before the predictor is used (core ``n_startup``).
        n_candidates: random unseen candidates scored per proposal (the paper's 200; on large spaces
            as many mutations of the best cells join them, see ``candidates`` of the core searcher).
        independent_sampler: sampler for the non-architecture parameters; default
            ``optuna.samplers.TPESampler(seed=seed)``.
        seed: fixes every random draw. A sequential run with seed ``s`` proposes exactly what
            ``GatesPredictorSearcher(seed=s)`` would; a sampler that joins a study later (another
            worker process, a resumed study) mixes the number of its first trial into the seed so
            that workers built with the same seed do not draw the same sequence.
        stale_after: seconds after which a RUNNING trial stops holding its architecture when the
            storage has no heartbeat (see the module docstring); ``None`` (default): never.
        constraints_func: as Optuna's samplers take it: ``fn(frozen_trial) -> sequence of float``,
            called after each complete or pruned trial (feasible when every value is ``<= 0``); the values
            are stored in the trial's ``"constraints"`` system attribute, so ``study.best_trials`` keeps
            feasible trials only, and the sampler learns them with one predictor per value (a candidate
            predicted infeasible is proposed only when none is predicted feasible). Without it, the
            values an objective sets with ``trial.set_constraint(key, value)`` (Optuna 5) are learned
            the same way, in the order of their keys; a single-objective study becomes a constrained
            one at the first such value (the searcher is rebuilt from the study's trials).
        cheap_constraints: ``fn(arch) -> sequence of float`` computed from the architecture alone (e.g.
            a parameter count minus its bound): no architecture it rejects is ever proposed.
        cheap_objectives: ``{objective index: fn(arch) -> float}``: objectives that are cheap to compute
            exactly from the architecture (parameters, FLOPs) in the objective's own direction. The sampler
            computes them for every candidate instead of learning them; an objective not listed is learned
            from the trials like any other, even when the objective function computes it cheaply.
        **searcher_kwargs: further :class:`~gates_sampler.searcher.GatesPredictorSearcher` settings
            (``predictor``, ``candidates``, ``zero_shot``, ``device``, ``settings``, ...).

    The study's direction (minimize or maximize) is taken from the study. A multi-objective study
    (``optuna.create_study(directions=[...])``) or a constrained one is searched by the core
    :class:`~gates_sampler.multi_objective.MultiObjectiveGatesSearcher` (one predictor per learned
    objective, proposals by predicted hypervolume gain); ``study.best_trials`` is then the front.
    Parameters fixed by ``study.enqueue_trial`` or by ``PartialFixedSampler`` are never overridden;
    a trial whose architecture was set by hand (enqueued, ``study.add_trial``) still trains the
    predictor. When every architecture has been evaluated or is held by a running trial, one warning
    says so and later trials repeat random
    architectures.
    """

    def __init__(
        self,
        search_space: SearchSpace,
        *,
        n_startup_trials: int = 10,
        n_candidates: int = 200,
        independent_sampler: BaseSampler | None = None,
        seed: int | None = None,
        stale_after: float | None = None,
        constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
        cheap_constraints: Callable[[Arch], Sequence[float]] | None = None,
        cheap_objectives: Mapping[int, Callable[[Arch], float]] | None = None,
        **searcher_kwargs: Any,
    ) -> None:
        if not isinstance(search_space, SearchSpace):
            raise ValueError(
                f"search_space must be a SearchSpace (e.g. NB201Space()), got {type(search_space).__name__}"
            )
        if independent_sampler is not None and not isinstance(independent_sampler, BaseSampler):
            raise ValueError(
                f"independent_sampler must be an optuna BaseSampler, got {type(independent_sampler).__name__}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be None or a non-negative int, got {seed!r}")
        if stale_after is not None and (
            isinstance(stale_after, bool)
            or not isinstance(stale_after, (int, float))
            or not 0 < stale_after < float("inf")
        ):
            raise ValueError(f"stale_after must be None or a positive number of seconds, got {stale_after!r}")
        bad = [k for k in _RESERVED_KWARGS if k in searcher_kwargs]
        if bad:
            raise ValueError(
                f"{bad} cannot be passed to GatesSampler: the direction comes from the study, "
                "the space is search_space and the number of random trials is n_startup_trials"
            )
        for name, fn in (("constraints_func", constraints_func), ("cheap_constraints", cheap_constraints)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be a function, got {type(fn).__name__}")
        self._space = search_space
        self._seed = None if seed is None else int(seed)
        self._searcher_kwargs = {"n_startup": n_startup_trials, "n_candidates": n_candidates, **searcher_kwargs}
        self._constraints_func = constraints_func
        self._cheap_constraints = cheap_constraints
        self._cheap_objectives = dict(cheap_objectives or {})
        # build one searcher now so that bad settings fail here, not inside the first trial
        GatesPredictorSearcher(search_space, seed=0, **self._searcher_kwargs)
        if cheap_objectives is not None or cheap_constraints is not None or constraints_func is not None:
            n_objectives = max(self._cheap_objectives, default=0) + 1
            self._multi_objective_searcher(["maximize"] * max(n_objectives, 2), 0)
        self._independent_sampler = independent_sampler or optuna.samplers.TPESampler(seed=self._seed)
        self._distributions = {
            name: CategoricalDistribution(choices) for name, choices in search_space.distributions().items()
        }
        self._searcher: _Searcher | None = None
        self._study_name: str | None = None
        self._told: set[int] = set()  # numbers of finished trials already told to the searcher
        self._stale_after = None if stale_after is None else float(stale_after)
        self._stale_logged: set[int] = set()  # RUNNING trials already reported as stale
        self._proposed: dict[int, Arch] = {}  # trial number -> architecture proposed for it (running trials)
        self._exhausted_at: int | None = None  # number of seen architectures when the space ran out
        self._warned_exhausted = False
        self._warned_unlearned_constraints = False
        # a told trial carried constraint values (trial.set_constraint): rebuild as a constrained search
        self._switch_pending = False
        self._attach_seed: int | None = None  # the seed the attached study's searcher was built with
        self._rng = np.random.default_rng(self._seed)
        self._lock = threading.Lock()

    # ----- public -----------------------------------------------------------------------------
    @property
    def search_space(self) -> SearchSpace:
        """The architecture search space."""
        return self._space

    @property
    def searcher(self) -> GatesPredictorSearcher | MultiObjectiveGatesSearcher | None:
        """The core searcher synced with the last study sampled for (``None`` before the first proposal)."""
        return self._searcher

    # ----- BaseSampler ------------------------------------------------------------------------
    def reseed_rng(self) -> None:
        """Reseed the random generators from fresh entropy; the history and the fitted predictor stay.

        The seed no longer applies afterwards: a searcher built later (for a new study) is unseeded too.
        """
        with self._lock:
            self._seed = None
            self._attach_seed = None
            self._rng = np.random.default_rng()
            if self._searcher is not None:
                self._searcher.reseed()
        self._independent_sampler.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        # The multi-objective check waits for the first suggestion: raising here would leave the
        # new trial RUNNING forever, while inside the objective Optuna marks it FAIL.
        self._independent_sampler.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        if state == TrialState.FAIL:
            _mark_objective_failure(study, trial)
        constraints = None
        if state in (TrialState.COMPLETE, TrialState.PRUNED):
            if self._constraints_func is not None:
                constraints = _store_constraints(self._constraints_func, study, trial)
            else:  # values the objective set itself with trial.set_constraint, if any
                constraints = _trial_constraints(trial)
        # Tell this process's own results at once, so ``searcher`` is current after ``optimize``;
        # other processes' results are picked up from the storage at the next proposal.
        with self._lock:
            self._proposed.pop(trial.number, None)
            if self._searcher is not None and self._study_name == study.study_name and trial.number not in self._told:
                complete = values if values and state == TrialState.COMPLETE else None
                self._tell_finished(trial, state, complete, constraints)
                if self._switch_pending:
                    # the storage still holds this trial as running: rebuild from the others, then tell it
                    self._rebuild_constrained(study, trial.number)
                    self._tell_finished(trial, state, complete, constraints)
        self._independent_sampler.after_trial(study, trial, state, values)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        # The architecture parameters are declared relative so that a wrapper such as
        # PartialFixedSampler shows which of them it fixes (it removes them from this space).
        return dict(self._distributions)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        # Optuna asks for relative parameters at a trial's first suggestion, whichever parameter it
        # is; proposing here would claim an architecture for trials that never use one. The
        # proposal is made at the first architecture parameter instead (sample_independent).
        return {}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if self._distributions.get(param_name) != param_distribution:
            return self._independent_sampler.sample_independent(study, trial, param_name, param_distribution)
        fixed = self._fixed_params(study, trial)
        with self._lock:
            arch = self._proposed.get(trial.number)
            if arch is None or self._study_name != study.study_name or not self._agrees(arch, fixed):
                self._attach(study, trial)
                self._sync(study, trial.number)
                arch = self._propose_and_claim(study, trial, fixed)
                self._proposed[trial.number] = arch
        return self._space.to_params(arch)[param_name]

    # ----- pickling ---------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]  # locks do not pickle; a fresh one is made on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ----- study -> searcher ------------------------------------------------------------------
    def _attach(self, study: Study, trial: FrozenTrial) -> None:
        """Make sure the searcher belongs to ``study``; (re)build it from scratch otherwise."""
        directions = ["minimize" if d == StudyDirection.MINIMIZE else "maximize" for d in study.directions]
        if (
            self._searcher is not None
            and self._study_name == study.study_name
            and _directions_of(self._searcher) == directions
        ):
            return
        # Workers that join a study later get a different stream: mix their first trial number in.
        if self._seed is None:
            seed = None
        elif trial.number == 0:
            seed = self._seed
        else:
            seed = int(np.random.SeedSequence([self._seed, trial.number]).generate_state(1)[0])
        if len(directions) > 1 or self._is_constrained_or_cheap:
            self._searcher = self._multi_objective_searcher(directions, seed)
        else:
            self._searcher = GatesPredictorSearcher(
                self._space, direction=directions[0], seed=seed, **self._searcher_kwargs
            )
        self._rng = np.random.default_rng(None if seed is None else seed + 1)
        self._attach_seed = seed
        self._switch_pending = False
        self._study_name = study.study_name
        self._told = set()
        self._proposed = {}
        self._exhausted_at = None
        logger.debug("GatesSampler attached to study %r (%s, seed %s)", study.study_name, directions, seed)

    @property
    def _is_constrained_or_cheap(self) -> bool:
        return bool(self._cheap_objectives) or self._constraints_func is not None or self._cheap_constraints is not None

    def _multi_objective_searcher(self, directions: list[str], seed: int | None) -> MultiObjectiveGatesSearcher:
        """The core searcher of a multi-objective or constrained study."""
        other = sorted(k for k in self._searcher_kwargs if k not in _MO_KWARGS)
        if other:
            raise ValueError(
                f"{other} apply to single-objective studies only; a multi-objective or constrained study "
                f"takes {list(_MO_KWARGS[1:])}"
            )
        bad = [i for i in self._cheap_objectives if not (isinstance(i, int) and 0 <= i < len(directions))]
        if bad:
            raise ValueError(
                f"cheap_objectives names objective {bad[0]!r}, but the study has {len(directions)} objective(s)"
            )
        return MultiObjectiveGatesSearcher(
            self._space,
            directions=directions,
            cheap_objectives=self._cheap_objectives,
            constraints=self._cheap_constraints,
            seed=seed,
            **self._searcher_kwargs,
        )

    def _arch_of(self, trial: FrozenTrial, *, complete: bool) -> Arch | None:
        """The architecture a trial evaluated (complete) or holds (otherwise), or ``None``."""
        names = self._distributions
        if all(k in trial.params for k in names):
            source: Mapping[str, Any] | None = {k: trial.params[k] for k in names}
        elif complete:
            return None  # it finished without suggesting the whole architecture: its value says nothing
        elif CLAIM_ATTR in trial.system_attrs:
            try:
                return self._space.parse(trial.system_attrs[CLAIM_ATTR])
            except ValueError:
                logger.warning("trial %d has an unreadable architecture claim; ignored", trial.number)
                return None
        else:
            fixed = trial.system_attrs.get("fixed_params", {})
            source = {k: fixed[k] for k in names} if all(k in fixed for k in names) else None
        if source is None:
            return None
        try:
            return self._space.from_params(source)
        except ValueError as exc:
            logger.warning(
                "trial %d holds an invalid architecture for %s (%s); ignored", trial.number, self._space.name, exc
            )
            return None

    def _sync(self, study: Study, current: int) -> None:
        """Tell the searcher every newly finished trial and make its pending set the study's."""
        assert self._searcher is not None
        # Not study.get_trials: under HyperbandPruner, Optuna hands samplers a view of the study holding
        # only the trials of the current trial's bracket; the others are results and claims all the same.
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        started_before = self._stale_cutoff(study)
        pending: dict[str, Arch] = {}
        for t in trials:  # sorted by number, so the order of tells is reproducible
            if t.state.is_finished():
                if t.number not in self._told and _worker_died(t):
                    self._told.add(t.number)  # never evaluated: nothing to tell, the architecture is free
                    logger.info(
                        "trial %d was failed without an objective result (its worker died); "
                        "its architecture may be proposed again",
                        t.number,
                    )
                elif t.number not in self._told:
                    values = t.values if t.state == TrialState.COMPLETE else None
                    self._tell_finished(t, t.state, values, _trial_constraints(t))
            elif started_before is not None and _started_before(t, started_before):
                if t.number not in self._stale_logged:
                    self._stale_logged.add(t.number)
                    logger.warning(
                        "trial %d has been RUNNING for over %g s (stale_after); its architecture is no longer held",
                        t.number,
                        self._stale_after,
                    )
            elif t.state in _PENDING_STATES and t.number != current:
                arch = self._arch_of(t, complete=False)
                if arch is not None:
                    pending[self._space.canonical_key(arch)] = arch
        if self._switch_pending:
            self._rebuild_constrained(study, current)
            return
        self._searcher.set_pending(pending.values())

    def _rebuild_constrained(self, study: Study, current: int) -> None:
        """A single-objective study's trials carry constraint values (``trial.set_constraint``): replace
        the unconstrained searcher with a constrained one, with the same seed, told every finished trial
        of the study again (the study holds everything the searcher knew)."""
        assert self._searcher is not None
        directions = _directions_of(self._searcher)
        self._switch_pending = False
        self._searcher = self._multi_objective_searcher(directions, self._attach_seed)
        self._told = set()
        logger.info(
            "study %r: trials set constraint values; the sampler now learns them (a constrained search, "
            "rebuilt from the study's trials)",
            study.study_name,
        )
        self._sync(study, current)

    def _stale_cutoff(self, study: Study) -> datetime.datetime | None:
        """Start time before which a RUNNING trial counts as abandoned, or ``None`` (no such rule)."""
        if self._stale_after is None or _heartbeat_enabled(study):
            return None
        return datetime.datetime.now() - datetime.timedelta(seconds=self._stale_after)

    def _tell_finished(
        self,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
        constraints: Sequence[float] | None = None,
    ) -> None:
        assert self._searcher is not None
        self._told.add(trial.number)
        arch = self._arch_of(trial, complete=state == TrialState.COMPLETE)
        if arch is None:
            return
        if constraints is not None and not isinstance(self._searcher, MultiObjectiveGatesSearcher):
            only_single = sorted(k for k in self._searcher_kwargs if k not in _MO_KWARGS)
            if not only_single:
                self._switch_pending = True  # the caller rebuilds the searcher as a constrained one
            elif not self._warned_unlearned_constraints:
                self._warned_unlearned_constraints = True
                logger.warning(
                    "trial %d has constraint values, but this sampler's settings %s apply to unconstrained "
                    "single-objective studies only, so it does not learn them (study.best_trials still "
                    "filters by them); drop those settings to have the constraints learned",
                    trial.number,
                    only_single,
                )
        if isinstance(self._searcher, MultiObjectiveGatesSearcher):
            # failed and pruned trials are told as failures: never proposed again, not trained on
            complete = values if state == TrialState.COMPLETE and values else None
            try:
                self._searcher.tell(arch, None if complete is None else list(complete), constraints=constraints)
            except ValueError as exc:  # e.g. constraint values of another length than before
                logger.warning("trial %d: %s; told as a failed evaluation", trial.number, exc)
                self._searcher.tell(arch, None)
            return
        if state in (TrialState.COMPLETE, TrialState.PRUNED):
            # the learning curve ranks pruned trials against the others at the step they stopped
            for step, intermediate in sorted(trial.intermediate_values.items()):
                self._searcher.report(arch, step, intermediate)
        if state == TrialState.PRUNED:
            self._searcher.tell_pruned(arch)
        else:
            # failed trials: never proposed again, not trained on
            self._searcher.tell(arch, values[0] if state == TrialState.COMPLETE and values else None)

    # ----- proposals --------------------------------------------------------------------------
    def _fixed_params(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        """Architecture parameters this trial already holds: suggested, enqueued, or fixed by a wrapper."""
        names = self._distributions
        fixed = {k: v for k, v in trial.system_attrs.get("fixed_params", {}).items() if k in names}
        fixed.update({k: v for k, v in trial.params.items() if k in names})
        wrapper = study.sampler
        if isinstance(wrapper, optuna.samplers.PartialFixedSampler):
            # the wrapper removes the names it fixes from the relative space and answers them in its
            # sample_independent without calling this sampler
            kept = wrapper.infer_relative_search_space(study, trial)
            for name, dist in names.items():
                if name not in kept and name not in fixed:
                    fixed[name] = wrapper.sample_independent(study, trial, name, dist)
        return fixed

    def _agrees(self, arch: Arch, fixed: Mapping[str, Any]) -> bool:
        params = self._space.to_params(arch)
        return all(params[k] == str(v) for k, v in fixed.items())

    def _propose_and_claim(self, study: Study, trial: FrozenTrial, fixed: Mapping[str, Any]) -> Arch:
        assert self._searcher is not None
        arch: Arch | None = None
        for attempt in range(MAX_CLAIM_ROUNDS):
            arch = self._propose(fixed, attempt)
            if arch is None:
                arch = self._repeat_at_random(fixed)
                study._storage.set_trial_system_attr(trial._trial_id, CLAIM_ATTR, str(arch))
                return arch
            study._storage.set_trial_system_attr(trial._trial_id, CLAIM_ATTR, str(arch))
            # Re-read after claiming: a clash that this read misses is seen by the other process.
            self._sync(study, trial.number)
            if self._space.canonical_key(arch) not in self._searcher.seen_keys():
                return arch
            logger.debug("trial %d: %s was taken by another trial meanwhile; proposing again", trial.number, arch)
        logger.warning(
            "trial %d: still clashing with other workers after %d proposals; keeping %s",
            trial.number,
            MAX_CLAIM_ROUNDS,
            arch,
        )
        assert arch is not None
        return arch

    def _propose(self, fixed: Mapping[str, Any], attempt: int) -> Arch | None:
        """The core's proposal agreeing with ``fixed``, or ``None`` when no unseen one is left."""
        searcher = self._searcher
        assert searcher is not None
        n_seen = len(searcher.seen_keys())
        if not fixed and self._exhausted_at is not None and n_seen >= self._exhausted_at:
            return None  # still exhausted: asking again would only repeat a long fruitless search
        try:
            if attempt >= MAX_CLAIM_ROUNDS // 2:
                # Workers fitting the same data keep picking the same few cells: after half the rounds,
                # a random unseen cell all but ends the clashes (a kept clash would run a cell twice).
                return self._random_unseen(fixed)
            if attempt == 0:
                return searcher.ask(fixed=fixed or None)
            # After a clash, pick at random among the top few so that two workers holding the same
            # predictor and data stop choosing in lockstep.
            try:
                top = searcher.ask_batch(min(attempt + 1, 5), fixed=fixed or None)
            except SpaceExhausted:
                top = [searcher.ask(fixed=fixed or None)]
            return top[int(self._rng.integers(len(top)))]
        except SpaceExhausted:
            if not fixed:
                self._exhausted_at = n_seen
            return None
        except ValueError as exc:  # fixed values that are not choices of the space
            logger.warning("cannot propose an architecture agreeing with %s: %s", dict(fixed), exc)
            return None

    def _random_unseen(self, fixed: Mapping[str, Any]) -> Arch | None:
        """A random architecture agreeing with ``fixed`` that the searcher has not seen, or ``None``."""
        assert self._searcher is not None
        return self._random_agreeing(fixed, self._searcher.seen_keys())

    def _random_agreeing(self, fixed: Mapping[str, Any], exclude: set[str] | None = None) -> Arch | None:
        """A random valid architecture agreeing with ``fixed`` whose key is not in ``exclude``, or ``None``."""
        for _ in range(1000):
            try:
                params = {**self._space.random_params(self._rng), **{k: str(v) for k, v in fixed.items()}}
                arch = self._space.from_params(params)
            except ValueError:  # constrained spaces: not every combination is a valid cell
                continue
            if exclude is None or self._space.canonical_key(arch) not in exclude:
                return arch
        return None

    def _repeat_at_random(self, fixed: Mapping[str, Any]) -> Arch:
        """A random valid architecture agreeing with ``fixed`` as far as possible (repeats allowed)."""
        if self._exhausted_at is not None and not fixed:
            if not self._warned_exhausted:
                logger.warning(
                    "every architecture of %s has been evaluated or is held by a running trial; "
                    "further trials repeat architectures at random",
                    self._space.name,
                )
                self._warned_exhausted = True
        else:
            logger.warning(
                "no unseen architecture agrees with %s; proposing a random, possibly repeated one", dict(fixed)
            )
        arch = self._random_agreeing(fixed)
        return arch if arch is not None else self._space.sample(self._rng)


def _mark_objective_failure(study: Study, trial: FrozenTrial) -> None:
    """Record on the still-RUNNING trial that its objective failed, so other workers can tell it
    from a trial failed because its worker died."""
    try:
        study._storage.set_trial_system_attr(trial._trial_id, OBJECTIVE_FAILED_ATTR, True)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # already ended elsewhere; whoever ended it decided
    except Exception as exc:  # noqa: BLE001 - a storage hiccup must not turn a failed trial into a dead worker
        logger.warning(
            "could not mark trial %d as failed by its objective (%s); its architecture may be proposed again",
            trial.number,
            exc,
        )


def _worker_died(trial: FrozenTrial) -> bool:
    """A FAIL trial that a worker of this sampler started but whose objective never reported."""
    attrs = trial.system_attrs
    return (
        trial.state == TrialState.FAIL
        and OBJECTIVE_FAILED_ATTR not in attrs
        and (CLAIM_ATTR in attrs or "fixed_params" in attrs)
    )


def _started_before(trial: FrozenTrial, cutoff: datetime.datetime) -> bool:
    return trial.state == TrialState.RUNNING and trial.datetime_start is not None and trial.datetime_start < cutoff


def _heartbeat_enabled(study: Study) -> bool:
    """Whether the storage fails dead workers' trials itself (RDBStorage with ``heartbeat_interval``)."""
    interval = getattr(study._storage, "get_heartbeat_interval", None)
    return interval is not None and interval() is not None


def _directions_of(searcher: _Searcher) -> list[str]:
    if isinstance(searcher, MultiObjectiveGatesSearcher):
        return list(searcher.directions)
    return [searcher.direction]


def _trial_constraints(trial: FrozenTrial) -> tuple[float, ...] | None:
    """A finished trial's constraint values: those a ``constraints_func`` stored (in its order), else
    those its objective set with ``trial.set_constraint(key, value)`` (Optuna 5), in the order of the keys.

    Not ``FrozenTrial.constraints``: Optuna 4 lacks it, and its dict names a stored list's entries
    "0", "1", ..., whose sorted order puts "10" before "2"."""
    stored = trial.system_attrs.get(CONSTRAINTS_ATTR)
    if stored is not None:
        return tuple(stored)
    prefix = CONSTRAINTS_ATTR + ":"
    keyed = {k[len(prefix) :]: v for k, v in trial.system_attrs.items() if k.startswith(prefix)}
    return tuple(float(keyed[k]) for k in sorted(keyed)) if keyed else None


def _store_constraints(
    constraints_func: Callable[[FrozenTrial], Sequence[float]], study: Study, trial: FrozenTrial
) -> tuple[float, ...] | None:
    """Call ``constraints_func`` and store its values where Optuna's samplers and ``best_trials`` read them."""
    values = None
    try:
        raw = constraints_func(trial)
        values = tuple(float(c) for c in raw)
        if any(v != v for v in values):
            raise ValueError(f"constraints_func returned NaN for trial {trial.number}: {list(values)}")
    finally:
        # as Optuna does: a failing constraints_func stores None, so the trial counts as infeasible
        study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_ATTR, values)
    return values


def run_optuna_gates(benchmark: Any, n_trials: int, seed: int | None, **sampler_kwargs: Any) -> list[float]:
    """Search ``benchmark`` with :class:`GatesSampler` inside an in-memory Optuna study.

    Args:
        benchmark: an evaluator with ``space``, ``direction`` and ``query(arch) -> float``
            (e.g. :class:`~gates_sampler.benchmarks.NB201Benchmark`).
        n_trials: number of trials.
        seed: sampler seed.
        **sampler_kwargs: passed to :class:`GatesSampler`.

    Returns:
        The value of every trial in order, in the benchmark's direction.
    """
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive int, got {n_trials!r}")
    space = benchmark.space
    query: Callable[[Arch], float] = benchmark.query

    def objective(trial: optuna.Trial) -> float:
        return query(space.suggest(trial))

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial would drown the caller's output
    try:
        study = optuna.create_study(
            direction=benchmark.direction, sampler=GatesSampler(space, seed=seed, **sampler_kwargs)
        )
        study.optimize(objective, n_trials=n_trials)
    finally:
        optuna.logging.set_verbosity(verbosity)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [float(t.value) for t in complete if t.value is not None]
