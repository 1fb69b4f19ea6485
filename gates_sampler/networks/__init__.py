"""PyTorch networks built from architectures (NAS-Bench-201, DARTS / NAS-Bench-301, NAS-Bench-101).

``build_network(space, arch, **config)`` is the one entry point. Every module that implements one
operation of the cell description carries a ``cell_op`` attribute (see :func:`op_modules`) so that
metrics of its parameters can be traced back to that operation over all stacked copies of the cell.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, cast

from torch import nn

from gates_sampler.spaces import BUILTIN_SPACES, SPACE_ALIASES, builtin_space_name
from gates_sampler.spaces.base import Arch, SearchSpace


def _space_name(space: SearchSpace | str) -> str:
    name = space if isinstance(space, str) else getattr(space, "name", None)
    try:
        return builtin_space_name(str(name))
    except ValueError:
        raise ValueError(
            f"no network is defined for space {space!r}; build_network supports the built-in spaces "
            f"{sorted(BUILTIN_SPACES)} (aliases {sorted(SPACE_ALIASES)})"
        ) from None


def network_class(space: SearchSpace | str) -> type[nn.Module]:
    """The macro-network class used for ``space`` (``"nb201"``, ``"darts"``/``"nb301"``, ``"nb101"``)."""
    # every built-in space's macro network lives in the module of the space's name, named after its
    # space class (NB201Space -> NB201Network), and is imported only when asked for
    name = _space_name(space)
    network = BUILTIN_SPACES[name].__name__.replace("Space", "Network")
    return getattr(importlib.import_module(f"gates_sampler.networks.{name}"), network)


def network_config_keys(space: SearchSpace | str) -> list[str]:
    """The keyword arguments ``build_network`` accepts for ``space`` (besides ``arch``)."""
    params = inspect.signature(network_class(space).__init__).parameters
    return [k for k in params if k not in ("self", "arch")]


def build_network(space: SearchSpace | str, arch: Arch | str | dict, **config: Any) -> nn.Module:
    """Build the benchmark's macro network for ``arch``.

    Args:
        space: the search space (an instance, or one of ``"nb201"``, ``"darts"`` / ``"nb301"``, ``"nb101"``).
        arch: an architecture of the space (or anything ``space.coerce`` accepts when ``space`` is an instance).
        **config: width / depth of the network. NB201: ``C`` (16), ``N`` (cells per stage, 5),
            ``num_classes`` (10), ``in_channels`` (3). DARTS: ``C`` (32), ``layers`` (8), ``num_classes``,
            ``in_channels``, ``stem_multiplier`` (3), ``pool_bn`` (False). NB101: ``C`` (stem channels, 128),
            ``N`` (cells per stack, 3), ``stacks`` (3), ``num_classes``, ``in_channels``.

    Returns:
        an ``nn.Module`` mapping ``[B, in_channels, H, W]`` images to ``[B, num_classes]`` logits.

    Raises:
        ValueError: for an unknown space, an invalid architecture or an unknown config key.
    """
    cls = network_class(space)
    allowed = network_config_keys(space)
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"unknown network option(s) {unknown} for {_space_name(space)}; allowed: {allowed}")
    if isinstance(space, SearchSpace):
        arch = space.coerce(arch)
    elif not isinstance(arch, Arch):
        raise ValueError(
            f"pass a SearchSpace instance to build a network from {type(arch).__name__}; got space={space!r}"
        )
    return cls(arch, **config)


def op_modules(network: nn.Module) -> list[tuple[tuple[int, ...], nn.Module]]:
    """All ``(cell_op, module)`` pairs of a built network, one per stacked copy of each operation."""
    # ``cell_op`` is set by ``ops.tag`` as a plain attribute, which nn.Module's stubs type as Tensor | Module
    return [(cast("tuple[int, ...]", m.cell_op), m) for m in network.modules() if hasattr(m, "cell_op")]


__all__ = ["build_network", "network_class", "network_config_keys", "op_modules"]
