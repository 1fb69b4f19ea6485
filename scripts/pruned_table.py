"""Print the pruned-search table of ``gates-nas compare --pruner`` from saved runs.

The command writes every finished run to ``<out>_pruned_nb301.partial.jsonl`` (and all runs to
``<out>_pruned_nb301.json`` at the end). This script reads any number of such files, keeps one run per
(method, pruner, seed) and prints mean +- standard error of the best final accuracy at each epoch
budget. A run made with a larger ``--epoch-budget`` gives exactly the numbers of a smaller one at the
smaller budgets (the search is the same until the budget stops it), so runs of different budgets can
be pooled at budgets they all reach.

    python scripts/pruned_table.py results/*_pruned_nb301.partial.jsonl --budgets 2000 5000
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from gates_sampler.experiments.multifidelity import CurveRun, format_curve_table, summarize_curves


def read_runs(paths: Sequence[str]) -> list[CurveRun]:
    runs: dict[tuple[str, str, int], CurveRun] = {}
    for path in paths:
        with open(path) as f:
            text = f.read().strip()
        rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
        for d in rows:
            run = CurveRun(
                d["method"],
                d["pruner"],
                d["seed"],
                d["epoch_budget"],
                [(int(s), float(v)) for s, v in d["finals"]],
                d["n_trials"],
                d["n_pruned"],
                d["seconds"],
            )
            runs.setdefault((run.pruner, run.method, run.seed), run)
    return list(runs.values())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="run files written by gates-nas compare --pruner")
    parser.add_argument("--budgets", type=int, nargs="+", default=[2000, 5000])
    args = parser.parse_args(argv)
    runs = read_runs(args.files)
    reach = min(r.epoch_budget for r in runs)
    if max(args.budgets) > reach:
        parser.error(f"--budgets beyond {reach}: some runs stopped there")
    order = {"hyperband": 0, "sha": 1, "median": 2, "none": 3}
    runs.sort(key=lambda r: (order.get(r.pruner, 9), r.method.split("[")[0] != "gates", r.method, r.seed))
    seeds = len({r.seed for r in runs})
    title = (
        f"NB301 surrogate: best validation accuracy at epoch 98 among the trials completed within the epoch "
        f"budget ({seeds} seeds, mean +- s.e.)"
    )
    # trials and seconds per run mean something only when every run had the same budget
    same = len({r.epoch_budget for r in runs}) == 1
    print(format_curve_table(summarize_curves(runs, args.budgets), args.budgets, title, per_run=same))


if __name__ == "__main__":
    main()
