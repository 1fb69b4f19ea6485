"""Small helpers shared across the package: device resolution and safe state files."""

from __future__ import annotations

import glob
import hashlib
import io
import logging
import os
import pickle
import re
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

logger = logging.getLogger("gates_sampler")

#: first bytes of a state file with a checksum (see :func:`atomic_torch_save`); 64 hex digits and a newline follow
MAGIC = b"GATES-SAMPLER-STATE/1 sha256="
#: a temporary file of an interrupted save is removed by the next save of the same target once it is this old
STALE_TEMP_SECONDS = 300.0
_TEMP_SUFFIX = ".tmp"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch device string, got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for CUDA, but torch sees no CUDA device; use device='auto' or 'cpu'")
    return dev


def _temp_prefix(path: str, prefix: str) -> str:
    return f"{prefix}{os.path.basename(path)}."


def remove_stale_temp_files(
    path: str | os.PathLike[str], prefix: str = ".gates-state-", older_than: float = STALE_TEMP_SECONDS
) -> int:
    """Remove temporary files that interrupted saves of ``path`` left beside it; returns how many.

    Only files named after ``path`` and older than ``older_than`` seconds are touched, so a save
    in progress in another process keeps its file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    pattern = os.path.join(glob.escape(folder), glob.escape(_temp_prefix(path, prefix)) + "*" + _TEMP_SUFFIX)
    now = time.time()
    removed = 0
    for tmp in glob.glob(pattern):
        try:
            if now - os.path.getmtime(tmp) >= older_than:
                os.unlink(tmp)
                removed += 1
        except OSError:  # removed meanwhile by another process, or not ours to remove
            continue
    if removed:
        logger.info("removed %d stale temporary file(s) of interrupted saves of %s", removed, path)
    return removed


def atomic_torch_save(obj: Any, path: str | os.PathLike[str], prefix: str = ".gates-state-") -> None:
    """Write ``obj`` to ``path`` so that a crash never leaves a half-written file and damage is detected.

    The file is :data:`MAGIC`, the SHA-256 of the payload in hex, a newline, then the payload
    (``obj`` serialised by ``torch.save``); :func:`safe_torch_load` verifies it, so a file changed by
    even one byte is refused. It is written to a temporary file named after ``path`` and renamed
    over it; a failed save removes its temporary file, and stale ones that killed processes left
    behind are removed on the next save. ``obj`` must hold only plain data and tensors, or it could
    not be loaded back.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temp_files(path, prefix)
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(path, prefix), suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load_plain(source: Any, name: str, what: str, map_location: Any) -> Any:
    """``torch.load`` with the weights-only unpickler; every failure becomes a ``ValueError`` naming ``name``."""
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise ValueError(
                f"refusing to load {name!r}: it asks to import {found.group(1)}; a {what} file holds only plain "
                "data and tensors, and unpickling anything else could run code"
            ) from None
        reason = re.search(r"WeightsUnpickler error:\s*(.+?)\n", text)
        detail = reason.group(1).strip() if reason else text[:200]
        raise ValueError(f"{name!r} is not a readable {what} file (not plain data and tensors: {detail})") from None
    except Exception as exc:  # truncated, foreign or corrupted files: zip, pickle and torch errors alike
        raise ValueError(f"{name!r} is not a readable {what} file ({type(exc).__name__}: {str(exc)[:200]})") from None


def safe_torch_load(path: str | os.PathLike[str], what: str = "state", map_location: Any = "cpu") -> Any:
    """Read a file written by :func:`atomic_torch_save` without running code.

    The file's SHA-256 is checked before anything in it is read, and only plain data and tensors are
    unpickled (``weights_only=True``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file lacks the checksum header, fails its checksum, is unreadable, or holds
            anything but plain data and tensors; the message names the file.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise
    except OSError as exc:  # a folder, a file without read permission
        raise ValueError(f"cannot read {name!r} as a {what} file: {exc}") from None
    if not data.startswith(MAGIC):
        raise ValueError(
            f"{name!r} is not a readable {what} file: it lacks the checksum header that this package's save "
            "writes (a plain torch.save file, another program's file, or a damaged first line)"
        )
    start = len(MAGIC) + 64
    digest, payload = data[len(MAGIC) : start], data[start + 1 :]
    if data[start : start + 1] != b"\n" or hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError(
            f"{name!r} is corrupted: its checksum does not match its content (damaged on disk or in transfer)"
        )
    return _load_plain(io.BytesIO(payload), name, what, map_location)


def check_rng_state(state: Any, what: str = "rng") -> dict[str, Any]:
    """``state`` if it can be the ``bit_generator.state`` of a PCG64 generator, else a ``ValueError``
    naming ``what``."""
    probe = np.random.PCG64()
    try:
        if not isinstance(state, dict):
            raise TypeError(f"expected a dict, got {type(state).__name__}")
        probe.state = state  # type: ignore[assignment]  # validated by the assignment itself
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"{what}: not a random generator state ({exc})") from None
    return state


def check_ranking_pair(
    true: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``true`` and ``pred`` as flat float arrays, or a ``ValueError`` when their lengths differ, there are
    fewer than two, or a value is not finite: what a ranking metric needs."""
    t = np.asarray(true, dtype=np.float64).ravel()
    p = np.asarray(pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"true and predicted values must have the same length, got {t.size} and {p.size}")
    if t.size < 2:
        raise ValueError(f"ranking metrics need at least 2 architectures, got {t.size}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("true and predicted values must be finite")
    return t, p


def kendall_tau(true: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b between true values and predicted scores (both: higher is better); 0 when either
    is constant."""
    from scipy import stats  # imported when a ranking is measured, not with every module that needs utils

    t, p = check_ranking_pair(true, pred)
    tau = stats.kendalltau(t, p).statistic
    return 0.0 if not np.isfinite(tau) else float(tau)
