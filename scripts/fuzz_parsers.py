"""Throw random inputs at every way an architecture or a value enters the library and count what comes out.

Every entry point (``parse``, ``from_params`` and ``tell`` of every built-in space and two user-defined
cell spaces, and ``DartsSpace.from_genotype``) must answer bad input with ``ValueError`` or
``TypeError`` carrying a message, and never hang. The script prints, per entry point: inputs tried,
accepted, ValueError, TypeError, other exceptions (must be 0) and the slowest call in ms. It then
times the DARTS genotype parser on long adversarial strings.

    python scripts/fuzz_parsers.py --n 20000
    python scripts/fuzz_parsers.py --timing-only --sizes 90000 360000   # only the long-genotype timings

It imports the ``gates_sampler`` that Python finds first: run it from the checkout you want to measure
(``PYTHONPATH=.``) or against an installed release.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gates_sampler.baselines import RandomSearcher
from gates_sampler.spaces import CellSpace, DartsSpace, NB101Space, NB201Space


def spaces() -> dict[str, Any]:
    """The built-in spaces and two user-defined ones (as the tests define them)."""
    return {
        "nb201": NB201Space(),
        "darts": DartsSpace(),
        "nb101": NB101Space(),
        "user-edge": CellSpace(
            kind="edge",
            ops=("conv3", "conv5", "pool", "identity"),
            n_nodes=3,
            n_inputs=2,
            inputs_per_node=2,
            cell_names=("normal", "reduce"),
            readout="mean",
            none_op=None,
            name="user-edge",
        ),
        "user-node": CellSpace(kind="node", ops=("conv", "pool"), max_vertices=5, max_edges=6, name="user-node"),
    }


ALPHABET = "01234|~+[](),:'\" =_-abcdefgnoprstuvxyzGNT/.١²０\x00\n\t\u00e9\U0001f600"
SPECIAL = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.9,
    1e400,
    -1e400,
    float("nan"),
    10**400,
    2**63,
    "1",
    b"1",
    "",
    [],
    {},
    (),
    1j,
    object(),
]


class Inputs:
    """Random junk and near-valid inputs, all drawn from one seeded ``random.Random``."""

    def __init__(self, seed: int, space_map: dict[str, Any], huge_max: int = 400_000) -> None:
        self.huge_max = huge_max
        self.rnd = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.spaces = space_map

    def text(self) -> str:
        r = self.rnd
        kind = r.random()
        if kind < 0.02:  # huge: up to 400 KB of one repeated unit
            unit = r.choice(["[", "(", "|", "~0", "0", "], normal_concat=[", "('sep_conv_3x3', 0), ", "١"])
            size = r.randint(min(1000, self.huge_max), self.huge_max)
            return r.choice(["Genotype(normal=[", "", "|"]) + unit * (size // len(unit))
        if kind < 0.4:
            return "".join(r.choice(ALPHABET) for _ in range(r.randint(0, 40)))
        return self.mutated(str(self.arch()))

    def arch(self, name: str | None = None) -> Any:
        space = self.spaces[name or self.rnd.choice(list(self.spaces))]
        return space.sample(self.np_rng)

    def mutated(self, text: str) -> str:
        r = self.rnd
        for _ in range(r.randint(1, 3)):
            i = r.randint(0, len(text))
            j = min(len(text), i + r.randint(0, 5))
            text = text[:i] + "".join(r.choice(ALPHABET) for _ in range(r.randint(0, 4))) + text[j:]
        return text

    def junk(self, depth: int = 0) -> Any:
        r = self.rnd
        kind = r.random()
        if depth > 3 or kind < 0.5:
            return r.choice(
                [
                    r.choice(SPECIAL),
                    r.randint(-(10**6), 10**6),
                    r.uniform(-1e40, 1e40),
                    self.text(),
                    bytes(r.randrange(256) for _ in range(r.randint(0, 8))),
                ]
            )
        if kind < 0.7:
            return [self.junk(depth + 1) for _ in range(r.randint(0, 4))]
        if kind < 0.8:
            return tuple(self.junk(depth + 1) for _ in range(r.randint(0, 3)))
        return {self.text()[:10]: self.junk(depth + 1) for _ in range(r.randint(0, 4))}

    def params(self, name: str) -> Any:
        r = self.rnd
        if r.random() < 0.3:
            return self.junk()
        space = self.spaces[name]
        params: dict[Any, Any] = dict(space.to_params(space.sample(self.np_rng)))
        for _ in range(r.randint(1, 2)):
            key = r.choice(sorted(params))
            action = r.random()
            if action < 0.6:
                params[key] = self.junk()
            elif action < 0.8:
                del params[key]
            else:
                params[self.text()[:12]] = self.junk()
        return params

    def genotype(self) -> tuple[Any, Any]:
        r = self.rnd
        out = []
        for _ in range(2):
            pairs: Any = list(self.spaces["darts"].sample(self.np_rng).normal)
            if r.random() < 0.2:
                pairs = self.junk()
            else:
                k = r.randrange(len(pairs))
                pairs[k] = r.choice([self.junk(), (pairs[k][0], r.choice(SPECIAL)), (self.junk(), pairs[k][1])])
            out.append(pairs)
        return out[0], out[1]

    def value(self) -> Any:
        r = self.rnd
        return r.choice([r.uniform(-1e39, 1e39), r.choice(SPECIAL), self.junk(), r.randint(-(10**400), 10**400), 0.5])


def run(fn: Callable[[], Any], counts: Counter, others: list[str]) -> float:
    start = time.perf_counter()
    try:
        fn()
        counts["accepted"] += 1
    except (ValueError, TypeError) as exc:
        counts["ValueError" if isinstance(exc, ValueError) else "TypeError"] += 1
        if not str(exc).strip():
            counts["no message"] += 1
    except Exception as exc:  # what this script looks for
        counts["other"] += 1
        if len(others) < 5:
            others.append(f"{type(exc).__name__}: {str(exc)[:120]}")
    return (time.perf_counter() - start) * 1000


def fuzz(n: int, seed: int, huge_max: int) -> int:
    space_map = spaces()
    gen = Inputs(seed, space_map, huge_max)
    entries: dict[str, Callable[[], Callable[[], Any]]] = {}
    for name, space in space_map.items():
        searcher = RandomSearcher(space, seed=seed)

        def parse(space: Any = space) -> Callable[[], Any]:
            text = gen.text() if gen.rnd.random() < 0.9 else gen.junk()
            return lambda: space.parse(text)

        def from_params(space: Any = space, name: str = name) -> Callable[[], Any]:
            params = gen.params(name)
            return lambda: space.from_params(params)

        def tell(searcher: Any = searcher, name: str = name) -> Callable[[], Any]:
            r = gen.rnd.random()
            arch = (
                str(gen.arch(name))
                if r < 0.3
                else gen.params(name)
                if r < 0.6
                else gen.text()
                if r < 0.9
                else gen.junk()
            )
            value = gen.value()
            return lambda: searcher.tell(arch, value)

        entries[f"{name}.parse"] = parse
        entries[f"{name}.from_params"] = from_params
        entries[f"{name}.tell"] = tell
    darts = space_map["darts"]

    def genotype() -> Callable[[], Any]:
        normal, reduce = gen.genotype()
        return lambda: darts.from_genotype(normal, reduce)

    entries["darts.from_genotype"] = genotype
    header = (
        f"{'entry point':<24} {'tried':>7} {'accepted':>9} {'ValueError':>11} {'TypeError':>10} {'other':>6} "
        f"{'slowest ms':>11}"
    )
    print(header)
    print("-" * len(header))
    total_other = 0
    for label, make in entries.items():
        counts: Counter = Counter()
        others: list[str] = []
        slowest = 0.0
        for _ in range(n):
            slowest = max(slowest, run(make(), counts, others))
        total_other += counts["other"] + counts["no message"]
        print(
            f"{label:<24} {n:>7} {counts['accepted']:>9} {counts['ValueError']:>11} {counts['TypeError']:>10} "
            f"{counts['other'] + counts['no message']:>6} {slowest:>11.2f}"
        )
        for line in others:
            print(f"    {line}")
    return total_other


ADVERSARIAL = {
    "repeated ], normal_concat=[": ("Genotype(normal=[", "], normal_concat=["),
    "repeated ], reduce=[": ("Genotype(normal=[], normal_concat=[", "], reduce=["),
    "repeated (op, input) pairs": ("Genotype(normal=[", "('sep_conv_3x3', 0), "),
}


def adversarial(label: str, size: int) -> str:
    head, unit = ADVERSARIAL[label]
    return (head + unit * (size // len(unit) + 1))[:size]


def timing(sizes: tuple[int, ...]) -> None:
    """Seconds to parse long genotype strings: through ``DartsSpace.parse`` (with its length cap) and,
    where this version has one, through the tokenizing reader alone (no cap), which shows its growth."""
    try:
        from gates_sampler.spaces.darts import _GenotypeReader
    except ImportError:  # a version with the regular-expression parser
        _GenotypeReader = None
    space = DartsSpace()
    print(f"\n{'genotype string':<30} {'size':>8} {'parse s':>9} {'reader s':>9}  outcome of parse")
    for label in ADVERSARIAL:
        for size in sizes:
            text = adversarial(label, size)
            start = time.perf_counter()
            try:
                space.parse(text)
                outcome = "parsed"
            except ValueError as exc:
                outcome = f"ValueError: {str(exc)[:60]}"
            took = time.perf_counter() - start
            reader = "-"
            if _GenotypeReader is not None:
                start = time.perf_counter()
                try:
                    _GenotypeReader(text).genotype()
                except ValueError:
                    pass
                reader = f"{time.perf_counter() - start:.4f}"
            print(f"{label:<30} {len(text) / 1000:>6.0f}KB {took:>9.4f} {reader:>9}  {outcome}")
            sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="inputs per entry point (default 20000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timing-only", action="store_true", help="only time the parser on long genotype strings")
    p.add_argument(
        "--huge-max",
        type=int,
        default=400_000,
        help="longest of the huge strings (2%% of the text inputs; default 400000)",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[90_000, 360_000], help="genotype string lengths to time")
    args = p.parse_args()
    torch.set_num_threads(1)
    other = 0 if args.timing_only else fuzz(args.n, args.seed, args.huge_max)
    timing(tuple(args.sizes))
    return 1 if other else 0


if __name__ == "__main__":
    sys.exit(main())
