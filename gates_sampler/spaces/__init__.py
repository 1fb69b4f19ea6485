"""Search spaces: architectures, sampling, canonical keys, flat parameters and graph encodings."""

from gates_sampler.spaces.base import Arch, CellBatch, EdgeArch, GraphBatch, NodeArch, SearchSpace
from gates_sampler.spaces.cell import CellSpace, EdgeCellSpace, NodeCellSpace
from gates_sampler.spaces.darts import DARTS_OPS, DartsArch, DartsSpace
from gates_sampler.spaces.nb101 import NB101_OPS, NB101Arch, NB101Space
from gates_sampler.spaces.nb201 import NB201_OPS, NB201Arch, NB201Space

#: the spaces that ship with the package, by ``space.name``: state files name them, ``build_network``
#: builds their networks and zero-shot features are computed on those networks
BUILTIN_SPACES: dict[str, type[SearchSpace]] = {"nb201": NB201Space, "darts": DartsSpace, "nb101": NB101Space}
#: other names the community uses for them
SPACE_ALIASES: dict[str, str] = {
    "nb301": "darts",
    "nasbench201": "nb201",
    "nasbench101": "nb101",
    "nasbench301": "darts",
}


def builtin_space_name(name: str) -> str:
    """The registry name of a built-in space (aliases and case resolved), or ``ValueError`` naming them all."""
    key = str(name).lower()
    key = SPACE_ALIASES.get(key, key)
    if key not in BUILTIN_SPACES:
        raise ValueError(
            f"no built-in space is named {name!r}; built-in spaces: {sorted(BUILTIN_SPACES)} "
            f"(aliases {sorted(SPACE_ALIASES)})"
        )
    return key


def builtin_space(name: str) -> SearchSpace:
    """A fresh instance of the built-in space ``name`` (see :data:`BUILTIN_SPACES`)."""
    return BUILTIN_SPACES[builtin_space_name(name)]()


__all__ = [
    "BUILTIN_SPACES",
    "SPACE_ALIASES",
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
    "builtin_space",
    "builtin_space_name",
]
