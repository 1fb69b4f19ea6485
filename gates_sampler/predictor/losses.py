"""Ranking and regression losses for training performance predictors (paper Sec. 4.4)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("hinge", "bce", "comparator", "listmle", "mse")
#: the losses that learn from pairs alone, so that they can take a given set of ordered pairs
PAIRWISE_LOSSES = ("hinge", "bce", "comparator")
Pairs = tuple[torch.Tensor, torch.Tensor]


def better_pairs(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(hi, lo)`` of all pairs with ``y[hi] > y[lo]`` (ties carry no ranking signal)."""
    diff = y.unsqueeze(1) - y.unsqueeze(0)
    hi, lo = torch.nonzero(diff > 0, as_tuple=True)
    return hi, lo


def pairwise_hinge(
    scores: torch.Tensor, y: torch.Tensor, margin: float = 0.1, pairs: Pairs | None = None
) -> torch.Tensor:
    """Eq. 8 with phi = max(0, m - (s_j - s_i)) for every pair with y_j > y_i, averaged.

    ``pairs`` ``(hi, lo)``, when given, replaces the pairs read from ``y`` (e.g. trials that ended early)."""
    hi, lo = better_pairs(y) if pairs is None else pairs
    if hi.numel() == 0:
        return scores.sum() * 0.0
    return F.relu(margin - (scores[hi] - scores[lo])).mean()


def pairwise_bce(scores: torch.Tensor, y: torch.Tensor, pairs: Pairs | None = None) -> torch.Tensor:
    """Eq. 8 with the logistic phi: log(1 + exp(-(s_j - s_i))) for y_j > y_i, averaged (``pairs``: as
    :func:`pairwise_hinge`)."""
    hi, lo = better_pairs(y) if pairs is None else pairs
    if hi.numel() == 0:
        return scores.sum() * 0.0
    return F.softplus(-(scores[hi] - scores[lo])).mean()


def comparator_loss(
    compare: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    emb: torch.Tensor,
    y: torch.Tensor,
    margin: float = 0.1,
    pairs: Pairs | None = None,
) -> torch.Tensor:
    """Eq. 9: hinge on ``compare(E(a_j), E(a_i))`` for y_j > y_i, plus the anti-symmetry term on the swapped
    pair (``pairs``: as :func:`pairwise_hinge`)."""
    hi, lo = better_pairs(y) if pairs is None else pairs
    if hi.numel() == 0:
        return emb.sum() * 0.0
    forward = compare(emb[hi], emb[lo])
    backward = compare(emb[lo], emb[hi])
    return (F.relu(margin - forward) + F.relu(margin + backward)).mean()


def listmle(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 10 on the whole batch: -log likelihood of the true order under Plackett-Luce."""
    order = torch.argsort(y, descending=True)
    s = scores[order]
    # log sum_{j >= i} exp(s_j): a reversed cumulative logsumexp
    tail = torch.logcumsumexp(s.flip(0), dim=0).flip(0)
    return (tail - s).mean()


def mse(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 7 on standardised targets (the caller standardises)."""
    return F.mse_loss(scores, y)


def quicksort_rank(n: int, less: Callable[[np.ndarray, int], np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Order ``range(n)`` from worst to best by randomized quick-sort with a batched comparator.

    ``less(items, pivot)`` returns a boolean array: True where ``items[k]`` ranks below ``pivot``.
    A learned comparator need not be a total order, hence the random pivots (paper Sec. 6.4).
    """
    out: list[int] = []
    stack: list[np.ndarray | int] = [np.arange(n)]
    while stack:
        part = stack.pop()
        if isinstance(part, (int, np.integer)):
            out.append(int(part))
            continue
        if len(part) == 0:
            continue
        if len(part) == 1:
            out.append(int(part[0]))
            continue
        p = int(part[int(rng.integers(len(part)))])
        rest = part[part != p]
        below = less(rest, p)
        # pushed in reverse so the lower part is emitted first
        stack.append(rest[~below])
        stack.append(p)
        stack.append(rest[below])
    return np.array(out, dtype=np.int64)
