"""Zero-shot metrics of one randomly initialised network (GATES++ Sec. 5, Eq. 11 and 12).

One forward/backward pass of the cross-entropy loss on one batch gives, for every conv / linear
weight, ``grad_norm`` (the L2 norm of its gradient), ``plain`` (sum of gradient * weight) and
``snip`` (sum of |gradient * weight|); the same forward pass records the binary ReLU activation
codes for ``relu_logdet`` (NASWOT). A second pass in float64 on absolute weights and an all-ones
input gives ``synflow`` (sum of gradient * weight of R = 1^T prod|theta| 1), with batch norms in
evaluation mode at fresh running statistics, as the synflow authors score networks.

Per-parameter values are summed per module implementing one cell operation, then averaged over
the stacked copies of that operation; ``params`` and ``flops`` (multiply-accumulates per image)
complete the 6-dim per-op vector. Architecture-level values are sums over the whole network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from gates_sampler.networks import op_modules

logger = logging.getLogger("gates_sampler")

#: bump when anything changes the computed values (it is part of every cache key)
METRIC_VERSION = 1
OP_METRICS = ("grad_norm", "plain", "snip", "synflow", "params", "flops")
ARCH_METRICS = ("relu_logdet", "grad_norm", "plain", "snip", "synflow")
#: also returned for checks against published proxies (not part of the predictor's features)
EXTRA_ARCH_METRICS = ("params", "flops")

_WEIGHTED = (nn.Conv2d, nn.Linear)


@dataclass
class ZeroShotResult:
    """Raw (unscaled) zero-shot values of one architecture.

    ``ops`` maps a ``cell_op`` tuple to its ``OP_METRICS`` vector (averaged over copies);
    ``arch`` holds ``ARCH_METRICS``; ``extra`` holds network-level ``params`` and ``flops``.
    """

    ops: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict)
    arch: np.ndarray = field(default_factory=lambda: np.zeros(len(ARCH_METRICS)))
    extra: np.ndarray = field(default_factory=lambda: np.zeros(len(EXTRA_ARCH_METRICS)))

    def to_json(self) -> dict:
        return {
            "ops": [list(k) + [float(v) for v in vals] for k, vals in sorted(self.ops.items())],
            "arch": [float(v) for v in self.arch],
            "extra": [float(v) for v in self.extra],
        }

    @classmethod
    def from_json(cls, data: dict) -> ZeroShotResult:
        """Inverse of :meth:`to_json`; ``ValueError`` naming the field when ``data`` is not such a dict."""
        if not isinstance(data, dict) or not all(k in data for k in ("ops", "arch", "extra")):
            raise ValueError("a zero-shot result needs the keys 'ops', 'arch' and 'extra'")
        n = len(OP_METRICS)
        if not isinstance(data["ops"], list) or not all(isinstance(row, list) and len(row) > n for row in data["ops"]):
            raise ValueError(f"'ops' must be a list of rows of an op key and {n} values")
        ops = {tuple(int(v) for v in row[:-n]): np.asarray(row[-n:], dtype=np.float64) for row in data["ops"]}
        arch, extra = np.asarray(data["arch"], dtype=np.float64), np.asarray(data["extra"], dtype=np.float64)
        if arch.shape != (len(ARCH_METRICS),) or extra.shape != (len(EXTRA_ARCH_METRICS),):
            raise ValueError(f"'arch' must hold {len(ARCH_METRICS)} values and 'extra' {len(EXTRA_ARCH_METRICS)}")
        return cls(ops=ops, arch=arch, extra=extra)

    def is_finite(self) -> bool:
        """Whether every value is finite (non-finite metrics would become non-finite features)."""
        ops_finite = all(np.isfinite(v).all() for v in self.ops.values())
        return bool(np.isfinite(self.arch).all() and np.isfinite(self.extra).all() and ops_finite)


def synthetic_batch(
    batch_size: int, image_size: int, in_channels: int = 3, num_classes: int = 10, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded batch of standard-normal images and uniform labels (no dataset needed)."""
    if batch_size < 2 or image_size < 4:
        raise ValueError(f"batch_size must be >= 2 and image_size >= 4, got {batch_size} and {image_size}")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(batch_size, in_channels, image_size, image_size, generator=g)
    y = torch.randint(0, num_classes, (batch_size,), generator=g)
    return x, y


def _weights(module: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    return [m for m in module.modules() if isinstance(m, _WEIGHTED)]


def compute_zeroshot(
    build: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> ZeroShotResult:
    """All zero-shot metrics of the network returned by ``build()`` (initialised under ``seed``).

    Args:
        build: makes a fresh network; called under a fixed torch seed so the initialisation is
            the same for the same architecture whatever order architectures are computed in.
        x, y: the batch (images ``[B, C, H, W]`` and integer labels ``[B]``).
        seed: torch seed of the initialisation.
        device: where to run.
    """
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = build()
    net = net.to(device).float()
    x, y = x.to(device), y.to(device)
    weighted = _weights(net)
    flops = _count_flops(net, x[:1])

    # ---- pass 1: loss gradients (grad_norm, plain, snip) and ReLU codes (relu_logdet) ----------
    kernel = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=device)

    def relu_hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        c = (out.detach().reshape(out.shape[0], -1) > 0).to(torch.float64)
        kernel.add_(c @ c.T).add_((1.0 - c) @ (1.0 - c).T)

    handles = [m.register_forward_hook(relu_hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    net.train()
    net.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    for h in handles:
        h.remove()
    per_weight: dict[int, list[float]] = {}
    for m in weighted:
        g, w = m.weight.grad, m.weight.detach()
        if g is None:  # the weight does not reach the loss (e.g. behind a `none` edge)
            per_weight[id(m)] = [0.0, 0.0, 0.0]
            continue
        gw = g * w
        per_weight[id(m)] = [float(g.norm()), float(gw.sum()), float(gw.abs().sum())]
    sign, logdet = torch.linalg.slogdet(kernel)
    relu_logdet = float(logdet) if (float(sign) > 0 and torch.isfinite(logdet)) else 0.0
    if not handles:
        relu_logdet = 0.0

    # ---- pass 2: synflow on |theta| in float64 with an all-ones input ---------------------------
    synflow = _synflow(net, weighted, x.shape[1:])

    # ---- aggregation -----------------------------------------------------------------------------
    sums: dict[tuple[int, ...], np.ndarray] = {}
    counts: dict[tuple[int, ...], int] = {}
    for key, module in op_modules(net):
        v = np.zeros(len(OP_METRICS))
        for m in _weights(module):
            v[:3] += per_weight[id(m)]
            v[3] += synflow[id(m)]
            v[5] += flops.get(id(m), 0.0)
        v[4] = sum(p.numel() for p in module.parameters())
        sums[key] = sums.get(key, 0.0) + v
        counts[key] = counts.get(key, 0) + 1
    ops = {k: sums[k] / counts[k] for k in sums}
    total = np.zeros(3)
    for m in weighted:
        total += per_weight[id(m)]
    arch = np.array([relu_logdet, total[0], total[1], total[2], sum(synflow.values())])
    extra = np.array([float(sum(p.numel() for p in net.parameters())), float(sum(flops.values()))])
    return ZeroShotResult(ops=ops, arch=arch, extra=extra)


def _synflow(net: nn.Module, weighted: list[nn.Conv2d | nn.Linear], shape: torch.Size) -> dict[int, float]:
    """Per-weight synflow saliency sum(dR/dtheta * theta) with R = sum(net(1)) on |theta|."""
    net.double()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.reset_running_stats()
        for p in net.parameters():
            p.abs_()
    net.eval()
    net.zero_grad(set_to_none=True)
    ones = torch.ones((1, *shape), dtype=torch.float64, device=next(net.parameters()).device)
    net(ones).sum().backward()
    out = {}
    for m in weighted:
        g = m.weight.grad
        out[id(m)] = 0.0 if g is None else float((g * m.weight.detach()).sum())
    return out


def _count_flops(net: nn.Module, x: torch.Tensor) -> dict[int, float]:
    """Multiply-accumulates per image of every conv / linear module (one forward on one image)."""
    flops: dict[int, float] = {}

    def hook(m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
            flops[id(m)] = flops.get(id(m), 0.0) + float(out[0].numel() * k)
        elif isinstance(m, nn.Linear):  # the only other kind _weights hooks
            flops[id(m)] = flops.get(id(m), 0.0) + float(m.in_features * m.out_features)

    handles = [m.register_forward_hook(hook) for m in _weights(net)]
    net.eval()
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return flops
