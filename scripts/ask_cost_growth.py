"""How ``ask()`` time and memory grow with the number of told architectures (default searcher).

    python scripts/ask_cost_growth.py --nb301-path DIR --told 100 200 500 1000

For each space (NAS-Bench-201 cifar10 and, with ``--nb301-path``, DARTS on the NB301 surrogate) and each
history size n, a fresh process tells n random architectures with their benchmark values, asks once (the
first fit from scratch, reported apart), then times ``--asks`` steady-state steps (tell one result, ask
one proposal: the warm refit plus candidate scoring a search pays every trial). Peak memory is the
process's peak resident set size, and each point runs in its own process so that the numbers do not
mix.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def measure(space_name: str, told: int, asks: int, nb301_path: str | None, seed: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    from gates_sampler import GatesPredictorSearcher
    from gates_sampler.benchmarks import NB201Benchmark, NB301Benchmark

    bench = NB301Benchmark(path=nb301_path) if space_name == "darts" else NB201Benchmark("cifar10")
    searcher = GatesPredictorSearcher(bench.space, seed=seed)
    rng = np.random.default_rng(seed)
    for arch in bench.space.sample_unique(rng, told, exclude=set()):
        searcher.tell(arch, bench.query(arch))
    start = time.perf_counter()
    searcher.tell(searcher.ask(), 0.0)  # the first fit, from scratch
    first = time.perf_counter() - start
    times = []
    for _ in range(asks):
        start = time.perf_counter()
        arch = searcher.ask()
        times.append(time.perf_counter() - start)
        searcher.tell(arch, bench.query(arch))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"first_fit_s": first, "ask_median_s": float(np.median(times)), "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--told", type=int, nargs="+", default=[100, 200, 500, 1000])
    parser.add_argument("--asks", type=int, default=5)
    parser.add_argument("--nb301-path", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--spaces",
        nargs="+",
        choices=["nb201", "darts"],
        default=None,
        help="default: nb201, and darts with --nb301-path",
    )
    parser.add_argument("--point", nargs=2, help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args()
    if args.point:
        space_name, told = args.point[0], int(args.point[1])
        print(json.dumps(measure(space_name, told, args.asks, args.nb301_path, args.seed)))
        return
    spaces = args.spaces or ["nb201"] + (["darts"] if args.nb301_path else [])
    if "darts" in spaces and not args.nb301_path:
        parser.error("--spaces darts needs --nb301-path")
    print(
        f"default GatesPredictorSearcher, {args.asks} steady-state asks per point, one thread (set OMP_NUM_THREADS=1)"
    )
    print(f"{'space':<6} {'told':>5} {'ask s (median)':>15} {'first fit s':>12} {'peak MB':>8}")
    for space_name in spaces:
        for told in args.told:
            cmd = [sys.executable, __file__, "--point", space_name, str(told), "--asks", str(args.asks)]
            cmd += ["--seed", str(args.seed)] + (["--nb301-path", args.nb301_path] if args.nb301_path else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            print(
                f"{space_name:<6} {told:>5} {r['ask_median_s']:>15.3f} {r['first_fit_s']:>12.2f} {r['peak_mb']:>8.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
