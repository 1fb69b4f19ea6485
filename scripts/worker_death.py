"""Kill Optuna workers with SIGKILL in the middle of their objective and count what was lost.

Four worker processes share one study (GatesSampler on NAS-Bench-201 look-ups; the objective
sleeps a little so that a kill lands mid-evaluation). Two of them are killed with SIGKILL while
evaluating and replaced by fresh processes. At the end the study is read back and the script prints, per storage:

- complete / failed: trials in each state (failed: by the heartbeat check, or by the objective);
- left running: trials still RUNNING although their worker is dead (storages without heartbeats);
- lost: killed trials whose architecture was neither evaluated later nor free to be proposed again;
- duplicated: architectures evaluated (COMPLETE) more than once.

RDB storages (SQLite, PostgreSQL) run with ``heartbeat_interval`` / ``grace_period`` and Optuna's
retry callback (if a dead worker's trial is still RUNNING when the last workers stop, one more worker
starts after the grace period to fail it and run its retry: ``late_workers``); the journal file has
no heartbeat in Optuna, so its workers use the sampler's ``stale_after`` instead.

    python scripts/worker_death.py --storage sqlite journal
    python scripts/worker_death.py --storage postgresql --postgres-url postgresql+psycopg2://user@/db?host=/tmp/pg
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# this checkout's gates_sampler, in the driver as in the workers, and this module for the workers
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
STORAGES = ("postgresql", "journal", "sqlite")
HEARTBEAT_INTERVAL = 1  # seconds; Optuna takes whole seconds
GRACE_PERIOD = 2
STALE_AFTER = 4.0  # the journal's substitute for a heartbeat, longer than one evaluation
OBJECTIVE_SLEEP = 0.3  # seconds an evaluation takes besides the look-up
VICTIM_SLEEP = 1.5  # the same for the workers that are going to be killed
WORKER_TIMEOUT = 240.0


def make_storage(kind: str, location: str) -> Any:
    """The study's storage; RDB storages fail dead workers' trials by heartbeat and retry them."""
    import optuna
    from optuna.storages import RDBStorage

    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(location))
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    if retry_cls is not None:  # Optuna >= 4.9 names
        callback_kw = {"heartbeat_stale_trial_callback": retry_cls(max_retry=3)}
    else:
        callback_kw = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=3)}
    engine_kwargs = {"connect_args": {"timeout": 60}} if kind == "sqlite" else {"pool_pre_ping": True}
    return RDBStorage(
        location,
        heartbeat_interval=HEARTBEAT_INTERVAL,
        grace_period=GRACE_PERIOD,
        engine_kwargs=engine_kwargs,
        **callback_kw,
    )


def make_sampler(kind: str, seed: int) -> Any:
    from gates_sampler.integrations.optuna import GatesSampler
    from gates_sampler.spaces import NB201Space

    return GatesSampler(
        NB201Space(),
        seed=seed,
        n_startup_trials=4,
        n_candidates=30,
        zero_shot=None,
        device="cpu",
        predictor={"epochs": 20, "hidden": 16, "op_dim": 8, "n_layers": 2, "head_hidden": [16], "head_dropout": 0.0},
        settings={"warm_epochs": 2},
        stale_after=STALE_AFTER if kind == "journal" else None,
    )


# ----- one worker process ----------------------------------------------------------------------
def worker(kind: str, location: str, study_name: str, n_trials: int, seed: int, sleep: float) -> None:
    """Run trials until the study holds ``n_trials`` complete ones and nothing is left to retry."""
    import optuna
    import torch
    from optuna.trial import TrialState

    from gates_sampler.benchmarks import NB201Benchmark

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # experimental / deprecation notices, once per process
    bench = NB201Benchmark("cifar10")
    study = optuna.load_study(
        study_name=study_name, storage=make_storage(kind, location), sampler=make_sampler(kind, seed)
    )
    heartbeat = kind != "journal"

    def objective(trial: optuna.Trial) -> float:
        arch = bench.space.suggest(trial)
        # tells the driver which worker is mid-objective, and until when
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("busy_until", time.time() + sleep)
        time.sleep(sleep)
        return bench.query(arch)

    def stop_when_done(study: optuna.Study, _trial: Any) -> None:
        trials = study.get_trials(deepcopy=False)
        if sum(t.state == TrialState.COMPLETE for t in trials) < n_trials:
            return
        if any(t.state == TrialState.WAITING for t in trials):
            return  # a retry is queued: run it
        if heartbeat:
            # a dead worker's trial not yet failed by the heartbeat check: keep going until it is
            # failed (at the start of a later trial) and its retry has run
            old = datetime.datetime.now() - datetime.timedelta(seconds=GRACE_PERIOD + HEARTBEAT_INTERVAL + 3)
            if any(t.state == TrialState.RUNNING and t.datetime_start and t.datetime_start < old for t in trials):
                return
        study.stop()

    study.optimize(objective, callbacks=[stop_when_done])


# ----- the driver ------------------------------------------------------------------------------
# torch._dynamo comes with the first optimizer; sqlalchemy / psycopg2 with the first RDB storage
_PRELOAD = [
    "torch",
    "torch._dynamo",
    "optuna",
    "sqlalchemy",
    "optuna.storages._rdb.storage",
    "psycopg2",
    "gates_sampler.integrations.optuna",
    "gates_sampler.searcher",
    "gates_sampler.benchmarks",
]


def _context() -> Any:
    """Workers are forked from a server process that has imported the libraries once: each start
    (and restart) is then a fresh process that opens its own storage connection and sampler, without
    waiting seconds for ``import torch``."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _location(kind: str, workdir: Path, url: str | None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'study.db'}"
    if kind == "journal":
        return str(workdir / "journal.log")
    if not url:
        raise ValueError("the postgresql storage needs a URL (--postgres-url or GATES_SAMPLER_TEST_POSTGRES_URL)")
    return url


def run_scenario(
    kind: str,
    workdir: Path,
    *,
    url: str | None = None,
    n_trials: int = 24,
    n_workers: int = 4,
    n_kill: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the kill-and-restart scenario on one storage and return its counts."""
    import optuna
    from optuna.trial import TrialState

    if kind not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {kind!r}")
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    location = _location(kind, workdir, url)
    storage = make_storage(kind, location)
    study_name = f"worker-death-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    ctx = _context()

    def start(worker_seed: int, sleep: float = OBJECTIVE_SLEEP) -> Any:
        p = ctx.Process(target=worker, args=(kind, location, study_name, n_trials, worker_seed, sleep), daemon=True)
        p.start()
        return p

    begin = time.monotonic()
    # the workers to be killed evaluate slowly, so that the driver surely finds them mid-objective
    procs = [start(seed + i, VICTIM_SLEEP if i < n_kill else OBJECTIVE_SLEEP) for i in range(n_workers)]
    victims: dict[int, Any] = {int(p.pid): p for p in procs[:n_kill]}
    killed: dict[int, int] = {}  # trial number -> pid of the worker killed while evaluating it
    deadline = time.monotonic() + WORKER_TIMEOUT
    while victims and time.monotonic() < deadline:
        for pid in [pid for pid, p in victims.items() if not p.is_alive()]:
            victims.pop(pid).join()  # finished before it could be caught mid-objective
        # kill once a few trials are done, so that the predictor is already in use
        trials = study.get_trials(deepcopy=False)
        if sum(t.state == TrialState.COMPLETE for t in trials) >= n_workers:
            for t in trials:
                pid = int(t.user_attrs.get("pid", -1))
                # a kill must land well inside the objective, not as it returns, and on a trial that
                # is still running now (the list may be a moment old)
                inside = time.time() < float(t.user_attrs.get("busy_until", 0.0)) - 0.5
                if pid in victims and inside and study._storage.get_trial(t._trial_id).state == TrialState.RUNNING:
                    os.kill(pid, signal.SIGKILL)
                    victims.pop(pid).join()
                    killed[t.number] = pid
                    procs.append(start(seed + 100 + len(killed)))
                    break  # starting the replacement takes a while: read the list afresh
        time.sleep(0.05)
    for p in procs:
        p.join(timeout=max(1.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()
    late = 0
    if kind != "journal" and any(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False)):
        # Optuna fails a dead worker's trial only when some worker starts a trial after its heartbeat
        # went stale; if the last workers stopped just before that, one more worker, started after the
        # grace period, does it (and runs the retry), as a restarted worker would in production
        time.sleep(GRACE_PERIOD + HEARTBEAT_INTERVAL + 1.0)
        late = 1
        procs.append(start(seed + 200))
        procs[-1].join(timeout=60.0)
        if procs[-1].is_alive():
            procs[-1].kill()
            procs[-1].join()
    worker_errors = sum(p.exitcode not in (0, -signal.SIGKILL) for p in procs)
    if kind == "journal" and killed:
        # without heartbeats the dead trials free their architectures only after stale_after: count then
        trials = study.get_trials(deepcopy=False)
        latest = max(trials[n].datetime_start or datetime.datetime.now() for n in killed)
        time.sleep(max(0.0, STALE_AFTER + 0.5 - (datetime.datetime.now() - latest).total_seconds()))
    return {
        "storage": kind,
        "seconds": round(time.monotonic() - begin, 1),
        "killed": len(killed),
        "late_workers": late,
        "worker_errors": worker_errors,
        **count(kind, study, set(killed)),
    }


def count(kind: str, study: Any, killed: set[int]) -> dict[str, int]:
    """Read the finished study back: states, objective failures, retries, losses and duplicates."""
    from optuna.trial import TrialState

    from gates_sampler.integrations.optuna import OBJECTIVE_FAILED_ATTR

    trials = study.get_trials(deepcopy=False)
    sampler = make_sampler(kind, 0)
    space = sampler.search_space
    names = list(space.distributions())

    def key(t: Any) -> str | None:
        return (
            space.canonical_key(space.from_params({k: t.params[k] for k in names}))
            if all(k in t.params for k in names)
            else None
        )

    complete = [key(t) for t in trials if t.state == TrialState.COMPLETE]
    # what a worker joining now would refuse to propose: evaluated, failed or held by a live trial
    probe = study.trials[0]
    sampler._attach(study, probe)
    sampler._sync(study, current=-1)
    searcher = sampler.searcher
    held = searcher.seen_keys() if searcher is not None else set()
    evaluated = set(complete)
    retried = [t for t in trials if t.system_attrs.get("failed_trial") in killed]
    lost = [n for n in killed if key(trials[n]) not in evaluated and key(trials[n]) in held]
    return {
        "trials": len(trials),
        "complete": len(complete),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "failed_objective": sum(t.state == TrialState.FAIL and OBJECTIVE_FAILED_ATTR in t.system_attrs for t in trials),
        "left_running": sum(t.state == TrialState.RUNNING for t in trials),
        "waiting": sum(t.state == TrialState.WAITING for t in trials),
        "retried_complete": sum(t.state == TrialState.COMPLETE for t in retried),
        "killed_free_again": sum(key(trials[n]) not in held for n in killed),
        "lost": len(lost),
        "duplicated": len(complete) - len(set(complete)),
    }


COLUMNS = (
    "storage",
    "killed",
    "trials",
    "complete",
    "failed",
    "left_running",
    "retried_complete",
    "killed_free_again",
    "lost",
    "duplicated",
    "worker_errors",
    "seconds",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", nargs="+", choices=STORAGES, default=list(STORAGES))
    parser.add_argument("--postgres-url", default=os.environ.get("GATES_SAMPLER_TEST_POSTGRES_URL"))
    parser.add_argument("--trials", type=int, default=24, help="complete trials to reach (default 24)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = []
    for kind in args.storage:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(run_scenario(kind, Path(tmp), url=args.postgres_url, n_trials=args.trials, seed=args.seed))
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS]
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[c]).rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))


if __name__ == "__main__":
    main()
