"""gates-sampler: predictor-based neural architecture search (GATES++) with an ask/tell interface.

The core (:class:`GatesPredictorSearcher`) imports torch, numpy and scipy only. The framework
adapters load lazily: ``GatesSampler`` (Optuna, ``pip install 'gates-sampler[optuna]'``) and
``GatesSearcher`` (Ray Tune, ``pip install 'gates-sampler[ray]'``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gates_sampler.loop import run_search
    from gates_sampler.multi_objective import MultiObjectiveGatesSearcher
    from gates_sampler.searcher import GatesPredictorSearcher

__version__ = "0.1.0"
__all__ = [
    "GatesPredictorSearcher",
    "GatesSampler",
    "GatesSearcher",
    "MultiObjectiveGatesSearcher",
    "run_search",
    "__version__",
]

logging.getLogger("gates_sampler").addHandler(logging.NullHandler())

_LAZY = {
    "GatesSampler": ("gates_sampler.integrations.optuna", "optuna", "optuna"),
    "GatesSearcher": ("gates_sampler.integrations.ray_tune", "ray", "ray"),
}


def __getattr__(name: str) -> Any:
    # The core searcher imports torch; importing it on first use keeps `gates-nas --help` quick.
    if name == "GatesPredictorSearcher":
        from gates_sampler.searcher import GatesPredictorSearcher

        return GatesPredictorSearcher
    if name == "MultiObjectiveGatesSearcher":
        from gates_sampler.multi_objective import MultiObjectiveGatesSearcher

        return MultiObjectiveGatesSearcher
    if name == "run_search":
        from gates_sampler.loop import run_search

        return run_search
    if name in _LAZY:
        module, dist, extra = _LAZY[name]
        import importlib

        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == dist:
                raise ImportError(f"{name} needs {dist}: pip install 'gates-sampler[{extra}]'") from exc
            raise
        return getattr(mod, name)
    raise AttributeError(f"module 'gates_sampler' has no attribute {name!r}")
