"""The ``gates-nas`` command. Each subcommand lives in ``gates_sampler/commands/<name>.py`` and
exposes ``register(subparsers)``, which adds its parser and sets ``func`` to the function it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

# subcommand name -> module under gates_sampler.commands
COMMANDS = {
    "search": "search",
    "compare": "compare",
    "eval-predictor": "eval_predictor",
    "precompute-zeroshot": "precompute_zeroshot",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gates-nas", description="Predictor-based neural architecture search (GATES++).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        try:
            mod = importlib.import_module(f"gates_sampler.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gates_sampler.commands.{module}":
                continue  # subcommand not shipped in this build
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"gates-nas {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
