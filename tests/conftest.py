"""Shared fixtures: the spaces under test and the path of the shared benchmark data."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from gates_sampler.searcher import SearchSettings
from gates_sampler.spaces import CellSpace, DartsSpace, NB101Space, NB201Space

#: a predictor small enough for unit tests (no dropout: its draws would come from torch's global generator)
TINY = {"epochs": 3, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16], "head_dropout": 0.0}
#: core searcher settings for quick tests: few random cells, a small pool, one warm epoch, plain GATES
QUICK = {
    "n_startup": 4,
    "n_candidates": 30,
    "settings": SearchSettings(warm_epochs=1),
    "predictor": TINY,
    "zero_shot": None,
    "device": "cpu",
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The networks under test are tiny: extra OpenMP threads only spin on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: benchmark files shared next to the repository (never copied into it)
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"

#: a user-defined "operation on edge" space: 2 input nodes, 3 nodes, each picking 2 distinct inputs
USER_EDGE_OPS = ("conv3", "conv5", "pool", "identity")
#: a user-defined "operation on node" space: up to 5 vertices, at most 6 edges
USER_NODE_OPS = ("conv", "pool")


def user_edge_space(ops: tuple[str, ...] = USER_EDGE_OPS) -> CellSpace:
    """The user-defined "operation on edge" space under test (other ``ops`` give a same-named variant)."""
    return CellSpace(
        kind="edge",
        ops=ops,
        n_nodes=3,
        n_inputs=2,
        inputs_per_node=2,
        cell_names=("normal", "reduce"),
        readout="mean",
        none_op=None,
        name="user-edge",
    )


def make_spaces() -> dict[str, object]:
    """One instance of every kind of space, keyed by a short id (fresh objects per call)."""
    return {
        "nb201": NB201Space(),
        "darts": DartsSpace(),
        "nb101": NB101Space(),
        "edge": user_edge_space(),
        "node": CellSpace(kind="node", ops=USER_NODE_OPS, max_vertices=5, max_edges=6, name="user-node"),
    }


SPACE_IDS = list(make_spaces())


@pytest.fixture(scope="session")
def spaces() -> dict[str, object]:
    """Every space under test, shared by the session (spaces are stateless)."""
    return make_spaces()


@pytest.fixture(params=SPACE_IDS)
def space(request: pytest.FixtureRequest, spaces: dict[str, object]) -> object:
    """Each space under test in turn."""
    return spaces[request.param]


def data_path(*parts: str) -> Path:
    """A file under the shared data folder; skips the test when it is absent."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared benchmark data not found at {path} (it lives outside the repository)")
    return path


@contextlib.contextmanager
def local_ray(module: str) -> Iterator[None]:
    """One local Ray instance on the 2 CPUs for a test module. The module's trainables ship to the
    workers by value: they cannot import a test module."""
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[module])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
