"""A Gaussian process on a trained predictor's features, for expected-improvement acquisition.

The ranking predictor orders candidates well but says nothing about how sure it is. A Gaussian process
whose inputs are the predictor's learned features (the score head's last hidden layer) turns those
features into a mean and a variance for every candidate, and expected improvement over the best value
so far then trades a high prediction against an uncertain one (deep-kernel / DNGO-style Bayesian
optimisation). The process is small: one input per evaluated cell, three hyperparameters fitted by
maximum marginal likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize, special

__all__ = ["FeatureGP", "expected_improvement", "fit_feature_gp"]

_SQRT5 = math.sqrt(5.0)
# log-hyperparameter bounds on standardised data: each block's lengthscale, signal and noise variance
_LENGTHSCALE_BOUNDS = (math.log(0.05), math.log(20.0))
_VARIANCE_BOUNDS = (math.log(0.05), math.log(20.0))
_NOISE_BOUNDS = (math.log(1e-4), math.log(1.0))


def _matern52(r: np.ndarray, variance: float) -> np.ndarray:
    s = _SQRT5 * r
    return variance * (1.0 + s + s * s / 3.0) * np.exp(-s)


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def _blocks(x: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    blocks = [np.asarray(x, dtype=np.float64)] if isinstance(x, np.ndarray) else [np.asarray(b, np.float64) for b in x]
    if not blocks or any(b.ndim != 2 or len(b) != len(blocks[0]) for b in blocks):
        raise ValueError(
            f"x must be an [n, d] array or a list of [n, d_i] arrays, got shapes {[b.shape for b in blocks]}"
        )
    return blocks


@dataclass
class FeatureGP:
    """A fitted Matern-5/2 Gaussian process; inputs are scaled as at fit time, values standardised."""

    x: list[np.ndarray]
    alpha: np.ndarray
    chol: np.ndarray
    lengthscales: np.ndarray
    variance: float
    noise: float
    x_mean: list[np.ndarray]
    x_scale: list[float]
    y_mean: float
    y_std: float
    ys: np.ndarray  # the standardised values the posterior conditions on
    extra: np.ndarray  # per-point noise variance on top of ``noise`` (standardised units; 0 when measured)

    def _r(self, x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        blocks = _blocks(x)
        if len(blocks) != len(self.x):
            raise ValueError(f"expected {len(self.x)} feature block(s), got {len(blocks)}")
        d2 = sum(
            _sq_distances((b - m) / s, t) / ls**2
            for b, m, s, t, ls in zip(blocks, self.x_mean, self.x_scale, self.x, self.lengthscales)
        )
        return np.sqrt(d2)

    def predict(self, x: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the (noise-free) value at each row of ``x`` (the same
        blocks as at fit time), in the units of the values the process was fitted on."""
        k = _matern52(self._r(x), self.variance)
        mean = k @ self.alpha
        v = linalg.solve_triangular(self.chol, k.T, lower=True)
        var = np.maximum(self.variance - (v * v).sum(0), 1e-12)
        return self.y_mean + self.y_std * mean, self.y_std * np.sqrt(var)

    def condition(self, x: np.ndarray | Sequence[np.ndarray], y: np.ndarray) -> FeatureGP:
        """The process with the points ``x`` (same blocks as at fit time) observed at values ``y`` added,
        hyperparameters and scaling kept: e.g. a batch's earlier picks at their predicted means (the
        kriging believer), so that the next pick is not their neighbour for the same reason."""
        blocks = [(b - m) / s for b, m, s in zip(_blocks(x), self.x_mean, self.x_scale)]
        xs = [np.vstack([t, b]) for t, b in zip(self.x, blocks)]
        ys = np.concatenate([self.ys, (np.asarray(y, dtype=np.float64) - self.y_mean) / self.y_std])
        r = np.sqrt(sum(_sq_distances(b, b) / ls**2 for b, ls in zip(xs, self.lengthscales)))
        extra = np.concatenate([self.extra, np.zeros(len(ys) - len(self.extra))])  # believed points: no extra
        chol = linalg.cholesky(_matern52(r, self.variance) + np.diag(self.noise + 1e-8 + extra), lower=True)
        alpha = linalg.cho_solve((chol, True), ys)
        return FeatureGP(
            xs,
            alpha,
            chol,
            self.lengthscales,
            self.variance,
            self.noise,
            self.x_mean,
            self.x_scale,
            self.y_mean,
            self.y_std,
            ys,
            extra,
        )


#: at most this many points enter the marginal likelihood that sets the hyperparameters (the posterior
#: uses every point): each likelihood evaluation costs a Cholesky factorisation, cubic in the points
MAX_FIT_POINTS = 256


def fit_feature_gp(
    x: np.ndarray | Sequence[np.ndarray],
    y: np.ndarray,
    *,
    max_fit_points: int = MAX_FIT_POINTS,
    noise: np.ndarray | None = None,
) -> FeatureGP:
    """Fit a Gaussian process to values ``y`` (``[n]``) at inputs ``x``: one ``[n, d]`` array, or a list of
    blocks ``[n, d_i]`` (e.g. learned features and a one-hot encoding), each with its own lengthscale.

    Each block is centred and scaled by one common factor (the root mean square norm of its centred rows:
    unit-scale distances, the relative weight of its columns kept); values are standardised. The
    lengthscales, signal and noise variance maximise the marginal likelihood (L-BFGS-B within fixed
    bounds, from two starting points) of at most ``max_fit_points`` points, evenly spaced in the order
    given; the posterior then conditions on all of them. That keeps a fit to 1,000 results about as
    fast as one to 256 (README, "Large spaces").

    ``noise`` (``[n]``, in the units of ``y``): a known variance of each value on top of the fitted
    noise, e.g. of values extrapolated rather than measured; such points inform the process less."""
    blocks = _blocks(x)
    y = np.asarray(y, dtype=np.float64)
    n = len(blocks[0])
    if y.shape != (n,) or n < 2:
        raise ValueError(f"need x with n >= 2 rows and y [n], got shapes {[b.shape for b in blocks]} and {y.shape}")
    if not (all(np.isfinite(b).all() for b in blocks) and np.isfinite(y).all()):
        raise ValueError("features and values must be finite")
    means = [b.mean(0) for b in blocks]
    scales = []
    for b, m in zip(blocks, means):
        rms = float(np.sqrt(((b - m) ** 2).sum(1).mean()))
        scales.append(rms if rms > 0 else 1.0)
    xs = [(b - m) / s for b, m, s in zip(blocks, means, scales)]
    d2s = [_sq_distances(b, b) for b in xs]
    y_mean, y_std = float(y.mean()), float(y.std())
    y_std = y_std if y_std > 0 else 1.0
    ys = (y - y_mean) / y_std
    if noise is None:
        extra = np.zeros(n)
    else:
        extra = np.asarray(noise, dtype=np.float64)
        if extra.shape != (n,) or not np.isfinite(extra).all() or (extra < 0).any():
            raise ValueError(f"noise must be [n] finite non-negative variances, got shape {extra.shape}")
        extra = extra / y_std**2
    nb = len(blocks)
    sub = np.unique(np.linspace(0, n - 1, min(n, max(2, int(max_fit_points)))).round().astype(int))

    def kernel(theta: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        ls, var, noise = np.exp(theta[:nb]), math.exp(theta[nb]), math.exp(theta[nb + 1])
        parts = d2s if idx is None else [d2[np.ix_(idx, idx)] for d2 in d2s]
        r = np.sqrt(sum(d2 / lb**2 for d2, lb in zip(parts, ls)))
        return _matern52(r, var) + np.diag(noise + 1e-8 + (extra if idx is None else extra[idx]))

    def nll(theta: np.ndarray) -> float:
        try:
            c = linalg.cholesky(kernel(theta, sub), lower=True)
        except linalg.LinAlgError:
            return 1e10
        a = linalg.cho_solve((c, True), ys[sub])
        return float(0.5 * ys[sub] @ a + np.log(np.diag(c)).sum())

    bounds = [_LENGTHSCALE_BOUNDS] * nb + [_VARIANCE_BOUNDS, _NOISE_BOUNDS]
    best: optimize.OptimizeResult | None = None
    for ls0, noise0 in ((1.0, 0.1), (0.3, 0.01)):
        start = np.log([ls0 * math.sqrt(nb)] * nb + [1.0, noise0])
        res = optimize.minimize(nll, start, method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    theta = best.x
    chol = linalg.cholesky(kernel(theta), lower=True)
    alpha = linalg.cho_solve((chol, True), ys)
    return FeatureGP(
        xs,
        alpha,
        chol,
        np.exp(theta[:nb]),
        math.exp(theta[nb]),
        math.exp(theta[nb + 1]),
        means,
        scales,
        y_mean,
        y_std,
        ys,
        extra,
    )


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Expected improvement over ``best`` of values with Gaussian ``mean`` and ``std`` (maximisation)."""
    std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)
    z = (np.asarray(mean, dtype=np.float64) - best) / std
    return std * (z * special.ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi))
