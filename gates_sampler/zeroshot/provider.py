"""``ZeroShotProvider``: zero-shot features for the GATES++ predictor, computed once and cached.

The predictor consumes two things (paper Sec. 5):

* ``op_features(archs)``: per cell, a tensor shaped like ``CellBatch.op_features`` holding the 6-dim
  vector (grad_norm, plain, snip, synflow, params, flops) of every op of the cell description
  (EES); parameter-free ops and missing edges are all zeros.
* ``arch_features(archs)``: ``[B, 5]`` (relu_logdet and the network sums of grad_norm, plain, snip,
  synflow), the auxiliary regression target (ETS).

Raw values of some metrics span many orders of magnitude (synflow 0..1e10 on the NB201 proxy
network and 1e30+ at full size, flops 1e4..1e5 per op), so those dimensions go through
``sign(x) * log1p(|x|)``; then every dimension is standardised with statistics of a fixed, seeded
reference sample of the space (parametric ops only, so that parameter-free ops stay exactly zero).
Which dimensions are log-transformed was chosen by measurement (scripts/zeroshot_scaling.py,
3000 NB201 cells): the transform that gives the smaller |skewness|. Per-op metrics are all
log-transformed; of the architecture-level ones only synflow (relu_logdet is already a log, and
log1p skews the network sums of grad_norm / snip / plain). The statistics are part of the
provider's state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gates_sampler.networks import build_network, network_config_keys
from gates_sampler.spaces import SPACE_ALIASES
from gates_sampler.spaces.base import Arch, SearchSpace
from gates_sampler.utils import resolve_device
from gates_sampler.zeroshot.cache import ZeroShotCache
from gates_sampler.zeroshot.metrics import (
    ARCH_METRICS,
    METRIC_VERSION,
    OP_METRICS,
    ZeroShotResult,
    compute_zeroshot,
    synthetic_batch,
)
from gates_sampler.zeroshot.table import ZeroShotTable, bundled_table

logger = logging.getLogger("gates_sampler")

#: network / batch presets per space. "proxy" is a smaller network measured to keep the ranking of
#: the full-size metrics (scripts/zeroshot_proxy.py); "full" is the benchmark's own network.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "nb201": {
        "proxy": {"network": {"C": 8, "N": 1}, "batch_size": 16, "image_size": 16},
        "full": {"network": {"C": 16, "N": 5}, "batch_size": 64, "image_size": 32},
    },
    "darts": {
        "proxy": {"network": {"C": 16, "layers": 5}, "batch_size": 16, "image_size": 16},
        "full": {"network": {"C": 32, "layers": 8}, "batch_size": 64, "image_size": 32},
    },
    "nb101": {
        "proxy": {"network": {"C": 16, "N": 1}, "batch_size": 16, "image_size": 16},
        "full": {"network": {"C": 128, "N": 3}, "batch_size": 64, "image_size": 32},
    },
}


@dataclass(frozen=True)
class ZeroShotSettings:
    """The proxy network and batch the metrics are computed on: part of every cached result's key.

    The defaults reproduce the table that ships for NAS-Bench-201; change them only to study the metrics.

    Args:
        preset: ``"proxy"`` (default, a smaller network measured to keep the full-size ranking) or
            ``"full"`` (the benchmark's network, 32x32 images, batch 64).
        batch_size, image_size: override the preset's synthetic batch.
        n_reference: architectures of the seeded reference sample that fix the standardisation.
        network: network options passed to ``build_network`` (e.g. ``C``, ``N``, ``layers``,
            ``num_classes``); they override the preset.
    """

    preset: str = "proxy"
    batch_size: int | None = None
    image_size: int | None = None
    n_reference: int = 64
    network: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.n_reference, int) or self.n_reference < 2:
            raise ValueError(f"n_reference must be an int >= 2, got {self.n_reference!r}")
        for name in ("batch_size", "image_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")


#: which per-op / architecture-level dimensions are log-transformed (see the module docstring)
OP_LOG = np.array([True, True, True, True, True, True])  # grad_norm, plain, snip, synflow, params, flops
ARCH_LOG = np.array([False, False, False, False, True])  # relu_logdet, grad_norm, plain, snip, synflow


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``: compresses magnitudes, keeps sign and zero."""
    return np.sign(x) * np.log1p(np.abs(x))


def _log_some(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, signed_log1p(x), x)


class ZeroShotProvider:
    """Computes, caches and scales GATES++ zero-shot features for architectures of one space.

    Args:
        space: the search space (``nb201``, ``darts`` or ``nb101``; ``build_network`` must support it).
        cache: ``None`` for the default file (``$GATES_SAMPLER_CACHE`` or
            ``~/.cache/gates-sampler/zeroshot.sqlite``), a path, a :class:`ZeroShotCache`, or ``False``
            to keep results in memory only.
        batch: ``None`` for a fixed seeded synthetic batch (no dataset needed), a tensor of images
            ``[B, C, H, W]`` (labels are then drawn from ``seed``), or an ``(images, labels)`` pair.
        seed: seeds the synthetic batch, the network initialisation and the reference sample.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ...
        progress: show a progress bar when computing missing values.
        table: precomputed results read before the cache: ``None`` (default) for the table shipped
            with the package when one matches this configuration (all of NAS-Bench-201 for the
            default settings), a path of a table written by ``gates-nas precompute-zeroshot
            --export``, a :class:`ZeroShotTable`, or ``False`` for none.
        settings: the network and batch the metrics are computed on (:class:`ZeroShotSettings`).
    """

    op_feature_dim = len(OP_METRICS)
    arch_feature_dim = len(ARCH_METRICS)

    def __init__(
        self,
        space: SearchSpace,
        cache: str | os.PathLike | ZeroShotCache | bool | None = None,
        batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "auto",
        progress: bool = False,
        table: str | os.PathLike | ZeroShotTable | bool | None = None,
        settings: ZeroShotSettings | None = None,
    ) -> None:
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space must be a SearchSpace instance, got {type(space).__name__}")
        name = SPACE_ALIASES.get(space.name, space.name)
        if name not in PRESETS:
            raise ValueError(
                f"zero-shot features need a network for the space; supported: {sorted(PRESETS)}, got {space.name!r}"
            )
        if settings is None:
            settings = ZeroShotSettings()
        elif not isinstance(settings, ZeroShotSettings):
            raise TypeError(f"settings must be a ZeroShotSettings, got {type(settings).__name__}")
        preset, network = settings.preset, settings.network
        if preset not in PRESETS[name]:
            raise ValueError(f"preset must be one of {sorted(PRESETS[name])}, got {preset!r}")
        allowed = network_config_keys(space)
        unknown = sorted(set(network) - set(allowed))
        if unknown:
            raise ValueError(f"unknown network option(s) {unknown} for {space.name}; allowed: {allowed}")
        p = PRESETS[name][preset]
        self.space = space
        self.settings = settings
        self.preset = preset
        self.network_config: dict[str, Any] = {"num_classes": 10, **p["network"], **network}
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.progress = progress
        self.n_reference = settings.n_reference
        self.x, self.y, batch_desc = self._make_batch(
            batch, settings.batch_size or p["batch_size"], settings.image_size or p["image_size"]
        )
        self.description = {
            "space": space.name,
            "network": self.network_config,
            "batch": batch_desc,
            "seed": self.seed,
            "metric_version": METRIC_VERSION,
        }
        self.config_key = hashlib.sha1(json.dumps(self.description, sort_keys=True).encode()).hexdigest()[:16]
        if cache is False:
            self.cache: ZeroShotCache | None = None
        elif isinstance(cache, ZeroShotCache):
            self.cache = cache
        elif cache is None or cache is True:
            self.cache = ZeroShotCache()
        else:
            self.cache = ZeroShotCache(cache)
        self.table = self._resolve_table(table)
        self._memo: dict[str, ZeroShotResult] = {}
        #: standardisation statistics (filled lazily from the reference sample)
        self.feature_stats: dict[str, list[float]] | None = None

    # ----- set-up -------------------------------------------------------------------------------
    def _resolve_table(self, table: Any) -> ZeroShotTable | None:
        if table is None or table is True:
            found = bundled_table(self.space.name, self.config_key)
            if found is None and table is True:
                raise ValueError(
                    f"no zero-shot table is bundled for {self.space.name!r} with config {self.config_key}; pass a path"
                )
            return found
        if table is False:
            return None
        t = table if isinstance(table, ZeroShotTable) else ZeroShotTable(table)
        if t.space != self.space.name or t.config_key != self.config_key:
            raise ValueError(
                f"zero-shot table {str(t.path)!r} holds space {t.space!r} config {t.config_key} ({t.description}); "
                f"this provider computes space {self.space.name!r} config {self.config_key} ({self.description})"
            )
        return t

    def _make_batch(self, batch: Any, batch_size: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        nc = int(self.network_config["num_classes"])
        in_ch = int(self.network_config.get("in_channels", 3))
        if batch is None:
            x, y = synthetic_batch(batch_size, image_size, in_ch, nc, seed=self.seed)
            return x, y, {"synthetic": True, "batch_size": batch_size, "image_size": image_size, "in_channels": in_ch}
        if isinstance(batch, torch.Tensor):
            x = batch
            y = torch.randint(0, nc, (x.shape[0],), generator=torch.Generator().manual_seed(self.seed))
        elif isinstance(batch, (tuple, list)) and len(batch) == 2:
            x, y = torch.as_tensor(batch[0]), torch.as_tensor(batch[1])
        else:
            raise ValueError("batch must be None, an image tensor [B, C, H, W] or an (images, labels) pair")
        if x.ndim != 4 or x.shape[1] != in_ch or x.shape[0] < 2:
            raise ValueError(f"batch images must be shaped [B>=2, {in_ch}, H, W], got {tuple(x.shape)}")
        if (
            y.shape != (x.shape[0],)
            or y.dtype not in (torch.int64, torch.int32)
            or int(y.min()) < 0
            or int(y.max()) >= nc
        ):
            raise ValueError(
                f"batch labels must be {x.shape[0]} integers in [0, {nc}), got shape {tuple(y.shape)} dtype {y.dtype}"
            )
        x, y = x.detach().float().cpu().contiguous(), y.detach().long().cpu()
        digest = hashlib.sha1(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
        return x, y, {"synthetic": False, "sha1": digest, "shape": list(x.shape)}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_memo"] = {}  # recomputable from the cache; keeps pickles small
        state["device"] = str(self.device)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.device = (
            resolve_device(state["device"])
            if state["device"] != "cuda" or torch.cuda.is_available()
            else torch.device("cpu")
        )

    # ----- raw results --------------------------------------------------------------------------
    def _key(self, arch: Arch) -> str:
        return str(arch)

    def compute_one(self, arch: Arch) -> ZeroShotResult:
        """Compute (no cache) the raw zero-shot values of one architecture."""
        arch = self.space.coerce(arch)
        # one torch thread: these networks are small, and on a busy machine several OpenMP threads
        # spin-wait far longer than they compute; parallelism comes from worker processes instead
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return compute_zeroshot(
                lambda: build_network(self.space, arch, **self.network_config),
                self.x,
                self.y,
                seed=self.seed,
                device=self.device,
            )
        finally:
            torch.set_num_threads(threads)

    def results(self, archs: Sequence[Arch | str]) -> list[ZeroShotResult]:
        """Raw :class:`ZeroShotResult` of every architecture, computing and caching what is missing."""
        coerced = [self.space.coerce(a) for a in archs]
        keys = [self._key(a) for a in coerced]
        missing = {k: a for k, a in zip(keys, coerced) if k not in self._memo}
        if missing:
            # one lookup path for every source: memo, table, cache, then computation
            self.precompute(list(missing.values()), jobs=1, progress=self.progress)
        return [self._memo[k] for k in keys]

    def precompute(
        self, archs: Iterable[Arch | str], jobs: int | None = None, progress: bool = True, chunk: int = 64
    ) -> int:
        """Compute and store the values of ``archs`` not cached yet; return how many were computed.

        Args:
            jobs: worker processes (``None``: all cores), each with one torch thread. Ignored on CUDA.
            progress: show a tqdm progress bar.
            chunk: results written to the cache per transaction.
        """
        coerced = [self.space.coerce(a) for a in archs]
        todo: dict[str, Arch] = {}
        for a in coerced:
            key = self._key(a)
            if key not in self._memo:
                todo.setdefault(key, a)
        # stored values first: the read-only table, then the shared cache
        if todo and self.table is not None:
            self._adopt(self.table.get_many(todo), todo)
        if todo and self.cache is not None:
            self._adopt(self.cache.get_many(self.space.name, self.config_key, list(todo)), todo)
        if not todo:
            return 0
        jobs = os.cpu_count() or 1 if jobs is None else int(jobs)
        if jobs < 1:
            raise ValueError(f"jobs must be a positive int or None (all cores), got {jobs}")
        if self.device.type != "cpu":
            jobs = 1
        jobs = min(jobs, len(todo))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=f"zero-shot {self.space.name}", unit="arch")
        pending: dict[str, ZeroShotResult] = {}

        def done(key: str, result: ZeroShotResult) -> None:
            self._memo[key] = result
            pending[key] = result
            if bar is not None:
                bar.update(1)
            if len(pending) >= chunk:
                self._flush(pending)

        items = list(todo.items())
        try:
            if jobs == 1:
                for k, a in items:
                    done(k, self.compute_one(a))
            else:
                ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
                with ctx.Pool(jobs, initializer=_init_worker, initargs=(self,)) as pool:
                    for k, data in pool.imap_unordered(_work, [(k, str(a)) for k, a in items], chunksize=4):
                        done(k, ZeroShotResult.from_json(data))
        finally:
            self._flush(pending)
            if bar is not None:
                bar.close()
        return len(items)

    def _adopt(self, found: dict[str, ZeroShotResult], todo: dict[str, Arch]) -> None:
        self._memo.update(found)
        for k in found:
            todo.pop(k)

    def _flush(self, pending: dict[str, ZeroShotResult]) -> None:
        if pending and self.cache is not None:
            self.cache.put_many(self.space.name, self.config_key, dict(pending), self.description)
        pending.clear()

    # ----- scaled features ----------------------------------------------------------------------
    def _ensure_stats(self) -> dict[str, list[float]]:
        if self.feature_stats is None:
            ref = self.space.sample_unique(np.random.default_rng(self.seed), self.n_reference)
            res = self.results(ref)
            ops = np.array([v for r in res for v in r.ops.values() if v[4] > 0], dtype=np.float64).reshape(
                -1, self.op_feature_dim
            )
            arch = np.array([r.arch for r in res], dtype=np.float64)
            ops, arch = _log_some(ops, OP_LOG), _log_some(arch, ARCH_LOG)

            def std(a: np.ndarray) -> list[float]:
                s = a.std(0) if len(a) > 1 else np.ones(a.shape[1])
                return [float(v) if v > 1e-8 else 1.0 for v in s]

            self.feature_stats = {
                "op_mean": [float(v) for v in (ops.mean(0) if len(ops) else np.zeros(self.op_feature_dim))],
                "op_std": std(ops) if len(ops) else [1.0] * self.op_feature_dim,
                "arch_mean": [float(v) for v in arch.mean(0)],
                "arch_std": std(arch),
            }
        return self.feature_stats

    def _scale_ops(self, v: np.ndarray) -> np.ndarray:
        st = self._ensure_stats()
        return (_log_some(v, OP_LOG) - np.asarray(st["op_mean"])) / np.asarray(st["op_std"])

    def op_features(self, archs: Sequence[Arch | str]) -> list[torch.Tensor]:
        """Per-op features, one float32 tensor per cell shaped like ``CellBatch.op_features``:
        ``[B, V, V, D, 6]`` (edge spaces, indexed ``[b, dst, src, slot]`` as ``space.encode``) or
        ``[B, V, 6]`` (node spaces, indexed by vertex). Parameter-free ops and empty slots are zero."""
        res = self.results(archs)
        b, v, f = len(res), self.space.max_nodes, self.op_feature_dim
        if self.space.kind == "edge":
            d = int(getattr(self.space, "max_edges_per_pair", 1))
            out = [torch.zeros(b, v, v, d, f) for _ in self.space.cell_names]
        else:
            out = [torch.zeros(b, v, f)]
        # Gather every parametrised op of the batch first, then scale and scatter them in one go:
        # scaling and copying op by op was 3x slower on large batches (e.g. a 7812-cell test set).
        rows: list[Any] = []
        where: list[tuple[int, ...]] = []
        for i, r in enumerate(res):
            for key, vals in r.ops.items():
                if vals[4] <= 0:
                    continue  # parameter-free op: stays the zero vector (paper Sec. 5.1)
                rows.append(vals)
                where.append((i, *key))
        if rows:
            scaled = torch.as_tensor(self._scale_ops(np.asarray(rows, dtype=np.float64)), dtype=torch.float32)
            idx = np.asarray(where, dtype=np.int64)
            if self.space.kind == "edge":
                for c in range(len(out)):
                    sel = idx[:, 1] == c
                    if sel.any():
                        batch_i, _, dst, src, slot = (torch.as_tensor(col) for col in idx[sel].T)
                        out[c][batch_i, dst, src, slot] = scaled[torch.as_tensor(sel)]
            else:
                out[0][torch.as_tensor(idx[:, 0]), torch.as_tensor(idx[:, 2])] = scaled
        return out

    def arch_features(self, archs: Sequence[Arch | str]) -> np.ndarray:
        """``[B, 5]`` architecture-level targets: relu_logdet, grad_norm, plain, snip, synflow."""
        res = self.results(archs)
        a = np.array([r.arch for r in res], dtype=np.float64).reshape(len(res), self.arch_feature_dim)
        st = self._ensure_stats()
        return (_log_some(a, ARCH_LOG) - np.asarray(st["arch_mean"])) / np.asarray(st["arch_std"])

    def __repr__(self) -> str:
        return (
            f"ZeroShotProvider({self.space!r}, preset={self.preset!r}, "
            f"network={self.network_config}, cache={self.cache!r})"
        )


# ----- worker processes ---------------------------------------------------------------------------
_WORKER: ZeroShotProvider | None = None


def _init_worker(provider: ZeroShotProvider) -> None:
    global _WORKER
    torch.set_num_threads(1)  # one process per core; more threads would oversubscribe
    _WORKER = provider


def _work(item: tuple[str, str]) -> tuple[str, dict]:
    key, text = item
    assert _WORKER is not None
    return key, _WORKER.compute_one(_WORKER.space.parse(text)).to_json()
