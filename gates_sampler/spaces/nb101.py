"""NAS-Bench-101 search space (operation on node)."""

from __future__ import annotations

from dataclasses import dataclass

from gates_sampler.spaces.base import NodeArch
from gates_sampler.spaces.cell import NodeCellSpace

NB101_OPS = ("conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3")


@dataclass(frozen=True)
class NB101Arch(NodeArch):
    """A NAS-Bench-101 cell (pruned adjacency matrix and op list)."""


class NB101Space(NodeCellSpace):
    """NAS-Bench-101: up to 7 vertices (input, output and up to 5 operations from
    ``conv1x1-bn-relu, conv3x3-bn-relu, maxpool3x3``), at most 9 edges.

    Parameters: ``edge_{i}_{j}`` in ``{"0", "1"}`` for 0 <= i < j < 7 and ``op_{k}`` for k = 1..5.
    """

    def __init__(self) -> None:
        super().__init__(ops=NB101_OPS, max_vertices=7, max_edges=9, name="nb101")

    def _make(self, matrix: tuple[tuple[int, ...], ...], ops: tuple[str, ...]) -> NB101Arch:
        return NB101Arch(matrix, ops)

    def __repr__(self) -> str:
        return "NB101Space()"
