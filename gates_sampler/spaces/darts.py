"""DARTS / NAS-Bench-301 search space."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from gates_sampler.spaces.base import EdgeArch, EdgeCell
from gates_sampler.spaces.cell import EdgeCellSpace

DARTS_OPS = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


@dataclass(frozen=True)
class DartsArch(EdgeArch):
    """A DARTS architecture (normal and reduce cell); ``str`` gives the usual ``Genotype(...)`` text."""

    @property
    def normal(self) -> list[tuple[str, int]]:
        return [e for node in self.cells[0] for e in node]

    @property
    def reduce(self) -> list[tuple[str, int]]:
        return [e for node in self.cells[1] for e in node]

    def __str__(self) -> str:
        concat = list(range(2, 2 + len(self.cells[0])))
        return f"Genotype(normal={self.normal!r}, normal_concat={concat!r}, reduce={self.reduce!r}, reduce_concat={concat!r})"


_GENOTYPE_RE = re.compile(
    r"^\s*Genotype\(\s*normal\s*=\s*(\[.*?\])\s*,\s*normal_concat\s*=\s*(\[.*?\]|range\(.*?\))\s*,\s*reduce\s*=\s*(\[.*?\])\s*,\s*reduce_concat\s*=\s*(\[.*?\]|range\(.*?\))\s*\)\s*$",
    re.S,
)


class DartsSpace(EdgeCellSpace):
    """The DARTS space of NAS-Bench-301: a normal and a reduce cell, each with 2 input nodes and
    4 intermediate nodes; every intermediate node takes exactly 2 distinct earlier nodes as inputs,
    with one of the 7 DARTS operations on each incoming edge. The cell output concatenates nodes 2..5.

    Parameters: ``{cell}_node{k}_inputs`` (the sorted input pair, e.g. ``"0,3"``) and
    ``{cell}_node{k}_op0`` / ``_op1`` (the ops on the edges from the smaller / larger input).
    """

    def __init__(self) -> None:
        super().__init__(
            ops=DARTS_OPS,
            n_nodes=4,
            n_inputs=2,
            inputs_per_node=2,
            distinct_inputs=True,
            cell_names=("normal", "reduce"),
            readout="mean",
            none_op=None,
            name="darts",
        )

    def _make(self, cells: tuple[EdgeCell, ...]) -> DartsArch:
        return DartsArch(cells)

    def from_genotype(self, normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> DartsArch:
        """Build from DARTS genotype lists: 8 ``(op, input)`` pairs per cell, two per node."""
        cells = []
        for cname, lst in (("normal", normal), ("reduce", reduce)):
            lst = list(lst)
            if len(lst) != 2 * self.n_nodes:
                raise ValueError(f"{cname}: a DARTS cell has {2 * self.n_nodes} (op, input) pairs, got {len(lst)}")
            cells.append(tuple(tuple((str(op), int(src)) for op, src in lst[2 * k : 2 * k + 2]) for k in range(self.n_nodes)))
        return self.validate(DartsArch(tuple(cells)))  # type: ignore[return-value]

    def parse(self, text: str) -> DartsArch:
        """Parse ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=...)``."""
        if not isinstance(text, str):
            raise ValueError(f"expected a Genotype string, got {type(text).__name__}")
        m = _GENOTYPE_RE.match(text)
        if not m:
            raise ValueError(f"cannot parse {text[:80]!r}: expected 'Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)'")
        try:
            normal, reduce = ast.literal_eval(m.group(1)), ast.literal_eval(m.group(3))
            concats = [m.group(2), m.group(4)]
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"cannot parse the genotype lists of {text[:80]!r}: {exc}") from None
        for name, c in zip(("normal_concat", "reduce_concat"), concats):
            if c.replace(" ", "") not in ("[2,3,4,5]", "range(2,6)"):
                raise ValueError(f"{name} must be [2, 3, 4, 5] (all intermediate nodes), got {c}")
        return self.from_genotype(normal, reduce)

    def __repr__(self) -> str:
        return "DartsSpace()"
