"""GATES encoders (paper Sec. 4.3) and the one-hot MLP baseline."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
from torch import nn

from gates_sampler.spaces.base import CellBatch, GraphBatch


class GatesLayer(nn.Module):
    """One step of information propagation (Eq. 3/4 for OON, Eq. 5/6 for OOE).

    Every operation acts as a soft gate ``sigmoid([EMB(o), z(o)] W_o)`` on the linearly transformed
    information ``x W_x`` that flows through it; information arriving at a node is summed.
    """

    def __init__(self, in_dim: int, out_dim: int, op_dim: int) -> None:
        super().__init__()
        self.w_x = nn.Linear(in_dim, out_dim, bias=False)
        self.w_o = nn.Linear(op_dim, out_dim, bias=False)

    def forward_edge(self, x: torch.Tensor, op_emb: torch.Tensor, mask: torch.Tensor, n_inputs: int) -> torch.Tensor:
        """x ``[B, V, H]``; op_emb ``[B, V(dst), V(src), D, O]``; mask ``[B, V, V, D]`` (1 where an edge exists)."""
        s = self.w_x(x)  # [B, V(src), H']
        gate = torch.sigmoid(self.w_o(op_emb)) * mask.unsqueeze(-1)  # [B, dst, src, D, H']
        out = (gate.sum(dim=3) * s.unsqueeze(1)).sum(dim=2)  # sum over d and src -> [B, dst, H']
        # Input nodes have no incoming edge; they keep their (transformed) information so that a
        # stack of layers lets it reach nodes at any depth.
        return torch.cat([s[:, :n_inputs], out[:, n_inputs:]], dim=1)

    def forward_node(self, x: torch.Tensor, op_emb: torch.Tensor, adj: torch.Tensor, self_loop: bool) -> torch.Tensor:
        """x ``[B, V, H]``; op_emb ``[B, V, O]``; adj ``[B, V(dst), V(src)]``."""
        s = self.w_x(x)
        if self_loop:
            adj = adj + torch.eye(adj.shape[-1], device=adj.device, dtype=adj.dtype)
        return torch.sigmoid(self.w_o(op_emb)) * torch.bmm(adj, s)


class GatesEncoder(nn.Module):
    """GATES / GATES++ encoder for a space's :class:`GraphBatch`.

    Cells are encoded independently (separate input embeddings and layers per cell position) and
    their embeddings concatenated. The cell embedding is the readout-weighted sum of node information
    (the output node for NB101/NB201, the mean of the intermediate nodes for DARTS).

    Args:
        kind: ``"edge"`` or ``"node"``.
        n_ops: number of operation primitives of the space.
        n_cells: cells per architecture.
        n_inputs: input nodes per cell.
        op_dim: operation embedding size.
        hidden: information size of every layer.
        n_layers: GATES layers (propagation steps).
        self_loop: Eq. 4's self-loop (OON only).
        op_feature_dim: size of the per-op feature vector concatenated to the op embedding (GATES++ EES);
            0 for plain GATES.
    """

    def __init__(
        self,
        kind: str,
        n_ops: int,
        n_cells: int = 1,
        n_inputs: int = 1,
        op_dim: int = 48,
        hidden: int = 128,
        n_layers: int = 5,
        self_loop: bool = True,
        op_feature_dim: int = 0,
    ) -> None:
        super().__init__()
        if kind not in ("edge", "node"):
            raise ValueError(f"kind must be 'edge' or 'node', got {kind!r}")
        self.kind = kind
        self.n_inputs = n_inputs
        self.self_loop = self_loop
        self.op_feature_dim = op_feature_dim
        self.out_dim = hidden * n_cells
        self.input_emb = nn.ParameterList([nn.Parameter(torch.randn(n_inputs, hidden)) for _ in range(n_cells)])
        # index 0 is "no edge / padding"; its embedding is never used (masked) but keeps indices aligned
        self.op_emb = nn.ModuleList([nn.Embedding(n_ops + 1, op_dim) for _ in range(n_cells)])
        self.layers = nn.ModuleList(
            [
                nn.ModuleList([GatesLayer(hidden, hidden, op_dim + op_feature_dim) for _ in range(n_layers)])
                for _ in range(n_cells)
            ]
        )

    def _op_embedding(self, c: int, cell: CellBatch) -> torch.Tensor:
        emb = self.op_emb[c](cell.ops)
        if self.op_feature_dim:
            if cell.op_features is None:
                raise ValueError("this encoder was built with op features (GATES++); the batch carries none")
            emb = torch.cat([emb, cell.op_features.to(emb.dtype)], dim=-1)
        return emb

    def _encode_edges(self, c: int, cell: CellBatch) -> torch.Tensor:
        """Operation-on-edge cells, computed on the existing edges only (Eq. 5/6).

        The padded ``[B, V, V, D]`` layout is mostly empty (8 of 72 slots in a DARTS cell), so gating
        and summing the list of edges does the same arithmetic as the dense form at a fraction of the
        work: the messages ``gate * x W_x`` of all edges into a node are added with ``index_add_``.
        """
        b, v = cell.readout.shape
        bi, dst, src, d = torch.nonzero(cell.ops > 0, as_tuple=True)
        emb = self.op_emb[c](cell.ops[bi, dst, src, d])
        if self.op_feature_dim:
            if cell.op_features is None:
                raise ValueError("this encoder was built with op features (GATES++); the batch carries none")
            emb = torch.cat([emb, cell.op_features[bi, dst, src, d].to(emb.dtype)], dim=-1)
        x = torch.zeros(b, v, self.input_emb[c].shape[1], device=emb.device, dtype=emb.dtype)
        x[:, : self.n_inputs] = self.input_emb[c]
        target = bi * v + dst
        for layer in cast("Iterable[GatesLayer]", self.layers[c]):
            s = layer.w_x(x)
            messages = torch.sigmoid(layer.w_o(emb)) * s[bi, src]
            out = torch.zeros(b * v, s.shape[-1], device=s.device, dtype=s.dtype).index_add_(0, target, messages)
            # input nodes have no incoming edge and keep their (transformed) information, as in forward_edge
            x = torch.cat([s[:, : self.n_inputs], out.view(b, v, -1)[:, self.n_inputs :]], dim=1)
        return (cell.readout.unsqueeze(-1) * x).sum(dim=1)

    def encode_cell(self, c: int, cell: CellBatch) -> torch.Tensor:
        if self.kind == "edge":
            return self._encode_edges(c, cell)
        b, v = cell.readout.shape
        emb = self._op_embedding(c, cell)
        x = torch.zeros(b, v, self.input_emb[c].shape[1], device=emb.device, dtype=emb.dtype)
        x[:, : self.n_inputs] = self.input_emb[c]
        assert cell.adj is not None
        node_mask = (cell.ops > 0).to(emb.dtype).unsqueeze(-1)
        for layer in cast("Iterable[GatesLayer]", self.layers[c]):
            x = layer.forward_node(x, emb, cell.adj, self.self_loop) * node_mask
        return (cell.readout.unsqueeze(-1) * x).sum(dim=1)

    def encode_cell_dense(self, c: int, cell: CellBatch) -> torch.Tensor:
        """Operation-on-edge cells in the padded form of Eq. 5/6 (:meth:`GatesLayer.forward_edge`): the
        reference that the edge-list computation of :meth:`encode_cell` is tested against."""
        b, v = cell.readout.shape
        emb = self._op_embedding(c, cell)
        x = torch.zeros(b, v, self.input_emb[c].shape[1], device=emb.device, dtype=emb.dtype)
        x[:, : self.n_inputs] = self.input_emb[c]
        mask = (cell.ops > 0).to(emb.dtype)
        for layer in cast("Iterable[GatesLayer]", self.layers[c]):
            x = layer.forward_edge(x, emb, mask, self.n_inputs)
        return (cell.readout.unsqueeze(-1) * x).sum(dim=1)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return torch.cat([self.encode_cell(c, cell) for c, cell in enumerate(batch.cells)], dim=-1)


class MLPEncoder(nn.Module):
    """Sequence baseline: an MLP on the one-hot encoding of the flat parameters (paper Sec. 6.2)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (512, 2048, 2048, 512)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(onehot)


def mlp_head(in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """A small ReLU MLP used for the score, comparator and auxiliary heads."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)
