"""The performance predictor: encoder + score head, trained with a ranking loss."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from gates_sampler.predictor import losses as L
from gates_sampler.predictor.encoder import GatesEncoder, MLPEncoder, mlp_head
from gates_sampler.spaces.base import Arch, GraphBatch, SearchSpace, short_repr
from gates_sampler.utils import check_rng_state, resolve_device

logger = logging.getLogger("gates_sampler")

ENCODERS = ("gates", "mlp")
OpFeatures = Sequence[torch.Tensor]  # one tensor per cell, batched like CellBatch.op_features


class _Net(nn.Module):
    def __init__(
        self,
        encoder: GatesEncoder | MLPEncoder,
        head_hidden: tuple[int, ...],
        comparator: bool,
        aux_dim: int,
        head_dropout: float = 0.0,
        arch_input: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        d = encoder.out_dim
        self.comparator = comparator
        h = d + aux_dim if arch_input else d
        self.head = mlp_head(2 * h if comparator else h, head_hidden, 1, dropout=head_dropout)
        self.aux_head = mlp_head(d, head_hidden, aux_dim) if aux_dim else None

    def score_emb(self, emb: torch.Tensor) -> torch.Tensor:
        return self.head(emb).squeeze(-1)

    def compare(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([a, b], dim=-1)).squeeze(-1)


@contextlib.contextmanager
def _cpu_threads(device: torch.device, n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads on CPU, then restore the previous setting.

    The predictor's matrices are tiny: extra threads only add synchronisation, and on a busy machine
    two spinning threads made a fit ten times slower than one.
    """
    if device.type != "cpu" or n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class PredictorSettings:
    """Training and network sizes of a :class:`Predictor` that only research and tuning change.

    The defaults are the paper's NB101/NB201 setting; vary one with ``dataclasses.replace(settings, lr=3e-4)``.

    Args:
        margin: hinge margin of the pairwise (and comparator) losses.
        lr, weight_decay, batch_size: Adam settings and minibatch size.
        op_dim, hidden, n_layers, self_loop: GATES sizes: operation embedding, node information, propagation
            steps, and Eq. 4's self-loop (operation-on-node spaces).
        head_hidden: hidden sizes of the score MLP (5 x 300, the GATES reference configuration; README,
            "Predictor ranking quality").
        head_dropout: dropout after every hidden layer of the score MLP.
        aux_weight: weight of the auxiliary zero-shot regression loss.
        aux_batch: how many unlabeled architectures (``fit(aux_archs=...)``) join every training step
            for the auxiliary loss only.
        num_threads: torch CPU threads used while fitting and scoring (1 is fastest for these small
            networks); ``None`` leaves torch's setting alone.
    """

    margin: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 512
    op_dim: int = 48
    hidden: int = 128
    n_layers: int = 5
    self_loop: bool = True
    head_hidden: tuple[int, ...] = (300, 300, 300, 300, 300)
    head_dropout: float = 0.1
    aux_weight: float = 0.5
    aux_batch: int = 128
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "head_hidden", tuple(int(h) for h in self.head_hidden))
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if self.aux_batch < 1:
            raise ValueError(f"aux_batch must be >= 1, got {self.aux_batch}")
        if min(self.op_dim, self.hidden, self.n_layers, *self.head_hidden) < 1:
            raise ValueError("op_dim, hidden, n_layers and every head_hidden size must be >= 1")
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {self.head_dropout!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {self.num_threads!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, e.g. to route a flat dict of options between the settings and the constructor."""
        return tuple(f.name for f in fields(cls))


#: settings that change neither the network nor its training result, kept out of ``Predictor.config``
_RUNTIME_SETTINGS = ("num_threads",)


class Predictor:
    """A GATES (or MLP-baseline) performance predictor with ``fit`` / ``score``.

    Args:
        space: the search space whose architectures are scored.
        encoder: ``"gates"`` (default) or ``"mlp"`` (one-hot baseline).
        loss: ``"hinge"`` (default, margin 0.1), ``"bce"``, ``"comparator"``, ``"listmle"`` or ``"mse"``.
        epochs: training epochs per :meth:`fit` from scratch.
        op_feature_dim: size of per-op zero-shot features (GATES++ EES); 0 disables them.
        aux_dim: size of the architecture-level auxiliary regression target (GATES++ ETS); 0 disables it.
        arch_input: also feed the (standardised) architecture-level zero-shot vector to the score head
            (needs ``aux_dim > 0``; ``score`` then needs ``zs_arch`` too).
        seed: fixes initialisation and minibatch order.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        settings: network sizes and training knobs (:class:`PredictorSettings`; its defaults when ``None``).
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        encoder: str = "gates",
        loss: str = "hinge",
        epochs: int = 200,
        op_feature_dim: int = 0,
        aux_dim: int = 0,
        arch_input: bool = False,
        seed: int | None = None,
        device: str | torch.device = "auto",
        settings: PredictorSettings | None = None,
    ) -> None:
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if loss not in L.LOSSES:
            raise ValueError(f"loss must be one of {L.LOSSES}, got {loss!r}")
        if encoder == "mlp" and (op_feature_dim or aux_dim):
            raise ValueError("zero-shot features (op_feature_dim / aux_dim) need the gates encoder")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        if arch_input and not aux_dim:
            raise ValueError(
                "arch_input feeds the architecture-level zero-shot vector to the head: it needs aux_dim > 0"
            )
        if settings is None:
            settings = PredictorSettings()
        elif not isinstance(settings, PredictorSettings):
            raise TypeError(f"settings must be a PredictorSettings, got {type(settings).__name__}")
        self.space = space
        self.settings = settings
        self.config: dict[str, Any] = dict(
            encoder=encoder,
            loss=loss,
            epochs=epochs,
            op_feature_dim=op_feature_dim,
            aux_dim=aux_dim,
            arch_input=bool(arch_input),
            **{k: v for k, v in asdict(settings).items() if k not in _RUNTIME_SETTINGS},
        )
        self.seed = seed
        self.device = resolve_device(device)
        self._rng = np.random.default_rng(seed)
        self.net: _Net | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.aux_mean: torch.Tensor | None = None
        self.aux_std: torch.Tensor | None = None
        self.last_fit_seconds = 0.0
        self.reset()

    #: constructor keywords that :meth:`from_config` accepts next to the :class:`PredictorSettings` fields
    OPTIONS = ("encoder", "loss", "epochs", "op_feature_dim", "aux_dim", "arch_input")

    @classmethod
    def from_config(
        cls, space: SearchSpace, config: dict[str, Any], *, seed: int | None = None, device: str | torch.device = "auto"
    ) -> Predictor:
        """A predictor from one flat dict of options: constructor keywords and :class:`PredictorSettings`
        fields side by side, as :attr:`config` records them and as a searcher's ``predictor={...}`` takes them."""
        settings_names = PredictorSettings.names()
        unknown = sorted(k for k in config if k not in cls.OPTIONS and k not in settings_names)
        if unknown:
            raise ValueError(
                f"unknown predictor option(s) {unknown}; allowed: {list(cls.OPTIONS) + list(settings_names)}"
            )
        settings = PredictorSettings(**{k: v for k, v in config.items() if k in settings_names})
        options = {k: v for k, v in config.items() if k in cls.OPTIONS}
        return cls(space, **options, seed=seed, device=device, settings=settings)

    # ----- construction -----------------------------------------------------------------------
    def reset(self) -> None:
        """Re-initialise the weights (a fresh, untrained predictor)."""
        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self._rng.integers(2**31)))
            if c["encoder"] == "gates":
                enc: GatesEncoder | MLPEncoder = GatesEncoder(
                    self.space.kind,
                    len(self.space.op_names),
                    n_cells=len(self.space.cell_names),
                    n_inputs=self.space.n_inputs,
                    op_dim=c["op_dim"],
                    hidden=c["hidden"],
                    n_layers=c["n_layers"],
                    self_loop=c["self_loop"],
                    op_feature_dim=c["op_feature_dim"],
                )
            else:
                width = sum(len(v) for v in self.space.distributions().values())
                enc = MLPEncoder(width)
            self.net = _Net(
                enc, c["head_hidden"], c["loss"] == "comparator", c["aux_dim"], c["head_dropout"], c["arch_input"]
            ).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
        self.trained = False

    # ----- inputs -----------------------------------------------------------------------------
    def _inputs(self, archs: Sequence[Arch], zs_op: OpFeatures | None) -> GraphBatch | torch.Tensor:
        if self.config["encoder"] == "mlp":
            return self.space.one_hot(archs).to(self.device)
        batch = self.space.encode(archs)
        if self.config["op_feature_dim"]:
            if zs_op is None:
                raise ValueError(
                    "this predictor uses per-op zero-shot features (op_feature_dim > 0); "
                    "pass zs_op (aux_zs_op for aux_archs)"
                )
            if len(zs_op) != len(batch.cells):
                raise ValueError(f"zs_op must hold one tensor per cell ({len(batch.cells)}), got {len(zs_op)}")
            for cell, f in zip(batch.cells, zs_op):
                cell.op_features = torch.as_tensor(f, dtype=torch.float32)
        return batch.to(self.device)

    @staticmethod
    def _take(inputs: GraphBatch | torch.Tensor, idx: torch.Tensor) -> GraphBatch | torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            return inputs[idx]
        from gates_sampler.spaces.base import CellBatch

        cells = [
            CellBatch(
                ops=c.ops[idx],
                readout=c.readout[idx],
                adj=None if c.adj is None else c.adj[idx],
                op_features=None if c.op_features is None else c.op_features[idx],
            )
            for c in inputs.cells
        ]
        return GraphBatch(inputs.kind, cells, inputs.n_inputs, len(idx))

    # ----- training ---------------------------------------------------------------------------
    def fit(
        self,
        archs: Sequence[Arch],
        values: Sequence[float] | np.ndarray,
        zs_op: OpFeatures | None = None,
        zs_arch: np.ndarray | torch.Tensor | None = None,
        *,
        epochs: int | None = None,
        warm_start: bool = False,
        aux_archs: Sequence[Arch] | None = None,
        aux_zs_op: OpFeatures | None = None,
        aux_zs_arch: np.ndarray | torch.Tensor | None = None,
        callback: Callable[[int], None] | None = None,
        better: np.ndarray | None = None,
    ) -> Predictor:
        """Train on ``archs`` with true ``values`` (higher is better).

        Args:
            zs_op: per-op zero-shot features, one tensor per cell (needed when ``op_feature_dim > 0``).
            zs_arch: ``[N, aux_dim]`` architecture-level zero-shot targets (used when ``aux_dim > 0``).
            epochs: overrides the configured number of epochs for this call.
            warm_start: continue from the current weights and optimizer state instead of re-initialising.
            aux_archs: unlabeled architectures for the auxiliary head only (needs ``aux_dim > 0``):
                zero-shot targets cost no training, so any number of architectures can shape the
                encoder; each step adds ``aux_batch`` of them to the auxiliary loss.
            aux_zs_op, aux_zs_arch: their per-op features (when ``op_feature_dim > 0``) and
                ``[M, aux_dim]`` targets.
            callback: called as ``callback(epoch)`` (1-based) after every epoch, with the network in
                evaluation mode, e.g. to score a test set at the last epochs.
            better: ``[N, N]`` booleans, ``better[i, j]`` when ``archs[i]`` ranks above ``archs[j]``: the
                pairs to learn, instead of those read from ``values`` (used to standardise only). For
                trials that ended early, whose order is known for some pairs only (see
                :func:`gates_sampler.curves.better_matrix`); needs a pairwise loss (hinge, bce, comparator).
        """
        with _cpu_threads(self.device, self.settings.num_threads):
            return self._fit(
                archs, values, zs_op, zs_arch, epochs, warm_start, aux_archs, aux_zs_op, aux_zs_arch, callback, better
            )

    def _fit(
        self,
        archs: Sequence[Arch],
        values: Sequence[float] | np.ndarray,
        zs_op: OpFeatures | None,
        zs_arch: np.ndarray | torch.Tensor | None,
        epochs: int | None,
        warm_start: bool,
        aux_archs: Sequence[Arch] | None = None,
        aux_zs_op: OpFeatures | None = None,
        aux_zs_arch: np.ndarray | torch.Tensor | None = None,
        callback: Callable[[int], None] | None = None,
        better: np.ndarray | None = None,
    ) -> Predictor:
        y64 = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(archs) != len(y64):
            raise ValueError(f"got {len(archs)} architectures but {len(y64)} values")
        known = None if better is None else self._check_better(better, len(archs))
        if not np.isfinite(y64).all():
            raise ValueError("values must be finite; drop failed evaluations before fitting")
        # Standardised in float64 before the float32 cast, so that values near the float32 limit (1e38)
        # never become inf; the ranking losses see the same order, the mse loss its usual targets.
        std = float(y64.std(ddof=1)) if len(y64) > 1 else 0.0
        y = torch.as_tensor((y64 - y64.mean()) / (std if std > 0 and np.isfinite(std) else 1.0), dtype=torch.float32)
        if not torch.isfinite(y).all():
            raise ValueError("values are too far apart to be standardised in float64")
        if len(archs) < 2:
            raise ValueError("need at least 2 evaluated architectures to fit a ranking predictor")
        c = self.config
        if not warm_start or not self.trained:
            self.reset()
        assert self.net is not None and self.optimizer is not None
        inputs = self._inputs(archs, zs_op)
        y = y.to(self.device)
        aux = None
        if c["aux_dim"]:
            if zs_arch is None:
                raise ValueError("this predictor has an auxiliary head (aux_dim > 0); pass zs_arch")
            aux = self._arch_vectors(zs_arch, len(archs), "zs_arch")
        extra = self._aux_extra(aux_archs, aux_zs_op, aux_zs_arch)
        if aux is not None:
            if not warm_start or self.aux_mean is None:
                both = aux if extra is None else torch.cat([aux, extra[1]])
                self.aux_mean, self.aux_std = both.mean(0), both.std(0) + 1e-6
            aux = self._standardise(aux)
            if extra is not None:
                extra = (extra[0], self._standardise(extra[1]))
        n = len(archs)
        bs = min(c["batch_size"], n)
        n_epochs = epochs if epochs is not None else c["epochs"]
        start = time.perf_counter()
        self.net.train()
        gen_seed = int(self._rng.integers(2**31))
        perm_rng = np.random.default_rng(gen_seed)
        # Dropout draws from torch's global generator: seed a forked copy so that a seeded fit is
        # reproducible without disturbing the caller's random state.
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(gen_seed)
            for epoch in range(n_epochs):
                order = torch.as_tensor(perm_rng.permutation(n), device=self.device)
                for s in range(0, n, bs):
                    idx = order[s : s + bs]
                    if len(idx) < 2:
                        continue
                    pairs: L.Pairs | None = None
                    if known is not None:
                        hi, lo = torch.nonzero(known[idx][:, idx], as_tuple=True)
                        pairs = (hi, lo)
                    loss = self._loss(self._take(inputs, idx), y[idx], None if aux is None else aux[idx], pairs)
                    if extra is not None:
                        pick = torch.as_tensor(
                            perm_rng.choice(len(extra[1]), min(c["aux_batch"], len(extra[1])), replace=False),
                            device=self.device,
                        )
                        loss = loss + c["aux_weight"] * self._aux_loss(self._take(extra[0], pick), extra[1][pick])
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                if callback is not None:
                    self.net.eval()
                    callback(epoch + 1)
                    self.net.train()
        self.net.eval()
        self.trained = True
        self.last_fit_seconds = time.perf_counter() - start
        logger.debug("fitted predictor on %d architectures, %d epochs in %.2fs", n, n_epochs, self.last_fit_seconds)
        return self

    def _aux_extra(
        self,
        aux_archs: Sequence[Arch] | None,
        aux_zs_op: OpFeatures | None,
        aux_zs_arch: np.ndarray | torch.Tensor | None,
    ) -> tuple[GraphBatch | torch.Tensor, torch.Tensor] | None:
        """Inputs and raw targets of the unlabeled architectures of the auxiliary loss, checked."""
        if aux_archs is None or len(aux_archs) == 0:
            return None
        if not self.config["aux_dim"]:
            raise ValueError("aux_archs trains the auxiliary head, which this predictor lacks (aux_dim=0)")
        if aux_zs_arch is None:
            raise ValueError("aux_archs needs its zero-shot targets: pass aux_zs_arch")
        target = self._arch_vectors(aux_zs_arch, len(aux_archs), "aux_zs_arch")
        if not torch.isfinite(target).all():
            raise ValueError("aux_zs_arch holds NaN or infinite values")
        return self._inputs(aux_archs, aux_zs_op), target

    def _arch_vectors(self, values: np.ndarray | torch.Tensor, n: int, name: str) -> torch.Tensor:
        """``values`` as an ``[n, aux_dim]`` float tensor on the device, or a ``ValueError`` naming ``name``."""
        t = torch.as_tensor(np.asarray(values), dtype=torch.float32, device=self.device)
        if t.shape != (n, self.config["aux_dim"]):
            raise ValueError(f"{name} must have shape ({n}, {self.config['aux_dim']}), got {tuple(t.shape)}")
        return t

    def _standardise(self, t: torch.Tensor) -> torch.Tensor:
        """Architecture-level vectors on the scale fixed at the first fit."""
        assert self.aux_mean is not None and self.aux_std is not None
        return (t - self.aux_mean) / self.aux_std

    def _aux_loss(self, inputs: GraphBatch | torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        assert self.net is not None and self.net.aux_head is not None
        return torch.nn.functional.mse_loss(self.net.aux_head(self.net.encoder(inputs)), target)

    def _check_better(self, better: np.ndarray, n: int) -> torch.Tensor:
        """``better`` as a boolean ``[n, n]`` tensor on the device, or a ``ValueError``."""
        if self.config["loss"] not in L.PAIRWISE_LOSSES:
            raise ValueError(
                f"better (given pairs) needs a pairwise loss {L.PAIRWISE_LOSSES}, this predictor uses "
                f"{self.config['loss']!r}"
            )
        b = np.asarray(better)
        if b.shape != (n, n) or b.dtype != np.bool_:
            raise ValueError(f"better must be a boolean array of shape ({n}, {n}), got {b.dtype} {b.shape}")
        if (b & b.T).any() or b.diagonal().any():
            raise ValueError("better must not order a pair both ways, nor an architecture against itself")
        return torch.as_tensor(b, device=self.device)

    def _loss(
        self,
        inputs: GraphBatch | torch.Tensor,
        y: torch.Tensor,
        aux: torch.Tensor | None,
        pairs: L.Pairs | None = None,
    ) -> torch.Tensor:
        assert self.net is not None
        c = self.config
        emb = self.net.encoder(inputs)
        head_in = torch.cat([emb, aux], dim=-1) if c["arch_input"] and aux is not None else emb
        kind = c["loss"]
        if kind == "comparator":
            loss = L.comparator_loss(self.net.compare, head_in, y, c["margin"], pairs)
        else:
            s = self.net.score_emb(head_in)
            if kind == "hinge":
                loss = L.pairwise_hinge(s, y, c["margin"], pairs)
            elif kind == "bce":
                loss = L.pairwise_bce(s, y, pairs)
            elif kind == "listmle":
                loss = L.listmle(s, y)
            else:
                loss = L.mse(s, y)
        if aux is not None and self.net.aux_head is not None:
            loss = loss + c["aux_weight"] * torch.nn.functional.mse_loss(self.net.aux_head(emb), aux)
        return loss

    # ----- inference --------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, archs: Sequence[Arch], zs_op: OpFeatures | None = None) -> torch.Tensor:
        """Architecture embeddings from the encoder, ``[N, out_dim]``."""
        assert self.net is not None
        self.net.eval()
        return self.net.encoder(self._inputs(archs, zs_op))

    @torch.no_grad()
    def score(
        self,
        archs: Sequence[Arch],
        zs_op: OpFeatures | None = None,
        zs_arch: np.ndarray | torch.Tensor | None = None,
        *,
        sample: bool = False,
    ) -> np.ndarray:
        """Predicted scores (higher = predicted better). For the comparator loss, the scores are
        ranks from a randomized quick-sort with the learned comparator. ``zs_arch`` (``[N, aux_dim]``)
        is needed with ``arch_input=True`` and ignored otherwise.

        ``sample=True`` scores with one dropout mask of the score head drawn from the predictor's
        generator and shared by all ``archs``: one function drawn from the MC-dropout approximation of
        the predictor's posterior, for Thompson sampling over a candidate pool. It needs
        ``head_dropout > 0`` and a loss other than the comparator."""
        if len(archs) == 0:
            return np.zeros(0)
        if sample and (self.config["loss"] == "comparator" or not self.config["head_dropout"]):
            raise ValueError("sample=True needs head_dropout > 0 and a loss other than 'comparator'")
        with _cpu_threads(self.device, self.settings.num_threads):
            return self._score(archs, zs_op, zs_arch, sample=sample)

    def _sampled_head(self, emb: torch.Tensor) -> torch.Tensor:
        """The score head with one dropout mask per layer, the same for every row of ``emb``."""
        assert self.net is not None
        gen = torch.Generator(device=emb.device)
        gen.manual_seed(int(self._rng.integers(2**31)))
        x = emb
        for layer in self.net.head:
            if isinstance(layer, nn.Dropout):
                keep = torch.rand(x.shape[-1], generator=gen, device=x.device) >= layer.p
                x = x * keep.to(x.dtype) / (1.0 - layer.p)
            else:
                x = layer(x)
        return x.squeeze(-1)

    def _score(
        self,
        archs: Sequence[Arch],
        zs_op: OpFeatures | None,
        zs_arch: np.ndarray | torch.Tensor | None = None,
        *,
        sample: bool = False,
    ) -> np.ndarray:
        emb = self._head_input(archs, zs_op, zs_arch)
        if sample:
            return self._sampled_head(emb).double().cpu().numpy()
        assert self.net is not None
        if self.config["loss"] != "comparator":
            return self.net.score_emb(emb).double().cpu().numpy()

        def less(items: np.ndarray, pivot: int) -> np.ndarray:
            a = emb[torch.as_tensor(items, device=emb.device)]
            p = emb[pivot].expand_as(a)
            return (self.net.compare(p, a) > 0).cpu().numpy()  # type: ignore[union-attr]

        order = L.quicksort_rank(len(archs), less, self._rng)
        ranks = np.empty(len(archs))
        ranks[order] = np.arange(len(archs), dtype=np.float64)
        return ranks

    def _head_input(
        self, archs: Sequence[Arch], zs_op: OpFeatures | None, zs_arch: np.ndarray | torch.Tensor | None
    ) -> torch.Tensor:
        """What the score head reads: the encoder's embedding, with the standardised architecture-level
        features appended when ``arch_input=True``."""
        assert self.net is not None
        emb = self.embed(archs, zs_op)
        if self.config["arch_input"]:
            if zs_arch is None:
                raise ValueError(
                    "this predictor reads architecture-level zero-shot features (arch_input=True); pass zs_arch"
                )
            za = self._arch_vectors(zs_arch, len(archs), "zs_arch")
            if self.aux_mean is None:
                raise ValueError("fit the predictor before scoring with arch_input=True (it standardises zs_arch)")
            emb = torch.cat([emb, self._standardise(za)], dim=-1)
        return emb

    @torch.no_grad()
    def head_features(
        self,
        archs: Sequence[Arch],
        zs_op: OpFeatures | None = None,
        zs_arch: np.ndarray | torch.Tensor | None = None,
    ) -> np.ndarray:
        """The score head's last hidden layer, ``[N, head_hidden[-1]]`` (``[N, out_dim]`` for a head
        without hidden layers): the learned features the score is a linear function of, e.g. for a
        Bayesian model of the values on top of the trained network. Not for the comparator loss, whose
        head reads pairs."""
        if self.config["loss"] == "comparator":
            raise ValueError("head_features needs a loss other than 'comparator' (its head reads pairs of cells)")
        assert self.net is not None
        if len(archs) == 0:
            last = self.net.head[-1]
            assert isinstance(last, nn.Linear)
            return np.zeros((0, last.in_features))
        with _cpu_threads(self.device, self.settings.num_threads):
            self.net.eval()
            x = self._head_input(archs, zs_op, zs_arch)
            for layer in list(self.net.head)[:-1]:
                x = layer(x)
            return x.double().cpu().numpy()

    # ----- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer and RNG state, as plain Python / tensors."""
        assert self.net is not None and self.optimizer is not None
        return {
            "config": dict(self.config),
            "net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "rng": self._rng.bit_generator.state,
            "trained": self.trained,
            "aux_mean": None if self.aux_mean is None else self.aux_mean.cpu(),
            "aux_std": None if self.aux_std is None else self.aux_std.cpu(),
        }

    def check_state_dict(self, state: Any) -> None:
        """Raise ``ValueError`` naming the field unless :meth:`load_state_dict` can restore ``state`` in full:
        same configuration, every tensor of the same shape as this predictor's, a valid generator state."""
        if not isinstance(state, dict):
            raise ValueError(f"predictor state: expected a dict, got {type(state).__name__}")
        missing = [k for k in ("config", "net", "optimizer", "rng", "trained", "aux_mean", "aux_std") if k not in state]
        if missing:
            raise ValueError(f"predictor state lacks {missing}")
        if not isinstance(state["config"], dict):
            raise ValueError("predictor state: 'config' must be a dict")
        saved = state["config"]
        if saved != self.config:
            diff = {k: (saved.get(k), v) for k, v in self.config.items() if saved.get(k) != v}
            raise ValueError(f"predictor state was saved with a different configuration: {diff}")
        assert self.net is not None and self.optimizer is not None
        own = self.net.state_dict()
        net = state["net"]
        if not isinstance(net, dict) or set(net) != set(own):
            raise ValueError("predictor state: the network's tensors do not match this predictor's layers")
        for k, t in own.items():
            if not isinstance(net[k], torch.Tensor) or net[k].shape != t.shape or net[k].dtype != t.dtype:
                got = tuple(net[k].shape) if isinstance(net[k], torch.Tensor) else type(net[k]).__name__
                raise ValueError(
                    f"predictor state: tensor {k!r} is {got}, this predictor has {tuple(t.shape)} ({t.dtype})"
                )
        self._check_optimizer_state(state["optimizer"])
        check_rng_state(state["rng"], "predictor state 'rng'")
        if not isinstance(state["trained"], bool):
            raise ValueError(f"predictor state: 'trained' must be a bool, got {type(state['trained']).__name__}")
        for k in ("aux_mean", "aux_std"):
            v = state[k]
            if v is None:
                continue
            if not isinstance(v, torch.Tensor) or v.shape != (self.config["aux_dim"],) or not torch.isfinite(v).all():
                raise ValueError(f"predictor state: {k!r} must be None or {self.config['aux_dim']} finite values")

    def _check_optimizer_state(self, state: Any) -> None:
        assert self.optimizer is not None
        own = self.optimizer.state_dict()
        shaped = isinstance(state, dict) and isinstance(state.get("state"), dict)
        if not shaped or not isinstance(state.get("param_groups"), list):
            raise ValueError("predictor state: 'optimizer' is not an optimizer state")
        groups = state["param_groups"]
        if len(groups) != len(own["param_groups"]) or any(
            not isinstance(g, dict) or g.get("params") != o["params"] for g, o in zip(groups, own["param_groups"])
        ):
            raise ValueError("predictor state: the optimizer's parameter groups do not match this predictor")
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        for idx, slots in state["state"].items():
            if not (type(idx) is int and 0 <= idx < len(params)) or not isinstance(slots, dict):
                raise ValueError(f"predictor state: optimizer entry {short_repr(idx)} names no parameter")
            for name, t in slots.items():
                if not isinstance(t, torch.Tensor) or (t.dim() > 0 and t.shape != params[idx].shape):
                    raise ValueError(f"predictor state: optimizer slot {name!r} of parameter {idx} has the wrong shape")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the configuration must match).

        Everything is checked first (:meth:`check_state_dict`): a refused state leaves the predictor unchanged.
        """
        self.check_state_dict(state)
        assert self.net is not None and self.optimizer is not None
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._rng.bit_generator.state = state["rng"]
        self.trained = state["trained"]
        self.aux_mean = None if state["aux_mean"] is None else state["aux_mean"].to(self.device)
        self.aux_std = None if state["aux_std"] is None else state["aux_std"].to(self.device)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        return buf.getvalue()
