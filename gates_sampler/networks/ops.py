"""Building blocks shared by the macro networks.

Every ReLU is an ``nn.ReLU`` module (never functional, never in-place) so that zero-shot metrics
can hook the activations of all rectified units.
"""

from __future__ import annotations

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv -> BatchNorm (NAS-Bench-201's ``nor_conv_*``, DARTS' preprocessing)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int = 1, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` operation: a zero tensor of the output shape (the edge carries nothing)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out = c_out
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and x.shape[1] == self.c_out:
            return x.mul(0.0)
        h = (x.shape[2] + self.stride - 1) // self.stride
        w = (x.shape[3] + self.stride - 1) // self.stride
        return x.new_zeros(x.shape[0], self.c_out, h, w)


class Identity(nn.Module):
    """``skip_connect`` without a change of shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convolutions whose outputs are concatenated
    (DARTS' ``skip_connect`` in reduction cells and its preprocessing after a reduction)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        a = self.conv_1(x)
        # the shifted branch sees the other pixel phase; pad when the input size is odd
        shifted = x[:, :, 1:, 1:]
        if shifted.shape[2] < 1 or shifted.shape[3] < 1:
            shifted = x
        b = self.conv_2(shifted)
        if b.shape[2:] != a.shape[2:]:
            b = nn.functional.pad(b, (0, a.shape[3] - b.shape[3], 0, a.shape[2] - b.shape[2]))
        return self.bn(torch.cat([a, b], dim=1))


def tag(module: nn.Module, cell_op: tuple[int, ...]) -> nn.Module:
    """Mark ``module`` as implementing one operation of the cell description.

    ``cell_op`` is ``(cell_index, dst, src, slot)`` for operation-on-edge spaces (matching the
    ``[b, dst, src, d]`` layout of ``space.encode``) and ``(0, vertex)`` for operation-on-node spaces.
    """
    module.cell_op = tuple(int(v) for v in cell_op)  # type: ignore[assignment]
    return module
