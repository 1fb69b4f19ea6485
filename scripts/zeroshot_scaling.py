"""Why the provider scales features with sign(x)*log1p(|x|) then standardises: raw value ranges.

Reads cached NB201 results (run ``gates-nas precompute-zeroshot`` first) and prints, per metric,
the range and skewness of raw and signed-log1p values over parametric ops / architectures.

    python scripts/zeroshot_scaling.py --cells 2000
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from scipy.stats import skew

from gates_sampler.spaces import NB201Space
from gates_sampler.zeroshot import ARCH_METRICS, OP_METRICS, ZeroShotProvider
from gates_sampler.zeroshot.provider import signed_log1p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--cache", default=None)
    args = ap.parse_args()
    space = NB201Space()
    zs = ZeroShotProvider(space, cache=args.cache)
    assert zs.cache is not None
    keys = [str(a) for a in itertools.islice(space.enumerate(), 15625)]
    have = zs.cache.get_many(space.name, zs.config_key, keys)
    res = list(have.values())[: args.cells]
    ops = np.array([v for r in res for v in r.ops.values() if v[4] > 0])
    arch = np.array([r.arch for r in res])
    print(f"{len(res)} cached NB201 cells, {len(ops)} parametric op entries (proxy preset)")
    print(
        f"{'metric':<22}{'raw min':>12}{'raw max':>12}{'raw skew':>10}{'slog min':>10}{'slog max':>10}{'slog skew':>10}"
    )
    for name, col in [(f"op:{m}", ops[:, i]) for i, m in enumerate(OP_METRICS)] + [
        (f"arch:{m}", arch[:, i]) for i, m in enumerate(ARCH_METRICS)
    ]:
        s = signed_log1p(col)
        print(
            f"{name:<22}{col.min():>12.3g}{col.max():>12.3g}{skew(col):>10.2f}"
            f"{s.min():>10.3f}{s.max():>10.3f}{skew(s):>10.2f}"
        )


if __name__ == "__main__":
    main()
