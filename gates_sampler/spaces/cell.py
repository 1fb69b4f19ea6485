"""User-defined cell spaces: "operation on edge" (NB201, DARTS) and "operation on node" (NB101)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from gates_sampler.spaces.base import (
    Arch,
    CellBatch,
    EdgeArch,
    EdgeCell,
    GraphBatch,
    NodeArch,
    Params,
    SearchSpace,
    short_repr,
)

# Beyond this many interchangeable nodes, canonical keys use a Weisfeiler-Lehman hash instead of
# trying every relabelling (exact, but factorial in the node count).
_MAX_BRUTE_FORCE_NODES = 7
#: cells whose canonical keys a space remembers
_CELL_KEY_CACHE_SIZE = 50_000


def _check_names(ops: Sequence[str], what: str) -> tuple[str, ...]:
    ops = tuple(ops)
    if not ops or not all(isinstance(o, str) and o for o in ops):
        raise ValueError(f"{what} must be a non-empty list of non-empty strings, got {ops!r}")
    if len(set(ops)) != len(ops):
        raise ValueError(f"{what} has duplicates: {ops!r}")
    return ops


def _is_index(value: Any) -> bool:
    """A node index: a Python or numpy int, not a bool (``True`` is no node), not a float or a string."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_sequence(value: Any) -> bool:
    """A list, tuple or array of items (strings and bytes are text, not sequences of items)."""
    return isinstance(value, (list, tuple, np.ndarray))


def _ascii_int(text: str, where: str, max_digits: int = 6) -> int:
    """``text`` as a non-negative int written in ASCII digits, else a ``ValueError`` naming ``where``."""
    if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        raise ValueError(f"{where}: expected a node index written with the digits 0-9, got {short_repr(text)}")
    return int(text)


def _wl_hash(labels: list[str], edges: list[tuple[int, int]], rounds: int) -> str:
    """Weisfeiler-Lehman style hash of a labelled DAG (as NAS-Bench-101 hashes cells)."""
    import hashlib

    n = len(labels)
    ins: list[list[int]] = [[] for _ in range(n)]
    outs: list[list[int]] = [[] for _ in range(n)]
    for s, d in edges:
        outs[s].append(d)
        ins[d].append(s)
    h = [hashlib.md5(f"{lab}|{len(ins[i])}|{len(outs[i])}".encode()).hexdigest() for i, lab in enumerate(labels)]
    for _ in range(rounds):
        h = [
            hashlib.md5(
                (
                    "|".join(sorted(h[s] for s in ins[i])) + "#" + "|".join(sorted(h[d] for d in outs[i])) + "#" + h[i]
                ).encode()
            ).hexdigest()
            for i in range(n)
        ]
    return hashlib.md5("".join(sorted(h)).encode()).hexdigest()


class CellSpace(SearchSpace):
    """A user-defined cell search space.

    ``CellSpace(kind="edge", ...)`` builds an :class:`EdgeCellSpace` (operations on the edges of the
    cell DAG, as NAS-Bench-201 and DARTS); ``CellSpace(kind="node", ...)`` a :class:`NodeCellSpace`
    (operations on the nodes, as NAS-Bench-101). See those classes for the arguments.
    """

    def __new__(cls, *args: Any, kind: str | None = None, **kwargs: Any) -> CellSpace:
        if cls is CellSpace:
            if kind == "edge":
                return super().__new__(EdgeCellSpace)
            if kind == "node":
                return super().__new__(NodeCellSpace)
            raise ValueError(f"kind must be 'edge' (operation on edge) or 'node' (operation on node), got {kind!r}")
        return super().__new__(cls)


class EdgeCellSpace(CellSpace):
    """Operation-on-edge cells.

    Args:
        ops: the operation names an edge can take.
        n_nodes: intermediate nodes per cell.
        n_inputs: input nodes per cell (1 for NAS-Bench-201, 2 for DARTS).
        inputs_per_node: ``None`` for a dense cell (every earlier node feeds every node, one op per
            edge, use a ``none_op`` to drop an edge), or the number of inputs each node picks.
        distinct_inputs: with ``inputs_per_node``, whether a node's inputs must be distinct nodes.
        cell_names: one name per cell of an architecture (e.g. ``("normal", "reduce")``).
        readout: ``"last"`` (the last node is the cell output) or ``"mean"`` (the output combines
            all intermediate nodes, as DARTS concatenates them).
        none_op: the op meaning "no edge", if any (it carries no information).
        name: identifier of the space used in cache keys and saved states.
    """

    kind = "edge"

    def __init__(
        self,
        ops: Sequence[str],
        n_nodes: int,
        n_inputs: int = 1,
        inputs_per_node: int | None = None,
        distinct_inputs: bool = True,
        cell_names: Sequence[str] = ("cell",),
        readout: str = "last",
        none_op: str | None = "none",
        name: str = "cell-edge",
        kind: str = "edge",
    ) -> None:
        self.op_names = _check_names(ops, "ops")
        self.cell_names = _check_names(cell_names, "cell_names")
        if not isinstance(n_nodes, int) or n_nodes < 1:
            raise ValueError(f"n_nodes must be a positive int, got {n_nodes!r}")
        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise ValueError(f"n_inputs must be a positive int, got {n_inputs!r}")
        if inputs_per_node is not None:
            if not isinstance(inputs_per_node, int) or inputs_per_node < 1:
                raise ValueError(f"inputs_per_node must be None or a positive int, got {inputs_per_node!r}")
            if distinct_inputs and inputs_per_node > n_inputs:
                raise ValueError(
                    f"inputs_per_node={inputs_per_node} distinct inputs cannot be chosen by the first node, "
                    f"which sees only n_inputs={n_inputs} nodes"
                )
        if readout not in ("last", "mean"):
            raise ValueError(f"readout must be 'last' or 'mean', got {readout!r}")
        self.n_nodes = n_nodes
        self.n_inputs = n_inputs
        self.inputs_per_node = inputs_per_node
        self.distinct_inputs = distinct_inputs
        self.readout = readout
        self.none_op = none_op if none_op in self.op_names else None
        self.name = name
        self._op_index = {o: i for i, o in enumerate(self.op_names)}
        self._dists = self._build_distributions()

    # ----- structure --------------------------------------------------------------------------
    @property
    def max_nodes(self) -> int:
        return self.n_inputs + self.n_nodes

    def op_counts(self, archs: Sequence[Arch]) -> np.ndarray:
        """How often each operation occurs in each cell: ``n x (cells * ops)``, cells in ``cell_names`` order.

        A cost that adds up over the operations a network runs (latency, FLOPs, energy) is close to
        linear in these counts.
        """
        n_ops = len(self.op_names)
        out = np.zeros((len(archs), len(self.cell_names) * n_ops))
        for b, arch in enumerate(archs):
            assert isinstance(arch, EdgeArch)
            for c, cell in enumerate(arch.cells):
                for node in cell:
                    for op, _ in node:
                        out[b, c * n_ops + self._op_index[op]] += 1.0
        return out

    @property
    def dense(self) -> bool:
        return self.inputs_per_node is None

    def _prefix(self, c: int) -> str:
        return "" if len(self.cell_names) == 1 else f"{self.cell_names[c]}_"

    def _input_sets(self, node: int) -> list[tuple[int, ...]]:
        """Allowed sorted input tuples of the node with absolute index ``node`` (sparse cells)."""
        assert self.inputs_per_node is not None
        combos = itertools.combinations if self.distinct_inputs else itertools.combinations_with_replacement
        return list(combos(range(node), self.inputs_per_node))

    def _build_distributions(self) -> dict[str, list[str]]:
        dists: dict[str, list[str]] = {}
        ops = list(self.op_names)
        for c in range(len(self.cell_names)):
            p = self._prefix(c)
            for k in range(self.n_nodes):
                node = self.n_inputs + k
                if self.dense:
                    for src in range(node):
                        dists[f"{p}node{node}_from{src}"] = ops
                else:
                    dists[f"{p}node{node}_inputs"] = [",".join(map(str, s)) for s in self._input_sets(node)]
                    for i in range(self.inputs_per_node):  # type: ignore[arg-type]
                        dists[f"{p}node{node}_op{i}"] = ops
        return dists

    def distributions(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._dists.items()}

    def _choice_table(self) -> Mapping[str, Sequence[str]]:
        return self._dists

    # ----- construction and validation --------------------------------------------------------
    #: the class :meth:`_make` builds; an architecture of exactly this class that passes the checks is
    #: returned by :meth:`validate` as it is
    arch_type: type[EdgeArch] = EdgeArch

    def _make(self, cells: tuple[EdgeCell, ...]) -> EdgeArch:
        return EdgeArch(cells)

    def validate(self, arch: Any) -> EdgeArch:
        if not isinstance(arch, EdgeArch):
            raise ValueError(f"expected an architecture of {self.name} (EdgeArch), got {type(arch).__name__}")
        if not _is_sequence(arch.cells):
            raise ValueError(
                f"cells must be a tuple with one entry per cell {self.cell_names}, got {short_repr(arch.cells)}"
            )
        if len(arch.cells) != len(self.cell_names):
            raise ValueError(
                f"architecture has {len(arch.cells)} cells, "
                f"{self.name} expects {len(self.cell_names)} ({self.cell_names})"
            )
        # exact: every container a tuple, every op a str and every input an int, so the checked
        # architecture can be returned as it is instead of being rebuilt
        exact = True
        for c, cell in enumerate(arch.cells):
            cname = self.cell_names[c]
            exact = exact and type(cell) is tuple
            if not _is_sequence(cell):
                raise ValueError(f"cell {cname!r} must be a tuple of nodes, got {short_repr(cell)}")
            if len(cell) != self.n_nodes:
                raise ValueError(f"cell {cname!r} has {len(cell)} nodes, expected {self.n_nodes}")
            for k, edges in enumerate(cell):
                node = self.n_inputs + k
                where = f"cell {cname!r} node {node}"
                if not _is_sequence(edges):
                    raise ValueError(f"{where}: must be a tuple of (op, input) edges, got {short_repr(edges)}")
                exact = exact and type(edges) is tuple
                for e in edges:
                    if not (isinstance(e, tuple) and len(e) == 2):
                        raise ValueError(f"{where}: an edge must be an (op, input) pair, got {short_repr(e)}")
                    op, src = e
                    exact = exact and type(e) is tuple and type(op) is str and type(src) is int
                    if not isinstance(op, str) or op not in self._op_index:
                        raise ValueError(f"{where}: unknown operation {short_repr(op)}; allowed: {list(self.op_names)}")
                    if not _is_index(src) or not 0 <= int(src) < node:
                        raise ValueError(
                            f"{where}: input {short_repr(src)} must be an earlier node (an int in 0..{node - 1})"
                        )
                srcs = [int(s) for _, s in edges]
                if self.dense:
                    if srcs != list(range(node)):
                        raise ValueError(
                            f"{where}: a dense cell needs one edge from each of nodes 0..{node - 1} in order, "
                            f"got inputs {srcs}"
                        )
                else:
                    if len(edges) != self.inputs_per_node:
                        raise ValueError(f"{where}: has {len(edges)} inputs, expected {self.inputs_per_node}")
                    if self.distinct_inputs and len(set(srcs)) != len(srcs):
                        raise ValueError(f"{where}: inputs {srcs} must be distinct nodes")
        if exact and type(arch.cells) is tuple and type(arch) is self.arch_type:
            return arch
        return self._make(
            tuple(tuple(tuple((str(op), int(s)) for op, s in node) for node in cell) for cell in arch.cells)
        )

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {"readout": self.readout, "none_op": self.none_op, "distinct_inputs": self.distinct_inputs}

    def from_cells(self, cells: Sequence[Sequence[Sequence[tuple[str, int]]]]) -> EdgeArch:
        """Build (and validate) an architecture from nested lists ``cells[cell][node] = [(op, input), ...]``."""
        where = "cells"
        try:
            built = []
            for c, cell in enumerate(cells):
                where = f"cells[{c}]"
                nodes = []
                for k, node in enumerate(cell):
                    where = f"cells[{c}][{k}]"
                    nodes.append(tuple(tuple(edge) for edge in node))
                built.append(tuple(nodes))
        except TypeError:
            raise ValueError(
                f"{where}: expected nested lists cells[cell][node] = [(op, input), ...], got {short_repr(cells)}"
            ) from None
        return self.validate(self._make(tuple(built)))  # type: ignore[arg-type]  # validate checks every entry

    # ----- flat parameters --------------------------------------------------------------------
    def to_params(self, arch: Arch) -> Params:
        arch = self.validate(arch)
        out: Params = {}
        for c, cell in enumerate(arch.cells):
            p = self._prefix(c)
            for k, edges in enumerate(cell):
                node = self.n_inputs + k
                if self.dense:
                    for op, src in edges:
                        out[f"{p}node{node}_from{src}"] = op
                else:
                    ordered = sorted(edges, key=lambda e: (e[1], e[0]))
                    out[f"{p}node{node}_inputs"] = ",".join(str(s) for _, s in ordered)
                    for i, (op, _) in enumerate(ordered):
                        out[f"{p}node{node}_op{i}"] = op
        return out

    def from_params(self, params: Mapping[str, Any]) -> EdgeArch:
        params = self.check_params(params)
        cells = []
        for c in range(len(self.cell_names)):
            p = self._prefix(c)
            nodes = []
            for k in range(self.n_nodes):
                node = self.n_inputs + k
                if self.dense:
                    nodes.append(tuple((params[f"{p}node{node}_from{src}"], src) for src in range(node)))
                else:
                    srcs = [int(s) for s in params[f"{p}node{node}_inputs"].split(",")]
                    nodes.append(tuple((params[f"{p}node{node}_op{i}"], s) for i, s in enumerate(srcs)))
            cells.append(tuple(nodes))
        return self.validate(self._make(tuple(cells)))

    # ----- sampling ---------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> EdgeArch:
        cells = []
        n_ops = len(self.op_names)
        for _ in self.cell_names:
            nodes = []
            for k in range(self.n_nodes):
                node = self.n_inputs + k
                if self.dense:
                    nodes.append(tuple((self.op_names[int(rng.integers(n_ops))], s) for s in range(node)))
                else:
                    sets = self._input_sets(node)
                    srcs = sets[int(rng.integers(len(sets)))]
                    nodes.append(tuple((self.op_names[int(rng.integers(n_ops))], s) for s in srcs))
            cells.append(tuple(nodes))
        return self._make(tuple(cells))

    def enumerate(self) -> Iterator[EdgeArch]:
        """Every architecture of the space, in parameter order (only sensible for small spaces)."""
        dists = self._dists
        names = list(dists)
        for combo in itertools.product(*(dists[n] for n in names)):
            yield self.from_params(dict(zip(names, combo)))

    def neighbors(self, arch: Arch) -> list[Arch]:
        params = self.to_params(arch)
        out: list[Arch] = []
        for name, choices in self._dists.items():
            for v in choices:
                if v == params[name]:
                    continue
                out.append(self.from_params({**params, name: v}))
        return out

    def mutate(self, arch: Arch, rng: np.random.Generator) -> EdgeArch:
        params = self.to_params(arch)
        names = list(self._dists)
        while True:
            name = names[int(rng.integers(len(names)))]
            choices = [v for v in self._dists[name] if v != params[name]]
            if choices:
                return self.from_params({**params, name: choices[int(rng.integers(len(choices)))]})

    # ----- canonical key ----------------------------------------------------------------------
    def _live_edges(self, cell: EdgeCell) -> list[tuple[int, int, str]]:
        """Edges ``(src, dst, op)`` that can carry information from an input to the cell output."""
        edges = [(src, self.n_inputs + k, op) for k, node in enumerate(cell) for op, src in node if op != self.none_op]
        n = self.max_nodes
        outputs = [n - 1] if self.readout == "last" else list(range(self.n_inputs, n))
        reach_in = set(range(self.n_inputs))
        for s, d, _ in sorted(edges, key=lambda e: e[1]):
            if s in reach_in:
                reach_in.add(d)
        reach_out = set(outputs)
        for s, d, _ in sorted(edges, key=lambda e: -e[1]):
            if d in reach_out:
                reach_out.add(s)
        return [(s, d, op) for s, d, op in edges if s in reach_in and d in reach_out and s in reach_out]

    def is_reduced(self, arch: Arch) -> bool:
        arch = self.validate(arch)
        for cell in arch.cells:
            n_ops = sum(op != self.none_op for node in cell for op, _ in node)
            if n_ops != len(self._live_edges(cell)):
                return False
        return True

    def _cell_key(self, cell: EdgeCell) -> str:
        # Searches key thousands of single-edit mutants per proposal, and a mutant shares all but one
        # cell with its parent: the cells' keys are remembered (a bounded cache, emptied when full).
        cache = self._cell_key_cache
        key = cache.get(cell)
        if key is None:
            if len(cache) >= _CELL_KEY_CACHE_SIZE:
                cache.clear()
            key = cache[cell] = self._compute_cell_key(cell)
        return key

    @functools.cached_property
    def _cell_key_cache(self) -> dict[EdgeCell, str]:
        return {}

    def __getstate__(self) -> dict[str, Any]:
        # the caches are rebuilt on demand: a pickled space (sent to workers) stays small
        state = dict(self.__dict__)
        state.pop("_cell_key_cache", None)
        state.pop("_relabelings", None)
        return state

    def _compute_cell_key(self, cell: EdgeCell) -> str:
        edges = self._live_edges(cell)
        if not edges:
            return "empty"
        n = self.max_nodes
        if len(self._free_nodes) > _MAX_BRUTE_FORCE_NODES:
            labels = [f"in{i}" for i in range(self.n_inputs)] + ["node"] * self.n_nodes
            if self.readout == "last":
                labels[-1] = "out"
            # Put each op on its own vertex so the graph hash sees edge labels.
            vlabels = list(labels)
            vedges = []
            for s, d, op in edges:
                vlabels.append(op)
                vedges += [(s, len(vlabels) - 1), (len(vlabels) - 1, d)]
            return _wl_hash(vlabels, vedges, rounds=2 * n)
        best = min(tuple(sorted((r[s], r[d], op) for s, d, op in edges)) for r in self._relabelings)
        return ";".join(f"{s}>{d}:{op}" for s, d, op in best)

    @property
    def _free_nodes(self) -> list[int]:
        """The interchangeable nodes of a cell: the intermediate ones, except a fixed output node."""
        n = self.max_nodes
        return list(range(self.n_inputs, n - 1 if self.readout == "last" else n))

    @functools.cached_property
    def _relabelings(self) -> list[list[int]]:
        """Every relabelling of the nodes that permutes :attr:`_free_nodes` and fixes the others, as
        index lists."""
        free = self._free_nodes
        out = []
        for perm in itertools.permutations(free):
            r = list(range(self.max_nodes))
            for i, j in zip(free, perm):
                r[i] = j
            out.append(r)
        return out

    def canonical_key(self, arch: Arch) -> str:
        arch = self.validate(arch)
        return "/".join(self._cell_key(cell) for cell in arch.cells)

    # ----- text -------------------------------------------------------------------------------
    def parse(self, text: str) -> EdgeArch:
        text = self._check_text(text)
        cells = []
        for cell_text in text.split(" / "):
            nodes = []
            for node_text in cell_text.strip().split("+"):
                node_text = node_text.strip()
                if not (len(node_text) >= 2 and node_text.startswith("|") and node_text.endswith("|")):
                    raise ValueError(
                        f"cannot parse node {short_repr(node_text)} of {short_repr(text)}: expected '|op~input|...|'"
                    )
                edges = []
                for tok in node_text[1:-1].split("|"):
                    op, sep, src = tok.rpartition("~")
                    if not sep:
                        raise ValueError(
                            f"cannot parse edge {short_repr(tok)} of {short_repr(text)}: expected 'op~input'"
                        )
                    edges.append((op, _ascii_int(src, f"cannot parse edge {short_repr(tok)} of {short_repr(text)}")))
                nodes.append(tuple(edges))
            cells.append(tuple(nodes))
        return self.validate(self._make(tuple(cells)))

    # ----- encoding ---------------------------------------------------------------------------
    @property
    def max_edges_per_pair(self) -> int:
        if self.dense or self.distinct_inputs:
            return 1
        return int(self.inputs_per_node)  # type: ignore[arg-type]

    def encode(self, archs: Sequence[Arch]) -> GraphBatch:
        b, n, d = len(archs), self.max_nodes, self.max_edges_per_pair
        cells = []
        readout = torch.zeros(n)
        if self.readout == "last":
            readout[n - 1] = 1.0
        else:
            readout[self.n_inputs :] = 1.0 / self.n_nodes
        for c in range(len(self.cell_names)):
            # filled in numpy: per-element writes into a torch tensor cost microseconds each
            ops = np.zeros((b, n, n, d), dtype=np.int64)
            for i, arch in enumerate(archs):
                for k, edges in enumerate(arch.cells[c]):  # type: ignore[attr-defined]
                    dst = self.n_inputs + k
                    for op, src in edges:
                        if op == self.none_op:
                            continue
                        slots = ops[i, dst, src]
                        slots[np.count_nonzero(slots)] = self._op_index[op] + 1
            cells.append(CellBatch(ops=torch.from_numpy(ops), readout=readout.expand(b, n).clone()))
        return GraphBatch(kind="edge", cells=cells, n_inputs=self.n_inputs, size=b)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(ops={list(self.op_names)}, n_nodes={self.n_nodes}, n_inputs={self.n_inputs}, "
            f"inputs_per_node={self.inputs_per_node}, cell_names={list(self.cell_names)})"
        )


class NodeCellSpace(CellSpace):
    """Operation-on-node cells (NAS-Bench-101 style).

    A cell is a DAG of at most ``max_vertices`` vertices: vertex 0 is the input, the last vertex the
    output, each other vertex carries one of ``ops``; at most ``max_edges`` edges. Vertices that are
    not on an input-to-output path are pruned, so every architecture is stored in its pruned form.

    Args:
        ops: operation names of the intermediate vertices.
        max_vertices: most vertices, input and output included.
        max_edges: most edges (``None``: no limit).
        name: identifier of the space used in cache keys and saved states.
    """

    kind = "node"
    INPUT = "input"
    OUTPUT = "output"

    def __init__(
        self,
        ops: Sequence[str],
        max_vertices: int = 7,
        max_edges: int | None = 9,
        name: str = "cell-node",
        kind: str = "node",
    ) -> None:
        ops = _check_names(ops, "ops")
        if self.INPUT in ops or self.OUTPUT in ops:
            raise ValueError(f"ops must not contain the reserved names {self.INPUT!r} / {self.OUTPUT!r}")
        if not isinstance(max_vertices, int) or max_vertices < 2:
            raise ValueError(f"max_vertices must be an int >= 2, got {max_vertices!r}")
        self.cell_ops = ops
        self.op_names = ops + (self.INPUT, self.OUTPUT)
        self.cell_names = ("cell",)
        self.n_inputs = 1
        self.max_vertices = max_vertices
        self.max_edges = max_edges
        self.name = name
        self._op_index = {o: i for i, o in enumerate(self.op_names)}
        v = max_vertices
        self._dists: dict[str, list[str]] = {f"edge_{i}_{j}": ["0", "1"] for i in range(v) for j in range(i + 1, v)}
        self._dists.update({f"op_{k}": list(ops) for k in range(1, v - 1)})

    @property
    def max_nodes(self) -> int:
        return self.max_vertices

    def op_counts(self, archs: Sequence[Arch]) -> np.ndarray:
        """How often each operation occurs in the cell, then its number of edges: ``n x (ops + 1)``."""
        n_ops = len(self.cell_ops)
        out = np.zeros((len(archs), n_ops + 1))
        for b, arch in enumerate(archs):
            assert isinstance(arch, NodeArch)
            for op in arch.ops[1:-1]:
                out[b, self._op_index[op]] += 1.0
            out[b, n_ops] = len(arch.edges())
        return out

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {"max_vertices": self.max_vertices, "max_edges": self.max_edges}

    def distributions(self) -> dict[str, list[str]]:
        return {k: list(c) for k, c in self._dists.items()}

    def _choice_table(self) -> Mapping[str, Sequence[str]]:
        return self._dists

    def _make(self, matrix: tuple[tuple[int, ...], ...], ops: tuple[str, ...]) -> NodeArch:
        return NodeArch(matrix, ops)

    # ----- pruning and validation -------------------------------------------------------------
    def prune(self, matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> NodeArch:
        """Drop vertices not on an input-to-output path; raise ``ValueError`` if no path remains
        or the pruned cell breaks the space's limits."""
        if not _is_sequence(ops) or not all(isinstance(o, str) for o in ops):
            raise ValueError(f"ops must be a list of operation names (str), got {short_repr(ops)}")
        if not _is_sequence(matrix) or not all(_is_sequence(row) for row in matrix):
            raise ValueError(f"matrix must be a square list of rows of 0/1 ints, got {short_repr(matrix)}")
        bad = [v for row in matrix for v in row if not (_is_index(v) and v in (0, 1))]
        if bad:
            raise ValueError(f"matrix entries must be the ints 0 or 1, got {short_repr(bad[0])}")
        n = len(ops)
        if any(len(row) != n for row in matrix) or len(matrix) != n:
            lengths = sorted({len(r) for r in matrix})
            raise ValueError(f"matrix must be {n}x{n} to match {n} ops, got {len(matrix)} rows of lengths {lengths}")
        m = np.array(matrix, dtype=np.int64).reshape(n, n)
        if m.shape != (n, n):
            raise ValueError(f"matrix must be {n}x{n} to match {n} ops, got shape {m.shape}")
        if np.any((m != 0) & (m != 1)):
            raise ValueError("matrix entries must be 0 or 1")
        if np.any(np.tril(m) != 0):
            raise ValueError("matrix must be strictly upper-triangular (edges go from lower to higher vertex index)")
        if n < 2:
            raise ValueError("a cell needs at least an input and an output vertex")
        if ops[0] != self.INPUT or ops[-1] != self.OUTPUT:
            raise ValueError(f"ops must start with {self.INPUT!r} and end with {self.OUTPUT!r}, got {list(ops)}")
        for k, op in enumerate(ops[1:-1], start=1):
            if op not in self.cell_ops:
                raise ValueError(f"vertex {k}: unknown operation {op!r}; allowed: {list(self.cell_ops)}")
        fwd = {0}
        for j in range(1, n):
            if any(m[i, j] and i in fwd for i in range(j)):
                fwd.add(j)
        bwd = {n - 1}
        for i in range(n - 2, -1, -1):
            if any(m[i, j] and j in bwd for j in range(i + 1, n)):
                bwd.add(i)
        keep = sorted(fwd & bwd)
        if n - 1 not in keep or 0 not in keep:
            raise ValueError("the cell has no path from the input to the output vertex")
        m = m[np.ix_(keep, keep)]
        ops = [ops[k] for k in keep]
        if len(ops) > self.max_vertices:
            raise ValueError(f"the cell has {len(ops)} vertices after pruning, at most {self.max_vertices} allowed")
        if self.max_edges is not None and int(m.sum()) > self.max_edges:
            raise ValueError(f"the cell has {int(m.sum())} edges after pruning, at most {self.max_edges} allowed")
        return self._make(tuple(tuple(int(x) for x in row) for row in m), tuple(ops))

    def validate(self, arch: Any) -> NodeArch:
        if not isinstance(arch, NodeArch):
            raise ValueError(f"expected an architecture of {self.name} (NodeArch), got {type(arch).__name__}")
        if not _is_sequence(arch.ops):
            raise ValueError(f"ops must be a tuple of operation names, got {short_repr(arch.ops)}")
        pruned = self.prune(arch.matrix, arch.ops)
        if pruned.ops != tuple(arch.ops):
            raise ValueError(
                "the cell has vertices that are not on an input-to-output path; build it with space.prune(matrix, ops)"
            )
        return pruned

    # ----- flat parameters --------------------------------------------------------------------
    def to_params(self, arch: Arch) -> Params:
        arch = self.validate(arch)
        n, v = arch.num_vertices, self.max_vertices
        # Intermediate vertices keep their slots 1..n-2; the output moves to the last slot.
        slot = list(range(n - 1)) + [v - 1]
        out: Params = {name: "0" for name in self._dists if name.startswith("edge_")}
        for i, j in arch.edges():
            out[f"edge_{slot[i]}_{slot[j]}"] = "1"
        for k in range(1, v - 1):
            out[f"op_{k}"] = arch.ops[k] if k < n - 1 else self.cell_ops[0]
        return out

    def from_params(self, params: Mapping[str, Any]) -> NodeArch:
        params = self.check_params(params)
        v = self.max_vertices
        m = [[1 if j > i and params[f"edge_{i}_{j}"] == "1" else 0 for j in range(v)] for i in range(v)]
        ops = [self.INPUT] + [params[f"op_{k}"] for k in range(1, v - 1)] + [self.OUTPUT]
        try:
            return self.prune(m, ops)
        except ValueError as exc:
            raise ValueError(f"the edge_* parameters do not form a valid cell: {exc}") from None

    # ----- sampling ---------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> NodeArch:
        v = self.max_vertices
        for _ in range(10_000):
            m = np.triu(rng.integers(0, 2, size=(v, v)), 1)
            ops = (
                [self.INPUT]
                + [self.cell_ops[int(rng.integers(len(self.cell_ops)))] for _ in range(v - 2)]
                + [self.OUTPUT]
            )
            try:
                return self.prune(m.tolist(), ops)
            except ValueError:
                continue
        raise RuntimeError("could not sample a valid cell in 10000 tries; are max_edges / max_vertices too tight?")

    def neighbors(self, arch: Arch) -> list[Arch]:
        return list(self._neighbor_cells(arch))

    def _neighbor_cells(self, arch: Arch) -> list[NodeArch]:
        """:meth:`neighbors` typed as this space's architectures (for :meth:`mutate`)."""
        arch = self.validate(arch)
        n = arch.num_vertices
        out: dict[NodeArch, None] = {}
        for i in range(n):
            for j in range(i + 1, n):
                m = [list(r) for r in arch.matrix]
                m[i][j] = 1 - m[i][j]
                try:
                    out[self.prune(m, arch.ops)] = None
                except ValueError:
                    pass
        for k in range(1, n - 1):
            for op in self.cell_ops:
                if op != arch.ops[k]:
                    ops = list(arch.ops)
                    ops[k] = op
                    out[self._make(arch.matrix, tuple(ops))] = None
        out.pop(arch, None)
        return list(out)

    def mutate(self, arch: Arch, rng: np.random.Generator) -> NodeArch:
        nb = self._neighbor_cells(arch)
        if nb:
            return nb[int(rng.integers(len(nb)))]
        # No single edit keeps this cell valid (e.g. input -> output): draw a different cell instead.
        for _ in range(1000):
            other = self.sample(rng)
            if other != arch:
                return other
        raise RuntimeError("could not find a different cell to mutate to; is the space a single cell?")

    # ----- canonical key ----------------------------------------------------------------------
    def canonical_key(self, arch: Arch) -> str:
        arch = self.validate(arch)
        n = arch.num_vertices
        edges = arch.edges()
        free = list(range(1, n - 1))
        if len(free) > _MAX_BRUTE_FORCE_NODES:
            return _wl_hash(list(arch.ops), edges, rounds=n)
        best = None
        for perm in itertools.permutations(free):
            relabel = {0: 0, n - 1: n - 1, **dict(zip(free, perm))}
            labels = [""] * n
            for k in range(n):
                labels[relabel[k]] = arch.ops[k]
            rep = (tuple(labels), tuple(sorted((relabel[i], relabel[j]) for i, j in edges)))
            if best is None or rep < best:
                best = rep
        assert best is not None
        return ",".join(best[0]) + ";" + " ".join(f"{i}>{j}" for i, j in best[1])

    # ----- text -------------------------------------------------------------------------------
    def parse(self, text: str) -> NodeArch:
        text = self._check_text(text)
        expected = "expected '[0110,0001,...]:input,op,...,output'"
        mat_text, sep, ops_text = text.strip().partition(":")
        mat_text = mat_text.strip()
        if not sep or ":" in ops_text or not (len(mat_text) >= 2 and mat_text[0] == "[" and mat_text[-1] == "]"):
            raise ValueError(f"cannot parse {short_repr(text)}: {expected}")
        matrix = []
        for r, row in enumerate(mat_text[1:-1].split(",")):
            row = row.strip()
            if not row or any(ch not in "01" for ch in row):
                raise ValueError(
                    f"cannot parse {short_repr(text)}: matrix entries must be 0 or 1 (ASCII digits), "
                    f"row {r} is {short_repr(row)}"
                )
            matrix.append(tuple(int(ch) for ch in row))
        ops = tuple(o.strip() for o in ops_text.split(","))
        return self.validate(self._make(tuple(matrix), ops))

    def from_matrix(self, matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> NodeArch:
        """Build an architecture from an adjacency matrix and op list, pruning dead vertices."""
        return self.prune(matrix, ops)

    # ----- encoding ---------------------------------------------------------------------------
    def encode(self, archs: Sequence[Arch]) -> GraphBatch:
        b, v = len(archs), self.max_vertices
        ops = torch.zeros(b, v, dtype=torch.long)
        adj = torch.zeros(b, v, v)
        readout = torch.zeros(b, v)
        for i, arch in enumerate(archs):
            n = arch.num_vertices  # type: ignore[attr-defined]
            for k, op in enumerate(arch.ops):  # type: ignore[attr-defined]
                ops[i, k] = self._op_index[op] + 1
            for s, d in arch.edges():  # type: ignore[attr-defined]
                adj[i, d, s] = 1.0
            readout[i, n - 1] = 1.0
        return GraphBatch(kind="node", cells=[CellBatch(ops=ops, readout=readout, adj=adj)], n_inputs=1, size=b)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(ops={list(self.cell_ops)}, "
            f"max_vertices={self.max_vertices}, max_edges={self.max_edges})"
        )
