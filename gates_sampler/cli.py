"""The ``gates-nas`` command. Each subcommand lives in ``gates_sampler/commands/<name>.py`` and
exposes ``register(subparsers)``, which adds its parser and sets ``func`` to the function it runs and
``check`` to a function that validates the arguments before any work starts.

Building the parsers imports no heavy module (torch, optuna, matplotlib): ``gates-nas --help`` and a
mistyped argument answer at once. The commands import what they need when they run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# subcommand name -> module under gates_sampler.commands
COMMANDS = {
    "search": "search",
    "compare": "compare",
    "eval-predictor": "eval_predictor",
    "precompute-zeroshot": "precompute_zeroshot",
}

#: exit status of a command line that cannot work (argparse uses the same for its own errors)
USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The ``gates-nas`` parser with every shipped subcommand."""
    parser = argparse.ArgumentParser(
        prog="gates-nas", description="Predictor-based neural architecture search (GATES++)."
    )
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
    """Run ``gates-nas``; returns the exit status (argparse's own errors exit with status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    check = getattr(args, "check", None)
    try:
        if check is not None:
            check(args)
    except (ValueError, ImportError) as exc:
        print(f"gates-nas {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"gates-nas {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
