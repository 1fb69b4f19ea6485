"""Architecture-level costs that need no forward pass: parameters and multiply-accumulates of a DARTS cell.

The DARTS evaluation network (as NAS-Bench-301 trains it) repeats the normal cell at three widths and the
reduce cell at two; everything outside the cells' operations (stem, preprocessing, classifier) is the same
for every architecture. The cost of an architecture is therefore the sum over its operations of the cost
of that operation at the width and resolution of each cell position, and the cost of one operation is
counted once on the real module (:func:`gates_sampler.networks.darts.darts_op`) and cached.

:class:`CellCostFeatures` feeds these two numbers (log-scaled) to the predictor's auxiliary head and
score head as GATES++'s architecture-level targets (``zero_shot=CellCostFeatures(space)``), at a cost of
microseconds per cell instead of the ~0.5 s of the forward-pass metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from gates_sampler.spaces.base import Arch, SearchSpace
from gates_sampler.spaces.darts import DartsSpace

__all__ = ["COST_METRICS", "CellCostFeatures", "darts_cell_costs"]

#: the architecture-level features of :class:`CellCostFeatures`, in order
COST_METRICS = ("log_params", "log_macs")


@functools.cache
def _op_cost(name: str, channels: int, stride: int, out_size: int) -> tuple[float, float]:
    """Weights and multiply-accumulates per image of one DARTS operation."""
    from gates_sampler.networks.darts import darts_op

    module = darts_op(name, channels, stride)
    params = macs = 0.0
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
            n = float(sum(p.numel() for p in m.parameters()))
            params += n
            if isinstance(m, nn.Conv2d):
                # every weight of a convolution is used once per output pixel
                macs += n * out_size * out_size
    return params, macs


def _positions(layers: int, channels: int, image_size: int) -> list[tuple[bool, int, int]]:
    """``(reduction, channels, output size)`` of every cell of the DARTS network."""
    out: list[tuple[bool, int, int]] = []
    reduce_at = {layers // 3, 2 * layers // 3} if layers >= 3 else set()
    c, size = channels, image_size
    for i in range(layers):
        reduction = i in reduce_at
        if reduction:
            c, size = 2 * c, size // 2
        out.append((reduction, c, size))
    return out


def darts_cell_costs(
    space: DartsSpace, arch: Arch, *, channels: int = 32, layers: int = 8, image_size: int = 32
) -> tuple[float, float]:
    """Parameters and multiply-accumulates per image of the operations in ``arch``'s cells, summed over
    the cells of the DARTS network (NAS-Bench-301's: 32 channels, 8 cells, 32x32 images).

    The parts of the network that do not depend on the architecture are left out.
    """
    arch = space.validate(arch)
    params = macs = 0.0
    n_inputs = space.n_inputs
    for reduction, c, size in _positions(layers, channels, image_size):
        cell = arch.cells[1 if reduction else 0]
        for node in cell:
            for op, src in node:
                stride = 2 if reduction and src < n_inputs else 1
                p, m = _op_cost(op, c, stride, size)
                params += p
                macs += m
    return params, macs


class CellCostFeatures:
    """GATES++ architecture-level features that cost nothing: log parameters and log multiply-accumulates
    of the cells' operations (see :func:`darts_cell_costs`).

    A :class:`~gates_sampler.predictor.FeatureProvider` without per-operation features: pass it as
    ``zero_shot=`` to a searcher or predictor harness.

    Args:
        space: a :class:`~gates_sampler.spaces.DartsSpace`.
        channels, layers, image_size: the network the costs are counted on.
    """

    op_feature_dim = 0
    arch_feature_dim = len(COST_METRICS)

    def __init__(self, space: SearchSpace, *, channels: int = 32, layers: int = 8, image_size: int = 32) -> None:
        if not isinstance(space, DartsSpace):
            raise ValueError(f"CellCostFeatures counts DARTS cells; got the space {space.name!r}")
        self.space = space
        self.channels, self.layers, self.image_size = channels, layers, image_size
        self._cache: dict[str, tuple[float, float]] = {}

    def op_features(self, archs: Sequence[Arch]) -> list[torch.Tensor]:
        """Not provided (``op_feature_dim`` is 0)."""
        raise ValueError("CellCostFeatures has no per-operation features (op_feature_dim is 0)")

    def arch_features(self, archs: Sequence[Arch]) -> np.ndarray:
        """``[N, 2]``: log1p of the parameters and of the multiply-accumulates of each architecture."""
        out = np.empty((len(archs), self.arch_feature_dim), dtype=np.float64)
        for i, a in enumerate(archs):
            key = str(a)
            cost = self._cache.get(key)
            if cost is None:
                cost = darts_cell_costs(
                    self.space, a, channels=self.channels, layers=self.layers, image_size=self.image_size
                )
                if len(self._cache) < 100_000:
                    self._cache[key] = cost
            out[i] = np.log1p(cost)
        return out

    def __repr__(self) -> str:
        return f"CellCostFeatures({self.space.name}, channels={self.channels}, layers={self.layers})"
