"""Subcommands of the `tacocc` command line; each module has `add_parser(subparsers)` and `run(args)`."""
