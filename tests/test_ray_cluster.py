"""GatesSearcher on a real multi-process Ray cluster: a head node and a worker node started with
``ray start`` as separate processes on this machine (loopback only), trials spread over both.

The cluster is stopped by terminating the two ``ray start --block`` process groups this test started
(``ray stop --force`` would also kill every other Ray instance running on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

from ray.tune.search import ConcurrencyLimiter  # noqa: E402

from gates_sampler import GatesSearcher  # noqa: E402
from gates_sampler.spaces import NB201Space  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))
NAMES = list(NB201Space().distributions())
SCORE = {"none": 0.0, "skip_connect": 1.0, "avg_pool_3x3": 1.5, "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def processes_in(groups: set[int], marker: str) -> list[int]:
    """Live processes of the given process groups, or whose command line names ``marker``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":  # zombies are gone already
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            if os.getpgid(pid) in groups or marker in cmd:
                out.append(pid)
        except (OSError, IndexError):
            continue
    return out


def stop_cluster(nodes: list[subprocess.Popen], marker: str) -> None:
    """SIGTERM the ``ray start --block`` groups (worker first; they drain and stop their children),
    then SIGKILL whatever of ours is left."""
    groups = {p.pid for p in nodes}  # start_new_session: each group id is its leader's pid
    for p in reversed(nodes):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in nodes:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        wait_for(lambda: not processes_in(groups, marker), 30, "the cluster's processes to exit")
    except TimeoutError:
        for pid in processes_in(groups, marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def node_objective(config: dict) -> None:
    """A cheap deterministic score; the sleep keeps two trials running at once, one per node."""
    time.sleep(2.0)
    tune.report({"score": sum(SCORE[config[k]] for k in NAMES), "node": ray.get_runtime_context().get_node_id()})


def run_driver(address: str, out: str) -> None:
    """The Tune driver, run as its own process (``python tests/test_ray_cluster.py``) so that its Ray
    client state and authentication settings come from its environment, not from the test process."""
    ray.init(address=address, log_to_driver=False)
    try:
        space = NB201Space()
        searcher = GatesSearcher(
            space,
            metric="score",
            mode="max",
            seed=0,
            n_startup=3,
            n_candidates=30,
            predictor={"epochs": 20, "hidden": 32, "n_layers": 2, "op_dim": 16},
        )
        tuner = tune.Tuner(
            node_objective,
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=2), num_samples=6, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                storage_path=os.path.join(os.path.dirname(out), "results"), name="cluster", verbose=0
            ),
        )
        grid = tuner.fit()
        report = {
            "alive_nodes": sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]),
            "errors": grid.num_errors,
            "trials": [{"config": r.config, **(r.metrics or {})} for r in grid],
            "history": [[str(o.arch), o.value] for o in searcher.history],
            "best": searcher.best[1] if searcher.best else None,
        }
    finally:
        ray.shutdown()
    with open(out, "w") as f:
        json.dump(report, f)


def test_tune_on_a_two_node_cluster(tmp_path: Path) -> None:
    # short (Unix socket paths under it must stay below 108 bytes) and unique: the cleanup
    # recognises this cluster's processes by it
    temp_dir = tempfile.mkdtemp(prefix="gsray-", dir="/tmp")
    port = free_port()
    # the cluster's own token: nodes and driver authenticate without touching ~/.ray
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }  # nothing to drain: stop at once
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    env.pop("RAY_ADDRESS", None)
    common = ["--block", "--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    head_cmd = [
        RAY,
        "start",
        "--head",
        f"--port={port}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        f"--dashboard-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        *common,
    ]
    worker_cmd = [RAY, "start", f"--address=127.0.0.1:{port}", f"--dashboard-agent-listen-port={free_port()}", *common]
    out = tmp_path / "driver.json"
    nodes: list[subprocess.Popen] = []
    started = time.monotonic()
    try:
        head_log = tmp_path / "head.log"
        with open(head_log, "w") as log:
            nodes.append(
                subprocess.Popen(head_cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            )
        wait_for(
            lambda: "Ray runtime started" in head_log.read_text() or nodes[0].poll() is not None, 180, "the head node"
        )
        assert nodes[0].poll() is None, head_log.read_text()[-3000:]
        worker_log = tmp_path / "worker.log"
        with open(worker_log, "w") as log:
            nodes.append(
                subprocess.Popen(worker_cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            )
        wait_for(
            lambda: "Ray runtime started" in worker_log.read_text() or nodes[1].poll() is not None,
            180,
            "the worker node",
        )
        assert nodes[1].poll() is None, worker_log.read_text()[-3000:]
        cluster_up = time.monotonic() - started
        driver = subprocess.run(
            [sys.executable, __file__, f"127.0.0.1:{port}", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert driver.returncode == 0, driver.stdout[-3000:] + driver.stderr[-3000:]
        print(f"cluster up in {cluster_up:.0f}s, search done after {time.monotonic() - started:.0f}s")
    finally:
        stop_cluster(nodes, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not processes_in({p.pid for p in nodes}, temp_dir), "cluster processes left running"

    report = json.loads(out.read_text())
    assert len(report["alive_nodes"]) == 2
    assert report["errors"] == 0 and len(report["trials"]) == 6
    assert sorted({t["node"] for t in report["trials"]}) == report["alive_nodes"]  # both nodes ran trials
    space = NB201Space()
    history = report["history"]
    assert len(history) == 6 and len({space.canonical_key(space.parse(a)) for a, _ in history}) == 6
    for t in report["trials"]:
        arch = space.from_params({k: t["config"][k] for k in NAMES})
        assert [str(arch), t["score"]] in history
    assert report["best"] == max(t["score"] for t in report["trials"])


if __name__ == "__main__":
    run_driver(sys.argv[1], sys.argv[2])
