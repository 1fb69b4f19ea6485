"""The scikit-learn digits source of the training evaluator: real images, a fixed split, real learning."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sklearn")

from gates_sampler.benchmarks import TrainingEvaluator  # noqa: E402
from gates_sampler.benchmarks.training import DIGITS_SPLIT, load_digits_split  # noqa: E402
from gates_sampler.spaces import NB201Space  # noqa: E402


def test_split_is_fixed_and_disjoint():
    parts = {p: load_digits_split(p) for p in ("train", "val", "test")}
    assert [len(parts[p][1]) for p in ("train", "val", "test")] == list(DIGITS_SPLIT)
    assert parts["train"][0].shape[1:] == (1, 8, 8) and 0.0 <= float(parts["train"][0].min())
    assert float(parts["train"][0].max()) <= 1.0 and set(parts["test"][1].tolist()) == set(range(10))
    rows = {p: {tuple(x.flatten().tolist()) for x in parts[p][0]} for p in parts}
    # a few digit images occur twice in the data set itself; the parts share next to none
    assert len(rows["train"] & rows["test"]) <= 3 and len(rows["val"] & rows["test"]) <= 3
    again = load_digits_split("test")
    assert torch.equal(again[0], parts["test"][0]) and torch.equal(again[1], parts["test"][1])
    with pytest.raises(ValueError, match="part must be"):
        load_digits_split("holdout")


def test_a_cell_learns_the_digits():
    space = NB201Space()
    evaluator = TrainingEvaluator(space, "digits", epochs=3, network={"C": 4, "N": 1}, batch_size=64, device="cpu")
    assert evaluator.num_classes == 10
    arch = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    acc = evaluator.evaluate(arch)
    assert acc > 50.0  # chance is 10 %
