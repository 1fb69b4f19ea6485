"""The predictor a search uses, assembled from a space and a zero-shot setting.

:func:`make_predictor` is the one place that decides whether a search runs GATES or GATES++: which
zero-shot provider feeds the predictor, and which predictor options follow from it. The searcher and
anyone who wants the searcher's predictor outside a search call it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np
import torch

from gates_sampler.predictor.model import Predictor
from gates_sampler.spaces import BUILTIN_SPACES
from gates_sampler.spaces.base import Arch, SearchSpace

logger = logging.getLogger("gates_sampler")

#: training epochs of a search's predictor when its options name none (it is refitted often)
SEARCH_EPOCHS = 100
#: GATES sizes on large spaces (``SearchSpace.is_large``): the paper's NAS-Bench-301 setting, chosen by the
#: DARTS ranking table of the README ("Predictor ranking quality")
LARGE_SPACE_SIZES: dict[str, int] = {"op_dim": 32, "hidden": 64, "n_layers": 4}


class FeatureProvider(Protocol):
    """Zero-shot information for GATES++ (filled by :mod:`gates_sampler.zeroshot`)."""

    op_feature_dim: int  #: size of the per-op vector concatenated to op embeddings (0: none)
    arch_feature_dim: int  #: size of the architecture-level auxiliary target (0: none)

    def op_features(self, archs: Sequence[Arch]) -> list[torch.Tensor]:
        """One tensor per cell, shaped like ``CellBatch.op_features``."""

    def arch_features(self, archs: Sequence[Arch]) -> np.ndarray:
        """``[N, arch_feature_dim]`` targets."""


#: what ``zero_shot`` accepts: ``"auto"``, ``True``, ``False`` (or ``None``), or a :class:`FeatureProvider`
ZeroShot: TypeAlias = FeatureProvider | bool | str | None


def make_predictor(
    space: SearchSpace,
    zero_shot: ZeroShot = "auto",
    predictor: Predictor | Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    device: str | torch.device = "auto",
) -> tuple[Predictor, FeatureProvider | None]:
    """The predictor of a search on ``space`` and the zero-shot provider that feeds it.

    Args:
        space: the search space.
        zero_shot: ``"auto"``: GATES++ where the features are precomputed (NAS-Bench-201, whose table
            ships with the package), plain GATES elsewhere and when ``predictor`` rules zero-shot inputs
            out (an MLP, or a :class:`Predictor` built without them) or asks for them (``op_feature_dim``
            / ``aux_dim`` > 0, as in a state saved by a GATES++ search); ``True``: a
            :class:`~gates_sampler.zeroshot.ZeroShotProvider` computing and caching the features (the
            built-in spaces); ``False`` / ``None``: plain GATES; or your own :class:`FeatureProvider`.
        predictor: a :class:`Predictor` (used as it is), or a flat dict of predictor options (constructor
            keywords and :class:`~gates_sampler.predictor.PredictorSettings` fields, see
            :meth:`Predictor.from_config`; a ``"device"`` entry overrides ``device`` for the predictor).
            Unset options take the search's defaults: ``epochs=100``, the sizes of
            :data:`LARGE_SPACE_SIZES` on large spaces, and, with a provider, the full
            GATES++ scheme (op features, the auxiliary head, the architecture-level metrics as head input).
        seed: seeds the predictor built from options (ignored for a :class:`Predictor`).
        device: where the predictor trains and the zero-shot networks run.

    Returns:
        ``(predictor, provider)``; ``provider`` is ``None`` for plain GATES.
    """
    if isinstance(predictor, Predictor):
        if predictor.space is not space:
            raise ValueError("the predictor was built for another space object")
        if _is_auto(zero_shot):
            zero_shot = bool(predictor.config["op_feature_dim"] or predictor.config["aux_dim"])
        return predictor, _zero_shot_provider(zero_shot, space, device)
    if predictor is not None and not isinstance(predictor, Mapping):
        raise TypeError(f"predictor must be a Predictor, a dict of its options or None, got {type(predictor).__name__}")
    options = dict(predictor or {})
    predictor_device = options.pop("device", device)
    options.pop("seed", None)  # the search's own seed decides
    if _is_auto(zero_shot):
        wants = _options_want_zero_shot(options)
        if wants is not None:
            zero_shot = wants
    provider = _zero_shot_provider(zero_shot, space, device)
    sizes = LARGE_SPACE_SIZES if space.is_large and options.get("encoder", "gates") == "gates" else {}
    options = {"epochs": SEARCH_EPOCHS, **sizes, **options}
    if provider is not None:
        options.setdefault("op_feature_dim", provider.op_feature_dim)
        options.setdefault("aux_dim", provider.arch_feature_dim)
        # the head also reads the architecture-level metrics: on NAS-Bench-201 this turned GATES++
        # from worse than GATES in search to better (README, "GATES++")
        options.setdefault("arch_input", bool(options["aux_dim"]))
    return Predictor.from_config(space, options, seed=seed, device=predictor_device), provider


def _is_auto(zero_shot: Any) -> bool:
    return isinstance(zero_shot, str) and zero_shot == "auto"


def _options_want_zero_shot(options: Mapping[str, Any]) -> bool | None:
    """What predictor options imply for ``zero_shot="auto"``: ``False`` for an MLP, ``True`` when they
    ask for zero-shot inputs, ``None`` when they leave it open."""
    if options.get("encoder", "gates") == "mlp":
        return False
    if options.get("op_feature_dim") or options.get("aux_dim"):
        return True
    return None


def _zero_shot_provider(setting: Any, space: SearchSpace, device: str | torch.device) -> FeatureProvider | None:
    """The provider a ``zero_shot`` setting stands for (``None`` for plain GATES)."""
    if setting is None or setting is False:
        return None
    if setting is True or _is_auto(setting):
        if space.name not in BUILTIN_SPACES:
            if setting is True:
                raise ValueError(
                    f"zero_shot=True needs a built-in network for the space; {space.name!r} has none "
                    f"(supported: {tuple(BUILTIN_SPACES)}); pass your own FeatureProvider or zero_shot=False"
                )
            logger.info("space %r has no built-in network: using plain GATES", space.name)
            return None
        from gates_sampler.zeroshot import ZeroShotProvider  # zeroshot/ builds networks: import it only when used

        provider = ZeroShotProvider(space, device=device)
        if setting != "auto" or provider.table is not None:
            return provider
        # Without a table every scored candidate needs a forward pass of a real network (costs in the
        # README, "GATES++"): too slow for look-up searches by default.
        logger.info(
            "no precomputed zero-shot table for %r: using plain GATES; zero_shot=True computes the GATES++ "
            "features (cached on disk), worth it when evaluations train networks",
            space.name,
        )
        return None
    if isinstance(setting, str):
        raise ValueError(f"zero_shot must be 'auto', True, False or a FeatureProvider, got {setting!r}")
    if not all(hasattr(setting, a) for a in ("op_feature_dim", "arch_feature_dim", "op_features", "arch_features")):
        raise ValueError("zero_shot must provide op_feature_dim, arch_feature_dim, op_features() and arch_features()")
    return setting
