"""Real training as an evaluator: build the network of an architecture, train it, return its
validation accuracy (%).

Defaults follow NAS-Bench-201's training recipe (SGD, momentum 0.9, Nesterov, weight decay 5e-4,
batch 256, learning rate 0.1 with a cosine schedule to 0; random crop + flip for CIFAR); the number
of epochs is yours to choose. On CUDA, mixed precision (float16 + gradient scaling) and
``channels_last`` are on by default.

Data sets:

* ``"cifar10"`` / ``"cifar100"`` from ``root``: the standard python-pickle batches
  (``cifar-10-batches-py/`` or ``cifar-100-python/``, as torchvision unpacks them); nothing is
  downloaded. The validation set is the test batch, or ``val_fraction`` of the training images
  (NAS-Bench-201's ``cifar10-valid`` used half of them).
* ``"demo"``: synthetic DEMO data (:mod:`gates_sampler.benchmarks.demo_data`), for examples and tests.
* ``"digits"``: scikit-learn's handwritten digits (1,797 real 8x8 grey images, 10 classes), which ship
  inside the ``scikit-learn`` package (``pip install 'gates-sampler[digits]'``; nothing is downloaded).
  A fixed, seeded split (:func:`load_digits_split`): 1,000 training, 397 validation, 400 test images.
* any ``torch.utils.data.Dataset`` of ``(image, label)`` pairs, with ``val_dataset`` or ``val_fraction``.

Per-epoch hooks: ``callback(epoch, val_acc)`` runs after each epoch; returning ``True`` stops the
training early, raising (e.g. ``optuna.TrialPruned``) aborts it. :class:`OptunaPruningCallback` and
:class:`RayTuneReportCallback` adapt this to Optuna pruners and Ray Tune schedulers (ASHA).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from gates_sampler.spaces.base import Arch, SearchSpace
from gates_sampler.utils import atomic_torch_save, resolve_device, safe_torch_load

logger = logging.getLogger("gates_sampler")

EpochCallback = Callable[[int, float], "bool | None"]


class _CifarSpec(TypedDict):
    folder: str
    train: list[str]
    test: list[str]
    label_key: bytes
    classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    archive: str


_CIFAR: dict[str, _CifarSpec] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": b"labels",
        "classes": 10,
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
        "archive": "cifar-10-python.tar.gz",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": b"fine_labels",
        "classes": 100,
        "mean": (0.5071, 0.4865, 0.4409),
        "std": (0.2673, 0.2564, 0.2762),
        "archive": "cifar-100-python.tar.gz",
    },
}
DATASETS = ("cifar10", "cifar100", "demo", "digits")
#: sizes of the fixed digits split: training, validation, test (1,797 images in all)
DIGITS_SPLIT = (1000, 397, 400)


def load_digits_split(part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One part (``"train"``, ``"val"`` or ``"test"``) of scikit-learn's handwritten digits as
    ``[N, 1, 8, 8]`` float images (pixel values 0..16 scaled to 0..1) and int64 labels.

    The split is fixed (a permutation seeded with 0), so that every search, seed and evaluator sees the
    same images: the test part is never used for training or for choosing an architecture.
    """
    if part not in ("train", "val", "test"):
        raise ValueError(f"part must be 'train', 'val' or 'test', got {part!r}")
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("dataset='digits' needs scikit-learn: pip install 'gates-sampler[digits]'") from exc
    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_train, n_val, _ = DIGITS_SPLIT
    idx = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}[part]
    return x[idx], y[idx]


# --- data ------------------------------------------------------------------------------------


def load_cifar(name: str, root: str | os.PathLike[str], train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Read CIFAR-10 / CIFAR-100 from the standard python-pickle batches under ``root``.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: the folder that holds ``cifar-10-batches-py/`` (or ``cifar-100-python/``), or that folder itself.
        train: the 50000 training images, else the 10000 test images.

    Returns:
        ``(images uint8 [N, 3, 32, 32], labels int64 [N])``.
    """
    if name not in _CIFAR:
        raise ValueError(f"name must be one of {tuple(_CIFAR)}, got {name!r}")
    spec = _CIFAR[name]
    root = Path(root).expanduser()
    folder = root if root.name == spec["folder"] else root / spec["folder"]
    files = [folder / f for f in spec["train" if train else "test"]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name} batches not found: {missing[0]} is missing. Download {spec['archive']} from "
            "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it under root (giving "
            f"{spec['folder']}/) and pass root= (nothing is downloaded automatically)"
        )
    images, labels = [], []
    for f in files:
        batch = _read_cifar_batch(f)
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[spec["label_key"]], dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


#: the only globals a CIFAR python batch refers to: numpy's array reconstruction (under the names that
#: numpy 1.x / 2.x and Python 2 / 3 pickles use) and bytes decoding
_CIFAR_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles by the dataset's design; this reader resolves only the globals such a batch
    needs, so a crafted file cannot make it import or call anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"a CIFAR batch never refers to {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.split(".", 2)[2]  # numpy 2 moved numpy.core to numpy._core
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> dict[bytes, Any]:
    """One CIFAR python batch, read with :class:`_CifarUnpickler` (a clear ``ValueError`` for anything else)."""
    try:
        with open(path, "rb") as fh:
            batch = _CifarUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{str(path)!r} is not a CIFAR python batch ({exc})") from None
    if not isinstance(batch, dict) or b"data" not in batch:
        raise ValueError(f"{str(path)!r} is not a CIFAR python batch (no b'data' entry)")
    return batch


@dataclass
class _ImageData:
    """Images held as one tensor (fast path: batches are slices, augmentation runs batched on the device)."""

    x: torch.Tensor  # uint8 [N, 3, H, W] (CIFAR) or float [N, C, H, W]
    y: torch.Tensor
    mean: torch.Tensor | None = None  # per-channel, for uint8 images
    std: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> _ImageData:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return _ImageData(self.x.to(device), self.y.to(device), move(self.mean), move(self.std))

    def subset(self, idx: torch.Tensor) -> _ImageData:
        return _ImageData(self.x[idx], self.y[idx], self.mean, self.std)

    def batch(self, idx: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[idx].to(device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
            if self.mean is not None and self.std is not None:
                mean, std = self.mean.to(device), self.std.to(device)
                x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        return x, self.y[idx].to(device, non_blocking=True)


def _crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding ``pad`` and random horizontal flip, per image, batched."""
    b, c, h, w = x.shape
    offs = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (offs[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offs[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    out = padded[
        torch.arange(b, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows,
        cols,
    ]
    return torch.where(flip.view(-1, 1, 1, 1), out.flip(3), out)


def _as_image_data(ds: Dataset) -> _ImageData | None:
    if isinstance(ds, _ImageData):
        return ds
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2 and ds.tensors[0].dim() == 4:
        return _ImageData(ds.tensors[0], ds.tensors[1].long())
    return None


# --- results and callbacks -------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What one training run produced.

    Attributes:
        val_acc: validation accuracy (%) after the last epoch run.
        history: validation accuracy after each epoch run (index 0 = epoch 1).
        epochs_run: number of epochs trained (fewer than asked when a callback stopped the run).
        stopped_early: a callback returned ``True``.
        seconds: wall time of this call (a resumed run counts only the resumed part).
        n_params: number of trainable parameters.
    """

    val_acc: float
    history: list[float] = field(default_factory=list)
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    n_params: int = 0


class OptunaPruningCallback:
    """Report per-epoch validation accuracy to an Optuna trial and raise ``optuna.TrialPruned`` when
    its pruner says so (works with ``MedianPruner``, ``HyperbandPruner``, ...).

    Args:
        trial: the ``optuna.Trial`` the objective received.
        maximize: the value reported is accuracy (higher is better). Optuna's pruners compare values in
            the study's direction, so the study should be ``direction="maximize"``; with
            ``maximize=False`` the error rate ``100 - val_acc`` is reported instead (for minimising studies).
    """

    def __init__(self, trial: Any, maximize: bool = True) -> None:
        self.trial = trial
        self.maximize = maximize

    def __call__(self, epoch: int, val_acc: float) -> None:
        import optuna

        self.trial.report(val_acc if self.maximize else 100.0 - val_acc, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} at val_acc {val_acc:.2f}")


class RayTuneReportCallback:
    """Report each epoch to Ray Tune (``tune.report({"val_acc": ..., "epoch": ...})``), so that
    schedulers such as ASHA can stop the trial between epochs.

    Args:
        metric: the name the accuracy is reported under (``tune.run(metric=...)`` must match).
        extra: constant entries added to every report (e.g. the architecture string).
    """

    def __init__(self, metric: str = "val_acc", extra: dict[str, Any] | None = None) -> None:
        self.metric = metric
        self.extra = dict(extra or {})

    def __call__(self, epoch: int, val_acc: float) -> None:
        from ray import tune

        tune.report({self.metric: val_acc, "epoch": epoch, **self.extra})


def chain_callbacks(*callbacks: EpochCallback | None) -> EpochCallback:
    """One callback running several in order; it stops the run when any of them returns ``True``."""
    active = [c for c in callbacks if c is not None]

    def run(epoch: int, val_acc: float) -> bool:
        return any([bool(c(epoch, val_acc)) for c in active])

    return run


# --- the evaluator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSettings:
    """The training recipe of a :class:`TrainingEvaluator` beyond epochs and batch size.

    The defaults are NAS-Bench-201's SGD recipe; vary one with ``dataclasses.replace(settings, lr=0.05)``.

    Args:
        lr, momentum, nesterov, weight_decay: the SGD recipe (cosine schedule to 0 over all steps).
        augment: random crop (padding 4) + horizontal flip on training batches; ``None``: on for CIFAR.
        amp: mixed precision; ``"auto"``: on with CUDA (float16 + gradient scaling), off on CPU;
            ``True`` on CPU uses bfloat16 autocast.
        channels_last: ``"auto"``: on with CUDA.
        num_workers: ``DataLoader`` workers for a generic ``Dataset``.
        n_train, n_val, demo_image_size: sizes of the ``"demo"`` data set (images, image height/width).
    """

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    augment: bool | None = None
    amp: bool | str = "auto"
    channels_last: bool | str = "auto"
    num_workers: int = 0
    n_train: int = 2000
    n_val: int = 500
    demo_image_size: int = 32

    def __post_init__(self) -> None:
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(
                f"need lr > 0, weight_decay >= 0, 0 <= momentum < 1; "
                f"got lr={self.lr}, weight_decay={self.weight_decay}, momentum={self.momentum}"
            )
        for name in ("amp", "channels_last"):
            if getattr(self, name) not in (True, False, "auto"):
                raise ValueError(f"{name} must be True, False or 'auto', got {getattr(self, name)!r}")
        for name, least in (("num_workers", 0), ("n_train", 1), ("n_val", 1), ("demo_image_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


class TrainingEvaluator:
    """Train the network of an architecture and return its validation accuracy (%).

    Args:
        space: the search space; with the default model factory the network comes from
            ``gates_sampler.networks.build_network(space, arch, num_classes=..., C=..., N=...)``.
        dataset: ``"cifar10"``, ``"cifar100"``, ``"demo"`` (synthetic, for demos and tests), ``"digits"``
            (scikit-learn's handwritten digits, see the module docstring) or a torch ``Dataset`` of
            ``(image, label)`` pairs (the training set).
        root: folder with the CIFAR python batches (``cifar-10-batches-py/`` ...).
        val_dataset: validation set for a ``Dataset`` ``dataset``.
        val_fraction: hold out this fraction of the training set for validation (seeded split)
            instead of the CIFAR test batch / ``val_dataset``.
        epochs: training epochs per evaluation.
        batch_size: SGD minibatch size.
        network: ``build_network`` options, e.g. ``{"C": 16, "N": 5}`` (width, cells per stage; ``N``
            only where the network has it, e.g. NB201, NB101), ``{"layers": 8}`` for DARTS, or
            ``num_classes`` (default: inferred from the data set); unset ones take the network's defaults.
        model_fn: ``model_fn(arch) -> nn.Module`` used instead of ``build_network`` (any builder).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        seed: seeds weight initialisation, batch order, augmentation and the validation split;
            the same seed gives the same result on the same machine (CPU; CUDA kernels may differ slightly).
        checkpoint_dir: save model/optimizer/schedule after every epoch there and resume from it; a
            finished run is answered from its checkpoint without training.
        progress: log each epoch at INFO level.
        settings: the rest of the training recipe (:class:`TrainingSettings`; its defaults when ``None``).
    """

    def __init__(
        self,
        space: SearchSpace | None = None,
        dataset: str | Dataset = "demo",
        root: str | os.PathLike[str] | None = None,
        *,
        val_dataset: Dataset | None = None,
        val_fraction: float | None = None,
        epochs: int = 12,
        batch_size: int = 256,
        network: dict[str, Any] | None = None,
        model_fn: Callable[[Arch], nn.Module] | None = None,
        device: str | torch.device = "auto",
        seed: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
        settings: TrainingSettings | None = None,
    ) -> None:
        if settings is None:
            settings = TrainingSettings()
        elif not isinstance(settings, TrainingSettings):
            raise TypeError(f"settings must be a TrainingSettings, got {type(settings).__name__}")
        network = dict(network or {})
        if isinstance(dataset, str) and dataset == "digits":
            network.setdefault("in_channels", 1)  # grey images
        C, N, num_classes = network.pop("C", None), network.pop("N", None), network.pop("num_classes", None)
        if space is None and model_fn is None:
            raise ValueError("give space= (networks from gates_sampler.networks.build_network) or model_fn=")
        for name, value in (("epochs", epochs), ("batch_size", batch_size), ("C", C), ("N", N)):
            if value is None and name in ("C", "N"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if val_fraction is not None and not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        self.space, self.model_fn = space, model_fn
        self.epochs, self.batch_size = epochs, batch_size
        self.settings = settings
        self.lr, self.momentum, self.nesterov = float(settings.lr), float(settings.momentum), bool(settings.nesterov)
        self.weight_decay = float(settings.weight_decay)
        self.C, self.N = C, N
        self.network_kwargs = network
        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        self.amp = cuda if settings.amp == "auto" else bool(settings.amp)
        self.channels_last = cuda if settings.channels_last == "auto" else bool(settings.channels_last)
        self.seed = int(seed)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir).expanduser()
        self.num_workers = int(settings.num_workers)
        self.progress = progress
        self.last_result: TrainingResult | None = None
        self._dataset_name = dataset if isinstance(dataset, str) else type(dataset).__name__
        if isinstance(dataset, str) and dataset == "demo":
            self._dataset_name = f"demo{settings.demo_image_size}"
        self.train_data, self.val_data, classes, default_augment = self._load_data(
            dataset, root, val_dataset, val_fraction, settings.n_train, settings.n_val, settings.demo_image_size
        )
        self.num_classes = int(num_classes if num_classes is not None else classes or 0)
        if self.num_classes < 2:
            raise ValueError("num_classes could not be inferred from the dataset; pass network={'num_classes': ...}")
        self.augment = default_augment if settings.augment is None else bool(settings.augment)
        if self.device.type == "cuda":
            # Small image sets fit on the GPU; keeping them there removes host-to-device copies per batch.
            self.train_data = (
                self.train_data.to(self.device) if isinstance(self.train_data, _ImageData) else self.train_data
            )
            self.val_data = self.val_data.to(self.device) if isinstance(self.val_data, _ImageData) else self.val_data

    # -- data -------------------------------------------------------------------------------
    def _load_data(
        self,
        dataset: str | Dataset,
        root: str | os.PathLike[str] | None,
        val_dataset: Dataset | None,
        val_fraction: float | None,
        n_train: int,
        n_val: int,
        demo_image_size: int = 32,
    ) -> tuple[Any, Any, int | None, bool]:
        classes: int | None = None
        augment = False
        train: _ImageData | Dataset
        val: _ImageData | Dataset | None
        if isinstance(dataset, str):
            if dataset not in DATASETS:
                raise ValueError(f"dataset must be one of {DATASETS} or a torch Dataset, got {dataset!r}")
            if dataset == "demo":
                from gates_sampler.benchmarks.demo_data import DEMO_NUM_CLASSES, demo_datasets

                # The data stay the same for every training seed, as a real data set would.
                train_ds, val_ds = demo_datasets(n_train, n_val, seed=0, image_size=demo_image_size)
                # demo images are 4-D tensors, so both always take the fast path; the fallback only satisfies typing
                train, val = _as_image_data(train_ds) or train_ds, _as_image_data(val_ds) or val_ds
                classes = DEMO_NUM_CLASSES
            elif dataset == "digits":
                train = _ImageData(*load_digits_split("train"))
                val = None if val_fraction is not None else _ImageData(*load_digits_split("val"))
                classes = 10
            else:
                if root is None:
                    raise ValueError(
                        f"dataset={dataset!r} needs root= (the folder holding {_CIFAR[dataset]['folder']}/)"
                    )
                spec = _CIFAR[dataset]
                mean, std = torch.tensor(spec["mean"]), torch.tensor(spec["std"])
                train = _ImageData(*load_cifar(dataset, root, train=True), mean, std)  # type: ignore[misc]
                val = (
                    None if val_fraction is not None else _ImageData(*load_cifar(dataset, root, train=False), mean, std)
                )  # type: ignore[misc]
                classes, augment = spec["classes"], True
        else:
            if not isinstance(dataset, Dataset):
                raise ValueError(f"dataset must be one of {DATASETS} or a torch Dataset, got {type(dataset).__name__}")
            if val_dataset is None and val_fraction is None:
                raise ValueError("a Dataset needs val_dataset= or val_fraction= for validation")
            train = _as_image_data(dataset) or dataset
            val = None if val_dataset is None else (_as_image_data(val_dataset) or val_dataset)
        if classes is None:
            classes = self._infer_classes(train)
        if val_fraction is not None:
            train, val = self._split(train, val_fraction)
        return train, val, classes, augment

    def _split(self, data: Any, fraction: float) -> tuple[Any, Any]:
        n = len(data)
        n_val = max(1, int(round(n * fraction)))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        if isinstance(data, _ImageData):
            return data.subset(train_idx), data.subset(val_idx)
        return Subset(data, train_idx.tolist()), Subset(data, val_idx.tolist())

    @staticmethod
    def _infer_classes(data: Any) -> int | None:
        if isinstance(data, _ImageData):
            return int(data.y.max().item()) + 1
        for attr in ("classes", "num_classes"):
            value = getattr(data, attr, None)
            if value is not None:
                return len(value) if isinstance(value, Sequence) else int(value)
        return None

    def _batches(
        self, data: Any, shuffle: bool, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if isinstance(data, _ImageData):
            n = len(data)
            order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
            order = order.to(data.x.device)
            for i in range(0, n, self.batch_size):
                x, y = data.batch(order[i : i + self.batch_size], self.device)
                if shuffle and self.augment:
                    x = _crop_flip(x, generator)
                yield x, y
            return
        loader = DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator if shuffle else None,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), torch.as_tensor(y).to(self.device, non_blocking=True)

    # -- model ------------------------------------------------------------------------------
    def build_model(self, arch: Arch) -> nn.Module:
        """The untrained network of ``arch`` (``model_fn`` or ``build_network``)."""
        if self.model_fn is not None:
            return self.model_fn(arch)
        assert self.space is not None  # __init__ requires space= when there is no model_fn
        from gates_sampler.networks import build_network

        config: dict[str, Any] = {"num_classes": self.num_classes, **self.network_kwargs}
        if self.C is not None:
            config["C"] = self.C
        if self.N is not None:
            config["N"] = self.N
        return build_network(self.space, arch, **config)

    def _coerce(self, arch: Arch | str) -> Arch:
        if self.space is not None:
            return self.space.coerce(arch)
        return arch  # type: ignore[return-value]

    def checkpoint_path(self, arch: Arch | str) -> Path | None:
        """Where the run of ``arch`` is checkpointed (``None`` without ``checkpoint_dir``)."""
        if self.checkpoint_dir is None:
            return None
        arch = self._coerce(arch)
        # Everything that changes the result goes into the key, so a changed recipe never resumes a stale run.
        recipe = json.dumps(
            [
                str(arch),
                self._dataset_name,
                len(self.train_data),
                len(self.val_data),
                self.epochs,
                self.batch_size,
                self.lr,
                self.momentum,
                self.nesterov,
                self.weight_decay,
                self.C,
                self.N,
                sorted(self.network_kwargs.items()),
                self.num_classes,
                self.augment,
                self.amp,
                self.seed,
                None if self.space is None else self.space.name,
            ],
            default=str,
        )
        return self.checkpoint_dir / f"run-{hashlib.sha1(recipe.encode()).hexdigest()[:16]}.pt"

    # -- training ---------------------------------------------------------------------------
    def evaluate(self, arch: Arch | str, callback: EpochCallback | None = None) -> float:
        """Train ``arch`` and return its validation accuracy (%) after the last epoch run.

        ``callback(epoch, val_acc)`` runs after every epoch (1-based); returning ``True`` stops early.
        Exceptions it raises (``optuna.TrialPruned``) propagate after the epoch's checkpoint is saved.
        """
        return self.train(arch, callback=callback).val_acc

    __call__ = evaluate

    def train(self, arch: Arch | str, callback: EpochCallback | None = None) -> TrainingResult:
        """Like :meth:`evaluate`, returning the whole :class:`TrainingResult` (also kept as ``last_result``)."""
        arch = self._coerce(arch)
        start = time.perf_counter()
        ckpt_path = self.checkpoint_path(arch)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        # Module constructors and some layers draw from the global RNG: fork it so the run is
        # seeded without changing the caller's random state.
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            model = self.build_model(arch).to(self.device)
            if self.channels_last:
                # torch's stubs omit Module.to's memory_format keyword, which it accepts at run time
                model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
            optimizer = torch.optim.SGD(
                model.parameters(),
                lr=self.lr,
                momentum=self.momentum,
                nesterov=self.nesterov and self.momentum > 0,
                weight_decay=self.weight_decay,
            )
            steps = self.epochs * math.ceil(len(self.train_data) / self.batch_size)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps), eta_min=0.0)
            scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.device.type == "cuda")
            history: list[float] = []
            stopped = False
            if ckpt_path is not None and ckpt_path.is_file():
                state = self._read_checkpoint(ckpt_path)
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                scaler.load_state_dict(state["scaler"])
                history, stopped = list(state["history"]), bool(state["stopped"])
                logger.info("resuming %s from epoch %d (%s)", arch, len(history), ckpt_path)
            for epoch in range(len(history) + 1, self.epochs + 1):
                if stopped:
                    break
                # A fresh generator per epoch makes a resumed run draw exactly what an uninterrupted one would.
                torch.manual_seed(self.seed * 1_000_003 + epoch)
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._train_epoch(model, optimizer, scheduler, scaler, generator)
                val_acc = self._validate(model)
                history.append(val_acc)
                if self.progress:
                    logger.info("%s epoch %d/%d val_acc %.2f", arch, epoch, self.epochs, val_acc)
                try:
                    stopped = bool(callback(epoch, val_acc)) if callback is not None else False
                finally:
                    if ckpt_path is not None:
                        self._save(ckpt_path, model, optimizer, scheduler, scaler, history, stopped)
        if not history:
            raise RuntimeError(f"no epoch was trained for {arch}")
        result = TrainingResult(
            val_acc=history[-1],
            history=history,
            epochs_run=len(history),
            stopped_early=stopped,
            seconds=time.perf_counter() - start,
            n_params=n_params,
        )
        self.last_result = result
        return result

    def _autocast(self) -> Any:
        if not self.amp:
            return torch.autocast(device_type=self.device.type, enabled=False)
        dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _logits(self, out: Any) -> torch.Tensor:
        # Some macro networks return (features, logits) or (logits, auxiliary logits): take the first
        # [batch, num_classes] tensor, the main classifier in both conventions' usual layouts.
        if isinstance(out, torch.Tensor):
            return out
        if isinstance(out, (tuple, list)):
            for t in out:
                if isinstance(t, torch.Tensor) and t.dim() == 2 and t.shape[1] == self.num_classes:
                    return t
        raise ValueError(f"the model must return logits [batch, {self.num_classes}], got {type(out).__name__}")

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def _train_epoch(
        self, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any, generator: torch.Generator
    ) -> None:
        model.train()
        for x, y in self._batches(self.train_data, shuffle=True, generator=generator):
            with self._autocast():
                loss = nn.functional.cross_entropy(self._logits(model(self._prepare(x))), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # as NAS-Bench-201 / DARTS training do
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()

    @torch.no_grad()
    def _validate(self, model: nn.Module) -> float:
        model.eval()
        correct, total = 0, 0
        for x, y in self._batches(self.val_data, shuffle=False, generator=torch.Generator()):
            with self._autocast():
                logits = self._logits(model(self._prepare(x)))
            correct += int((logits.argmax(dim=1) == y).sum().item())
            total += int(y.numel())
        return 100.0 * correct / max(1, total)

    def _read_checkpoint(self, path: Path) -> dict[str, Any]:
        """A checkpoint written by :meth:`_save`, read without running code, or a ``ValueError`` naming the file."""
        state = safe_torch_load(path, what="training checkpoint", map_location=self.device)
        needed = ("model", "optimizer", "scheduler", "scaler", "history", "stopped")
        if not isinstance(state, dict) or any(k not in state for k in needed):
            raise ValueError(f"{str(path)!r} is not a training checkpoint: expected the entries {list(needed)}")
        if not isinstance(state["history"], list) or not all(isinstance(v, float) for v in state["history"]):
            raise ValueError(f"{str(path)!r} is not a training checkpoint: 'history' must be a list of accuracies")
        return state

    @staticmethod
    def _save(
        path: Path, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any, history: list[float], stopped: bool
    ) -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "history": history,
            "stopped": stopped,
        }
        atomic_torch_save(state, path, prefix=".gates-ckpt-")  # a crash mid-save never leaves a half-written checkpoint

    def __repr__(self) -> str:
        return (
            f"TrainingEvaluator(dataset={self._dataset_name!r}, epochs={self.epochs}, C={self.C}, N={self.N}, "
            f"device={str(self.device)!r}, amp={self.amp})"
        )
