"""NAS-Bench-201 (NATS-Bench topology) search space."""

from __future__ import annotations

from dataclasses import dataclass

from gates_sampler.spaces.base import EdgeArch, EdgeCell
from gates_sampler.spaces.cell import EdgeCellSpace

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@dataclass(frozen=True)
class NB201Arch(EdgeArch):
    """A NAS-Bench-201 cell; ``str`` gives the official arch string."""

    def __str__(self) -> str:
        return "+".join("|" + "|".join(f"{op}~{src}" for op, src in node) + "|" for node in self.cells[0])

    @property
    def ops(self) -> tuple[str, ...]:
        """The six operations in arch-string order: (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2)."""
        return tuple(op for node in self.cells[0] for op, _ in node)


class NB201Space(EdgeCellSpace):
    """NAS-Bench-201: one cell, 1 input node and 3 further nodes, an op on each of the 6 edges
    from ``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``; the last node is the output.

    Parameters are named ``node{j}_from{i}`` (the op on the edge i -> j), in arch-string order.
    """

    def __init__(self) -> None:
        super().__init__(
            ops=NB201_OPS, n_nodes=3, n_inputs=1, inputs_per_node=None, readout="last", none_op="none", name="nb201"
        )

    arch_type = NB201Arch

    def _make(self, cells: tuple[EdgeCell, ...]) -> NB201Arch:
        return NB201Arch(cells)

    def from_ops(self, ops: tuple[str, ...] | list[str]) -> NB201Arch:
        """Build a cell from its 6 operations in arch-string order."""
        ops = list(ops)
        if len(ops) != 6:
            raise ValueError(f"a NAS-Bench-201 cell has 6 operations, got {len(ops)}")
        cell = ((ops[0], 0),), ((ops[1], 0), (ops[2], 1)), ((ops[3], 0), (ops[4], 1), (ops[5], 2))
        return self.validate(NB201Arch((cell,)))  # type: ignore[return-value]

    def parse(self, text: str) -> NB201Arch:
        """Parse an official arch string such as ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
        if not isinstance(text, str) or " / " in text:
            raise ValueError(f"expected a NAS-Bench-201 arch string, got {text!r}")
        return super().parse(text)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return "NB201Space()"
