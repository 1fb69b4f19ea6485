"""Architecture value objects, the graph batch the encoder reads, and the search-space interface."""

from __future__ import annotations

import abc
import hashlib
import json
import math
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

Params = dict[str, str]

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlevel = 3


def short_repr(value: Any) -> str:
    """``repr`` cut to a readable length, for error messages about arbitrary user input."""
    return _REPR.repr(value)


class Arch(abc.ABC):
    """An immutable, hashable architecture of one search space.

    Subclasses are frozen dataclasses; equality is structural (not isomorphism: use
    ``space.canonical_key``).
    """

    @abc.abstractmethod
    def __str__(self) -> str: ...


Edge = tuple[str, int]  # (operation, index of the input node)
EdgeCell = tuple[tuple[Edge, ...], ...]  # one entry per intermediate node, its incoming edges


@dataclass(frozen=True)
class EdgeArch(Arch):
    """An "operation on edge" architecture: for every cell, for every intermediate node, the
    incoming edges as ``(op, input_node)`` pairs. Node indices count the cell's input nodes first."""

    cells: tuple[EdgeCell, ...]

    def __str__(self) -> str:
        parts = []
        for cell in self.cells:
            parts.append("+".join("|" + "|".join(f"{op}~{src}" for op, src in node) + "|" for node in cell))
        return " / ".join(parts)


@dataclass(frozen=True)
class NodeArch(Arch):
    """An "operation on node" architecture: an upper-triangular adjacency matrix (row = source,
    column = destination, node 0 is the input, the last node the output) and one op per node
    (``"input"`` and ``"output"`` at the ends)."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    def __str__(self) -> str:
        rows = ",".join("".join(str(v) for v in row) for row in self.matrix)
        return f"[{rows}]:{','.join(self.ops)}"

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    def edges(self) -> list[tuple[int, int]]:
        return [(i, j) for i, row in enumerate(self.matrix) for j, v in enumerate(row) if v]


@dataclass
class CellBatch:
    """Padded tensors for one cell position of a batch of architectures.

    ``ops``: OOE ``[B, V, V, D]`` op index + 1 of the d-th edge from ``src`` into ``dst``
    (indexed ``[b, dst, src, d]``; 0 = no edge); OON ``[B, V]`` op index + 1 per node (0 = padding).
    ``adj``: OON only, ``[B, V, V]`` float adjacency indexed ``[b, dst, src]``.
    ``readout``: ``[B, V]`` weights of the node embeddings that form the cell embedding.
    ``op_features``: optional per-op zero-shot features, ``[B, V, V, D, F]`` (OOE) or ``[B, V, F]`` (OON).
    """

    ops: torch.Tensor
    readout: torch.Tensor
    adj: torch.Tensor | None = None
    op_features: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> CellBatch:
        return CellBatch(
            ops=self.ops.to(device),
            readout=self.readout.to(device),
            adj=None if self.adj is None else self.adj.to(device),
            op_features=None if self.op_features is None else self.op_features.to(device),
        )


@dataclass
class GraphBatch:
    """What the GATES encoder reads for a batch of architectures: one ``CellBatch`` per cell."""

    kind: str  # "edge" or "node"
    cells: list[CellBatch]
    n_inputs: int
    size: int = field(default=0)

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(self.kind, [c.to(device) for c in self.cells], self.n_inputs, self.size)


#: spaces with more raw parameter settings than ``10**LARGE_SPACE_LOG10`` count as large
#: (:attr:`SearchSpace.is_large`): NAS-Bench-101 and DARTS are, NAS-Bench-201 is not
LARGE_SPACE_LOG10 = 6.0


class SearchSpace(abc.ABC):
    """A cell-based search space: sampling, mutation, canonical keys, flat categorical
    parameters (the shape Optuna and Ray speak) and the graph encoding the predictor reads."""

    #: "edge" (operation on edge) or "node" (operation on node)
    kind: str
    #: operations the predictor embeds (order fixes the embedding index)
    op_names: tuple[str, ...]
    #: names of the cells an architecture holds (e.g. ("normal", "reduce"))
    cell_names: tuple[str, ...]
    #: number of input nodes of a cell
    n_inputs: int
    #: a short identifier used in cache keys and saved states
    name: str

    # --- sampling -----------------------------------------------------------------------------
    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Arch:
        """Draw one architecture uniformly from the space's parametrisation."""

    @abc.abstractmethod
    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """Return a different architecture one edit away (one op or one connection changed)."""

    @abc.abstractmethod
    def neighbors(self, arch: Arch) -> list[Arch]:
        """All valid architectures one edit away."""

    # --- identity -----------------------------------------------------------------------------
    @abc.abstractmethod
    def canonical_key(self, arch: Arch) -> str:
        """A string equal for exactly the architectures that compute the same function."""

    @abc.abstractmethod
    def validate(self, arch: Any) -> Arch:
        """Return ``arch`` if it is a valid architecture of this space, else raise ``ValueError``."""

    # --- flat parameters ----------------------------------------------------------------------
    @abc.abstractmethod
    def distributions(self) -> dict[str, list[str]]:
        """Parameter name -> allowed categorical choices (all strings), in a stable order."""

    @abc.abstractmethod
    def to_params(self, arch: Arch) -> Params:
        """The architecture as a flat dict of categorical choices."""

    @abc.abstractmethod
    def from_params(self, params: Mapping[str, Any]) -> Arch:
        """Inverse of :meth:`to_params`; raises ``ValueError`` naming the bad field."""

    # --- text ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def parse(self, text: str) -> Arch:
        """Parse the community's string notation (the inverse of ``str(arch)``)."""

    # --- encoding -----------------------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, archs: Sequence[Arch]) -> GraphBatch:
        """Padded tensors of a batch of architectures for the GATES encoder."""

    @property
    def max_nodes(self) -> int:
        """Number of node slots per cell in :meth:`encode`."""
        raise NotImplementedError

    # --- identity of the space ---------------------------------------------------------------
    def fingerprint(self) -> str:
        """A short hash of everything that defines the space (operations, cells, parameters and their
        choices), so that a saved state is refused by a different space that happens to share its name."""
        desc = {
            "class": type(self).__name__,
            "kind": getattr(self, "kind", None),
            "ops": list(getattr(self, "op_names", ())),
            "cells": list(getattr(self, "cell_names", ())),
            "n_inputs": getattr(self, "n_inputs", None),
            "params": self.distributions(),
            **self._fingerprint_extra(),
        }
        return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _fingerprint_extra(self) -> dict[str, Any]:
        """Settings beyond the parameters that change what an architecture means (readout, "no edge" op)."""
        return {}

    @property
    def max_text_length(self) -> int:
        """Longest architecture string :meth:`parse` reads: generous for every valid string of this space."""
        longest_op = max((len(o) for o in getattr(self, "op_names", ())), default=16)
        return 1024 + 8 * sum(len(k) + longest_op + 8 for k in self.distributions())

    def _check_text(self, text: Any, what: str = "an architecture string") -> str:
        """``text`` if it is a string of a sane length, else a ``ValueError`` saying what is expected."""
        if not isinstance(text, str):
            raise ValueError(f"expected {what} (str), got {type(text).__name__}")
        if len(text) > self.max_text_length:
            raise ValueError(
                f"{what} of {len(text)} characters is too long: at most {self.max_text_length} for {self.name}"
            )
        return text

    # --- size ---------------------------------------------------------------------------------
    @property
    def log10_size(self) -> float:
        """``log10`` of the number of raw parameter settings: an upper bound on the number of distinct
        architectures (NAS-Bench-201: 4.2, NAS-Bench-101: 8.7, DARTS: 18.0)."""
        return float(sum(math.log10(len(c)) for c in self._choice_table().values()))

    @property
    def is_large(self) -> bool:
        """More than ``10**LARGE_SPACE_LOG10`` raw settings: random candidates are almost all mediocre
        there, and the searcher's defaults change accordingly (README, "Large spaces")."""
        return self.log10_size > LARGE_SPACE_LOG10

    # --- helpers shared by all spaces ---------------------------------------------------------
    def _choice_table(self) -> Mapping[str, Sequence[str]]:
        """:meth:`distributions` for internal checks, which read it on every architecture: spaces that
        keep the table override this to skip the defensive copy (it is never handed out)."""
        return self.distributions()

    def check_params(self, params: Mapping[str, Any]) -> Params:
        """Validate names and choices of a flat parameter dict; return it with string values."""
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a mapping of parameter name to choice, got {type(params).__name__}")
        dists = self._choice_table()
        try:
            missing = [k for k in dists if k not in params]
            extra = [k for k in params if k not in dists]
        except TypeError as exc:  # a mapping whose keys cannot be compared with strings
            raise ValueError(f"params must map parameter names (str) to choices: {exc}") from None
        if missing:
            raise ValueError(
                f"missing parameter(s) {short_repr(missing)} for {self.name}; expected names: {list(dists)}"
            )
        if extra:
            raise ValueError(f"unknown parameter(s) {short_repr(extra)} for {self.name}; expected names: {list(dists)}")
        out: Params = {}
        for k, choices in dists.items():
            raw = params[k]
            # ints are accepted for digit choices ({"edge_0_1": 1}); anything else must be one of the strings
            v: str | None = None
            if isinstance(raw, (int, np.integer)) and not isinstance(raw, (bool, np.bool_)):
                v = str(int(raw))
            elif isinstance(raw, str):
                v = raw
            if v is None or v not in choices:
                raise ValueError(f"parameter {k!r} has value {short_repr(raw)}; allowed: {list(choices)}")
            out[k] = v
        return out

    def random_params(self, rng: np.random.Generator) -> Params:
        """A flat parameter dict drawn uniformly per parameter (may be invalid for constrained spaces)."""
        return {k: c[int(rng.integers(len(c)))] for k, c in self.distributions().items()}

    def suggest(self, trial: Any) -> Arch:
        """Suggest an architecture inside an Optuna objective (``trial.suggest_categorical`` per parameter)."""
        params = {k: trial.suggest_categorical(k, c) for k, c in self.distributions().items()}
        return self.from_params(params)

    def tune_param_space(self) -> dict[str, Any]:
        """A Ray Tune ``param_space`` with one ``tune.choice`` per architecture parameter."""
        try:
            from ray import tune
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("tune_param_space needs Ray Tune: pip install 'gates-sampler[ray]'") from exc
        return {k: tune.choice(c) for k, c in self.distributions().items()}

    def one_hot(self, archs: Sequence[Arch]) -> torch.Tensor:
        """Concatenated one-hot encoding of the flat parameters (the sequence baseline's input)."""
        dists = self.distributions()
        width = sum(len(c) for c in dists.values())
        out = torch.zeros(len(archs), width)
        index = {k: {c: i for i, c in enumerate(cs)} for k, cs in dists.items()}
        for b, arch in enumerate(archs):
            offset = 0
            for k, v in self.to_params(arch).items():
                out[b, offset + index[k][v]] = 1.0
                offset += len(dists[k])
        return out

    def op_counts(self, archs: Sequence[Arch]) -> np.ndarray:
        """Features for a model that adds a cost up over a cell's decisions (``n x features``): here the
        one-hot encoding of the flat parameters; cell spaces count each operation per cell instead."""
        return self.one_hot(archs).double().numpy()

    def coerce(self, arch: Any) -> Arch:
        """Accept an ``Arch``, its string notation or a flat param dict; return a validated ``Arch``."""
        if isinstance(arch, str):
            return self.parse(arch)
        if isinstance(arch, Mapping):
            return self.from_params(arch)
        return self.validate(arch)

    def is_reduced(self, arch: Arch) -> bool:
        """Whether ``arch`` is the reduced form of its class: no operation on an edge that cannot
        carry information to the output. Spaces without such edges return True."""
        return True

    def sample_unique(
        self,
        rng: np.random.Generator,
        n: int,
        exclude: Iterable[str] = (),
        max_tries: int | None = None,
        reduced: bool = False,
    ) -> list[Arch]:
        """Up to ``n`` random architectures with distinct canonical keys, none in ``exclude``.

        With ``reduced=True`` only reduced forms are drawn, i.e. sampling is uniform over
        functionally distinct cells rather than over raw parameter settings (in which a cell with
        dead edges is drawn once for every op those edges could carry).
        """
        seen = set(exclude)
        out: list[Arch] = []
        tries = max_tries if max_tries is not None else 50 * n + 100
        for _ in range(tries):
            if len(out) >= n:
                break
            a = self.sample(rng)
            if reduced and not self.is_reduced(a):
                continue
            k = self.canonical_key(a)
            if k in seen:
                continue
            seen.add(k)
            out.append(a)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
