"""GatesPredictorSearcher: predictor-based NAS with an ask/tell interface (paper Alg. 1)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from gates_sampler.base_searcher import AskTellSearcher
from gates_sampler.predictor import FeatureProvider, Predictor, make_predictor
from gates_sampler.predictor.factory import ZeroShot
from gates_sampler.predictor.gp import FeatureGP, expected_improvement, fit_feature_gp
from gates_sampler.predictor.losses import PAIRWISE_LOSSES
from gates_sampler.spaces.base import Arch, SearchSpace, short_repr

logger = logging.getLogger("gates_sampler")

__all__ = [
    "ACQUISITIONS",
    "CANDIDATE_MODES",
    "LARGE_SPACE_WARM_EPOCHS",
    "REFIT_POLICIES",
    "FeatureProvider",
    "GatesPredictorSearcher",
    "SearchSettings",
]

CANDIDATE_MODES = ("auto", "random", "mutation", "mixed", "local", "staged", "evolve")
REFIT_POLICIES = ("warm", "scratch")
#: epochs of a warm refit on large spaces (``SearchSettings.warm_epochs=None``); small spaces take 10
LARGE_SPACE_WARM_EPOCHS = 30
SMALL_SPACE_WARM_EPOCHS = 10
ACQUISITIONS = ("auto", "mean", "thompson", "ei")
GP_INPUTS = ("features", "features+onehot", "onehot")
GP_PRUNED = ("extrapolate", "fidelity", "none")


@dataclass(frozen=True)
class SearchSettings:
    """Research settings of a :class:`GatesPredictorSearcher`; the defaults are the measured choices.

    Vary one with ``dataclasses.replace(settings, refit="scratch")``; ``gates-nas compare`` method specs
    reach them by name (``gates[refit=scratch]``).

    Args:
        refit: ``"warm"`` (continue training the previous predictor for ``warm_epochs``; a first fit
            trains the full ``epochs``) or ``"scratch"`` (re-initialise and train ``epochs`` every time).
            Warm is the default: scratch was better on one NAS-Bench-201 dataset, worse on another, at
            about four times the ``ask()`` time (README, "Measured search efficiency").
        warm_epochs: epochs per warm-started refit; ``None`` (default): :data:`LARGE_SPACE_WARM_EPOCHS` on
            large spaces (:attr:`SearchSpace.is_large`), 10 elsewhere (README, "Large spaces").
        n_mutation_parents: how many of the best architectures the mutation candidates start from.
        distinct_sampling: draw random architectures uniformly over functionally distinct cells
            (reduced forms, see ``SearchSpace.is_reduced``) instead of over raw parameter settings.
        n_unlabeled: with zero-shot information and the predictor's auxiliary head, the auxiliary
            regression is also fitted on up to this many of the latest candidates that were scored
            (their zero-shot targets are computed for scoring anyway, no evaluation needed); 0 fits it
            on the evaluated architectures only, as in the paper's Eq. 13.
        evolve_rounds: ``candidates="evolve"``: rounds of predictor-guided mutation after the first pool
            is scored (0: score only the ``"mixed"`` pool, with the batch spread over lineages).
        evolve_children: ``candidates="evolve"``: new unseen cells mutated and scored per round.
        evolve_parents: ``candidates="evolve"``: the best-scored candidates the children of a round
            are mutated from.
        learn_from_pruned: trials that ended early (``tell_pruned``: pruned, stopped by a scheduler)
            train the predictor by the rule of :func:`gates_sampler.curves.better_matrix` and count
            towards ``n_startup`` once one trial has completed; ``False`` only excludes them from
            proposals, as failures are. Needs a pairwise loss (hinge, bce, comparator); with another
            loss they are left out of training. With ``acquisition="ei"`` the Gaussian process reads
            them as ``gp_pruned`` says.
        local_from: ``candidates="staged"``: the number of completed results from which the candidate
            pool is that of ``"local"``; before, it is the paper's random pool.
        acquisition: how candidates are ranked: ``"auto"`` (default: ``"ei"`` on large spaces,
            :attr:`SearchSpace.is_large`; ``"mean"`` elsewhere), ``"mean"`` (the predictor's score, the
            paper's top-1), ``"thompson"`` (Thompson sampling: every ask scores the candidates with one
            function drawn by MC dropout in the score head, see ``Predictor.score(sample=True)``; needs
            ``head_dropout > 0`` and a loss other than the comparator) or ``"ei"`` (expected improvement
            over the best value so far under a Gaussian process fitted at every ask to the evaluated
            values, :mod:`gates_sampler.predictor.gp`; its inputs are set by ``gp_inputs``).
        gp_inputs: ``acquisition="ei"``: what the Gaussian process reads: ``"onehot"`` (default: the
            one-hot encoding of the cell's parameters, :meth:`SearchSpace.one_hot`), ``"features"`` (the
            trained predictor's score-head features, :meth:`Predictor.head_features`; not with the
            comparator loss) or ``"features+onehot"`` (both, a lengthscale each).
        ei_shortlist: ``acquisition="ei"``: when > 0, only the ``ei_shortlist`` candidates the predictor
            scores highest are ranked by expected improvement (the predictor, which also learns from
            trials that ended early, chooses the shortlist; the process picks from it); 0 ranks them all.
            With ``gp_inputs="onehot"`` and no shortlist nothing reads the predictor, and proposals do
            not refit it.
        gp_pruned: ``acquisition="ei"`` with ``learn_from_pruned``: how trials that ended early enter
            the Gaussian process. ``"extrapolate"`` (default): at the final value extrapolated from the
            value at the step they stopped at, by a line through the completed trials' (value at that
            step, final value) pairs, with that line's predictive variance as the point's own noise
            (:func:`gates_sampler.curves.extrapolate_finals`; a step that fewer than 8 completed trials
            reached informs nothing yet). ``"fidelity"``: as values at a lower fidelity (the step they
            reached, log-scaled, is one more input; candidates are predicted at full fidelity).
            ``"none"``: the process fits the completed trials alone. Measured on the NB301 surrogate
            under Hyperband in the README ("Pruners and early stopping"). Except with ``"fidelity"``,
            only completed trials end the random start of an ``"ei"`` search.
    """

    refit: str = "warm"
    warm_epochs: int | None = None
    n_mutation_parents: int = 10
    distinct_sampling: bool = True
    n_unlabeled: int = 2000
    evolve_rounds: int = 4
    evolve_children: int = 250
    evolve_parents: int = 20
    learn_from_pruned: bool = True
    acquisition: str = "auto"
    local_from: int = 50
    gp_inputs: str = "onehot"
    ei_shortlist: int = 0
    gp_pruned: str = "extrapolate"

    def __post_init__(self) -> None:
        if self.refit not in REFIT_POLICIES:
            raise ValueError(f"refit must be one of {REFIT_POLICIES}, got {self.refit!r}")
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {self.acquisition!r}")
        if self.gp_inputs not in GP_INPUTS:
            raise ValueError(f"gp_inputs must be one of {GP_INPUTS}, got {self.gp_inputs!r}")
        if self.gp_pruned not in GP_PRUNED:
            raise ValueError(f"gp_pruned must be one of {GP_PRUNED}, got {self.gp_pruned!r}")
        if self.warm_epochs is not None and (
            isinstance(self.warm_epochs, bool) or not isinstance(self.warm_epochs, int) or self.warm_epochs < 1
        ):
            raise ValueError(f"warm_epochs must be None or an int >= 1, got {self.warm_epochs!r}")
        for name, least in (
            ("n_mutation_parents", 1),
            ("n_unlabeled", 0),
            ("evolve_rounds", 0),
            ("evolve_children", 1),
            ("evolve_parents", 1),
            ("local_from", 0),
            ("ei_shortlist", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        for name in ("distinct_sampling", "learn_from_pruned"):
            object.__setattr__(self, name, _as_bool(name, getattr(self, name)))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, e.g. to route method-spec settings between the settings and the constructor."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def coerce(cls, settings: SearchSettings | Mapping[str, Any] | None) -> SearchSettings:
        """``settings`` as a :class:`SearchSettings`: ``None`` gives the defaults, a mapping (as a saved
        state records it) its fields; unknown names raise ``ValueError`` naming the allowed ones."""
        if settings is None:
            return cls()
        if isinstance(settings, cls):
            return settings
        if not isinstance(settings, Mapping):
            raise TypeError(f"settings must be a SearchSettings or a dict of its fields, got {type(settings).__name__}")
        if "gp_fidelity" in settings:
            # states saved before gp_pruned replaced the yes/no gp_fidelity keep the search they described
            legacy = _as_bool("gp_fidelity", settings["gp_fidelity"])
            settings = {"gp_pruned": "fidelity" if legacy else "none", **settings}
            del settings["gp_fidelity"]
        unknown = sorted(k for k in settings if k not in cls.names())
        if unknown:
            raise ValueError(f"unknown search setting(s) {unknown}; allowed: {list(cls.names())}")
        return cls(**settings)


def _as_bool(name: str, value: Any) -> bool:
    """A yes/no setting: a bool (numpy's too), or ``"true"`` / ``"false"`` as a method spec such as
    ``gates[learn_from_pruned=false]`` writes it (``bool("false")`` would be true)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(f"{name} must be true or false, got {value!r}")


#: scores cells (with their zero-shot features) against one fit of the predictor
_Scorer = Callable[[list[Arch], "list[torch.Tensor] | None", "np.ndarray | None"], np.ndarray]


class _ExpectedImprovement:
    """Expected improvement over ``best`` under a fitted process, as a scorer of cells; :meth:`believe`
    adds cells to the process at their predicted values."""

    def __init__(
        self,
        gp: FeatureGP,
        inputs: Callable[[list[Arch], list[torch.Tensor] | None, np.ndarray | None], list[np.ndarray]],
        best: float,
    ) -> None:
        self.gp, self.inputs, self.best = gp, inputs, best

    def __call__(self, cells: list[Arch], op: list[torch.Tensor] | None, arch: np.ndarray | None) -> np.ndarray:
        return self.of_inputs(self.inputs(cells, op, arch))

    def of_inputs(self, x: list[np.ndarray]) -> np.ndarray:
        """Expected improvement at process inputs already built by :attr:`inputs`."""
        mean, std = self.gp.predict(x)
        return expected_improvement(mean, std, self.best)

    def believe(self, cells: list[Arch], op: list[torch.Tensor] | None, arch: np.ndarray | None) -> None:
        self.believe_inputs(self.inputs(cells, op, arch))

    def believe_inputs(self, x: list[np.ndarray]) -> None:
        """Add the cells of inputs ``x`` to the process at their predicted values."""
        self.gp = self.gp.condition(x, self.gp.predict(x)[0])


def top_by_lineage(scores: np.ndarray, lineage: Sequence[str], n: int) -> list[int]:
    """Indices of ``n`` high scores, the best of each lineage first (in score order), then the best of
    the rest: a batch spreads over lineages where there are enough of them."""
    order = [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")]
    first: list[int] = []
    used: set[str] = set()
    for i in order:
        if len(first) >= n:
            break
        if lineage[i] not in used:
            used.add(lineage[i])
            first.append(i)
    taken = set(first)
    return first + [i for i in order if i not in taken][: n - len(first)]


class GatesPredictorSearcher(AskTellSearcher):
    """Predictor-based architecture search with a GATES(++) predictor.

    Until ``n_startup`` architectures have finite values, :meth:`ask` proposes random architectures.
    After that every :meth:`ask` with new results refits the predictor on all results so far (pairwise
    ranking loss) and returns the top-scored of ``n_candidates`` random unseen architectures.

    Args:
        space: the search space.
        direction: ``"maximize"`` or ``"minimize"`` the told values.
        n_startup: random proposals before the predictor is used.
        n_candidates: size of the candidate pool scored per ask (the paper's 200).
        candidates: ``"auto"`` (default: ``"mixed"`` on large spaces, :attr:`SearchSpace.is_large`, such
            as DARTS and NAS-Bench-101; ``"staged"`` elsewhere), ``"random"`` (the paper's Alg. 1),
            ``"mutation"`` (single-edit mutations of
            the best architectures so far), ``"mixed"`` (``n_candidates`` random plus as many mutations),
            ``"local"`` (``n_candidates`` random plus every unseen single-edit neighbour of the
            ``n_mutation_parents`` best architectures), ``"staged"`` (``"random"`` until
            :attr:`SearchSettings.local_from` results, ``"local"`` after; :attr:`pool_mode` says which)
            or ``"evolve"`` (the ``"mixed"`` pool, then rounds of mutating the best-scored unseen
            candidates and scoring the children, see :attr:`SearchSettings.evolve_rounds`; a batch takes
            its cells from different lineages where it can).
        predictor: a :class:`~gates_sampler.predictor.Predictor`, or a flat dict of its options
            (see :func:`~gates_sampler.predictor.make_predictor`).
        zero_shot: GATES++ zero-shot information: ``"auto"`` (default: GATES++ where the features are
            precomputed, i.e. NAS-Bench-201, whose table ships with the package; plain GATES elsewhere
            and when ``predictor`` is an MLP or a :class:`Predictor` built without zero-shot inputs),
            ``True`` (a :class:`~gates_sampler.zeroshot.ZeroShotProvider` computing and caching the
            features on the built-in spaces), ``False`` (plain GATES), or your own
            :class:`~gates_sampler.predictor.FeatureProvider`. With it, the predictor defaults to the full
            scheme: op features in the gates, the auxiliary head (also fitted on scored candidates, see
            :attr:`SearchSettings.n_unlabeled`) and the architecture-level metrics as score-head input.
        seed: fixes every random draw (sampling, initialisation, minibatch order).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``.
        settings: research settings (:class:`SearchSettings`, or a dict of its fields); defaults when ``None``.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        direction: str = "maximize",
        n_startup: int = 10,
        n_candidates: int = 200,
        candidates: str = "auto",
        predictor: Predictor | dict[str, Any] | None = None,
        zero_shot: ZeroShot = "auto",
        seed: int | None = None,
        device: str | torch.device = "auto",
        settings: SearchSettings | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, direction=direction, seed=seed)
        if not isinstance(n_startup, int) or n_startup < 2:
            raise ValueError(f"n_startup must be an int >= 2 (the predictor needs pairs), got {n_startup!r}")
        if not isinstance(n_candidates, int) or n_candidates < 1:
            raise ValueError(f"n_candidates must be a positive int, got {n_candidates!r}")
        if candidates not in CANDIDATE_MODES:
            raise ValueError(f"candidates must be one of {CANDIDATE_MODES}, got {candidates!r}")
        self.settings = SearchSettings.coerce(settings)
        self.n_startup = n_startup
        self.n_candidates = n_candidates
        # In a large space nearly every random candidate is mediocre, so the best-scored one is too;
        # mutations of the best evaluated cells are not (README, "Large spaces"). In a small space the
        # random pool explores well early, and the neighbourhoods of the best cells finish the search
        # (README, "Measured search efficiency").
        self.candidates = ("mixed" if space.is_large else "staged") if candidates == "auto" else candidates
        # read on every ask: plain attributes, fixed by the settings
        self.refit = self.settings.refit
        # longer refits found better DARTS cells for the same evaluations (README, "Large spaces");
        # NAS-Bench-201 keeps the 10 epochs its tables were measured with
        default_warm = LARGE_SPACE_WARM_EPOCHS if space.is_large else SMALL_SPACE_WARM_EPOCHS
        self.warm_epochs = self.settings.warm_epochs if self.settings.warm_epochs is not None else default_warm
        self.n_mutation_parents, self.n_unlabeled = self.settings.n_mutation_parents, self.settings.n_unlabeled
        self.distinct_sampling = self.settings.distinct_sampling
        self._zero_shot_setting = zero_shot if isinstance(zero_shot, (bool, str)) or zero_shot is None else "custom"
        from_options = not isinstance(predictor, Predictor)
        predictor_seed = int(self._rng.integers(2**31)) if from_options else None
        self.predictor, self.zero_shot = make_predictor(space, zero_shot, predictor, seed=predictor_seed, device=device)
        # a state records the predictor's options, so that load() rebuilds the same predictor
        self._predictor_kwargs: dict[str, Any] | None = dict(self.predictor.config) if from_options else None
        # DARTS-sized spaces: a Gaussian process on the encoding with expected improvement found better
        # cells for the same evaluations than the predictor's top-1 (README, "Large spaces")
        self.acquisition = (
            ("ei" if space.is_large else "mean") if self.settings.acquisition == "auto" else self.settings.acquisition
        )
        cfg = self.predictor.config
        if self.acquisition == "thompson" and (
            cfg["loss"] == "comparator" or not cfg["head_dropout"] or self.candidates == "evolve"
        ):
            raise ValueError(
                "acquisition='thompson' needs a predictor with head_dropout > 0 and a loss other than "
                f"'comparator', and candidates other than 'evolve'; got loss={cfg['loss']!r}, "
                f"head_dropout={cfg['head_dropout']!r}, candidates={self.candidates!r}"
            )
        if self.acquisition == "ei" and cfg["loss"] == "comparator" and self.settings.gp_inputs != "onehot":
            raise ValueError(
                f"acquisition='ei' with gp_inputs={self.settings.gp_inputs!r} reads the score head's features, "
                "which the 'comparator' loss does not have (its head reads pairs of cells); use gp_inputs='onehot'"
            )
        if self.zero_shot is not None and not self._ranks_with_predictor:
            logger.warning(
                "zero-shot information is not used: acquisition=%r ranks candidates by a Gaussian process on "
                "the one-hot encoding alone; SearchSettings(ei_shortlist=100) lets the predictor shortlist "
                "them, acquisition='mean' ranks them by the predictor",
                self.acquisition,
            )
        # scored candidates whose zero-shot targets also train the auxiliary head (newest last)
        self._unlabeled: list[Arch] = []
        self._unlabeled_zs: tuple[list[torch.Tensor] | None, np.ndarray] | None = None
        self._fitted_version = -1  # number of finite results the predictor was last fitted on
        self._data_version = 0
        self.ask_seconds: list[float] = []

    # ----- predictor --------------------------------------------------------------------------
    def _on_tell(self, arch: Arch, value: float | None) -> None:
        if value is not None:
            self._data_version += 1

    def _on_tell_pruned(self, arch: Arch, step: int | None) -> None:
        if step is not None and self._learns_pruned:
            self._data_version += 1

    def _on_report(self, arch: Arch, step: int, value: float) -> None:
        # a curve that arrives after its trial ended changes the pairs; a running trial's does not
        if self._learns_pruned and self.has_ended(arch):
            self._data_version += 1

    @property
    def _learns_pruned(self) -> bool:
        return self.settings.learn_from_pruned and self.predictor.config["loss"] in PAIRWISE_LOSSES

    @property
    def n_trained(self) -> int:
        """Distinct architectures the predictor trains on: completed ones, plus those that ended early when
        :attr:`SearchSettings.learn_from_pruned` (once at least one trial completed)."""
        if self.n_complete == 0 or not self._learns_pruned:
            return self.n_complete
        return self.n_complete + self.n_pruned

    @property
    def _gp_pruned(self) -> str:
        """How the Gaussian process of ``acquisition="ei"`` reads trials that ended early
        (:attr:`SearchSettings.gp_pruned`; ``"none"`` without ``learn_from_pruned``)."""
        return self.settings.gp_pruned if self.settings.learn_from_pruned else "none"

    @property
    def _n_started(self) -> int:
        """What ends the random start: :attr:`n_trained`, or, when a Gaussian process ranks the candidates
        and needs completed values (it reads stopped trials only through them, or not at all), the
        completed trials."""
        if self.acquisition == "ei" and self._gp_pruned != "fidelity":
            return self.n_complete
        return self.n_trained

    def _features(self, archs: Sequence[Arch]) -> tuple[list[torch.Tensor] | None, np.ndarray | None]:
        if self.zero_shot is None:
            return None, None
        zs_op = self.zero_shot.op_features(archs) if self.zero_shot.op_feature_dim else None
        zs_arch = self.zero_shot.arch_features(archs) if self.zero_shot.arch_feature_dim else None
        return zs_op, zs_arch

    def fit_predictor(self) -> None:
        """Fit the predictor on everything told so far, unless nothing new arrived since the last fit."""
        if self._fitted_version == self._data_version:
            return
        better = None
        if self._learns_pruned:
            archs, values, better = self.ranking_data()
        else:
            archs, values = self.training_data()
        if len(archs) < 2:
            raise RuntimeError("need at least 2 finite results to fit the predictor")

        zs_op, zs_arch = self._features(archs)
        warm = self.refit == "warm" and self.predictor.trained
        extra: dict[str, Any] = {}
        if self._unlabeled and self._uses_unlabeled:
            op, arch = self._unlabeled_features()
            extra = dict(aux_archs=self._unlabeled, aux_zs_op=op, aux_zs_arch=arch)
        if better is not None:
            extra["better"] = better
        self.predictor.fit(
            archs, values, zs_op, zs_arch, epochs=self.warm_epochs if warm else None, warm_start=warm, **extra
        )
        self._fitted_version = self._data_version

    @property
    def _uses_unlabeled(self) -> bool:
        return self.zero_shot is not None and self.n_unlabeled > 0 and bool(self.predictor.config["aux_dim"])

    def _unlabeled_features(self) -> tuple[list[torch.Tensor] | None, np.ndarray]:
        """Zero-shot features of the unlabeled set, looked up again after loading a saved state."""
        if self._unlabeled_zs is None:
            op, arch = self._features(self._unlabeled)
            assert arch is not None
            self._unlabeled_zs = (op, arch)
        return self._unlabeled_zs

    def _remember_unlabeled(self, pool: list[Arch], zs_op: list[torch.Tensor] | None, zs_arch: np.ndarray) -> None:
        """Add scored candidates to the auxiliary head's unlabeled set, keeping the newest ``n_unlabeled``."""
        op, arch = zs_op, zs_arch
        if self._unlabeled:
            old_op, old_arch = self._unlabeled_features()
            arch = np.concatenate([old_arch, zs_arch])
            op = None if zs_op is None or old_op is None else [torch.cat([o, f]) for o, f in zip(old_op, zs_op)]
        keep = self.n_unlabeled
        self._unlabeled = (self._unlabeled + list(pool))[-keep:]
        self._unlabeled_zs = (None if op is None else [f[-keep:] for f in op], arch[-keep:])

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted scores of ``archs`` (higher = predicted better), fitting first if needed."""
        return self.score_candidates([self.space.coerce(a) for a in archs], [])

    def score_candidates(self, archs: Sequence[Arch], candidates: Sequence[Arch]) -> np.ndarray:
        """Scores of ``archs`` followed by ``candidates`` (validated cells), as a proposal scores its pool:
        with GATES++'s auxiliary head, the candidates first join its unlabeled set (the fit also learns
        their zero-shot targets, :attr:`SearchSettings.n_unlabeled`); then the predictor is refitted if
        anything was told since the last fit. For searches that use this searcher as one objective's
        predictor (:class:`~gates_sampler.multi_objective.MultiObjectiveGatesSearcher`)."""
        cells = list(archs) + list(candidates)
        zs_op, zs_arch = self._features(cells)
        if candidates and self._uses_unlabeled:
            assert zs_arch is not None
            n = len(archs)
            self._remember_unlabeled(list(candidates), None if zs_op is None else [o[n:] for o in zs_op], zs_arch[n:])
        self.fit_predictor()
        return self.predictor.score(cells, zs_op, zs_arch)

    # ----- proposals --------------------------------------------------------------------------
    @property
    def pool_mode(self) -> str:
        """The candidate pool the next :meth:`ask` scores: :attr:`candidates`, with ``"staged"`` resolved to
        ``"random"`` or ``"local"`` by :attr:`SearchSettings.local_from`."""
        if self.candidates == "staged":
            return "local" if self.n_complete >= self.settings.local_from else "random"
        return self.candidates

    def _candidate_pool(self, n: int) -> list[Arch]:
        seen = self.seen_keys()
        pool: list[Arch] = []
        keys: set[str] = set()
        mode = self.pool_mode
        if mode in ("random", "mixed", "local"):
            pool = self.space.sample_unique(self._rng, self.n_candidates, exclude=seen, reduced=self.distinct_sampling)
            keys = {self.space.canonical_key(a) for a in pool}
        if mode in ("mutation", "mixed"):
            archs, values = self.training_data()
            parents = [archs[i] for i in np.argsort(-values, kind="stable")[: self.n_mutation_parents]]
            target = len(pool) + self.n_candidates
            for _ in range(20 * self.n_candidates):
                if len(pool) >= target:
                    break
                child = self.space.mutate(parents[int(self._rng.integers(len(parents)))], self._rng)
                k = self.space.canonical_key(child)
                if k in seen or k in keys:
                    continue
                keys.add(k)
                pool.append(child)
        if mode == "local":
            # every unseen single-edit neighbour of the best evaluated cells: the predictor ranks a
            # whole neighbourhood instead of a random sample of it
            archs, values = self.training_data()
            for i in np.argsort(-values, kind="stable")[: self.n_mutation_parents]:
                for child in self.space.neighbors(archs[i]):
                    k = self.space.canonical_key(child)
                    if k not in seen and k not in keys:
                        keys.add(k)
                        pool.append(child)
        if len(pool) < n:  # mutations ran dry or the space is nearly exhausted
            # a long random search only where no random candidates were drawn yet: after the
            # random pool's own tries came up short, it would mostly confirm that the space is exhausted
            tries = 100_000 if mode == "mutation" else None
            pool += self.space.sample_unique(self._rng, n - len(pool), exclude=seen | keys, max_tries=tries)
        return pool

    def _propose(self, n: int) -> list[Arch]:
        start = time.perf_counter()
        if self._n_started < self.n_startup:
            out = self._random_unseen(n, reduced=self.distinct_sampling)
        else:
            # Candidates are drawn before the refit, so that it can already learn their zero-shot
            # targets; the fit draws nothing from the searcher's generator, so the order does not
            # change which candidates are drawn.
            out = self._evolve(n) if self.candidates == "evolve" else self._best_of(self._candidate_pool(n), n)
        self.ask_seconds.append(time.perf_counter() - start)
        return out

    def _mutants(
        self, parents: Sequence[Arch], count: int, exclude: set[str], keys: set[str]
    ) -> tuple[list[Arch], list[int]]:
        """Up to ``count`` single-edit mutations of random ``parents`` whose keys are in neither set, and
        the index of each one's parent; ``keys`` is extended with the new keys."""
        children: list[Arch] = []
        origin: list[int] = []
        for _ in range(20 * count):
            if len(children) >= count:
                break
            i = int(self._rng.integers(len(parents)))
            child = self.space.mutate(parents[i], self._rng)
            k = self.space.canonical_key(child)
            if k in exclude or k in keys:
                continue
            keys.add(k)
            children.append(child)
            origin.append(i)
        return children, origin

    def _evolve(self, n: int) -> list[Arch]:
        """``candidates="evolve"``: predictor-guided evolution over unseen cells.

        The pool of ``"mixed"`` (``n_candidates`` random cells, as many mutations of the best evaluated
        ones) is scored; then every round mutates the ``evolve_parents`` best-scored candidates so far into
        ``evolve_children`` new unseen cells and scores them. Scoring is cheap and evaluations are not, so
        a few thousand cells per ask let the predictor's top pick come from far better than random cells.
        Every candidate belongs to a lineage (its random ancestor, or the evaluated cell its first
        mutation came from); the top ``n`` are taken one per lineage first, so that a batch for parallel
        workers is not ``n`` neighbours of one cell.
        """
        seen = self.seen_keys()
        pool = self.space.sample_unique(self._rng, self.n_candidates, exclude=seen, reduced=self.distinct_sampling)
        lineage = [self.space.canonical_key(a) for a in pool]
        keys = set(lineage)
        archs, values = self.training_data()
        best = [archs[i] for i in np.argsort(-values, kind="stable")[: self.n_mutation_parents]]
        children, origin = self._mutants(best, self.n_candidates, seen, keys)
        pool += children
        lineage += ["told:" + self.space.canonical_key(best[i]) for i in origin]
        if len(pool) < n:  # the space is nearly exhausted
            extra = self.space.sample_unique(self._rng, n - len(pool), exclude=seen | keys)
            keys.update(self.space.canonical_key(a) for a in extra)
            pool += extra
            lineage += [self.space.canonical_key(a) for a in extra]
        if not pool:
            return []
        scores, scorer, _ = self._score_pool_with(pool)
        for _ in range(self.settings.evolve_rounds):
            top = np.argsort(-scores, kind="stable")[: self.settings.evolve_parents]
            children, origin = self._mutants([pool[i] for i in top], self.settings.evolve_children, seen, keys)
            if not children:
                break
            zs_op, zs_arch = self._features(children)
            scores = np.concatenate([scores, scorer(children, zs_op, zs_arch)])
            pool += children
            lineage += [lineage[int(top[i])] for i in origin]
        return [pool[i] for i in top_by_lineage(scores, lineage, n)]

    def _propose_fixed(self, n: int, fixed: Mapping[str, str]) -> list[Arch]:
        start = time.perf_counter()
        if self._n_started < self.n_startup:
            out = self._agreeing_unseen(n, fixed)
        else:
            out = self._best_of(self._agreeing_unseen(max(n, self.n_candidates), fixed), n)
        self.ask_seconds.append(time.perf_counter() - start)
        return out

    def _best_of(self, pool: list[Arch], n: int) -> list[Arch]:
        """The ``n`` candidates the predictor scores highest (the one scoring path of every proposal); with
        expected improvement, a batch is picked one by one, each pick joining the process at its predicted
        value before the next is scored (the kriging believer), so that a batch spreads out."""
        if not pool:
            return []
        scores, scorer, (op, arch) = self._score_pool_with(pool)
        if n == 1 or not isinstance(scorer, _ExpectedImprovement):
            return [pool[i] for i in np.argsort(-scores, kind="stable")[:n]]
        x = scorer.inputs(pool, op, arch)  # the pool's process inputs, encoded once for the whole batch
        chosen: list[int] = []
        while len(chosen) < min(n, len(pool)):
            scores[chosen] = -np.inf
            pick = int(np.argmax(scores))
            chosen.append(pick)
            if len(chosen) < n:
                scorer.believe_inputs([b[[pick]] for b in x])
                scores = scorer.of_inputs(x)
        return [pool[i] for i in chosen]

    def _score_pool_with(
        self, pool: list[Arch]
    ) -> tuple[np.ndarray, _Scorer, tuple[list[torch.Tensor] | None, np.ndarray | None]]:
        """Acquisition values of a fresh candidate pool, the scorer that gave them (for more cells scored
        against the same fit) and the pool's zero-shot features (``None`` where nothing reads them). The
        features join the unlabeled set first, so that the refit before scoring can already learn them."""
        zs_op: list[torch.Tensor] | None = None
        zs_arch: np.ndarray | None = None
        if self._ranks_with_predictor:
            # zero-shot features only where the predictor reads them: on DARTS they cost a forward pass
            zs_op, zs_arch = self._features(pool)
            if self._uses_unlabeled:
                assert zs_arch is not None
                self._remember_unlabeled(pool, zs_op, zs_arch)
            self.fit_predictor()
        scorer: _Scorer
        if self.acquisition == "ei":
            scorer = self._expected_improvement()
            k = self.settings.ei_shortlist
            if k:
                ei = scorer

                def scorer(archs: list[Arch], op: list[torch.Tensor] | None, arch: np.ndarray | None) -> np.ndarray:
                    # the predictor's top k of these cells, ranked by expected improvement; the rest last
                    out = np.full(len(archs), -np.inf)
                    top = np.argsort(-self.predictor.score(archs, op, arch), kind="stable")[:k]
                    sub_op = None if op is None else [o[torch.as_tensor(top)] for o in op]
                    out[top] = ei([archs[i] for i in top], sub_op, None if arch is None else arch[top])
                    return out

        else:
            sample = self.acquisition == "thompson"

            def scorer(archs: list[Arch], op: list[torch.Tensor] | None, arch: np.ndarray | None) -> np.ndarray:
                return self.predictor.score(archs, op, arch, sample=sample)

        return scorer(pool, zs_op, zs_arch), scorer, (zs_op, zs_arch)

    @property
    def _ranks_with_predictor(self) -> bool:
        """False only when proposals come from a Gaussian process on the one-hot encoding alone, so that
        no refit is spent on a predictor nothing reads (it is fitted when :meth:`predict` asks for it)."""
        st = self.settings
        return not (self.acquisition == "ei" and st.gp_inputs == "onehot" and not st.ei_shortlist)

    def _expected_improvement(self) -> _ExpectedImprovement:
        """Expected improvement over the best value so far under a Gaussian process fitted to the told
        values on :attr:`SearchSettings.gp_inputs` (``acquisition="ei"``), as a scorer of candidates."""
        inputs = self.settings.gp_inputs
        archs, values, steps = self.fidelity_data()
        best = float(values[: self.n_complete].max())
        # Trials that ended early: "extrapolate" reads them at extrapolated final values, each with its
        # extrapolation variance as extra noise (the looser a step's values predict final ones, the less
        # a trial stopped there counts); "fidelity" reads the step (log-scaled to [0, 1], completed trials
        # at 1) as one more input and predicts every candidate at the full fidelity.
        fidelity: np.ndarray | None = None
        noise: np.ndarray | None = None
        mode = self._gp_pruned if len(archs) > self.n_complete else "none"
        if mode == "extrapolate":
            archs, values, noise = self.extrapolated_data()
        elif mode == "fidelity":
            top = float(np.nanmax(steps))
            full = np.where(np.isnan(steps), top, steps)
            fidelity = (np.log1p(np.maximum(full, 0.0)) / np.log1p(max(top, 1.0)))[:, None]
        else:
            archs, values = archs[: self.n_complete], values[: self.n_complete]
        t_op, t_arch = self._features(archs) if inputs != "onehot" else (None, None)

        def blocks(
            cells: list[Arch], op: list[torch.Tensor] | None, arch: np.ndarray | None, fid: np.ndarray | None
        ) -> list[np.ndarray]:
            out = []
            if inputs != "onehot":
                out.append(self.predictor.head_features(cells, op, arch))
            if inputs != "features":
                out.append(self.space.one_hot(cells).reshape(len(cells), -1).double().numpy())
            if fid is not None:
                out.append(fid)
            return out

        def inputs_at_full_fidelity(
            cells: list[Arch], op: list[torch.Tensor] | None, arch: np.ndarray | None
        ) -> list[np.ndarray]:
            return blocks(cells, op, arch, None if fidelity is None else np.ones((len(cells), 1)))

        scorer = _ExpectedImprovement(
            fit_feature_gp(blocks(archs, t_op, t_arch, fidelity), values, noise=noise), inputs_at_full_fidelity, best
        )
        pending = self.pending
        if pending:
            # running trials at their predicted values (kriging believer): a worker asking while others
            # evaluate is not sent to the same neighbourhood for the same reason
            op, arch = self._features(pending) if inputs != "onehot" else (None, None)
            scorer.believe(pending, op, arch)
        return scorer

    # ----- persistence ------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "n_startup": self.n_startup,
            "n_candidates": self.n_candidates,
            "candidates": self.candidates,
            "zero_shot": self._zero_shot_setting,
            "settings": asdict(self.settings),
            "predictor": self._predictor_kwargs,
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["predictor_state"] = self.predictor.state_dict()
        state["fitted_version"] = self._fitted_version
        state["data_version"] = self._data_version
        state["unlabeled"] = [str(a) for a in self._unlabeled]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; everything is checked first, and a refused state raises
        ``ValueError`` and leaves this searcher (history, pending, RNG, predictor) exactly as it was."""
        if self._predictor_kwargs is None:
            raise ValueError("load_state_dict needs a searcher whose predictor was built from keyword arguments")
        if not isinstance(state, dict) or not isinstance(state.get("predictor_state"), dict):
            raise ValueError("not a GatesPredictorSearcher state: 'predictor_state' is missing")
        fresh = self._restore(state)
        self.predictor.check_state_dict(state["predictor_state"])
        versions: dict[str, Any] = {k: state.get(k) for k in ("fitted_version", "data_version")}
        for k, v in versions.items():
            if type(v) is not int:
                raise ValueError(f"{k}: expected an int, got {short_repr(v)}")
        unlabeled_s = state.get("unlabeled", [])
        if not isinstance(unlabeled_s, (list, tuple)):
            raise ValueError(f"unlabeled: expected a list of architecture strings, got {type(unlabeled_s).__name__}")
        unlabeled = []
        for i, a in enumerate(unlabeled_s):
            try:
                unlabeled.append(self.space.parse(a))
            except ValueError as exc:
                raise ValueError(f"unlabeled[{i}]: {exc}") from None
        # everything checked: commit
        self._commit(fresh)
        self.predictor.load_state_dict(state["predictor_state"])
        self._fitted_version = versions["fitted_version"]
        self._data_version = versions["data_version"]
        # features are looked up again (from the zero-shot cache) at the next fit
        self._unlabeled = unlabeled
        self._unlabeled_zs = None

    def _same_config(self, config: Any) -> bool:
        # states written before a setting was added lack it: compare with its default filled in
        if isinstance(config, dict) and isinstance(config.get("settings"), dict):
            try:
                config = {**config, "settings": asdict(SearchSettings.coerce(config["settings"]))}
            except (TypeError, ValueError):
                return False
        return bool(config == self._config())

    @classmethod
    def _settings_from_state(cls, config: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        if "predictor" in config:
            if config["predictor"] is not None and not isinstance(config["predictor"], dict):
                raise ValueError(
                    f"config['predictor']: expected a dict of settings, got {short_repr(config['predictor'])}"
                )
            config["predictor"] = dict(config["predictor"] or {})
        if config.get("zero_shot") == "custom" and "zero_shot" not in overrides:
            raise ValueError(
                "the state was saved with a custom zero-shot provider: pass it again, load(path, zero_shot=provider)"
            )
        return config
