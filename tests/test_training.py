"""TrainingEvaluator: data, determinism, early stopping, checkpoint/resume, Optuna / Ray Tune adapters."""

from __future__ import annotations

import os
import pickle
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from gates_sampler.benchmarks import TrainingEvaluator, TrainingSettings
from gates_sampler.benchmarks.demo_data import demo_datasets, make_demo_images
from gates_sampler.benchmarks.training import (
    OptunaPruningCallback,
    RayTuneReportCallback,
    _crop_flip,
    chain_callbacks,
    load_cifar,
)
from gates_sampler.spaces import NB201Space

SPACE = NB201Space()
ARCH = SPACE.sample(np.random.default_rng(0))
TINY_DEMO = TrainingSettings(n_train=64, n_val=32)  # for tests that only build a network


def tiny_model(arch: object = None, num_classes: int = 10) -> nn.Module:
    """A stand-in network (the architecture is ignored): small enough for many CPU runs."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )


def make_eval(**kw: object) -> TrainingEvaluator:
    """A fast evaluator; keywords that name a :class:`TrainingSettings` field go into its settings."""
    names = {f.name for f in fields(TrainingSettings)}
    recipe: dict = {"n_train": 512, "n_val": 128, "lr": 0.1, **{k: kw.pop(k) for k in list(kw) if k in names}}
    args: dict = dict(space=SPACE, model_fn=tiny_model, dataset="demo", epochs=3, batch_size=64, seed=0)
    args.update(kw)
    return TrainingEvaluator(**args, settings=TrainingSettings(**recipe))


# --- data ----------------------------------------------------------------------------------


def test_demo_data_is_seeded_and_shaped() -> None:
    x1, y1 = make_demo_images(64, seed=3)
    x2, y2 = make_demo_images(64, seed=3)
    assert x1.shape == (64, 3, 32, 32) and x1.dtype == torch.float32 and y1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, make_demo_images(64, seed=4)[0])
    train, val = demo_datasets(100, 50)
    assert len(train) == 100 and len(val) == 50
    assert set(train.tensors[1].tolist()) <= set(range(10))
    with pytest.raises(ValueError, match="num_classes"):
        make_demo_images(10, num_classes=1)


def test_crop_flip_keeps_shape_and_content() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = _crop_flip(x, torch.Generator().manual_seed(0), pad=0)  # no padding: only flips are possible
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2))
    padded = _crop_flip(x, torch.Generator().manual_seed(1), pad=2)
    assert padded.shape == x.shape
    # by brute force: each image is one of the 5 x 5 crops of the zero-padded image, or its mirror
    big = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        crops = [big[i, :, r : r + 8, c : c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(padded[i], crop) or torch.equal(padded[i], crop.flip(2)) for crop in crops)
    # over many draws every offset and both orientations occur
    many = _crop_flip(x[:1].expand(400, -1, -1, -1), torch.Generator().manual_seed(2), pad=2)
    seen = set()
    for img in many:
        for r in range(5):
            for c in range(5):
                crop = big[0, :, r : r + 8, c : c + 8]
                if torch.equal(img, crop):
                    seen.add((r, c, False))
                if torch.equal(img, crop.flip(2)):
                    seen.add((r, c, True))
    assert len(seen) == 50


def _write_fake_cifar(root: Path, name: str, n: int = 40) -> None:
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder, files, key = (
            root / "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
            b"labels",
        )
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], b"fine_labels"
    folder.mkdir(parents=True)
    classes = 10 if name == "cifar10" else 100
    for f in files:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: rng.integers(0, classes, n).tolist()}
        with open(folder / f, "wb") as fh:
            pickle.dump(batch, fh)


class _Boom:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_reader_runs_no_code_from_a_crafted_batch(tmp_path: Path, protocol: int, monkeypatch) -> None:
    _write_fake_cifar(tmp_path, "cifar10")
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": _Boom(), b"labels": [0]}, fh, protocol=protocol)
    with pytest.raises(ValueError, match="data_batch_3.*not a CIFAR python batch.*posix.system|data_batch_3.*system"):
        load_cifar("cifar10", tmp_path, train=True)
    assert not (tmp_path / "pwned").exists()


def test_cifar_reader_reads_batches_of_every_pickle_protocol(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)]):
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data + i, b"labels": [1, 2, 3, 4], b"batch_label": b"x"}, fh, protocol=i + 1)
    x, y = load_cifar("cifar10", tmp_path, train=True)
    assert torch.equal(x[4].flatten(), torch.from_numpy(data[0] + 1)) and y.tolist() == [1, 2, 3, 4] * 5


def test_cifar_reader_reads_python_batches(tmp_path: Path) -> None:
    _write_fake_cifar(tmp_path, "cifar10")
    x, y = load_cifar("cifar10", tmp_path, train=True)
    assert x.shape == (200, 3, 32, 32) and x.dtype == torch.uint8 and y.shape == (200,)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as fh:
        first = pickle.load(fh, encoding="bytes")
    assert torch.equal(x[0].flatten(), torch.from_numpy(first[b"data"][0]))  # row-major CHW, as CIFAR stores it
    xt, _ = load_cifar("cifar10", tmp_path / "cifar-10-batches-py", train=False)
    assert xt.shape[0] == 40
    _write_fake_cifar(tmp_path, "cifar100")
    _, y100 = load_cifar("cifar100", tmp_path, train=False)
    assert y100.max() < 100
    ev = TrainingEvaluator(SPACE, "cifar10", tmp_path, model_fn=tiny_model, epochs=1, batch_size=64)
    assert ev.num_classes == 10 and ev.augment and 0 <= ev.evaluate(ARCH) <= 100


def test_missing_cifar_says_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load_cifar("cifar10", tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        TrainingEvaluator(SPACE, "cifar100", tmp_path, model_fn=tiny_model)
    with pytest.raises(ValueError, match="root="):
        TrainingEvaluator(SPACE, "cifar10", model_fn=tiny_model)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="dataset"):
        TrainingEvaluator(SPACE, "mnist", model_fn=tiny_model)
    with pytest.raises(ValueError, match="model_fn"):
        TrainingEvaluator(None, "demo")
    with pytest.raises(ValueError, match="epochs"):
        make_eval(epochs=0)
    with pytest.raises(ValueError, match="amp"):
        make_eval(amp="yes")
    with pytest.raises(ValueError, match="val_fraction"):
        make_eval(val_fraction=1.5)
    with pytest.raises(ValueError, match="C must be a positive integer"):
        make_eval(network={"C": 0})
    with pytest.raises(ValueError, match="n_train must be an int >= 1"):
        TrainingSettings(n_train=0)
    with pytest.raises(TypeError, match="settings must be a TrainingSettings"):
        TrainingEvaluator(SPACE, "demo", model_fn=tiny_model, settings={"lr": 0.1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="val_dataset"):
        TrainingEvaluator(SPACE, TensorDataset(torch.zeros(4, 3, 8, 8), torch.zeros(4).long()), model_fn=tiny_model)


class _PairDataset(Dataset):
    """A generic map-style Dataset (not a TensorDataset), exercising the DataLoader path."""

    classes = list(range(10))

    def __init__(self, n: int) -> None:
        self.x, self.y = make_demo_images(n, seed=5)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def test_generic_dataset_with_held_out_fraction() -> None:
    ev = TrainingEvaluator(SPACE, _PairDataset(160), model_fn=tiny_model, val_fraction=0.25, epochs=1, batch_size=32)
    assert ev.num_classes == 10
    assert len(ev.train_data) == 120 and len(ev.val_data) == 40
    # a seeded split of the one dataset: disjoint, together all 160 images
    train_idx, val_idx = set(ev.train_data.indices), set(ev.val_data.indices)
    assert not train_idx & val_idx and train_idx | val_idx == set(range(160))
    again = TrainingEvaluator(SPACE, _PairDataset(160), model_fn=tiny_model, val_fraction=0.25, epochs=1)
    assert set(again.val_data.indices) == val_idx
    result = ev.train(ARCH)
    assert result.epochs_run == 1 and 0 <= result.val_acc <= 100


# --- training --------------------------------------------------------------------------------


def test_training_learns_and_is_deterministic() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = make_eval().train(ARCH)
    after = torch.rand(1)
    assert torch.equal(before, after), "training must not disturb the caller's global torch RNG"
    b = make_eval().train(ARCH)
    c = make_eval(seed=1).train(ARCH)
    assert len(a.history) == 3 and a.epochs_run == 3 and not a.stopped_early and a.n_params > 0
    assert a.history == b.history
    assert a.history != c.history
    assert max(a.history) > 20.0  # chance level is 10 %


def test_callback_sees_every_epoch_and_can_stop() -> None:
    seen: list[tuple[int, float]] = []
    ev = make_eval(epochs=4)
    result = ev.train(ARCH, callback=lambda e, v: seen.append((e, v)) or e >= 2)
    assert [e for e, _ in seen] == [1, 2]
    assert result.stopped_early and result.epochs_run == 2 and result.history == [v for _, v in seen]
    assert ev.last_result is result
    both: list[int] = []
    stop = chain_callbacks(lambda e, v: both.append(e), None, lambda e, v: e >= 1)
    assert ev.train(ARCH, callback=stop).epochs_run == 1 and both == [1]


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = make_eval().train(ARCH).history

    class Crash(Exception):
        pass

    def crash_after_two(epoch: int, val_acc: float) -> None:
        if epoch == 2:
            raise Crash

    ev = make_eval(checkpoint_dir=tmp_path)
    with pytest.raises(Crash):
        ev.train(ARCH, callback=crash_after_two)
    path = ev.checkpoint_path(ARCH)
    assert path is not None and path.is_file()
    epochs_seen: list[int] = []
    resumed = make_eval(checkpoint_dir=tmp_path).train(ARCH, callback=lambda e, v: epochs_seen.append(e))
    assert epochs_seen == [3]  # epochs 1-2 came from the checkpoint
    assert resumed.history == full
    # A finished run is answered from its checkpoint without training again.
    finished = make_eval(checkpoint_dir=tmp_path)
    monkeypatch.setattr(finished, "_train_epoch", lambda *a, **k: pytest.fail("trained a finished run"))
    assert finished.evaluate(ARCH) == full[-1]
    # A different recipe never resumes this run.
    assert make_eval(checkpoint_dir=tmp_path, lr=0.01).checkpoint_path(ARCH) != path


def test_darts_network_trains_through_network_kwargs() -> None:
    from gates_sampler.networks import build_network
    from gates_sampler.spaces import DartsSpace

    space = DartsSpace()
    ev = TrainingEvaluator(
        space,
        "demo",
        epochs=1,
        batch_size=32,
        network={"C": 4, "layers": 2},
        settings=TrainingSettings(n_train=64, n_val=32, demo_image_size=16),
    )
    arch = space.sample(np.random.default_rng(0))
    assert 0 <= ev.evaluate(arch) <= 100
    # the network trained is the DARTS builder's at C=4 with 2 cells, not the default size
    expected = sum(p.numel() for p in build_network(space, arch, C=4, layers=2).parameters())
    assert ev.last_result is not None and ev.last_result.n_params == expected
    assert expected != sum(p.numel() for p in build_network(space, arch, C=4, layers=3).parameters())
    with pytest.raises(ValueError, match="unknown network option"):
        no_n = TrainingEvaluator(space, "demo", network={"N": 2}, settings=TINY_DEMO)  # DARTS networks have no N
        no_n.build_model(space.sample(np.random.default_rng(0)))


def test_cpu_mixed_precision_runs_in_bfloat16_and_channels_last() -> None:
    seen: dict[bool, dict[str, object]] = {}

    def recording_model(arch: object = None, num_classes: int = 10) -> nn.Module:
        model = tiny_model(arch, num_classes)
        conv = model[0]

        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if module.training:
                record = seen.setdefault(amp, {})
                record["dtype"] = output.dtype
                record["channels_last"] = module.weight.is_contiguous(memory_format=torch.channels_last)

        conv.register_forward_hook(hook)
        return model

    for amp in (True, False):
        result = make_eval(amp=amp, channels_last=amp, epochs=1, model_fn=recording_model).train(ARCH)
        assert 0 <= result.val_acc <= 100
    # bfloat16 autocast and channels-last weights only where asked for
    assert seen[True] == {"dtype": torch.bfloat16, "channels_last": True}
    assert seen[False] == {"dtype": torch.float32, "channels_last": False}


def test_build_network_is_the_default_model_factory() -> None:
    from gates_sampler.networks import build_network

    ev = TrainingEvaluator(
        SPACE,
        "demo",
        epochs=1,
        batch_size=64,
        network={"C": 4, "N": 1},
        settings=TrainingSettings(n_train=128, n_val=64),
    )
    model = ev.build_model(ARCH)
    assert isinstance(model, nn.Module)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    width = {m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert min(width) == 4  # C reached the builder
    assert 0 <= ev.evaluate(ARCH) <= 100
    expected = sum(p.numel() for p in build_network(SPACE, ARCH, C=4, N=1).parameters())
    assert ev.last_result is not None and ev.last_result.n_params == expected
    with pytest.raises(ValueError, match="unknown network option"):
        TrainingEvaluator(SPACE, "demo", network={"depth": 3}, settings=TINY_DEMO).build_model(ARCH)


# --- framework adapters ----------------------------------------------------------------------


def test_optuna_callback_reports_and_prunes() -> None:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    )
    good = study.ask()
    for epoch in range(1, 4):
        OptunaPruningCallback(good)(epoch, 90.0)
    study.tell(good, 90.0)
    bad = study.ask()
    with pytest.raises(optuna.TrialPruned):
        OptunaPruningCallback(bad)(1, 10.0)
    assert bad.storage.get_trial(bad._trial_id).intermediate_values == {1: 10.0}


def test_optuna_study_with_training_and_pruner() -> None:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ev = make_eval(epochs=2, n_train=128, n_val=64)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=2),
    )

    def objective(trial: optuna.Trial) -> float:
        arch = SPACE.suggest(trial)
        return ev.evaluate(arch, callback=OptunaPruningCallback(trial))

    study.optimize(objective, n_trials=3)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and all(set(t.intermediate_values) == {1, 2} for t in done)
    assert all(t.value == t.intermediate_values[2] for t in done)


def test_ray_callback_reports_each_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    tune = pytest.importorskip("ray.tune")
    reports: list[dict] = []
    monkeypatch.setattr(tune, "report", lambda metrics, **kw: reports.append(dict(metrics)))
    callback = RayTuneReportCallback(extra={"arch": str(ARCH)})
    result = make_eval(epochs=2, n_train=128, n_val=64).train(ARCH, callback=callback)
    assert reports == [{"val_acc": v, "epoch": e, "arch": str(ARCH)} for e, v in enumerate(result.history, 1)]
