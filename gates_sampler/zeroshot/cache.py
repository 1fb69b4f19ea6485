"""On-disk cache of zero-shot results: one SQLite file in WAL mode, safe for several processes.

A row that cannot be decoded (bad JSON, missing keys, wrong lengths) or holds non-finite values is
treated as a miss, with a warning naming the cache file: the result is computed again and replaces it.

Rows are keyed by ``(space, config, arch)``: the space's name, a hash of everything that changes the
values (network configuration, batch, seed, metric version; the full description is kept in the
``configs`` table) and ``str(arch)``. The exact architecture string is used rather than the
canonical (isomorphism) key because per-op values are stored by op *position*; an isomorphic
relabelling would move them to other positions, so reusing a canonical entry would misplace them.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from gates_sampler.zeroshot.metrics import ZeroShotResult

logger = logging.getLogger("gates_sampler")

ENV_VAR = "GATES_SAMPLER_CACHE"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS zeroshot (
    space TEXT NOT NULL, config TEXT NOT NULL, arch TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (space, config, arch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS configs (config TEXT PRIMARY KEY, description TEXT NOT NULL);
"""


def default_cache_path() -> Path:
    """``$GATES_SAMPLER_CACHE`` if set, else ``~/.cache/gates-sampler/zeroshot.sqlite``
    (``$XDG_CACHE_HOME`` replaces ``~/.cache`` when set)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gates-sampler" / "zeroshot.sqlite"


class ZeroShotCache:
    """A process-safe SQLite store of :class:`ZeroShotResult` values.

    The connection is opened lazily and never pickled, so an object holding a cache can be sent to
    other processes (each opens its own connection). Writers retry while another process holds the
    write lock.

    Args:
        path: the database file (created with its folder); ``None`` uses :func:`default_cache_path`.
        timeout: seconds a writer waits for the lock before giving up.
    """

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 60.0) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        if self.path.exists() and self.path.is_dir():
            raise ValueError(
                f"cache path {str(self.path)!r} is a directory; "
                f"pass a file path such as {str(self.path / 'zeroshot.sqlite')!r}"
            )
        self.timeout = float(timeout)
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None

    # ----- connection ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # a connection must not cross a fork: reopen in a child process
        if self._conn is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute("PRAGMA synchronous=NORMAL")
            self._retry(lambda: conn.executescript(_SCHEMA))
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _retry(self, fn):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def close(self) -> None:
        """Close this process's connection (it reopens on the next use)."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "timeout": self.timeout}

    def __setstate__(self, state: dict) -> None:
        self.path, self.timeout = state["path"], state["timeout"]
        self._conn, self._pid = None, None

    # ----- access -------------------------------------------------------------------------------
    def get_many(self, space: str, config: str, archs: Iterable[str]) -> dict[str, ZeroShotResult]:
        """Cached results of ``archs`` (strings); missing ones are absent from the dict."""
        keys = list(dict.fromkeys(archs))
        conn = self._connect()
        out: dict[str, ZeroShotResult] = {}
        for s in range(0, len(keys), 500):  # stay below SQLite's host-parameter limit
            chunk = keys[s : s + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT arch, value FROM zeroshot WHERE space=? AND config=? AND arch IN ({marks})"
            # bound as defaults: the lambda must read this chunk's query, not whatever the loop holds later
            rows = self._retry(lambda q=query, p=(space, config, *chunk): conn.execute(q, p).fetchall())
            for arch, value in rows:
                result = self._decode(arch, value)
                if result is not None:
                    out[arch] = result
        return out

    def _decode(self, arch: str, value: str) -> ZeroShotResult | None:
        """A stored row as a result, or ``None`` (a miss, with a warning) when it is malformed or not finite,
        so that it is computed again and the good value replaces the bad row."""
        try:
            result = ZeroShotResult.from_json(json.loads(value))
        except (ValueError, TypeError, KeyError, IndexError) as exc:  # bad JSON, missing keys, wrong shapes
            logger.warning(
                "zero-shot cache %s: malformed row for %s (%s: %s); computing it again",
                self.path,
                arch[:120],
                type(exc).__name__,
                str(exc)[:120],
            )
            return None
        if not result.is_finite():
            logger.warning("zero-shot cache %s: non-finite values for %s; computing it again", self.path, arch[:120])
            return None
        return result

    def put_many(
        self, space: str, config: str, results: Mapping[str, ZeroShotResult], description: dict | None = None
    ) -> None:
        """Store results in one transaction (existing rows are replaced).

        Results with non-finite values are not stored (with a warning): they would poison every reader.
        """
        bad = [a for a, r in results.items() if not r.is_finite()]
        if bad:
            logger.warning(
                "zero-shot cache %s: not storing %d result(s) with non-finite values (e.g. %s)",
                self.path,
                len(bad),
                bad[0][:120],
            )
            results = {a: r for a, r in results.items() if a not in bad}
        if not results:
            return
        conn = self._connect()
        rows = [(space, config, a, json.dumps(r.to_json())) for a, r in results.items()]

        def write() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if description is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO configs VALUES (?, ?)", (config, json.dumps(description, sort_keys=True))
                    )
                conn.executemany("INSERT OR REPLACE INTO zeroshot VALUES (?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._retry(write)

    def count(self, space: str | None = None, config: str | None = None) -> int:
        """Number of stored results (optionally of one space / config)."""
        conn = self._connect()
        q = "SELECT COUNT(*) FROM zeroshot WHERE 1=1"
        args: list[str] = []
        if space is not None:
            q, args = q + " AND space=?", args + [space]
        if config is not None:
            q, args = q + " AND config=?", args + [config]
        return int(self._retry(lambda: conn.execute(q, args).fetchone()[0]))

    def configs(self) -> dict[str, dict]:
        """Config hash -> its description, for every configuration stored."""
        conn = self._connect()
        return {
            k: json.loads(v)
            for k, v in self._retry(lambda: conn.execute("SELECT config, description FROM configs").fetchall())
        }

    def __repr__(self) -> str:
        return f"ZeroShotCache({str(self.path)!r})"
