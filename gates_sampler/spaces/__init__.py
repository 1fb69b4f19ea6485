"""Search spaces: architectures, sampling, canonical keys, flat parameters and graph encodings."""

from gates_sampler.spaces.base import Arch, CellBatch, EdgeArch, GraphBatch, NodeArch, SearchSpace
from gates_sampler.spaces.cell import CellSpace, EdgeCellSpace, NodeCellSpace
from gates_sampler.spaces.darts import DARTS_OPS, DartsArch, DartsSpace
from gates_sampler.spaces.nb101 import NB101_OPS, NB101Arch, NB101Space
from gates_sampler.spaces.nb201 import NB201_OPS, NB201Arch, NB201Space

__all__ = [
    "Arch",
    "CellBatch",
    "CellSpace",
    "DARTS_OPS",
    "DartsArch",
    "DartsSpace",
    "EdgeArch",
    "EdgeCellSpace",
    "GraphBatch",
    "NB101Arch",
    "NB101Space",
    "NB101_OPS",
    "NB201Arch",
    "NB201Space",
    "NB201_OPS",
    "NodeArch",
    "NodeCellSpace",
    "SearchSpace",
]
