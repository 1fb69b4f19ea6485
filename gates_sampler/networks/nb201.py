"""The NAS-Bench-201 macro network (the benchmark's "infer.tiny" model).

stem (3x3 conv + BN) -> N cells at C channels -> residual reduction block -> N cells at 2C ->
residual reduction block -> N cells at 4C -> BN + ReLU -> global average pool -> linear.
"""

from __future__ import annotations

import torch
from torch import nn

from gates_sampler.networks.ops import Identity, ReLUConvBN, Zero, tag
from gates_sampler.spaces.base import EdgeArch

NB201_NETWORK_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def nb201_op(name: str, channels: int) -> nn.Module:
    """One NAS-Bench-201 operation at stride 1 with equal input and output channels."""
    if name == "none":
        return Zero(channels, channels, 1)
    if name == "skip_connect":
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}; allowed: {list(NB201_NETWORK_OPS)}")


class NB201Cell(nn.Module):
    """A dense NAS-Bench-201 cell: node j sums ``op(i->j)(node i)`` over all earlier nodes i;
    the last node is the cell output."""

    def __init__(self, cell: tuple, channels: int, cell_index: int = 0, none_op: str = "none") -> None:
        super().__init__()
        self.edges: list[tuple[int, int]] = []  # (dst, src) per entry of self.ops
        self.ops = nn.ModuleList()
        n_inputs = 1
        for k, node in enumerate(cell):
            dst = n_inputs + k
            slots: dict[int, int] = {}
            for op, src in node:
                module = nb201_op(op, channels)
                if op != none_op:
                    # the slot counts earlier non-``none`` edges between the same pair, as space.encode does
                    slot = slots.get(src, 0)
                    slots[src] = slot + 1
                    tag(module, (cell_index, dst, src, slot))
                self.ops.append(module)
                self.edges.append((dst, int(src)))
        self.n_nodes = n_inputs + len(cell)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x] + [None] * (self.n_nodes - 1)
        for module, (dst, src) in zip(self.ops, self.edges):
            out = module(nodes[src])
            nodes[dst] = out if nodes[dst] is None else nodes[dst] + out
        return nodes[-1]  # type: ignore[return-value]


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's stride-2 residual block between stages (conv path + avg-pool/1x1 shortcut)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """NAS-Bench-201 network for one cell.

    Args:
        arch: a NAS-Bench-201 architecture (an ``EdgeArch`` with one dense cell of 3 nodes).
        C: channels of the first stage (the benchmark uses 16).
        N: cells per stage (the benchmark uses 5, i.e. 15 cells in all).
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
    """

    def __init__(self, arch: EdgeArch, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        for name, v in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.arch = arch
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        c_prev = C
        for stage in range(3):
            c = C * 2**stage
            if stage > 0:
                layers.append(ResNetBasicBlock(c_prev, c))
            for _ in range(N):
                layers.append(NB201Cell(arch.cells[0], c, cell_index=0))
            c_prev = c
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.global_pooling(x), 1))
