"""Search spaces: flat-parameter and string round trips, mutation, enumeration, canonical keys
under isomorphism, and ValueErrors that name the bad field."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import SPACE_IDS, make_spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from gates_sampler.spaces import (
    CellSpace,
    DartsArch,
    DartsSpace,
    EdgeArch,
    NB101Space,
    NB201Space,
    NodeArch,
)

SPACES = make_spaces()
EDGE_IDS = [k for k in SPACE_IDS if SPACES[k].kind == "edge"]
SEEDS = st.integers(min_value=0, max_value=2**63 - 1)


def _samples(space, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


# ----- round trips ----------------------------------------------------------------------------------
# 1000 hypothesis examples x 10 architectures each = 10,000 round trips per space; drawing a batch per
# example keeps hypothesis' per-example overhead out of the test's run time.
ROUND_TRIPS_PER_EXAMPLE = 10


@pytest.mark.parametrize("space_id", SPACE_IDS)
@settings(max_examples=1_000, deadline=None, derandomize=True, database=None)
@given(seed=SEEDS)
def test_params_round_trip(space_id: str, seed: int) -> None:
    space = SPACES[space_id]
    names = set(space.distributions())
    rng = np.random.default_rng(seed)
    for _ in range(ROUND_TRIPS_PER_EXAMPLE):
        arch = space.sample(rng)
        params = space.to_params(arch)
        assert set(params) == names
        assert space.from_params(params) == arch


@pytest.mark.parametrize("space_id", SPACE_IDS)
def test_params_use_allowed_choices(space_id: str) -> None:
    space = SPACES[space_id]
    dists = space.distributions()
    for arch in _samples(space, 200, seed=30):
        params = space.to_params(arch)
        assert all(params[k] in dists[k] for k in dists)


@pytest.mark.parametrize("space_id", EDGE_IDS)
@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(seed=SEEDS)
def test_any_params_of_edge_spaces_round_trip(space_id: str, seed: int) -> None:
    # every combination of choices is a valid edge-space architecture, and the params come back unchanged
    space = SPACES[space_id]
    params = space.random_params(np.random.default_rng(seed))
    assert space.to_params(space.from_params(params)) == params


@pytest.mark.parametrize("space_id", SPACE_IDS)
def test_parse_str_round_trip(space_id: str) -> None:
    space = SPACES[space_id]
    for arch in _samples(space, 300, seed=1):
        assert space.parse(str(arch)) == arch
        assert space.coerce(str(arch)) == arch
        assert space.coerce(space.to_params(arch)) == arch
        assert space.validate(arch) == arch


def test_nb201_official_string() -> None:
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    arch = NB201Space().parse(text)
    assert str(arch) == text
    assert arch.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    assert NB201Space().from_ops(arch.ops) == arch


def test_darts_genotype_string() -> None:
    text = (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"
    )
    space = DartsSpace()
    arch = space.parse(text)
    assert isinstance(arch, DartsArch)
    assert str(arch) == text
    assert space.parse(text.replace("[2, 3, 4, 5]", "range(2, 6)")) == arch
    assert arch.normal[5] == ("skip_connect", 0)


# ----- mutation and neighbours ------------------------------------------------------------------------
def _assert_one_edit(space, a, b) -> None:
    assert b != a
    assert space.validate(b) == b
    if space.kind == "edge":
        pa, pb = space.to_params(a), space.to_params(b)
        assert sum(pa[k] != pb[k] for k in pa) == 1
    else:
        # one op changed on the same graph, or one edge flipped (the cell is then pruned)
        if b.matrix == a.matrix:
            assert sum(x != y for x, y in zip(a.ops, b.ops)) == 1
        elif b.num_vertices == a.num_vertices:
            assert b.ops == a.ops
            assert np.abs(np.array(a.matrix) - np.array(b.matrix)).sum() == 1
        else:
            assert b.num_vertices < a.num_vertices and len(b.edges()) < len(a.edges())


@pytest.mark.parametrize("space_id", SPACE_IDS)
def test_mutate_is_one_valid_edit_away(space_id: str) -> None:
    space = SPACES[space_id]
    rng = np.random.default_rng(2)
    for arch in _samples(space, 200, seed=3):
        if not space.neighbors(arch):
            continue  # see test_mutate_without_neighbours
        _assert_one_edit(space, arch, space.mutate(arch, rng))


def test_mutate_without_neighbours_resamples() -> None:
    # input -> output is the only NB101 cell no single edit keeps valid; mutate then draws a fresh cell
    space = NB101Space()
    bare = space.from_matrix([[0, 1], [0, 0]], ["input", "output"])
    assert space.neighbors(bare) == []
    rng = np.random.default_rng(0)
    for _ in range(5):
        other = space.mutate(bare, rng)
        assert other != bare and space.validate(other) == other


@pytest.mark.parametrize("space_id", SPACE_IDS)
def test_neighbors_are_distinct_one_edit_cells(space_id: str) -> None:
    space = SPACES[space_id]
    for arch in _samples(space, 20, seed=4):
        nbs = space.neighbors(arch)
        if space.kind == "edge":
            assert nbs
        assert len(set(nbs)) == len(nbs)
        for b in nbs:
            _assert_one_edit(space, arch, b)
        if nbs:
            assert space.mutate(arch, np.random.default_rng(0)) in nbs


def test_nb201_neighbors_are_every_single_op_change() -> None:
    space = NB201Space()
    arch = space.sample(np.random.default_rng(0))
    # independent enumeration: each of the 6 edges takes each of the 4 other operations
    expected = {
        space.from_ops(arch.ops[:i] + (op,) + arch.ops[i + 1 :])
        for i in range(6)
        for op in space.op_names
        if op != arch.ops[i]
    }
    nbs = space.neighbors(arch)
    assert len(nbs) == 6 * 4 and set(nbs) == expected


def test_sampling_is_seeded() -> None:
    for space in SPACES.values():
        assert _samples(space, 20, seed=9) == _samples(space, 20, seed=9)
        assert _samples(space, 20, seed=9) != _samples(space, 20, seed=10)


# ----- enumeration ---------------------------------------------------------------------------------
def test_nb201_enumerate_yields_all_cells() -> None:
    archs = list(NB201Space().enumerate())
    assert len(archs) == 15625 == 5**6
    assert len(set(archs)) == 15625
    assert len({str(a) for a in archs}) == 15625


# ----- canonical keys ------------------------------------------------------------------------------
def _random_topological_order(preds: dict[int, set[int]], rng: np.random.Generator) -> list[int]:
    """A random linear extension of a DAG given as node -> set of predecessors (among the nodes)."""
    remaining, order = set(preds), []
    while remaining:
        ready = sorted(n for n in remaining if not (preds[n] & remaining))
        n = ready[int(rng.integers(len(ready)))]
        order.append(n)
        remaining.remove(n)
    return order


def permute_edge_cell(space, cell, rng: np.random.Generator, shuffle_inputs: bool = True):
    """Relabel the intermediate nodes of one edge cell along a random topological order (and shuffle the
    order of each node's incoming edges): an isomorphic cell computing the same function."""
    k0 = space.n_inputs
    nodes = range(k0, k0 + len(cell))
    preds = {n: {s for _, s in cell[n - k0] if s >= k0} for n in nodes}
    order = _random_topological_order(preds, rng)
    new_index = {i: i for i in range(k0)} | {old: k0 + pos for pos, old in enumerate(order)}
    new_cell = []
    for old in order:
        edges = [(op, new_index[s]) for op, s in cell[old - k0]]
        if shuffle_inputs:
            edges = [edges[i] for i in rng.permutation(len(edges))]
        new_cell.append(tuple(edges))
    return tuple(new_cell)


def permute_node_arch(space, arch: NodeArch, rng: np.random.Generator) -> NodeArch:
    """Relabel the intermediate vertices along a random topological order (the matrix stays upper-triangular)."""
    n = arch.num_vertices
    inner = range(1, n - 1)
    preds = {j: {i for i in inner if arch.matrix[i][j]} for j in inner}
    order = _random_topological_order(preds, rng)
    perm = [0] + order + [n - 1]  # new position -> old vertex
    m = [[arch.matrix[perm[i]][perm[j]] for j in range(n)] for i in range(n)]
    return space.from_matrix(m, [arch.ops[v] for v in perm])


def _darts_like_ids() -> list[str]:
    return ["darts", "edge"]


@pytest.mark.parametrize("space_id", _darts_like_ids())
def test_canonical_key_invariant_under_node_permutation_and_input_order(space_id: str) -> None:
    space = SPACES[space_id]
    rng = np.random.default_rng(5)
    changed = 0
    for arch in _samples(space, 200, seed=6):
        cells = tuple(permute_edge_cell(space, c, rng) for c in arch.cells)
        other = space.validate(type(arch)(cells))
        changed += other != arch
        assert space.canonical_key(other) == space.canonical_key(arch)
    assert changed > 100  # the test really exercises different labellings


def test_darts_swapping_two_inputs_keeps_key_and_params() -> None:
    space = DartsSpace()
    for arch in _samples(space, 50, seed=7):
        swapped = DartsArch(tuple(tuple(node[::-1] for node in cell) for cell in arch.cells))
        swapped = space.validate(swapped)
        assert swapped != arch
        assert space.canonical_key(swapped) == space.canonical_key(arch)
        assert space.to_params(swapped) == space.to_params(arch)


def test_darts_canonical_key_separates_different_cells() -> None:
    space = DartsSpace()
    archs = _samples(space, 300, seed=8)
    keys = {space.canonical_key(a) for a in archs}
    assert len(keys) == len(set(archs))
    for arch in archs[:30]:
        for nb in space.neighbors(arch)[:10]:
            # one op change always changes the function (every DARTS edge is live)
            pa, pb = space.to_params(arch), space.to_params(nb)
            if any(pa[k] != pb[k] for k in pa if "_op" in k):
                assert space.canonical_key(nb) != space.canonical_key(arch)


def test_nb101_canonical_key_invariant_under_relabelling() -> None:
    space = NB101Space()
    rng = np.random.default_rng(11)
    changed = 0
    for arch in _samples(space, 300, seed=12):
        other = permute_node_arch(space, arch, rng)
        changed += other != arch
        assert space.canonical_key(other) == space.canonical_key(arch)
    assert changed > 25  # many samples have a single possible labelling


def test_nb101_canonical_key_known_pair() -> None:
    space = NB101Space()
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]
    a = space.from_matrix([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ops)
    b = space.from_matrix([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [ops[0], ops[2], ops[1], ops[3]])
    c = space.from_matrix([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], ops)
    assert a != b and space.canonical_key(a) == space.canonical_key(b)
    assert space.canonical_key(a) != space.canonical_key(c)


def test_user_node_space_canonical_key_invariant_under_relabelling() -> None:
    space = SPACES["node"]
    rng = np.random.default_rng(13)
    for arch in _samples(space, 200, seed=14):
        assert space.canonical_key(permute_node_arch(space, arch, rng)) == space.canonical_key(arch)


def test_nb201_canonical_key_ignores_dead_edges() -> None:
    space = NB201Space()
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    rng = np.random.default_rng(15)
    for _ in range(200):
        s = [ops[int(i)] for i in rng.integers(0, 5, size=6)]
        # node 1 gets no input: whatever flows out of it (edges 2<-1 and 3<-1) is dead
        a = ["none", s[1], s[2], s[3], s[4], s[5]]
        b = ["none", s[1], ops[int(rng.integers(5))], s[3], ops[int(rng.integers(5))], s[5]]
        assert space.canonical_key(space.from_ops(a)) == space.canonical_key(space.from_ops(b))
        # node 2 reaches the output only through edge 3<-2: with it "none", edges into node 2 are dead
        c = [s[0], s[1], s[2], s[3], s[4], "none"]
        d = [s[0], ops[int(rng.integers(5))], ops[int(rng.integers(5))], s[3], s[4], "none"]
        assert space.canonical_key(space.from_ops(c)) == space.canonical_key(space.from_ops(d))


def test_nb201_canonical_key_swaps_nodes_1_and_2() -> None:
    space = NB201Space()
    for s in itertools.product(("none", "nor_conv_3x3", "avg_pool_3x3"), repeat=4):
        # edge 2<-1 is "none", so nodes 1 and 2 are interchangeable
        a = space.from_ops([s[0], s[1], "none", s[2], s[3], "skip_connect"])
        b = space.from_ops([s[1], s[0], "none", s[2], "skip_connect", s[3]])
        assert space.canonical_key(a) == space.canonical_key(b)


def test_nb201_canonical_key_separates_live_changes() -> None:
    space = NB201Space()
    a = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    for b in space.neighbors(a):
        assert space.canonical_key(b) != space.canonical_key(a)


#: NB201 edges in arch-string order, as (destination, source)
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def _nb201_reference_form(ops: tuple[str, ...]) -> tuple:
    """An independent canonical form of an NB201 cell: drop the edges that are not on an input-to-output
    path of non-"none" edges, then take the smaller of the two labellings of nodes 1 and 2 (they may
    swap only when no edge joins them)."""
    live = {e for e, op in zip(NB201_EDGES, ops) if op != "none"}
    reached, reaching = {0}, {3}
    for dst, src in sorted(live):
        if src in reached:
            reached.add(dst)
    for dst, src in sorted(live, reverse=True):
        if dst in reaching:
            reaching.add(src)
    kept = {e: op for e, op in zip(NB201_EDGES, ops) if e in live and e[1] in reached and e[0] in reaching}
    forms = [tuple(sorted(kept.items()))]
    if (2, 1) not in kept:
        swap = {0: 0, 1: 2, 2: 1, 3: 3}
        forms.append(tuple(sorted(((swap[d], swap[s]), op) for (d, s), op in kept.items())))
    return min(forms)


def test_nb201_canonical_key_partitions_the_space_like_a_reference_implementation() -> None:
    space = NB201Space()
    by_key: dict[str, set[str]] = {}
    by_form: dict[tuple, set[str]] = {}
    for arch in space.enumerate():
        by_key.setdefault(space.canonical_key(arch), set()).add(str(arch))
        by_form.setdefault(_nb201_reference_form(arch.ops), set()).add(str(arch))
    # the same classes, not only as many: isomorphic and dead-edge duplicates collapse, nothing else does
    assert len(by_key) == len(by_form) == 8765
    assert {frozenset(c) for c in by_key.values()} == {frozenset(c) for c in by_form.values()}


# ----- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("space_id", SPACE_IDS)
def test_missing_extra_and_unknown_params_name_the_field(space_id: str) -> None:
    space = SPACES[space_id]
    params = space.to_params(space.sample(np.random.default_rng(0)))
    name = list(params)[-1]
    with pytest.raises(ValueError, match=f"missing.*{name}"):
        space.from_params({k: v for k, v in params.items() if k != name})
    with pytest.raises(ValueError, match="unknown parameter.*bogus_param"):
        space.from_params({**params, "bogus_param": "x"})
    with pytest.raises(ValueError, match=f"{name}.*not_a_choice"):
        space.from_params({**params, name: "not_a_choice"})
    with pytest.raises(ValueError, match="mapping"):
        space.from_params([("a", "b")])


@pytest.mark.parametrize("space_id", SPACE_IDS)
def test_validate_rejects_foreign_objects(space_id: str) -> None:
    space = SPACES[space_id]
    with pytest.raises(ValueError, match="expected"):
        space.validate("not an arch")
    other = SPACES["nb101" if space.kind == "edge" else "nb201"]
    with pytest.raises(ValueError, match="expected"):
        space.validate(other.sample(np.random.default_rng(0)))


def test_darts_duplicate_inputs_rejected() -> None:
    space = DartsSpace()
    arch = space.sample(np.random.default_rng(0))
    cells = [list(map(list, c)) for c in arch.cells]
    cells[0][1] = [("sep_conv_3x3", 1), ("skip_connect", 1)]
    bad = DartsArch(tuple(tuple(tuple(n) for n in c) for c in cells))
    with pytest.raises(ValueError, match=r"cell 'normal' node 3.*distinct"):
        space.validate(bad)
    with pytest.raises(ValueError, match=r"distinct"):
        space.validate(EdgeArch(bad.cells))  # the plain EdgeArch type is rejected too
    params = space.to_params(arch)
    with pytest.raises(ValueError, match=r"normal_node3_inputs.*'1,1'"):
        space.from_params({**params, "normal_node3_inputs": "1,1"})
    with pytest.raises(ValueError, match=r"distinct"):
        space.from_genotype([("sep_conv_3x3", 0), ("sep_conv_3x3", 0)] + list(arch.normal[2:]), list(arch.reduce))


def test_edge_space_structural_errors_name_the_node() -> None:
    space = DartsSpace()
    arch = space.sample(np.random.default_rng(1))
    normal = list(arch.cells[0])
    with pytest.raises(ValueError, match=r"node 2: unknown operation 'conv_7x7'"):
        space.validate(DartsArch((tuple([(("conv_7x7", 0), ("skip_connect", 1))] + normal[1:]), arch.cells[1])))
    with pytest.raises(ValueError, match=r"node 2: input 2 must be an earlier node"):
        space.validate(DartsArch((tuple([(("skip_connect", 0), ("skip_connect", 2))] + normal[1:]), arch.cells[1])))
    with pytest.raises(ValueError, match=r"node 4: has 3 inputs, expected 2"):
        space.validate(
            DartsArch((tuple(normal[:2] + [normal[2] + (("skip_connect", 3),)] + normal[3:]), arch.cells[1]))
        )
    with pytest.raises(ValueError, match=r"1 cells.*expects 2"):
        space.validate(DartsArch((arch.cells[0],)))
    with pytest.raises(ValueError, match=r"has 3 nodes, expected 4"):
        space.validate(DartsArch((tuple(normal[:3]), arch.cells[1])))
    with pytest.raises(ValueError, match=r"normal: a DARTS cell has 8"):
        space.from_genotype(arch.normal[:6], arch.reduce)


def test_nb201_structural_errors() -> None:
    space = NB201Space()
    with pytest.raises(ValueError, match="6 operations"):
        space.from_ops(["none"] * 5)
    with pytest.raises(ValueError, match=r"node 1: unknown operation 'conv_7x7'"):
        space.from_ops(["conv_7x7"] + ["none"] * 5)
    with pytest.raises(ValueError, match=r"dense cell needs one edge from each"):
        space.parse("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|")


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "cannot parse"),
        ("|nor_conv_3x3~0|+|", "cannot parse"),
        ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|", "node 3: a dense cell"),
        ("|nor_conv_3x3|+|none~0|none~1|+|none~0|none~1|none~2|", "cannot parse edge 'nor_conv_3x3'"),
        ("|nor_conv_3x3~x|+|none~0|none~1|+|none~0|none~1|none~2|", "cannot parse edge"),
        ("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv_7x7'"),
        ("|none~0| / |none~0|", "NAS-Bench-201 arch string"),
        ("nor_conv_3x3~0+none~0", "cannot parse node"),
    ],
)
def test_nb201_malformed_strings(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NB201Space().parse(text)


@pytest.mark.parametrize(
    "text, match",
    [
        ("Genotype(normal=[]", "cannot parse"),
        ("DARTS_V2", "cannot parse"),
        (
            "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2, 3, 4, 5], reduce=[], reduce_concat=[2, 3, 4, 5])",
            "normal: a DARTS cell has 8",
        ),
        (
            "Genotype(normal=[(sep_conv, 0)], normal_concat=[2, 3, 4, 5], reduce=[], reduce_concat=[2, 3, 4, 5])",
            "genotype lists",
        ),
        ("Genotype(normal=[], normal_concat=[2, 3], reduce=[], reduce_concat=[2, 3, 4, 5])", "normal_concat must be"),
    ],
)
def test_darts_malformed_strings(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DartsSpace().parse(text)


@pytest.mark.parametrize(
    "text, match",
    [
        ("garbage", "cannot parse"),
        ("[01,00]", "cannot parse"),
        ("[0x,00]:input,output", "cannot parse"),
        ("[010,001,000]:input,conv9x9,output", "vertex 1: unknown operation 'conv9x9'"),
        ("[011,001,000]:input,maxpool3x3", "matrix must be 2x2 to match 2 ops"),
        ("[010,001,100]:input,maxpool3x3,output", "upper-triangular"),
        ("[000,000,000]:input,maxpool3x3,output", "no path from the input to the output"),
        ("[010,001,000]:output,maxpool3x3,input", "must start with 'input'"),
        ("[020,001,000]:input,maxpool3x3,output", "0 or 1"),
    ],
)
def test_nb101_malformed_strings(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NB101Space().parse(text)


def test_nb101_limits() -> None:
    space = NB101Space()
    ops = ["input"] + ["conv3x3-bn-relu"] * 5 + ["output"]
    full = [[1 if j > i else 0 for j in range(7)] for i in range(7)]
    with pytest.raises(ValueError, match=r"21 edges after pruning, at most 9"):
        space.from_matrix(full, ops)
    ten = [[0] * 7 for _ in range(7)]
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 2), (0, 3), (0, 4), (0, 5)]:
        ten[i][j] = 1
    with pytest.raises(ValueError, match=r"10 edges after pruning, at most 9"):
        space.from_matrix(ten, ops)
    ten[0][5] = 0
    assert len(space.from_matrix(ten, ops).edges()) == 9
    no_path = [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="no path"):
        space.from_matrix(no_path, ["input", "maxpool3x3", "output"])
    with pytest.raises(ValueError, match="8 vertices"):
        space.from_matrix(
            [[1 if j == i + 1 else 0 for j in range(8)] for i in range(8)], ["input"] + ["maxpool3x3"] * 6 + ["output"]
        )
    params = space.to_params(space.sample(np.random.default_rng(0)))
    cut = {**params, **{k: "0" for k in params if k.startswith("edge_0_")}}
    with pytest.raises(ValueError, match="edge_\\* parameters do not form a valid cell.*no path"):
        space.from_params(cut)


def test_nb101_unpruned_arch_rejected_by_validate() -> None:
    space = NB101Space()
    # vertex 2 hangs off the input but never reaches the output
    m = ((0, 1, 1, 0), (0, 0, 0, 1), (0, 0, 0, 0), (0, 0, 0, 0))
    arch = NodeArch(m, ("input", "conv3x3-bn-relu", "maxpool3x3", "output"))
    with pytest.raises(ValueError, match="not on an input-to-output path"):
        space.validate(arch)
    assert space.from_matrix(m, arch.ops).num_vertices == 3


def test_cell_space_constructor_errors() -> None:
    with pytest.raises(ValueError, match="kind must be"):
        CellSpace(kind="graph", ops=("a",), n_nodes=2)
    with pytest.raises(ValueError, match="ops has duplicates"):
        CellSpace(kind="edge", ops=("a", "a"), n_nodes=2)
    with pytest.raises(ValueError, match="ops must be a non-empty list"):
        CellSpace(kind="edge", ops=(), n_nodes=2)
    with pytest.raises(ValueError, match="n_nodes must be a positive int"):
        CellSpace(kind="edge", ops=("a",), n_nodes=0)
    with pytest.raises(ValueError, match="inputs_per_node=3 distinct inputs"):
        CellSpace(kind="edge", ops=("a",), n_nodes=2, n_inputs=2, inputs_per_node=3)
    with pytest.raises(ValueError, match="readout must be"):
        CellSpace(kind="edge", ops=("a",), n_nodes=2, readout="max")
    with pytest.raises(ValueError, match="reserved names"):
        CellSpace(kind="node", ops=("input", "conv"))
    with pytest.raises(ValueError, match="max_vertices must be"):
        CellSpace(kind="node", ops=("conv",), max_vertices=1)


def test_user_edge_space_with_repeated_inputs() -> None:
    # inputs_per_node without distinct_inputs: a node may take the same input twice
    space = CellSpace(kind="edge", ops=("a", "b"), n_nodes=2, n_inputs=1, inputs_per_node=2, distinct_inputs=False)
    assert space.distributions()["node1_inputs"] == ["0,0"]
    arch = space.from_params(
        {
            "node1_inputs": "0,0",
            "node1_op0": "a",
            "node1_op1": "b",
            "node2_inputs": "1,1",
            "node2_op0": "b",
            "node2_op1": "b",
        }
    )
    assert space.parse(str(arch)) == arch
    batch = space.encode([arch])
    assert batch.cells[0].ops.shape == (1, 3, 3, 2)
    assert sorted(batch.cells[0].ops[0, 1, 0].tolist()) == [1, 2]


def test_distributions_and_tune_param_space(space) -> None:
    dists = space.distributions()
    assert dists and all(isinstance(c, list) and c and all(isinstance(v, str) for v in c) for c in dists.values())
    dists["x"] = ["changed"]
    assert "x" not in space.distributions()  # a copy, not the internal table
    tune = pytest.importorskip("ray.tune")
    param_space = space.tune_param_space()
    assert set(param_space) == set(space.distributions())
    assert all(isinstance(v, tune.search.sample.Categorical) for v in param_space.values())
    # the same choices in the same order: Tune draws exactly what the space allows
    assert all(list(param_space[k].categories) == space.distributions()[k] for k in param_space)


def test_optuna_suggest_round_trip() -> None:
    optuna = pytest.importorskip("optuna")
    for space in SPACES.values():
        arch = space.sample(np.random.default_rng(3))
        trial = optuna.trial.FixedTrial(space.to_params(arch))
        assert space.suggest(trial) == arch


@pytest.mark.parametrize("space_id", SPACE_IDS)
def test_encode_shapes(space_id: str) -> None:
    space = SPACES[space_id]
    archs = _samples(space, 5, seed=21)
    batch = space.encode(archs)
    assert batch.kind == space.kind and batch.size == 5 and len(batch.cells) == len(space.cell_names)
    v = space.max_nodes
    for cell in batch.cells:
        assert cell.readout.shape == (5, v)
        assert torch_allclose(cell.readout.sum(1), 1.0)
        if space.kind == "edge":
            assert cell.ops.shape[:3] == (5, v, v)
            assert int(cell.ops[:, : space.n_inputs].abs().sum()) == 0  # input nodes have no incoming edge
        else:
            assert cell.ops.shape == (5, v) and cell.adj.shape == (5, v, v)


def test_encode_hand_worked_nb201_cell() -> None:
    space = NB201Space()
    arch = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    cell = space.encode([arch]).cells[0]
    # ops[dst, src] = 1 + index of the op in space.op_names (none 0, skip 1, conv1x1 2, conv3x3 3, pool 4)
    # and 0 where there is no edge; the output node 3 is read out
    expected = [[0, 0, 0, 0], [4, 0, 0, 0], [4, 5, 0, 0], [2, 4, 2, 0]]
    assert cell.ops[0, :, :, 0].tolist() == expected and cell.ops.shape == (1, 4, 4, 1)
    assert cell.readout.tolist() == [[0.0, 0.0, 0.0, 1.0]]
    # a "none" edge is no edge at all
    empty = space.encode([space.from_ops(["none"] * 6)]).cells[0]
    assert int(empty.ops.abs().sum()) == 0


def test_encode_hand_worked_nb101_cell() -> None:
    space = NB101Space()
    m = [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    ops = ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output"]
    cell = space.encode([space.from_matrix(m, ops)]).cells[0]
    index = {op: space.op_names.index(op) + 1 for op in ops}
    assert cell.ops[0].tolist() == [index[op] for op in ops] + [0, 0]  # padded to 7 vertices
    # adj[dst, src]: the transpose of the matrix, padded
    adj = [[0.0] * 7 for _ in range(7)]
    for src, dst in [(0, 1), (0, 2), (1, 3), (2, 4), (3, 4)]:
        adj[dst][src] = 1.0
    assert cell.adj[0].tolist() == adj
    assert cell.readout[0].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]  # the output vertex


def torch_allclose(t, value: float) -> bool:
    return bool((t - value).abs().max() < 1e-6)


def test_sample_unique_excludes_keys() -> None:
    space = NB201Space()
    rng = np.random.default_rng(0)
    first = space.sample_unique(rng, 50)
    keys = {space.canonical_key(a) for a in first}
    assert len(keys) == 50
    more = space.sample_unique(rng, 50, exclude=keys)
    assert not keys & {space.canonical_key(a) for a in more}


def test_builtin_space_registry_keys_are_the_space_names() -> None:
    from gates_sampler.spaces import BUILTIN_SPACES, builtin_space

    # state files record space.name and are loaded back through the registry by that name
    for name, cls in BUILTIN_SPACES.items():
        space = builtin_space(name)
        assert type(space) is cls and space.name == name
    assert builtin_space("NB301").name == "darts" and builtin_space("nasbench201").name == "nb201"
    allowed = r"built-in spaces: \['darts', 'nb101', 'nb201'\]"
    with pytest.raises(ValueError, match=r"no built-in space is named 'nb999'; " + allowed):
        builtin_space("nb999")
