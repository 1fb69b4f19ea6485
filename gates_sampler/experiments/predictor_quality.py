"""Predictor-quality harness on NAS-Bench-201 and NAS-Bench-301 (paper Sec. 6.1-6.2).

Protocol: the 15625 NAS-Bench-201 cells are split into a 7813-cell training pool and a 7812-cell test
set, by a fixed seed or, as in the paper, by NAS-Bench-201's index order (the first 7813 train). For
every training ratio, ``n_subsets`` random subsets of the pool are drawn, and on each subset a
predictor is trained with each of the training seeds (the paper: 3 subsets x seeds 21, 2021, 202121,
200 epochs, pairwise hinge loss with margin 0.1). Each trained predictor ranks the whole
test set and is scored with

* Kendall's tau between predicted scores and true values, averaged over the test set scored after
  each of the last five epochs as in the paper (``tau_final``: after the last epoch only),
* N@K: the best true rank (1 = the test set's best cell) among the K cells predicted best,
* Precision@K: the fraction of the true top-K cells among the K cells predicted best.

On the DARTS space (NAS-Bench-301) there is no table: :func:`nb301_split` draws a seeded pool of
5896 random distinct cells (the size of the paper's NB301 training set) and a disjoint test set of
other random cells, all labelled by the NB301 surrogate (by default at epoch 98, the final result).

Typical use::

    split = nb201_split("cifar10")
    runs = evaluate_predictor(split, ratios=(0.01,), n_subsets=3, seeds=(21,), epochs=200)
    print(format_table(summarize(runs)))

``gates-nas eval-predictor`` is the command-line front end.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from gates_sampler.predictor.model import Predictor
from gates_sampler.spaces.base import Arch
from gates_sampler.spaces.nb201 import NB201Space
from gates_sampler.utils import check_ranking_pair, kendall_tau

logger = logging.getLogger("gates_sampler")

#: training-set sizes of the paper's Table 4 used by default (fractions of the training pool)
PAPER_RATIOS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.1)
#: the paper's training seeds (Sec. 6.2)
PAPER_SEEDS: tuple[int, ...] = (21, 2021, 202121)
#: size of the NAS-Bench-201 training pool ("the first 50 %"); the rest is the test set
NB201_POOL_SIZE = 7813

#: Kendall's tau on NAS-Bench-201 of the paper's Table 4 (mean of 9 runs), by training ratio
PAPER_TABLE4_NB201: dict[str, dict[float, float]] = {
    "mlp": {
        0.001: 0.0162,
        0.0025: 0.0703,
        0.005: 0.0863,
        0.0075: 0.1613,
        0.01: 0.1756,
        0.025: 0.2514,
        0.05: 0.3885,
        0.1: 0.5492,
        0.5: 0.8198,
        1.0: 0.8728,
    },
    "gates": {
        0.001: 0.4309,
        0.0025: 0.6087,
        0.005: 0.6702,
        0.0075: 0.7328,
        0.01: 0.7571,
        0.025: 0.8195,
        0.05: 0.8583,
        0.1: 0.8823,
        0.5: 0.9189,
        1.0: 0.9258,
    },
    "gates++": {
        0.001: 0.5020,
        0.0025: 0.6284,
        0.005: 0.7021,
        0.0075: 0.7404,
        0.01: 0.7729,
        0.025: 0.8331,
        0.05: 0.8664,
        0.1: 0.8848,
        0.5: 0.9116,
        1.0: 0.9210,
    },
}
#: size of the NAS-Bench-301 training pool (the paper's 5896 anchor architectures)
NB301_POOL_SIZE = 5896
#: default size of the NAS-Bench-301 test set (random DARTS cells outside the pool)
NB301_TEST_SIZE = 5000
#: Kendall's tau on NAS-Bench-301 of the paper's Table 4 (real anchor labels, not the surrogate's), by ratio
PAPER_TABLE4_NB301: dict[str, dict[float, float]] = {
    "mlp": {
        0.001: 0.1346,
        0.0025: 0.1901,
        0.005: 0.2758,
        0.0075: 0.3549,
        0.01: 0.4018,
        0.025: 0.4997,
        0.05: 0.5373,
        0.1: 0.5687,
        0.5: 0.6237,
        1.0: 0.6485,
    },
    "gates": {
        0.001: 0.1020,
        0.0025: 0.3144,
        0.005: 0.4889,
        0.0075: 0.5209,
        0.01: 0.5590,
        0.025: 0.6452,
        0.05: 0.7142,
        0.1: 0.7430,
        0.5: 0.7695,
        1.0: 0.7887,
    },
    "gates++": {
        0.001: 0.2285,
        0.0025: 0.4330,
        0.005: 0.5329,
        0.0075: 0.5713,
        0.01: 0.5833,
        0.025: 0.6545,
        0.05: 0.7048,
        0.1: 0.7333,
        0.5: 0.7785,
        1.0: 0.7858,
    },
}
#: named predictor settings (:class:`PredictorSettings` fields) the harness can compare
#: ``"default"``: the library's defaults (five 128-wide GATES layers, embeddings of 48), what a DARTS search
#: uses today. ``"paper-nb301"``: the paper's NAS-Bench-301 setting (Sec. 6.1): four 64-wide GATES layers and
#: operation embeddings of 32. The paper's information embedding of 32 has no separate knob here: the
#: learned input-node embeddings take the layer width, and the first layer's linear map makes a 32-wide
#: embedding neither more nor less expressive for the two input nodes. The mean of the intermediate nodes
#: is already the DARTS cell embedding (``DartsSpace``'s ``readout="mean"``).
PREDICTOR_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper-nb301": {"op_dim": 32, "hidden": 64, "n_layers": 4},
}
#: Kendall's tau of the paper's Table 7 (NAS-Bench-201 GATES++ ablation), by variant and ratio
PAPER_TABLE7_NB201: dict[str, dict[float, float]] = {
    "GATES": {0.005: 0.6702, 0.0075: 0.7328, 0.01: 0.7571, 0.025: 0.8195},
    "+EES": {0.005: 0.6913, 0.0075: 0.7322, 0.01: 0.7651, 0.025: 0.8310},
    "+ETS": {0.005: 0.6918, 0.0075: 0.7389, 0.01: 0.7770, 0.025: 0.8349},
    "GATES++": {0.005: 0.7021, 0.0075: 0.7404, 0.01: 0.7729, 0.025: 0.8331},
}
#: ablation variants: name -> (use op-level zero-shot features (EES), use the auxiliary head (ETS))
ABLATION_VARIANTS: dict[str, tuple[bool, bool]] = {
    "GATES": (False, False),
    "+EES": (True, False),
    "+ETS": (False, True),
    "GATES++": (True, True),
}


# ----- metrics ----------------------------------------------------------------------------------
def _check_k(k: int, n: int) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"K must be a positive int, got {k!r}")
    return min(int(k), n)


def true_ranks(true: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rank of every architecture by its true value: 1 = best; ties share the best (smallest) rank."""
    t = np.asarray(true, dtype=np.float64)
    return stats.rankdata(-t, method="min").astype(np.int64)


def _top_predicted(p: np.ndarray, k: int) -> np.ndarray:
    # stable sort so that equal predicted scores keep a deterministic order
    return np.argsort(-p, kind="stable")[:k]


def n_at_k(true: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray, k: int) -> int:
    """N@K: the best true rank (1 = best) among the K architectures with the highest predicted score."""
    t, p = check_ranking_pair(true, pred)
    k = _check_k(k, t.size)
    return int(true_ranks(t)[_top_predicted(p, k)].min())


def precision_at_k(true: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray, k: int) -> float:
    """Precision@K: the fraction of the true top-K architectures among the predicted top-K."""
    t, p = check_ranking_pair(true, pred)
    k = _check_k(k, t.size)
    true_top = set(np.argsort(-t, kind="stable")[:k].tolist())
    return len(true_top.intersection(_top_predicted(p, k).tolist())) / k


def ranking_metrics(
    true: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray, ks: Sequence[int] = (5, 10)
) -> dict[str, float]:
    """Kendall's tau plus N@K and Precision@K for every K in ``ks``, keyed ``"tau"``, ``"N@5"``, ``"P@5"``, ..."""
    out = {"tau": kendall_tau(true, pred)}
    for k in ks:
        out[f"N@{k}"] = float(n_at_k(true, pred, k))
    for k in ks:
        out[f"P@{k}"] = precision_at_k(true, pred, k)
    return out


# ----- data -------------------------------------------------------------------------------------
@dataclass
class PredictorSplit:
    """Architectures and true values of a training pool and a test set."""

    space: Any
    train_archs: list[Arch]
    train_values: np.ndarray
    test_archs: list[Arch]
    test_values: np.ndarray
    name: str = ""

    @property
    def pool_size(self) -> int:
        return len(self.train_archs)


def split_indices(n: int, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)`` into ``n_train`` training and ``n - n_train`` test indices."""
    if not 0 < n_train < n:
        raise ValueError(f"n_train must be between 1 and {n - 1}, got {n_train}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


SPLITS = ("random", "first")


def nb201_split(
    dataset: str = "cifar10",
    metric: str = "val_acc",
    seed: int = 0,
    pool_size: int = NB201_POOL_SIZE,
    split: str = "random",
) -> PredictorSplit:
    """All 15625 NAS-Bench-201 cells with their mean value over seeds, split into a ``pool_size``-cell
    training pool and a test set (the rest).

    ``split="random"`` splits by ``seed``; ``split="first"`` is the paper's split (Sec. 6.1): the first
    ``pool_size`` cells in NAS-Bench-201's index order train, the others test (``seed`` is then unused).
    """
    from gates_sampler.benchmarks.nb201 import NB201Benchmark

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    bench = NB201Benchmark(dataset, metric)
    space = NB201Space()
    # the random split permutes the space's enumeration order (as every number measured with it did)
    archs = bench.archs() if split == "first" else list(space.enumerate())
    values = bench.query_many(archs)
    if bench.direction == "minimize":
        values = -values  # the harness ranks "higher is better"
    if split == "first":
        if not 0 < pool_size < len(archs):
            raise ValueError(f"pool_size must be between 1 and {len(archs) - 1}, got {pool_size}")
        tr, te = np.arange(pool_size), np.arange(pool_size, len(archs))
    else:
        tr, te = split_indices(len(archs), pool_size, seed)
    name = f"nb201-{dataset}-{metric}" + ("-first" if split == "first" else "")
    return PredictorSplit(
        space=space,
        train_archs=[archs[i] for i in tr],
        train_values=values[tr],
        test_archs=[archs[i] for i in te],
        test_values=values[te],
        name=name,
    )


def nb301_split(
    path: str | None = None,
    seed: int = 0,
    pool_size: int = NB301_POOL_SIZE,
    test_size: int = NB301_TEST_SIZE,
    epoch: int = 98,
    benchmark: Any = None,
) -> PredictorSplit:
    """``pool_size + test_size`` random distinct DARTS cells labelled by the NAS-Bench-301 surrogate.

    The first ``pool_size`` cells drawn (by ``seed``) are the training pool, the next ``test_size`` the test
    set, so the two are disjoint (no two cells anywhere are isomorphic) and the same seed gives the same
    split. Values are the surrogate's validation accuracy (%) at ``epoch`` (98: the final result).

    Args:
        path: folder of the YAHPO ``nb301`` surrogate (see :class:`NB301Benchmark`).
        seed: seeds the draw of the cells.
        pool_size, test_size: sizes of the training pool and of the test set (each >= 2).
        epoch: the surrogate's fidelity, 1..98.
        benchmark: an :class:`NB301Benchmark` to label with instead of building one from ``path`` / ``epoch``.
    """
    from gates_sampler.benchmarks.nb301 import NB301Benchmark

    for name, size in (("pool_size", pool_size), ("test_size", test_size)):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
            raise ValueError(f"{name} must be an int >= 2, got {size!r}")
    bench = benchmark if benchmark is not None else NB301Benchmark(path=path, epoch=epoch)
    n = pool_size + test_size
    archs = bench.space.sample_unique(np.random.default_rng(seed), n)
    if len(archs) < n:  # ~10^18 DARTS cells: only a tiny custom space can run out
        raise ValueError(f"found only {len(archs)} distinct cells of the {n} asked for")
    values = np.asarray(bench.query_many(archs), dtype=np.float64)
    if bench.direction == "minimize":
        values = -values
    return PredictorSplit(
        space=bench.space,
        train_archs=archs[:pool_size],
        train_values=values[:pool_size],
        test_archs=archs[pool_size:],
        test_values=values[pool_size:],
        name=f"nb301-epoch{bench.epoch}-{bench.metric}",
    )


def train_size(pool_size: int, ratio: float) -> int:
    """Training-set size of a ratio of the pool, rounded down as the paper does (0.1 % of 7813 = 7), at least 2."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"training ratio must be in (0, 1], got {ratio!r}")
    return max(2, int(math.floor(pool_size * ratio + 1e-9)))


def draw_subset(pool_size: int, n: int, subset: int, seed: int = 0) -> np.ndarray:
    """Indices of training subset number ``subset`` of size ``n``; the same (seed, n, subset) always gives
    the same cells, so encoders and ablation variants are compared on identical training sets."""
    rng = np.random.default_rng([seed, n, subset])
    return np.sort(rng.choice(pool_size, size=n, replace=False))


# ----- zero-shot features -------------------------------------------------------------------------
def load_zero_shot(space: Any) -> Any:
    """A ``gates_sampler.zeroshot.ZeroShotProvider`` for ``space``; raises ``ImportError`` with a clear
    message when the zero-shot package is not available in this build."""
    try:
        from gates_sampler.zeroshot import ZeroShotProvider  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ImportError(
            "GATES++ needs zero-shot features (gates_sampler.zeroshot.ZeroShotProvider), which this build "
            f"does not provide ({exc}); use --encoder gates or mlp"
        ) from exc
    return ZeroShotProvider(space)


@dataclass
class _ZeroShotCache:
    """Zero-shot features of a list of architectures, computed once and indexed per run."""

    op: list[torch.Tensor] | None
    arch: np.ndarray | None

    def take(self, idx: np.ndarray) -> tuple[list[torch.Tensor] | None, np.ndarray | None]:
        t = torch.as_tensor(idx, dtype=torch.long)
        return (None if self.op is None else [f[t] for f in self.op]), (None if self.arch is None else self.arch[idx])


def _zero_shot_features(zs: Any, archs: list[Arch], need_op: bool, need_arch: bool) -> _ZeroShotCache:
    op = [torch.as_tensor(f, dtype=torch.float32) for f in zs.op_features(archs)] if need_op else None
    arch = np.asarray(zs.arch_features(archs), dtype=np.float64) if need_arch else None
    if arch is not None and arch.shape != (len(archs), int(zs.arch_feature_dim)):
        raise ValueError(
            f"ZeroShotProvider.arch_features returned shape {arch.shape}, "
            f"expected ({len(archs)}, {zs.arch_feature_dim})"
        )
    return _ZeroShotCache(op, arch)


# ----- runs -------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """One trained predictor evaluated on the test set."""

    variant: str
    ratio: float
    n_train: int
    subset: int
    seed: int
    metrics: dict[str, float]
    fit_seconds: float


def evaluate_predictor(
    split: PredictorSplit,
    ratios: Iterable[float] = PAPER_RATIOS,
    *,
    n_subsets: int = 3,
    seeds: Sequence[int] = PAPER_SEEDS,
    encoder: str = "gates",
    loss: str = "hinge",
    epochs: int = 200,
    ks: Sequence[int] = (5, 10),
    variants: Sequence[str] | None = None,
    zero_shot: Any = None,
    subset_seed: int = 0,
    device: str = "auto",
    predictor_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    on_result: Callable[[RunResult], None] | None = None,
    tau_epochs: int = 5,
    aux_pool: bool = False,
) -> list[RunResult]:
    """Train and test predictors for every (ratio, subset, seed[, variant]).

    Args:
        split: training pool and test set (see :func:`nb201_split`).
        ratios: training-set sizes as fractions of the pool.
        n_subsets: random training subsets per ratio.
        seeds: training seeds per subset (initialisation and minibatch order).
        encoder: ``"gates"``, ``"mlp"`` or ``"gates++"`` (GATES with both zero-shot schemes).
        loss: the ranking loss (see :class:`Predictor`).
        epochs: training epochs per fit.
        ks: the K of N@K and Precision@K.
        variants: names from :data:`ABLATION_VARIANTS` to run on identical subsets and seeds
            (the paper's Table 7 grid); ``None`` runs just ``encoder``.
        zero_shot: a ``ZeroShotProvider`` (needed by ``"gates++"`` and the zero-shot variants).
        subset_seed: seeds the draw of the training subsets.
        device: torch device for training.
        predictor_kwargs: further predictor options, constructor keywords or :class:`PredictorSettings`
            fields (e.g. ``arch_input=``, ``hidden=``, ``lr=``; see :meth:`Predictor.from_config`).
        progress: show a tqdm progress bar.
        on_result: called with each :class:`RunResult` as soon as it is available.
        tau_epochs: Kendall's tau is the mean over the test set scored after each of the last
            ``tau_epochs`` epochs (the paper records the mean of the last five; all epochs when there
            are fewer); the other metrics come from the final predictor.
        aux_pool: variants with the auxiliary head (ETS) also fit it on the zero-shot targets of the
            whole unlabeled training pool (``Predictor.fit(aux_archs=...)``), not only on the
            labeled subset.

    Returns:
        One :class:`RunResult` per trained predictor.
    """
    ratios = tuple(float(r) for r in ratios)
    if not ratios:
        raise ValueError("ratios must name at least one training ratio")
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be >= 1, got {n_subsets}")
    if tau_epochs < 1:
        raise ValueError(f"tau_epochs must be >= 1, got {tau_epochs}")
    tau_epochs = min(tau_epochs, epochs)
    if not seeds:
        raise ValueError("seeds must hold at least one training seed")
    if encoder not in ("gates", "mlp", "gates++"):
        raise ValueError(f"encoder must be 'gates', 'mlp' or 'gates++', got {encoder!r}")
    if variants is None:
        variants = ["GATES++"] if encoder == "gates++" else [encoder]
        flags = {variants[0]: ABLATION_VARIANTS["GATES++"] if encoder == "gates++" else (False, False)}
    else:
        unknown = [v for v in variants if v not in ABLATION_VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown}; allowed: {list(ABLATION_VARIANTS)}")
        if encoder == "mlp":
            raise ValueError("ablation variants build on the gates encoder, not mlp")
        flags = {v: ABLATION_VARIANTS[v] for v in variants}
    need_op = any(f[0] for f in flags.values())
    need_arch = any(f[1] for f in flags.values())
    if (need_op or need_arch) and zero_shot is None:
        raise ValueError("GATES++ and the +EES / +ETS variants need zero_shot=ZeroShotProvider(space)")
    sizes = [train_size(split.pool_size, r) for r in ratios]
    subsets = {(n, s): draw_subset(split.pool_size, n, s, subset_seed) for n in sizes for s in range(n_subsets)}

    train_zs = test_zs = pool_op = pool_arch = None
    if need_op or need_arch:
        used = np.unique(np.concatenate(list(subsets.values())))
        if aux_pool and need_arch:
            used = np.arange(split.pool_size)
        logger.info("computing zero-shot features of %d training and %d test cells", len(used), len(split.test_archs))
        pool_feats = _zero_shot_features(zero_shot, [split.train_archs[i] for i in used], need_op, need_arch)
        position = np.full(split.pool_size, -1, dtype=np.int64)
        position[used] = np.arange(len(used))
        train_zs = (pool_feats, position)
        # with aux_pool every pool cell is in ``used``, in pool order: the auxiliary head's unlabeled set
        pool_op, pool_arch = pool_feats.op, pool_feats.arch
        test_zs = _zero_shot_features(
            zero_shot, split.test_archs, need_op, need_arch and bool((predictor_kwargs or {}).get("arch_input"))
        )

    jobs = [
        (r, n, s, seed, v) for r, n in zip(ratios, sizes) for s in range(n_subsets) for seed in seeds for v in variants
    ]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="predictor runs", unit="fit")
    results: list[RunResult] = []
    kwargs = dict(predictor_kwargs or {})
    try:
        for ratio, n, s, seed, variant in jobs:
            use_op, use_arch = flags[variant]
            idx = subsets[(n, s)]
            archs = [split.train_archs[i] for i in idx]
            zs_op = zs_arch = test_op = test_arch = None
            pool: dict[str, Any] = {}
            if use_op or use_arch:
                feats, position = train_zs  # type: ignore[misc]
                op_all, arch_all = feats.take(position[idx])
                zs_op = op_all if use_op else None
                zs_arch = arch_all if use_arch else None
                test_op = test_zs.op if use_op else None  # type: ignore[union-attr]
                test_arch = test_zs.arch if use_arch else None  # type: ignore[union-attr]
                if aux_pool and use_arch:
                    pool = dict(
                        aux_archs=split.train_archs, aux_zs_op=pool_op if use_op else None, aux_zs_arch=pool_arch
                    )
            run_kwargs = dict(kwargs)
            if not use_arch:
                run_kwargs.pop("arch_input", None)  # only the variants with zero-shot targets read them
            options = dict(
                encoder="mlp" if encoder == "mlp" else "gates",
                loss=loss,
                epochs=epochs,
                op_feature_dim=int(zero_shot.op_feature_dim) if use_op else 0,
                aux_dim=int(zero_shot.arch_feature_dim) if use_arch else 0,
                **run_kwargs,
            )
            pred = Predictor.from_config(split.space, options, seed=int(seed), device=device)
            taus: list[float] = []
            last: dict[str, Any] = {"scores": None, "seconds": 0.0}

            # called inside this iteration's fit; the defaults bind this iteration's objects
            def score_test(
                epoch: int,
                pred: Any = pred,
                test_op: Any = test_op,
                test_arch: Any = test_arch,
                taus: list[float] = taus,
                last: dict[str, Any] = last,
            ) -> None:
                if epoch <= epochs - tau_epochs:
                    return
                t0 = time.perf_counter()
                last["scores"] = pred.score(split.test_archs, zs_op=test_op, zs_arch=test_arch)
                taus.append(kendall_tau(split.test_values, last["scores"]))
                last["seconds"] += time.perf_counter() - t0

            start = time.perf_counter()
            pred.fit(archs, split.train_values[idx], zs_op=zs_op, zs_arch=zs_arch, callback=score_test, **pool)
            # the test-set scoring inside the callback is not part of the fit time
            fit_s = time.perf_counter() - start - last["seconds"]
            final = ranking_metrics(split.test_values, last["scores"], ks)
            metrics = {"tau": float(np.mean(taus)), "tau_final": final.pop("tau"), **final}
            res = RunResult(variant, ratio, n, s, int(seed), metrics, fit_s)
            results.append(res)
            logger.debug(
                "ratio %g subset %d seed %d %s: tau %.4f (fit %.1fs)",
                ratio,
                s,
                seed,
                variant,
                res.metrics["tau"],
                fit_s,
            )
            if on_result is not None:
                on_result(res)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(ratio=f"{ratio:g}", tau=f"{res.metrics['tau']:.3f}")
    finally:
        if bar is not None:
            bar.close()
    return results


def time_fit(
    space: Any,
    archs: Sequence[Arch],
    values: Sequence[float] | np.ndarray,
    epochs: int = 200,
    seed: int = 0,
    device: str = "auto",
    **predictor_kwargs: Any,
) -> float:
    """Seconds one :meth:`Predictor.fit` takes on ``archs`` for ``epochs`` epochs."""
    pred = Predictor.from_config(space, {"epochs": epochs, **predictor_kwargs}, seed=seed, device=device)
    start = time.perf_counter()
    pred.fit(archs, values)
    return time.perf_counter() - start


# ----- summaries --------------------------------------------------------------------------------
@dataclass
class SummaryRow:
    """Mean and standard deviation of every metric over the runs of one (variant, ratio)."""

    variant: str
    ratio: float
    n_train: int
    runs: int
    mean: dict[str, float]
    std: dict[str, float]
    fit_seconds: float


def summarize(results: Sequence[RunResult]) -> list[SummaryRow]:
    """Group runs by (variant, ratio), in first-seen order, and average their metrics."""
    groups: dict[tuple[str, float], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.variant, r.ratio), []).append(r)
    rows = []
    for (variant, ratio), rs in groups.items():
        keys = list(rs[0].metrics)
        vals = {k: np.array([r.metrics[k] for r in rs]) for k in keys}
        rows.append(
            SummaryRow(
                variant=variant,
                ratio=ratio,
                n_train=rs[0].n_train,
                runs=len(rs),
                mean={k: float(v.mean()) for k, v in vals.items()},
                std={k: float(v.std()) for k, v in vals.items()},
                fit_seconds=float(np.mean([r.fit_seconds for r in rs])),
            )
        )
    return rows


def _fmt(key: str, mean: float, std: float) -> str:
    if key.startswith("N@"):
        return f"{mean:.1f} +- {std:.1f}"
    return f"{mean:.4f} +- {std:.4f}"


def _pct(ratio: float) -> str:
    return f"{100 * ratio:g}%"


def format_table(rows: Sequence[SummaryRow], paper: dict[float, float] | None = None) -> str:
    """A plain-text table: one line per (variant, ratio), mean +- std of every metric over the runs,
    the mean fit time, and (when given) the paper's Kendall's tau at that ratio."""
    if not rows:
        return "(no runs)"
    keys = list(rows[0].mean)
    header = ["variant", "ratio", "n", "runs"] + keys + ["fit s"] + (["paper tau"] if paper else [])
    lines = []
    for r in rows:
        line = [r.variant, _pct(r.ratio), str(r.n_train), str(r.runs)]
        line += [_fmt(k, r.mean[k], r.std[k]) for k in keys]
        line.append(f"{r.fit_seconds:.1f}")
        if paper:
            ref = paper.get(round(r.ratio, 6))
            line.append("-" if ref is None else f"{ref:.4f}")
        lines.append(line)
    return _render_table(header, lines)


def format_ablation_table(rows: Sequence[SummaryRow], paper: dict[str, dict[float, float]] | None = None) -> str:
    """The Table 7 layout: one line per variant, Kendall's tau (mean +- std) per ratio, and the paper's
    value in brackets where it has one."""
    ratios = list(dict.fromkeys(r.ratio for r in rows))
    variants = list(dict.fromkeys(r.variant for r in rows))
    cell = {(r.variant, r.ratio): r for r in rows}
    header = ["variant"] + [f"{_pct(q)} (n={cell[(variants[0], q)].n_train})" for q in ratios]
    lines = []
    for v in variants:
        line = [v]
        for q in ratios:
            r = cell.get((v, q))
            text = "-" if r is None else _fmt("tau", r.mean["tau"], r.std["tau"])
            ref = (paper or {}).get(v, {}).get(round(q, 6))
            if ref is not None:
                text += f" [{ref:.4f}]"
            line.append(text)
        lines.append(line)
    return _render_table(header, lines)


def results_to_json(
    config: dict[str, Any], results: Sequence[RunResult], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-serialisable record of a harness call: its configuration, every run and the summary."""
    return {
        "config": config,
        "runs": [asdict(r) for r in results],
        "summary": [asdict(r) for r in summarize(results)],
        **(extra or {}),
    }


def _render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned plain-text columns under a dashed rule."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(out)
