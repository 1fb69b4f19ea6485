"""Check the NAS-Bench-301 (YAHPO ONNX) surrogate against known values and print a table.

    python scripts/nb301_check.py [--path FOLDER] [--naslib zc_nasbench301.json]

Prints: DARTS-V2 validation accuracy at epochs 1/50/98 and its runtime, the Spearman / Kendall rank
correlation between the surrogate and the 725 labelled NASLib cells, and the query throughput.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from gates_sampler.benchmarks import NB301Benchmark
from gates_sampler.benchmarks.nb301 import DARTS_V2, from_naslib_compact

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nasbench301"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default=str(DATA / "slds-lmu_yahpo_data" / "v1_initial_3a646b8"))
    parser.add_argument("--naslib", default=str(DATA / "automl_NASLib" / "commit_6639fd1" / "zc_nasbench301.json"))
    args = parser.parse_args()

    acc = NB301Benchmark(args.path)
    runtime = NB301Benchmark(args.path, metric="runtime")
    curve = acc.learning_curve(DARTS_V2, epochs=[1, 50, 98])
    print("DARTS-V2 on the NB301 surrogate (expected: 95.46 +- 0.05 % at epoch 98)")
    print(f"{'epoch':>6} {'val_acc %':>10}")
    for e, v in zip((1, 50, 98), curve):
        print(f"{e:>6} {v:>10.2f}")
    print(f"runtime at epoch 98: {runtime.query(DARTS_V2):.0f} s")

    cells = json.loads(Path(args.naslib).read_text())["cifar10"]
    archs = [from_naslib_compact(k) for k in cells]
    labels = np.array([v["val_accuracy"] for v in cells.values()])
    start = time.perf_counter()
    pred = acc.query_many(archs)
    elapsed = time.perf_counter() - start
    print(f"\nNASLib labelled cells: {len(archs)}")
    print(f"{'':>22} {'surrogate':>10} {'label':>10}")
    print(f"{'mean val_acc %':>22} {pred.mean():>10.2f} {labels.mean():>10.2f}")
    print(f"{'Spearman rho':>22} {spearmanr(pred, labels)[0]:>10.3f}")
    print(f"{'Kendall tau':>22} {kendalltau(pred, labels)[0]:>10.3f}")
    print(f"{'queries / s':>22} {len(archs) / elapsed:>10.0f}")


if __name__ == "__main__":
    main()
