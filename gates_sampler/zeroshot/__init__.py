"""Zero-shot metrics of real networks and their on-disk cache (GATES++ Sec. 5).

``ZeroShotProvider`` is the public entry point: per-op features for the encoder (EES) and
architecture-level targets for the auxiliary head (ETS), computed once per architecture and cached,
or read from a precomputed ``ZeroShotTable`` (one ships for all of NAS-Bench-201).
"""

from gates_sampler.zeroshot.cache import ZeroShotCache, default_cache_path
from gates_sampler.zeroshot.cost import CellCostFeatures
from gates_sampler.zeroshot.metrics import (
    ARCH_METRICS,
    METRIC_VERSION,
    OP_METRICS,
    ZeroShotResult,
    compute_zeroshot,
    synthetic_batch,
)
from gates_sampler.zeroshot.provider import PRESETS, ZeroShotProvider, ZeroShotSettings
from gates_sampler.zeroshot.table import ZeroShotTable, write_table

__all__ = [
    "ARCH_METRICS",
    "CellCostFeatures",
    "METRIC_VERSION",
    "OP_METRICS",
    "PRESETS",
    "ZeroShotCache",
    "ZeroShotProvider",
    "ZeroShotResult",
    "ZeroShotSettings",
    "ZeroShotTable",
    "compute_zeroshot",
    "default_cache_path",
    "synthetic_batch",
    "write_table",
]
