"""Networks built from architectures: shapes, parameter counts, and op tags aligned with space.encode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gates_sampler.benchmarks.nb301 import DARTS_V2
from gates_sampler.networks import build_network, network_config_keys, op_modules
from gates_sampler.networks.nb101 import vertex_channels
from gates_sampler.networks.ops import FactorizedReduce, Identity, Zero
from gates_sampler.spaces import DartsSpace, NB101Space, NB201Space

# parameter counts of the benchmark's CIFAR-10 networks (NAS-Bench-Suite-Zero's `params` column)
NB201_PARAMS = {
    "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|": 129306,
    "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|": 587386,
}


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def encoded_positions(space, arch, cell: int) -> set[tuple[int, ...]]:
    ops = space.encode([arch]).cells[cell].ops[0]
    return {(cell, *map(int, idx)) for idx in torch.nonzero(ops > 0)}


@pytest.mark.parametrize("text,expected", list(NB201_PARAMS.items()))
def test_nb201_parameter_count_matches_benchmark(text: str, expected: int) -> None:
    net = build_network(NB201Space(), text)
    assert n_params(net) == expected


def nb201_params_by_hand(ops: tuple[str, ...], C: int, N: int, num_classes: int) -> int:
    """NB201's network counted by hand: stem, N cells per stage at widths C, 2C, 4C, two residual
    reduction blocks, final BN and linear classifier (ReLU-Conv-BN ops, BN with weight and bias)."""
    per_op = {"nor_conv_3x3": lambda c: 9 * c * c + 2 * c, "nor_conv_1x1": lambda c: c * c + 2 * c}
    cells = sum(N * per_op[op](c) for c in (C, 2 * C, 4 * C) for op in ops if op in per_op)
    # residual block c -> 2c: 3x3 stride-2 ReLU-Conv-BN, 3x3 ReLU-Conv-BN, 1x1 conv shortcut
    blocks = sum(9 * c * 2 * c + 2 * 2 * c + 9 * (2 * c) ** 2 + 2 * 2 * c + c * 2 * c for c in (C, 2 * C))
    stem = 3 * 9 * C + 2 * C
    head = 2 * 4 * C + 4 * C * num_classes + num_classes
    return stem + cells + blocks + head


def test_nb201_custom_width_depth_and_classes_reach_the_network() -> None:
    sp = NB201Space()
    for seed in range(5):
        arch = sp.sample(np.random.default_rng(seed))
        net = build_network(sp, arch, C=4, N=2, num_classes=7)
        assert n_params(net) == nb201_params_by_hand(arch.ops, C=4, N=2, num_classes=7), str(arch)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 7)
    assert len(net.cells) == 8  # 3 stages of N=2 cells + 2 reduction blocks
    # the same formula gives the benchmark's published counts at the default size
    for text, expected in NB201_PARAMS.items():
        assert nb201_params_by_hand(sp.parse(text).ops, C=16, N=5, num_classes=10) == expected


def test_nb201_op_tags_cover_encoded_edges_in_every_copy() -> None:
    sp = NB201Space()
    rng = np.random.default_rng(1)
    for _ in range(10):
        arch = sp.sample(rng)
        net = build_network(sp, arch, C=4, N=2)
        tags = [k for k, _ in op_modules(net)]
        assert set(tags) == encoded_positions(sp, arch, 0)
        # every op of the description is implemented once per stacked cell (3 stages x N)
        assert all(tags.count(k) == 6 for k in set(tags))


def test_nb201_none_edges_carry_nothing() -> None:
    sp = NB201Space()
    empty = sp.from_ops(["none"] * 6)
    net = build_network(sp, empty, C=4, N=1)
    assert not op_modules(net)
    assert isinstance(net.cells[0].ops[0], Zero)
    out = net.cells[0](torch.randn(1, 4, 8, 8))
    assert torch.count_nonzero(out) == 0


def test_darts_network_tags_and_reduction_ops() -> None:
    sp = DartsSpace()
    rng = np.random.default_rng(2)
    arch = sp.sample(rng)
    net = build_network(sp, arch, C=8, layers=5)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    tags = {k for k, _ in op_modules(net)}
    assert tags == encoded_positions(sp, arch, 0) | encoded_positions(sp, arch, 1)
    reductions = [c.reduction for c in net.cells]
    assert reductions == [False, True, False, True, False]  # at layers // 3 and 2 * layers // 3


def test_darts_skip_in_reduce_cell_is_factorized_reduce() -> None:
    sp = DartsSpace()
    cell = [("skip_connect", 0), ("sep_conv_3x3", 1)] * 4
    arch = sp.from_genotype(cell, cell)
    net = build_network(sp, arch, C=8, layers=3)
    normal, reduce = net.cells[0], net.cells[1]
    assert isinstance(normal.ops[0], Identity)
    assert isinstance(reduce.ops[0], FactorizedReduce)
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_darts_v2_parameter_count_matches_the_darts_paper() -> None:
    sp = DartsSpace()
    # DARTS (second order) evaluated on CIFAR-10 at 36 channels and 20 cells: 3.3M parameters in the
    # paper; its training script logs "param size = 3.349342MB" (auxiliary head excluded, as here)
    assert n_params(build_network(sp, DARTS_V2, C=36, layers=20)) == 3_349_342
    # the default is NAS-Bench-301's training network: 32 channels, 8 cells
    arch = sp.sample(np.random.default_rng(3))
    assert n_params(build_network(sp, arch)) == n_params(build_network(sp, arch, C=32, layers=8))
    assert n_params(build_network(sp, arch, C=32, layers=8)) != n_params(build_network(sp, arch, C=36, layers=8))


def test_nb101_channels_and_tags() -> None:
    sp = NB101Space()
    m = [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    ops = ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output"]
    arch = sp.from_matrix(m, ops)
    # vertices 2 and 3 split the output width (remainder first); vertex 1 takes its successor's width
    assert vertex_channels(16, 33, m) == [16, 16, 17, 16, 33]
    net = build_network(sp, arch, C=8, N=1, stacks=2)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert {k for k, _ in op_modules(net)} == {(0, 1), (0, 2), (0, 3)}


def test_nb101_benchmark_size_parameter_count() -> None:
    # the largest NB101 cell family member with a single 3x3 conv: input -> conv3x3 -> output
    sp = NB101Space()
    arch = sp.from_matrix([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    net = build_network(sp, arch)
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    per_cell = [9 * c * c + 2 * c for c in (128, 256, 512)]
    projections = [
        c_in * c + 2 * c for c_in, c in ((128, 128), (128, 256), (256, 512))
    ]  # first cell of a stack projects
    same = [c * c + 2 * c for c in (128, 256, 512)]  # the other two cells project at constant width
    stem = 3 * 9 * 128 + 2 * 128
    expected = stem + sum(3 * p for p in per_cell) + sum(projections) + 2 * sum(same) + 512 * 10 + 10
    assert n_params(net) == expected


def test_build_network_rejects_bad_input() -> None:
    sp = NB201Space()
    with pytest.raises(ValueError, match="unknown network option"):
        build_network(sp, sp.from_ops(["none"] * 6), layers=3)
    with pytest.raises(ValueError, match="no network is defined"):
        build_network("resnet", sp.from_ops(["none"] * 6))
    with pytest.raises(ValueError, match="C must be a positive int"):
        build_network(sp, sp.from_ops(["none"] * 6), C=0)
    assert "layers" in network_config_keys("nb301")
