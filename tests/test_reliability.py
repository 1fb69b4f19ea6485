"""Hostile and unlucky inputs: state files that carry code or damage, values that would poison the
predictor, malformed architectures, and bad rows in the zero-shot cache."""

from __future__ import annotations

import copy
import io
import logging
import math
import os
import pickle
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import SPACE_IDS, USER_EDGE_OPS, make_spaces, user_edge_space
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gates_sampler import GatesPredictorSearcher
from gates_sampler.base_searcher import MAX_ABS_VALUE, AskTellSearcher, as_value
from gates_sampler.baselines import RandomSearcher
from gates_sampler.cli import main
from gates_sampler.predictor import Predictor
from gates_sampler.spaces import DartsSpace, NB201Space
from gates_sampler.spaces.darts import MAX_GENOTYPE_LENGTH
from gates_sampler.utils import MAGIC, atomic_torch_save, remove_stale_temp_files, safe_torch_load

TINY = {"epochs": 3, "hidden": 8, "op_dim": 8, "n_layers": 2, "head_hidden": (8,)}
SPACES = make_spaces()
FUZZ = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def tiny_searcher(space: Any = None, seed: int = 0, **kw: Any) -> GatesPredictorSearcher:
    kw.setdefault("predictor", TINY)
    return GatesPredictorSearcher(
        space or NB201Space(), seed=seed, n_startup=3, n_candidates=10, zero_shot=False, device="cpu", **kw
    )


def drive(s: AskTellSearcher, steps: int, value: Callable[[int], float] = float) -> None:
    for i in range(steps):
        s.tell(s.ask(), value(i))


# ----- 1. nothing in a state file runs ----------------------------------------------------------------
class _Touch:
    """Unpickling this object creates ``marker`` (through ``open``), as code hidden in a state file would."""

    def __init__(self, marker: Path, via: str) -> None:
        self.marker, self.via = marker, via

    def __reduce__(self) -> tuple:
        if self.via == "system":
            return (os.system, (f"touch '{self.marker}'",))
        return (open, (str(self.marker), "w"))


def write_malicious(path: Path, marker: Path, layout: str) -> None:
    """A file whose loading with the full unpickler would create ``marker``."""
    evil = {
        "version": 1,
        "history": [],
        "format": "gates_sampler.GatesSearcher",
        "x": _Touch(marker, "system" if layout == "zip" else "open"),
    }
    if layout == "zip":  # what torch.save writes
        torch.save(evil, path)
    elif layout == "pickle":  # a bare pickle stream
        path.write_bytes(pickle.dumps(evil, protocol=2))
    else:  # inside the checksummed container, with a correct checksum
        atomic_torch_save(evil, path)
        assert path.read_bytes().startswith(MAGIC)


LAYOUTS = ("zip", "pickle", "checksummed")


def _entry_points(tmp_path: Path) -> dict[str, Callable[[Path], Any]]:
    def training(path: Path) -> Any:
        from gates_sampler.benchmarks import TrainingEvaluator, TrainingSettings

        ev = TrainingEvaluator(
            NB201Space(),
            "demo",
            settings=TrainingSettings(n_train=32, n_val=16, demo_image_size=8),
            epochs=1,
            batch_size=16,
            checkpoint_dir=tmp_path / "ckpt",
            model_fn=lambda arch=None, num_classes=10: torch.nn.Linear(1, 1),
        )
        arch = NB201Space().sample(np.random.default_rng(0))
        target = ev.checkpoint_path(arch)
        assert target is not None
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return ev.train(arch)

    def ray_restore(path: Path) -> Any:
        pytest.importorskip("ray")
        from gates_sampler.integrations.ray_tune import GatesSearcher

        return GatesSearcher(NB201Space(), metric="acc", mode="max", seed=0).restore(str(path))

    return {
        "GatesPredictorSearcher.load": lambda p: GatesPredictorSearcher.load(p),
        "AskTellSearcher.read_state": AskTellSearcher.read_state,
        "RandomSearcher.load": lambda p: RandomSearcher.load(p),
        "GatesSearcher.restore": ray_restore,
        "TrainingEvaluator resume": training,
    }


@pytest.mark.parametrize("layout", LAYOUTS)
def test_malicious_state_files_are_refused_and_run_nothing(tmp_path: Path, layout: str) -> None:
    for name, load in _entry_points(tmp_path).items():
        marker = tmp_path / f"pwned-{layout}"
        path = tmp_path / "evil.pt"
        write_malicious(path, marker, layout)
        with pytest.raises(ValueError, match=r"evil\.pt|ckpt/run-[0-9a-f]+\.pt") as info:
            load(path)
        assert not marker.exists(), f"{name} ran code from a {layout} file"
        assert "plain data" in str(info.value) or "not a readable" in str(info.value), name
    # the files really carry code: the full unpickler runs it
    write_malicious(tmp_path / "evil.pt", tmp_path / "control", layout)
    if layout == "checksummed":
        torch.load(io.BytesIO((tmp_path / "evil.pt").read_bytes().split(b"\n", 1)[1]), weights_only=False)
    elif layout == "zip":
        torch.load(tmp_path / "evil.pt", weights_only=False)
    else:
        pickle.loads((tmp_path / "evil.pt").read_bytes())
    deadline = time.time() + 5
    while not (tmp_path / "control").exists() and time.time() < deadline:
        time.sleep(0.01)
    assert (tmp_path / "control").exists()


def test_cli_refuses_a_malicious_state_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker, state = tmp_path / "pwned", tmp_path / "run.pt"
    write_malicious(state, marker, "checksummed")  # a correct checksum: the unpickler itself must refuse
    rc = main(
        ["search", "--budget", "3", "--n-startup", "2", "--device", "cpu", "--no-zero-shot", "--state", str(state)]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "run.pt" in err and "refusing to load" in err
    assert not marker.exists()


def test_states_and_checkpoints_hold_only_plain_data(tmp_path: Path) -> None:
    s = tiny_searcher(predictor={**TINY, "epochs": 2})
    drive(s, 5)
    s.ask()
    s.save(tmp_path / "s.pt")
    payload = (tmp_path / "s.pt").read_bytes().split(b"\n", 1)[1]
    state = torch.load(io.BytesIO(payload), weights_only=True)
    assert state["predictor_state"]["optimizer"]["state"]  # trained: Adam moments are in the file
    assert GatesPredictorSearcher.load(tmp_path / "s.pt").n_told == 5


# ----- 2. values at the door ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        (1.5, 1.5),
        (-3, -3.0),
        (np.float32(2.5), 2.5),
        (np.int64(7), 7.0),
        (1e38, 1e38),
        (-1e38, -1e38),
        (MAX_ABS_VALUE, MAX_ABS_VALUE),
        (None, None),
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (1e39, None),
        (-1e39, None),
        (10**400, None),
        (-(10**400), None),
        (np.float64(3.5e38), None),
        (torch.tensor(2.0), 2.0),
    ],
)
def test_as_value_finite_in_float32_range_or_failure(value: Any, expected: float | None) -> None:
    assert as_value(value) == expected


@pytest.mark.parametrize(
    "value", [True, np.bool_(False), "1.5", b"1", bytearray(b"2"), [1.0], {}, object(), 1j, torch.tensor([1.0, 2.0])]
)
def test_as_value_rejects_what_is_not_a_number(value: Any) -> None:
    with pytest.raises(ValueError, match="value must be a number"):
        as_value(value)


def test_huge_but_valid_values_keep_the_search_working() -> None:
    s = tiny_searcher()
    for v in (1e38, -1e38, 1.0, 2.0, 3e38, -3.4e38):
        s.tell(s.ask(), v)
    assert [o.value for o in s.history] == [1e38, -1e38, 1.0, 2.0, 3e38, -3.4e38]
    a = s.ask()  # fits the predictor on values whose float32 cast alone would overflow when standardised
    assert np.isfinite(s.predict([a])).all()
    assert s.best[1] == 3e38


def test_values_beyond_float32_are_failures_and_later_asks_work(caplog: pytest.LogCaptureFixture) -> None:
    s = tiny_searcher()
    drive(s, 3)
    with caplog.at_level(logging.WARNING, logger="gates_sampler"):
        for v in (1e39, 10**400, -1e39, -(10**400)):
            a = s.ask()
            s.tell(a, v)
            assert s.history[-1].value is None and s.space.canonical_key(a) in s.seen_keys()
    assert "float32 range" in caplog.text
    assert s.n_complete == 3 and s.n_told == 7
    drive(s, 3)  # the predictor fits on the finite values only
    assert s.n_complete == 6


def test_rejected_values_record_nothing() -> None:
    s = tiny_searcher()
    drive(s, 4)
    before = (s.history, s.pending, s.seen_keys())
    arch = s.ask()
    for bad in ("nan", b"1", True, [1], object(), 2j):
        with pytest.raises(ValueError, match="value must be a number"):
            s.tell(arch, bad)
    assert (s.history, s.seen_keys() - {s.space.canonical_key(arch)}) == (before[0], before[2])
    assert s.pending == [arch]  # still waiting for its real result
    s.tell(arch, 5.0)
    assert s.history[-1].value == 5.0


def test_predictor_standardises_in_float64() -> None:
    # targets whose float32 variance overflows: standardised in float32 they would all become 0
    space = NB201Space()
    archs = space.sample_unique(np.random.default_rng(0), 8)
    values = np.array([3.4e38, -3.4e38, 2e38, -2e38, 1e38, -1e38, 5e37, 0.0])
    pred = Predictor.from_config(space, {**TINY, "loss": "mse", "epochs": 300, "lr": 1e-2}, seed=0, device="cpu")
    pred.fit(archs, values)
    scores = pred.score(archs)
    assert np.isfinite(scores).all()
    assert np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort(values)))[0, 1] > 0.8


# ----- 3. transactional load, checksums, temporary files, problem records -----------------------------
def _snapshot(s: GatesPredictorSearcher) -> tuple:
    return (
        [(str(o.arch), o.value, o.asked) for o in s.history],
        [str(a) for a in s.pending],
        copy.deepcopy(s._rng.bit_generator.state),
        copy.deepcopy(s.predictor._rng.bit_generator.state),
        {k: v.clone() for k, v in s.predictor.net.state_dict().items()},
        s._fitted_version,
        dict(s.meta),
    )


def _same(a: tuple, b: tuple) -> bool:
    return a[:4] == b[:4] and a[5:] == b[5:] and all(torch.equal(a[4][k], b[4][k]) for k in a[4])


def _corruptions() -> dict[str, Callable[[dict], None]]:
    def put(*path: Any, value: Any) -> Callable[[dict], None]:
        def f(state: dict) -> None:
            d = state
            for k in path[:-1]:
                d = d[k]
            d[path[-1]] = value

        return f

    def wrong_shape(state: dict) -> None:
        net = state["predictor_state"]["net"]
        k = next(iter(net))
        net[k] = torch.zeros(3, 3, 3)

    return {
        "version 2": put("version", value=2),
        "version True": put("version", value=True),
        "version '1'": put("version", value="1"),
        "class": put("class", value="RandomSearcher"),
        "space fingerprint": put("space_fingerprint", value="0123456789abcdef"),
        "rng junk": put("rng", value={"bit_generator": "PCG64", "state": "junk"}),
        "rng None": put("rng", value=None),
        "rng other generator": put("rng", value=np.random.MT19937(0).state),
        "history entry": lambda st: st["history"].append(("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 1.0)),
        "history arch": lambda st: st["history"].append(("not an arch", 1.0, False)),
        "history value": lambda st: st["history"].append((st["history"][0][0], "high", False)),
        "history not a list": put("history", value="abc"),
        "pending": put("pending", value=[3]),
        "predictor tensor shape": wrong_shape,
        "predictor tensor missing": lambda st: st["predictor_state"]["net"].popitem(),
        "predictor rng": put("predictor_state", "rng", value={"state": 1}),
        "predictor optimizer": put("predictor_state", "optimizer", value={"state": {}, "param_groups": []}),
        "predictor trained": put("predictor_state", "trained", value="yes"),
        "predictor config": put("predictor_state", "config", value={"hidden": 3}),
        "fitted_version": put("fitted_version", value="3"),
        "unlabeled": put("unlabeled", value=["bogus"]),
        "meta": put("meta", value={"k": object()}),
        "config": put("config", value={"seed": 5}),
    }


@pytest.mark.parametrize("name", list(_corruptions()))
def test_a_refused_state_leaves_the_searcher_exactly_as_it_was(name: str) -> None:
    source = tiny_searcher()
    drive(source, 5)
    source.ask()
    state = copy.deepcopy(source.state_dict())
    _corruptions()[name](state)
    target = tiny_searcher()
    drive(target, 4, value=lambda i: -float(i))  # a different history, fitted predictor, pending and RNG
    target.ask()
    target.meta = {"benchmark": "mine"}
    before = _snapshot(target)
    with pytest.raises(ValueError) as info:
        target.load_state_dict(state)
    assert str(info.value)
    assert _same(before, _snapshot(target)), f"{name}: the refused state changed the searcher"
    target.load_state_dict(copy.deepcopy(source.state_dict()))  # the intact state still loads
    assert _same(_snapshot(source), _snapshot(target))


def test_a_space_with_the_same_name_but_other_ops_is_refused(tmp_path: Path) -> None:
    a, b = user_edge_space(), user_edge_space(USER_EDGE_OPS[:-1] + ("conv7",))
    s = RandomSearcher(a, seed=0)
    drive(s, 3)
    s.save(tmp_path / "a.pt")
    with pytest.raises(ValueError, match="another space named 'user-edge'"):
        RandomSearcher.load(tmp_path / "a.pt", space=b)
    assert RandomSearcher.load(tmp_path / "a.pt", space=user_edge_space()).n_told == 3
    assert a.fingerprint() != b.fingerprint()
    assert {sp.fingerprint() for sp in make_spaces().values()} == {sp.fingerprint() for sp in SPACES.values()}


def test_bit_flips_are_always_detected(tmp_path: Path) -> None:
    s = tiny_searcher()
    drive(s, 5)
    s.ask()
    good = tmp_path / "good.pt"
    s.save(good)
    data = good.read_bytes()
    tried = refused = 0
    for seed in range(40):
        rnd = random.Random(seed)
        n_flips = (1, 3, 20)[seed % 3]
        bad = bytearray(data)
        for pos in rnd.sample(range(len(bad)), n_flips):
            bad[pos] ^= 1 << rnd.randrange(8)
        path = tmp_path / f"bad{seed}.pt"
        path.write_bytes(bytes(bad))
        tried += 1
        with pytest.raises(ValueError, match=f"bad{seed}.pt"):
            GatesPredictorSearcher.load(path)
        refused += 1
    # a flip in the header itself (magic, checksum, separator) is refused as well
    for pos in (0, len(MAGIC) - 1, len(MAGIC), len(MAGIC) + 63, len(MAGIC) + 64):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        (tmp_path / "hdr.pt").write_bytes(bytes(bad))
        tried += 1
        with pytest.raises(ValueError):
            GatesPredictorSearcher.load(tmp_path / "hdr.pt")
        refused += 1
    assert (tried, refused) == (45, 45)
    assert GatesPredictorSearcher.load(good).n_told == 5


def test_truncated_and_empty_files_are_refused(tmp_path: Path) -> None:
    s = RandomSearcher(NB201Space(), seed=0)
    drive(s, 3)
    s.save(tmp_path / "s.pt")
    data = (tmp_path / "s.pt").read_bytes()
    for cut in (0, 10, len(MAGIC) + 30, len(data) // 2, len(data) - 1):
        (tmp_path / "t.pt").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="t.pt"):
            RandomSearcher.load(tmp_path / "t.pt")


def test_files_without_the_checksum_header_are_refused(tmp_path: Path) -> None:
    s = tiny_searcher()
    drive(s, 4)
    torch.save(s.state_dict(), tmp_path / "plain.pt")  # the same content, without the header
    with pytest.raises(ValueError, match=r"plain\.pt.*lacks the checksum header"):
        GatesPredictorSearcher.load(tmp_path / "plain.pt")
    s.save(tmp_path / "saved.pt")
    assert GatesPredictorSearcher.load(tmp_path / "saved.pt").history == s.history


def test_stale_temporary_files_are_removed_and_failed_saves_leave_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "run.pt"
    stale = tmp_path / ".gates-state-run.pt.abc123.tmp"
    fresh = tmp_path / ".gates-state-run.pt.def456.tmp"  # a save in progress elsewhere: kept
    other = tmp_path / ".gates-state-other.pt.abc123.tmp"  # another target's: kept
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    s = RandomSearcher(NB201Space(), seed=0)
    drive(s, 2)
    s.save(target)
    assert not stale.exists() and fresh.exists() and other.exists()
    assert remove_stale_temp_files(target, older_than=0) == 1 and not fresh.exists()

    before = set(os.listdir(tmp_path))
    with pytest.raises((pickle.PicklingError, AttributeError)):  # fails before anything is written
        atomic_torch_save({"f": lambda: 0}, target)

    def full_disk(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gates_sampler.utils.os.replace", full_disk)
    with pytest.raises(OSError, match="No space left"):  # fails after the temporary file was written
        s.save(target)
    monkeypatch.undo()
    assert set(os.listdir(tmp_path)) == before
    assert RandomSearcher.load(target).n_told == 2  # the previous state is intact


def test_meta_is_saved_and_must_be_plain_data(tmp_path: Path) -> None:
    s = RandomSearcher(NB201Space(), seed=0)
    s.meta = {"benchmark": "nb201", "dataset": "cifar100", "metric": "val_acc", "epochs": [12, 200]}
    drive(s, 2)
    s.save(tmp_path / "s.pt")
    assert RandomSearcher.load(tmp_path / "s.pt").meta == s.meta
    s.meta = {"benchmark": NB201Space()}
    with pytest.raises(ValueError, match="meta must be a dict of plain data"):
        s.save(tmp_path / "t.pt")


def test_cli_refuses_to_resume_on_another_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "run.pt"
    common = [
        "search",
        "--n-startup",
        "2",
        "--n-candidates",
        "5",
        "--device",
        "cpu",
        "--no-zero-shot",
        "--state",
        str(state),
    ]
    assert main([*common, "--dataset", "cifar100", "--budget", "3"]) == 0
    assert GatesPredictorSearcher.read_state(state)["meta"] == {"benchmark": "nb201", "dataset": "cifar100"}
    before = state.read_bytes()
    capsys.readouterr()
    assert main([*common, "--dataset", "cifar10", "--budget", "5"]) == 2
    err = capsys.readouterr().err
    assert "dataset='cifar100'" in err and "dataset='cifar10'" in err
    assert state.read_bytes() == before  # nothing was mixed in
    assert main([*common, "--dataset", "cifar100", "--budget", "4"]) == 0
    assert "resumed from" in capsys.readouterr().out


def test_safe_load_reports_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        safe_torch_load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="junk.pt"):
        safe_torch_load(tmp_path / "junk.pt")


# ----- 4. parsers and cell validation -----------------------------------------------------------------
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=10)
)
junk = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=4) | st.tuples(c, c) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
huge_text = st.sampled_from(["[", "(", "|", "~", "Genotype(normal=[", "('sep_conv_3x3', 0), ", "0", "١"]).flatmap(
    lambda unit: st.integers(1, 200_000 // len(unit)).map(lambda n: unit * n)
)


def _check_error(exc: BaseException) -> None:
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {exc}"
    assert str(exc).strip(), f"{type(exc).__name__} without a message"


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except (ValueError, TypeError) as exc:
        _check_error(exc)
        return None


@st.composite
def mutated_text(draw: st.DrawFn, space_id: str) -> str:
    """A valid architecture string with a random slice replaced by random text."""
    space = SPACES[space_id]
    text = str(space.sample(np.random.default_rng(draw(st.integers(0, 2**16)))))
    i = draw(st.integers(0, len(text)))
    j = draw(st.integers(i, min(len(text), i + 6)))
    return text[:i] + draw(st.text(max_size=6)) + text[j:]


@st.composite
def mutated_params(draw: st.DrawFn, space_id: str) -> Any:
    space = SPACES[space_id]
    params: dict[Any, Any] = dict(space.to_params(space.sample(np.random.default_rng(draw(st.integers(0, 2**16))))))
    key = draw(st.sampled_from(sorted(params)))
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "replace":
        params[key] = draw(junk)
    elif action == "drop":
        del params[key]
    else:
        params[draw(st.text(max_size=8))] = draw(junk)
    return params


@pytest.mark.parametrize("space_id", SPACE_IDS)
@FUZZ
@given(data=st.data())
def test_parse_raises_only_clear_errors(space_id: str, data: st.DataObject) -> None:
    space = SPACES[space_id]
    text = data.draw(st.one_of(st.text(), mutated_text(space_id), huge_text, junk))
    arch = _call(space.parse, text)
    if arch is not None:
        assert space.parse(str(arch)) == arch


@pytest.mark.parametrize("space_id", SPACE_IDS)
@FUZZ
@given(data=st.data())
def test_from_params_raises_only_clear_errors(space_id: str, data: st.DataObject) -> None:
    space = SPACES[space_id]
    params = data.draw(
        st.one_of(mutated_params(space_id), junk, st.dictionaries(st.text(max_size=12), junk, max_size=6))
    )
    arch = _call(space.from_params, params)
    if arch is not None:
        assert space.from_params(space.to_params(arch)) == arch


@pytest.mark.parametrize("space_id", SPACE_IDS)
@FUZZ
@given(data=st.data())
def test_tell_raises_only_clear_errors_and_keeps_history(space_id: str, data: st.DataObject) -> None:
    space = SPACES[space_id]
    s = RandomSearcher(space, seed=0)
    s.tell(s.ask(), 1.0)
    before = s.history
    arch = data.draw(
        st.one_of(
            mutated_text(space_id), mutated_params(space_id), junk, st.just(str(space.sample(np.random.default_rng(1))))
        )
    )
    value = data.draw(st.one_of(junk, st.floats(), st.integers(-(10**400), 10**400)))
    try:
        s.tell(arch, value)
    except (ValueError, TypeError) as exc:
        _check_error(exc)
        assert s.history == before
    else:
        assert s.history[:1] == before and len(s.history) == 2
        v = s.history[-1].value
        assert v is None or (math.isfinite(v) and abs(v) <= MAX_ABS_VALUE)


def _pairs(draw: st.DrawFn) -> Any:
    valid = list(DartsSpace().sample(np.random.default_rng(draw(st.integers(0, 2**16)))).normal)
    choice = draw(st.sampled_from(["junk", "swap-one", "swap-index"]))
    if choice == "junk":
        return draw(junk)
    k = draw(st.integers(0, len(valid) - 1))
    if choice == "swap-one":
        valid[k] = draw(junk)
    else:
        valid[k] = (
            valid[k][0],
            draw(junk | st.sampled_from([True, 1.9, "1", b"1", None, 1e400, 1.0, np.int64(1), -1, 10**400])),
        )
    return valid


@FUZZ
@given(data=st.data())
def test_darts_from_genotype_raises_only_clear_errors(data: st.DataObject) -> None:
    space = SPACES["darts"]
    normal, reduce = data.draw(st.composite(_pairs)()), data.draw(st.composite(_pairs)())
    arch = _call(space.from_genotype, normal, reduce)
    if arch is not None:
        assert all(type(src) is int for _, src in arch.normal + arch.reduce)


@pytest.mark.parametrize("src", [True, False, 1.9, 1.0, "1", b"1", None, 1e400, math.nan, [1]])
def test_from_genotype_wants_an_int_input(src: Any) -> None:
    space = DartsSpace()
    normal = list(space.sample(np.random.default_rng(0)).normal)
    normal[0] = (normal[0][0], src)
    with pytest.raises(ValueError, match=r"normal\[0\]: the input node must be an int"):
        space.from_genotype(normal, normal)
    normal[0] = (normal[0][0], 10**400)  # an int, but no node
    with pytest.raises(ValueError, match=r"node 2: input 1000.* must be an earlier node"):
        space.from_genotype(normal, normal)


def test_from_genotype_accepts_numpy_ints_and_rejects_text_lists() -> None:
    space = DartsSpace()
    arch = space.sample(np.random.default_rng(0))
    assert space.from_genotype([(op, np.int64(s)) for op, s in arch.normal], arch.reduce) == arch
    with pytest.raises(ValueError, match="normal: expected a list"):
        space.from_genotype("abcdefgh", arch.reduce)
    with pytest.raises(ValueError, match=r"reduce\[2\]: the operation must be a str"):
        space.from_genotype(arch.normal, arch.reduce[:2] + [(b"skip_connect", 0)] + arch.reduce[3:])


def test_long_genotype_strings_are_refused_quickly() -> None:
    space = DartsSpace()
    for text in ("Genotype(normal=[" + "(" * 90_000, "Genotype(normal=[" + "], normal_concat=[" * 20_000):
        start = time.perf_counter()
        with pytest.raises(ValueError, match="too long"):
            space.parse(text)
        assert time.perf_counter() - start < 1.0
    text = "Genotype(normal=[" + "('a', 0)" * ((MAX_GENOTYPE_LENGTH - 20) // 8)  # under the cap, malformed
    with pytest.raises(ValueError, match="cannot parse"):
        space.parse(text)


@pytest.mark.parametrize("space_id", ["nb201", "edge"])
@pytest.mark.parametrize("digit", ["١", "²", "０", "1.0", "-1", "99999999"])
def test_edge_cell_strings_want_ascii_digits(space_id: str, digit: str) -> None:
    space = SPACES[space_id]
    text = str(space.sample(np.random.default_rng(0)))
    bad = text.replace("~0", "~" + digit, 1)
    with pytest.raises(ValueError, match="digits 0-9"):
        space.parse(bad)


@pytest.mark.parametrize("space_id", ["nb101", "node"])
def test_node_cell_strings_want_ascii_digits(space_id: str) -> None:
    space = SPACES[space_id]
    text = str(space.sample(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="0 or 1"):
        space.parse(text.replace("1", "١", 1))
    with pytest.raises(ValueError, match="cannot parse"):
        space.parse(text.replace("[", "(", 1))


def test_malformed_cell_objects_raise_value_errors_naming_the_field() -> None:
    from gates_sampler.spaces.base import EdgeArch, NodeArch
    from gates_sampler.spaces.nb101 import NB101Space
    from gates_sampler.spaces.nb201 import NB201Arch

    nb201 = NB201Space()
    cases = [
        (NB201Arch(None), "cells must be a tuple"),
        (NB201Arch((None,)), "cell 'cell' must be a tuple of nodes"),
        (NB201Arch(((5, (), ()),)), "node 1: must be a tuple of"),
        (NB201Arch((((([], 0),), (), ()),)), "node 1: unknown operation"),
        (
            NB201Arch((((("none", True),), (("none", 0), ("none", 1)), (("none", 0), ("none", 1), ("none", 2))),)),
            "node 1: input True",
        ),
        (
            NB201Arch((((("none", 0.0),), (("none", 0), ("none", 1)), (("none", 0), ("none", 1), ("none", 2))),)),
            "node 1: input 0.0",
        ),
    ]
    for arch, match in cases:
        with pytest.raises(ValueError, match=match):
            nb201.validate(arch)
    nb101 = NB101Space()
    node_cases = [
        (NodeArch(None, ("input", "output")), "matrix must be"),
        (NodeArch(((0, "1"), (0, 0)), ("input", "output")), "entries must be the ints 0 or 1"),
        (NodeArch(((0, 1.0), (0, 0)), ("input", "output")), "entries must be the ints 0 or 1"),
        (NodeArch(((0, 10**40), (0, 0)), ("input", "output")), "entries must be the ints 0 or 1"),
        (NodeArch(((0, 1), (0,)), ("input", "output")), "must be 2x2"),
        (NodeArch(((0, 1), (0, 0)), None), "ops must be"),
        (NodeArch(((0, 1), (0, 0)), ("input", 3)), "ops must be a list of operation names"),
    ]
    for arch, match in node_cases:
        with pytest.raises(ValueError, match=match):
            nb101.validate(arch)
    with pytest.raises(ValueError, match=r"cells\[0\]"):
        nb201.from_cells([None])
    assert isinstance(nb201.validate(nb201.sample(np.random.default_rng(0))), EdgeArch)


# ----- 5. zero-shot cache and tables -----------------------------------------------------------------
def _result(value: float = 1.0) -> Any:
    from gates_sampler.zeroshot.metrics import ARCH_METRICS, EXTRA_ARCH_METRICS, OP_METRICS, ZeroShotResult

    return ZeroShotResult(
        ops={(0, 1, 0, 0): np.full(len(OP_METRICS), value)},
        arch=np.full(len(ARCH_METRICS), value),
        extra=np.full(len(EXTRA_ARCH_METRICS), 1.0),
    )


@pytest.mark.parametrize(
    "row",
    [
        "{not json",
        "[]",
        "null",
        '{"ops": [], "arch": [1, 2]}',
        '{"ops": [[0, 1]], "arch": [1,1,1,1,1], "extra": [1,1]}',
        '{"ops": [], "arch": [NaN, 1, 1, 1, 1], "extra": [1, 1]}',
        '{"ops": [], "arch": [1, 1, 1, 1, Infinity], "extra": [1, 1]}',
        '{"ops": [[0, 1, 0, 0, 1, 1, 1, NaN, 1, 1]], "arch": [1, 1, 1, 1, 1], "extra": [1, 1]}',
        '{"ops": [], "arch": ["a", 1, 1, 1, 1], "extra": [1, 1]}',
    ],
)
def test_bad_cache_rows_are_misses_with_a_warning(tmp_path: Path, row: str, caplog: pytest.LogCaptureFixture) -> None:
    from gates_sampler.zeroshot.cache import ZeroShotCache

    cache = ZeroShotCache(tmp_path / "zs.sqlite")
    cache.put_many("nb201", "cfg", {"good": _result()})
    cache._connect().execute("INSERT OR REPLACE INTO zeroshot VALUES (?, ?, ?, ?)", ("nb201", "cfg", "bad", row))
    with caplog.at_level(logging.WARNING, logger="gates_sampler"):
        got = cache.get_many("nb201", "cfg", ["good", "bad"])
    assert set(got) == {"good"}
    assert "zs.sqlite" in caplog.text and "computing it again" in caplog.text
    cache.put_many("nb201", "cfg", {"bad": _result(2.0)})  # the recomputed value replaces the bad row
    assert cache.get_many("nb201", "cfg", ["bad"])["bad"].arch[0] == 2.0


def test_non_finite_results_are_not_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from gates_sampler.zeroshot.cache import ZeroShotCache

    cache = ZeroShotCache(tmp_path / "zs.sqlite")
    with caplog.at_level(logging.WARNING, logger="gates_sampler"):
        cache.put_many("nb201", "cfg", {"a": _result(math.nan), "b": _result(1.0), "c": _result(math.inf)})
    assert cache.count() == 1 and "non-finite" in caplog.text


def test_tables_with_non_finite_values_are_refused(tmp_path: Path) -> None:
    from gates_sampler.zeroshot.table import ZeroShotTable, write_table

    path = write_table(tmp_path / "t.npz", "nb201", "cfg", {}, {"a": _result(1.0), "b": _result(2.0)})
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    data["arch"][1, 2] = np.nan
    with open(tmp_path / "bad.npz", "wb") as fh:
        np.savez(fh, **data)
    assert len(ZeroShotTable(path)) == 2
    with pytest.raises(ValueError, match="bad.npz.*non-finite"):
        ZeroShotTable(tmp_path / "bad.npz")
