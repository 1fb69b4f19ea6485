"""Subcommands of the gates-nas CLI; each module exposes register(subparsers)."""
