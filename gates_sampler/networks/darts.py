"""The DARTS evaluation network for CIFAR (as NAS-Bench-301 trains it: 32 channels, 8 cells).

stem (3x3 conv to ``stem_multiplier * C`` + BN) -> ``layers`` cells, reduction cells at 1/3 and 2/3
of the depth (channels doubled there) -> global average pool -> linear. Each cell preprocesses its
two inputs (the outputs of the two previous cells) to C channels, applies two ops per intermediate
node and concatenates the intermediate nodes 2..5. The auxiliary head and drop-path are training
devices and are left out.
"""

from __future__ import annotations

import torch
from torch import nn

from gates_sampler.networks.ops import FactorizedReduce, Identity, ReLUConvBN, tag
from gates_sampler.spaces.base import EdgeArch
from gates_sampler.spaces.darts import DARTS_OPS

# the DARTS primitives, plus "none" for cells written with an absent edge
DARTS_NETWORK_OPS = DARTS_OPS + ("none",)


class DilConv(nn.Sequential):
    """ReLU -> depthwise (dilated) conv -> pointwise conv -> BN."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked DilConv blocks without dilation (the first carries the stride)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


class _Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


def darts_op(name: str, channels: int, stride: int, pool_bn: bool = False) -> nn.Module:
    """One DARTS operation on ``channels`` channels with the given stride."""
    c = channels
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool: nn.Module = (
            nn.MaxPool2d(3, stride=stride, padding=1)
            if name == "max_pool_3x3"
            else nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        )
        # the DARTS search model follows pools with a non-affine BN; its evaluation model does not
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if pool_bn else pool
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(c, c)
    if name == "sep_conv_3x3":
        return SepConv(c, c, 3, stride, 1)
    if name == "sep_conv_5x5":
        return SepConv(c, c, 5, stride, 2)
    if name == "dil_conv_3x3":
        return DilConv(c, c, 3, stride, 2, 2)
    if name == "dil_conv_5x5":
        return DilConv(c, c, 5, stride, 4, 2)
    if name == "none":
        return _Zero(stride)
    raise ValueError(f"unknown DARTS operation {name!r}; allowed: {list(DARTS_NETWORK_OPS)}")


class DartsCell(nn.Module):
    """One DARTS cell (normal or reduction) built from one cell of the architecture description."""

    def __init__(
        self,
        cell: tuple,
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        cell_index: int,
        pool_bn: bool = False,
        n_inputs: int = 2,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self.ops = nn.ModuleList()
        self.edges: list[tuple[int, int]] = []
        self.n_inputs = n_inputs
        for k, node in enumerate(cell):
            dst = n_inputs + k
            slots: dict[int, int] = {}
            for op, src in node:
                stride = 2 if reduction and src < n_inputs else 1
                slot = slots.get(src, 0)
                slots[src] = slot + 1
                self.ops.append(tag(darts_op(op, c, stride, pool_bn), (cell_index, dst, src, slot)))
                self.edges.append((dst, int(src)))
        self.n_nodes = n_inputs + len(cell)
        self.multiplier = len(cell)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states: list[torch.Tensor | None] = [self.preprocess0(s0), self.preprocess1(s1)] + [None] * (self.n_nodes - 2)
        for module, (dst, src) in zip(self.ops, self.edges):
            out = module(states[src])
            states[dst] = out if states[dst] is None else states[dst] + out
        return torch.cat(states[self.n_inputs :], dim=1)  # type: ignore[arg-type]


class DartsNetwork(nn.Module):
    """DARTS / NAS-Bench-301 CIFAR network for a normal and a reduce cell.

    Args:
        arch: a DARTS architecture (``cells[0]`` normal, ``cells[1]`` reduce).
        C: initial channels (NAS-Bench-301 uses 32; the DARTS paper's final model 36).
        layers: number of cells (8 in NAS-Bench-301, 20 in the DARTS paper's final model).
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        stem_multiplier: the stem has ``stem_multiplier * C`` channels.
        pool_bn: follow pooling ops with a non-affine BatchNorm (as the DARTS search model does).
    """

    def __init__(
        self,
        arch: EdgeArch,
        C: int = 32,
        layers: int = 8,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_multiplier: int = 3,
        pool_bn: bool = False,
    ) -> None:
        super().__init__()
        for name, v in (
            ("C", C),
            ("layers", layers),
            ("num_classes", num_classes),
            ("in_channels", in_channels),
            ("stem_multiplier", stem_multiplier),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if C % 2:
            raise ValueError(f"C must be even (reductions split channels in halves), got {C}")
        if len(arch.cells) != 2:
            raise ValueError(f"a DARTS architecture has a normal and a reduce cell, got {len(arch.cells)} cells")
        self.arch = arch
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        reduce_at = {layers // 3, 2 * layers // 3} if layers >= 3 else set()
        for i in range(layers):
            reduction = i in reduce_at
            if reduction:
                c_curr *= 2
            cell = DartsCell(
                arch.cells[1 if reduction else 0],
                c_prev_prev,
                c_prev,
                c_curr,
                reduction,
                reduction_prev,
                cell_index=1 if reduction else 0,
                pool_bn=pool_bn,
            )
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))
