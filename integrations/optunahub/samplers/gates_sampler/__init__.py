"""GATES++ predictor-based neural architecture search as an Optuna sampler.

The implementation lives in the ``gates-sampler`` package on PyPI (``pip install 'gates-sampler[optuna]'``);
this registry package only re-exports its public names.
"""

from gates_sampler import GatesSampler
from gates_sampler.spaces import CellSpace, DartsSpace, NB101Space, NB201Space

__all__ = ["CellSpace", "DartsSpace", "GatesSampler", "NB101Space", "NB201Space"]
