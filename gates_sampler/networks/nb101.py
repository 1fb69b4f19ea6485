"""The NAS-Bench-101 network.

stem (3x3 conv-BN-ReLU to C=128 channels) -> ``stacks`` stacks of ``N`` cells; between stacks a
2x2 max-pool halves the resolution and the channels double -> global average pool -> linear.

Inside a cell, the output channels are split between the vertices that feed the output (their
outputs are concatenated); other vertices take the largest width of their successors. The cell
input reaches a vertex through a 1x1 conv-BN-ReLU projection, an intermediate vertex's output is
truncated to the receiving vertex's width, and a direct input->output edge adds a projection of the
input to the concatenation — as NAS-Bench-101's model builder does.
"""

from __future__ import annotations

import torch
from torch import nn

from gates_sampler.networks.ops import tag
from gates_sampler.spaces.base import NodeArch

NB101_NETWORK_OPS = ("conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3")


class ConvBNReLU(nn.Sequential):
    """Conv -> BN -> ReLU (NAS-Bench-101's ``convKxK-bn-relu`` and its projections)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=False),
        )


def nb101_op(name: str, channels: int) -> nn.Module:
    """One NAS-Bench-101 vertex operation at constant width."""
    if name == "conv3x3-bn-relu":
        return ConvBNReLU(channels, channels, 3)
    if name == "conv1x1-bn-relu":
        return ConvBNReLU(channels, channels, 1)
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ValueError(f"unknown NAS-Bench-101 operation {name!r}; allowed: {list(NB101_NETWORK_OPS)}")


def vertex_channels(c_in: int, c_out: int, matrix: list[list[int]]) -> list[int]:
    """Width of every vertex of a cell (NAS-Bench-101's channel rule)."""
    n = len(matrix)
    ch = [0] * n
    ch[0], ch[n - 1] = c_in, c_out
    if n == 2:
        return ch
    # vertices feeding the output share its channels (the first ones take the remainder)
    feeding = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    if feeding:
        base, extra = divmod(c_out, len(feeding))
        for i, v in enumerate(feeding):
            ch[v] = base + (1 if i < extra else 0)
    for v in range(n - 2, 0, -1):
        if not matrix[v][n - 1]:
            ch[v] = max((ch[d] for d in range(v + 1, n - 1) if matrix[v][d]), default=0)
    return ch


class NB101Cell(nn.Module):
    """One NAS-Bench-101 cell (module) built from a pruned adjacency matrix and op list."""

    def __init__(self, arch: NodeArch, c_in: int, c_out: int) -> None:
        super().__init__()
        m = [list(r) for r in arch.matrix]
        self.matrix = m
        n = len(m)
        self.n = n
        self.ch = vertex_channels(c_in, c_out, m)
        self.ops = nn.ModuleDict()
        self.proj = nn.ModuleDict()
        for v in range(1, n - 1):
            self.ops[str(v)] = tag(nb101_op(arch.ops[v], self.ch[v]), (0, v))
            if m[0][v]:
                self.proj[str(v)] = ConvBNReLU(c_in, self.ch[v], 1)
        if m[0][n - 1]:
            self.proj[str(n - 1)] = ConvBNReLU(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, n = self.matrix, self.n
        values: list[torch.Tensor | None] = [x] + [None] * (n - 1)
        for v in range(1, n - 1):
            inputs = [values[s][:, : self.ch[v]] for s in range(1, v) if m[s][v]]  # type: ignore[index]
            if m[0][v]:
                inputs.append(self.proj[str(v)](x))
            values[v] = self.ops[str(v)](sum(inputs))  # type: ignore[arg-type]
        feeding = [values[s] for s in range(1, n - 1) if m[s][n - 1]]
        out = torch.cat(feeding, dim=1) if feeding else None  # type: ignore[arg-type]
        if m[0][n - 1]:
            p = self.proj[str(n - 1)](x)
            out = p if out is None else out + p
        assert out is not None
        return out


class NB101Network(nn.Module):
    """NAS-Bench-101 network for one cell.

    Args:
        arch: a (pruned) NAS-Bench-101 architecture.
        C: stem channels (128 in the benchmark); stack ``s`` has ``C * 2**s`` channels.
        N: cells per stack (3 in the benchmark).
        stacks: number of stacks (3 in the benchmark).
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
    """

    def __init__(
        self, arch: NodeArch, C: int = 128, N: int = 3, stacks: int = 3, num_classes: int = 10, in_channels: int = 3
    ) -> None:
        super().__init__()
        for name, v in (
            ("C", C),
            ("N", N),
            ("stacks", stacks),
            ("num_classes", num_classes),
            ("in_channels", in_channels),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.arch = arch
        self.stem = ConvBNReLU(in_channels, C, 3)
        layers: list[nn.Module] = []
        c_in = c = C
        for s in range(stacks):
            if s > 0:
                layers.append(nn.MaxPool2d(2, stride=2))
                c *= 2
            for _ in range(N):
                layers.append(NB101Cell(arch, c_in, c))
                c_in = c
        self.cells = nn.Sequential(*layers)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cells(self.stem(x))
        return self.classifier(torch.flatten(self.global_pooling(x), 1))
