"""Read-only tables of precomputed zero-shot results (one ``.npz`` file per space and configuration).

A table holds the raw :class:`ZeroShotResult` of many architectures for one provider configuration
(the same ``config_key`` as the SQLite cache). Unlike the cache it is a single file that can be
shipped with the package or copied to the workers of a cluster: the package bundles the table of
all 15625 NAS-Bench-201 cells for the default provider, so GATES++ needs no zero-shot computation
on that space. ``gates-nas precompute-zeroshot --export FILE`` writes one.

Values are stored as float64, exactly as computed, so a search reads the same features from a
table as from the cache or a fresh computation.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from gates_sampler.zeroshot.metrics import ARCH_METRICS, EXTRA_ARCH_METRICS, OP_METRICS, ZeroShotResult

logger = logging.getLogger("gates_sampler")

FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).parent / "data"


def table_filename(space: str, config_key: str) -> str:
    """File name of the table for a space and configuration, e.g. ``nb201-9e82b2467ee9c32a.npz``."""
    return f"{space}-{config_key}.npz"


class ZeroShotTable:
    """Raw zero-shot results of many architectures of one space and configuration, read from a file.

    Args:
        path: an ``.npz`` written by :func:`write_table`.

    Raises:
        ValueError: when the file is not a readable table (the message names the file and the problem).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        try:
            with np.load(self.path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise ValueError(f"zero-shot table {str(self.path)!r} does not exist") from None
        except Exception as exc:  # a truncated or foreign file: zipfile, pickle and format errors alike
            raise ValueError(f"zero-shot table {str(self.path)!r} is not a readable .npz table: {exc}") from exc
        needed = {
            "format",
            "description",
            "config_key",
            "space",
            "archs",
            "arch",
            "extra",
            "op_row",
            "op_key",
            "op_vals",
        }
        missing = sorted(needed - set(data))
        if missing:
            raise ValueError(f"zero-shot table {str(self.path)!r} lacks the field(s) {missing}")
        if int(data["format"]) != FORMAT_VERSION:
            raise ValueError(
                f"zero-shot table {str(self.path)!r} has format {int(data['format'])}; "
                f"this version reads {FORMAT_VERSION}"
            )
        n = len(data["archs"])
        shapes_ok = (
            data["arch"].shape == (n, len(ARCH_METRICS))
            and data["extra"].shape == (n, len(EXTRA_ARCH_METRICS))
            and data["op_vals"].ndim == 2
            and data["op_vals"].shape[1] == len(OP_METRICS)
            and len(data["op_row"]) == len(data["op_vals"]) == len(data["op_key"])
        )
        if not shapes_ok:
            raise ValueError(f"zero-shot table {str(self.path)!r} has inconsistent array shapes")
        for name in ("arch", "extra", "op_vals"):
            if not np.issubdtype(data[name].dtype, np.number) or not np.all(np.isfinite(data[name])):
                raise ValueError(f"zero-shot table {str(self.path)!r} holds non-finite or non-numeric {name!r} values")
        self.space = str(data["space"])
        self.config_key = str(data["config_key"])
        self.description: dict = json.loads(str(data["description"]))
        self._arch = np.asarray(data["arch"], dtype=np.float64)
        self._extra = np.asarray(data["extra"], dtype=np.float64)
        self._row = {str(a): i for i, a in enumerate(data["archs"])}
        # per architecture, the slice of its op entries (rows are written grouped and in order)
        op_row = np.asarray(data["op_row"], dtype=np.int64)
        self._op_start = np.searchsorted(op_row, np.arange(n), side="left")
        self._op_end = np.searchsorted(op_row, np.arange(n), side="right")
        self._op_key = np.asarray(data["op_key"], dtype=np.int64)
        self._op_vals = np.asarray(data["op_vals"], dtype=np.float64)

    # pickled as its path (a process that unpickles it reads the file again): keeps the pickles of
    # providers and searchers sent to worker processes small
    def __getstate__(self) -> dict:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._row)

    def __iter__(self) -> Iterator[str]:
        """The architecture strings the table holds."""
        return iter(self._row)

    def __contains__(self, key: object) -> bool:
        return key in self._row

    def get(self, key: str) -> ZeroShotResult | None:
        """The result stored for an architecture string, or ``None``."""
        i = self._row.get(key)
        if i is None:
            return None
        s, e = self._op_start[i], self._op_end[i]
        ops = {tuple(int(v) for v in k): v.copy() for k, v in zip(self._op_key[s:e], self._op_vals[s:e])}
        return ZeroShotResult(ops=ops, arch=self._arch[i].copy(), extra=self._extra[i].copy())

    def get_many(self, keys: Iterable[str]) -> dict[str, ZeroShotResult]:
        """The stored results of those ``keys`` the table holds."""
        out = {}
        for k in keys:
            r = self.get(k)
            if r is not None:
                out[k] = r
        return out

    def __repr__(self) -> str:
        return f"ZeroShotTable({str(self.path)!r}, space={self.space!r}, config={self.config_key}, archs={len(self)})"


def write_table(
    path: str | os.PathLike, space: str, config_key: str, description: Mapping, results: Mapping[str, ZeroShotResult]
) -> Path:
    """Write ``results`` (architecture string -> raw result) as a table file; returns its path.

    Raises:
        ValueError: when there is nothing to write or a value is not finite.
    """
    if not results:
        raise ValueError("no zero-shot results to write")
    keys = sorted(results)
    op_row, op_key, op_vals = [], [], []
    for i, k in enumerate(keys):
        for key, vals in sorted(results[k].ops.items()):
            op_row.append(i)
            op_key.append(key)
            op_vals.append(vals)
    widths = {len(k) for k in op_key}
    if len(widths) > 1:
        raise ValueError(f"op keys of different lengths {sorted(widths)} cannot share one table")
    arrays = {
        "arch": np.array([results[k].arch for k in keys], dtype=np.float64),
        "extra": np.array([results[k].extra for k in keys], dtype=np.float64),
        "op_vals": np.array(op_vals, dtype=np.float64).reshape(-1, len(OP_METRICS)),
    }
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} values are not finite; they cannot be stored in a table")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # an open file keeps numpy from appending ".npz" to the name
        np.savez_compressed(
            fh,
            format=np.int64(FORMAT_VERSION),
            description=np.str_(json.dumps(dict(description), sort_keys=True)),
            config_key=np.str_(config_key),
            space=np.str_(space),
            archs=np.array(keys),
            arch=arrays["arch"],
            extra=arrays["extra"],
            op_row=np.array(op_row, dtype=np.int32),
            op_key=np.array(op_key, dtype=np.int16).reshape(len(op_row), -1),
            op_vals=arrays["op_vals"],
        )
    logger.info("wrote a zero-shot table of %d architectures to %s", len(keys), path)
    return path


@functools.cache
def bundled_table(space: str, config_key: str) -> ZeroShotTable | None:
    """The table shipped with the package for ``space`` and ``config_key``, if there is one.

    Read once per process and shared (tables are read-only): every searcher, sampler and provider
    on NB201 would otherwise read and index the same file again."""
    path = BUNDLED_DIR / table_filename(space, config_key)
    return ZeroShotTable(path) if path.is_file() else None
