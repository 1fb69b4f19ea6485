"""GATES / GATES++ performance predictors, ranking losses and fitting."""

from gates_sampler.predictor.encoder import GatesEncoder, GatesLayer, MLPEncoder
from gates_sampler.predictor.factory import FeatureProvider, make_predictor
from gates_sampler.predictor.losses import LOSSES
from gates_sampler.predictor.model import ENCODERS, Predictor, PredictorSettings

__all__ = [
    "ENCODERS",
    "FeatureProvider",
    "GatesEncoder",
    "GatesLayer",
    "LOSSES",
    "MLPEncoder",
    "Predictor",
    "PredictorSettings",
    "make_predictor",
]
