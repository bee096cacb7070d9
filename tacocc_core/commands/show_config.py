"""`tacocc config PRESET`: validate a preset or YAML file and print it with every default filled in."""

from __future__ import annotations

import argparse

import yaml

from tacocc_core.config import PRESETS, config_to_dict, load_config, preset_path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="validate a model config and print it in full")
    p.add_argument("preset", help=f"a preset name ({', '.join(PRESETS)}) or a .yaml path")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = preset_path(args.preset)
    config = load_config(path)
    print(yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None), end="")
    print(f"# file: {path}")
    print(f"# grid shape: {config.grid.spec().shape}")
    return 0
