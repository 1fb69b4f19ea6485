"""The Gaussian process on predictor features and expected improvement (acquisition="ei")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gates_sampler.predictor.gp import expected_improvement, fit_feature_gp


def test_gp_interpolates_and_is_unsure_away_from_the_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(40, 3))
    y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + 100.0  # an offset the standardisation must undo
    gp = fit_feature_gp(x, y)
    mean, std = gp.predict(x)
    assert np.abs(mean - y).max() < 0.05
    test = rng.uniform(-1, 1, size=(200, 3))
    t_mean, _ = gp.predict(test)
    truth = np.sin(2 * test[:, 0]) + 0.5 * test[:, 1] ** 2 + 100.0
    assert np.corrcoef(t_mean, truth)[0, 1] > 0.95
    _, far_std = gp.predict(np.full((1, 3), 10.0))
    assert far_std[0] > 5 * std.max()  # far from every evaluated point the process knows little


def test_gp_refuses_bad_inputs():
    with pytest.raises(ValueError, match="n >= 2"):
        fit_feature_gp(np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="shapes"):
        fit_feature_gp(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        fit_feature_gp(np.zeros((3, 2)), np.array([0.0, np.nan, 1.0]))


def test_gp_with_constant_values_or_features_still_predicts():
    gp = fit_feature_gp(np.zeros((5, 2)), np.arange(5.0))
    mean, std = gp.predict(np.zeros((2, 2)))
    assert np.allclose(mean, 2.0, atol=1e-6) and np.isfinite(std).all()
    mean, _ = fit_feature_gp(np.random.default_rng(0).normal(size=(5, 2)), np.full(5, 3.0)).predict(np.ones((1, 2)))
    assert mean[0] == pytest.approx(3.0)


def test_expected_improvement_matches_its_integral():
    rng = np.random.default_rng(1)
    for mean, std, best in [(0.0, 1.0, 0.0), (1.0, 0.5, 1.5), (-2.0, 3.0, 0.3)]:
        draws = rng.normal(mean, std, size=400_000)
        mc = np.maximum(draws - best, 0.0).mean()
        assert expected_improvement(np.array([mean]), np.array([std]), best)[0] == pytest.approx(mc, rel=0.02)
    assert expected_improvement(np.array([0.0]), np.array([1.0]), 0.0)[0] == pytest.approx(stats.norm.pdf(0.0))
    assert expected_improvement(np.array([0.0]), np.array([1.0]), 0.0)[0] == pytest.approx(1 / math.sqrt(2 * math.pi))
    # a more uncertain candidate with the same mean is worth more; so is a higher mean with the same spread
    ei = expected_improvement(np.array([0.0, 0.0, 0.5]), np.array([0.1, 1.0, 0.1]), 0.2)
    assert ei[1] > ei[0] and ei[2] > ei[0]


def test_hyperparameters_from_a_subset_and_a_posterior_on_every_point():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(120, 2))
    y = np.cos(3 * x[:, 0]) + x[:, 1]
    full = fit_feature_gp(x, y)
    assert fit_feature_gp(x, y, max_fit_points=120).lengthscales == pytest.approx(full.lengthscales)
    capped = fit_feature_gp(x, y, max_fit_points=30)
    mean, _ = capped.predict(x)
    assert np.abs(mean - y).max() < 0.05  # every point conditions the posterior, not only the 30
    assert capped.alpha.shape == (120,)


def test_conditioning_on_a_believed_value_keeps_the_mean_and_shrinks_the_uncertainty():
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, size=(30, 2))
    gp = fit_feature_gp(x, np.sin(3 * x[:, 0]) + x[:, 1])
    new = np.array([[0.9, -0.9], [2.0, 2.0]])
    mean, std = gp.predict(new)
    believed = gp.condition(new[1:], mean[1:])
    after_mean, after_std = believed.predict(new)
    assert after_mean[1] == pytest.approx(mean[1], abs=1e-6)
    assert after_std[1] < 0.2 * std[1] and after_std[0] <= std[0] + 1e-12
    assert believed.lengthscales == pytest.approx(gp.lengthscales) and len(believed.ys) == 31


def test_a_value_with_a_known_large_noise_barely_moves_the_process():
    """``noise=``: per-point variance on top of the fitted noise. Two points at the same input disagree;
    the one declared noisy (variance 100 in value units) must hardly pull the mean, the other (no extra
    noise) must set it; without the declaration the outlier pulls the mean up."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(30, 2))
    y = x[:, 0] + 0.3 * x[:, 1]
    probe = np.array([[0.2, -0.4]])
    truth = 0.2 - 0.12
    xs = np.vstack([x, probe, probe])
    ys = np.concatenate([y, [truth, truth + 5.0]])
    noisy = np.concatenate([np.zeros(31), [100.0]])
    mean_declared = fit_feature_gp(xs, ys, noise=noisy).predict(probe)[0][0]
    mean_plain = fit_feature_gp(xs, ys).predict(probe)[0][0]
    assert abs(mean_declared - truth) < 0.02
    assert mean_plain > truth + 0.2
    gp = fit_feature_gp(xs, ys, noise=noisy)
    # conditioning on a believed point keeps the declared noise of the old points
    believed = gp.condition(np.array([[0.9, 0.9]]), gp.predict(np.array([[0.9, 0.9]]))[0])
    assert believed.predict(probe)[0][0] == pytest.approx(mean_declared, abs=1e-3)
    for bad in (np.zeros(5), np.full(32, -1.0), np.concatenate([np.zeros(31), [np.nan]])):
        with pytest.raises(ValueError, match="noise must be"):
            fit_feature_gp(xs, ys, noise=bad)
