"""`tacocc config PRESET`: validate a preset or YAML file and print it with every default filled in.

`tacocc config --reference` prints every model and training config key (type, default, preset values,
allowed values, description) as Markdown, generated from the dataclasses.
"""

from __future__ import annotations

import argparse

import yaml

from tacocc_core.config import PRESETS, ConfigError, config_to_dict, load_config, preset_path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="validate a model config and print it in full")
    p.add_argument("preset", nargs="?", help=f"a preset name ({', '.join(PRESETS)}) or a .yaml path")
    p.add_argument("--reference", action="store_true", help="print the reference of every config key (Markdown)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.reference:
        if args.preset is not None:
            raise ConfigError("give a preset or --reference, not both")
        from tacocc_core.config_reference import model_reference, train_reference

        print(model_reference() + "\n" + train_reference(), end="")
        return 0
    if args.preset is None:
        raise ConfigError("name a preset (or a .yaml path), or pass --reference")
    path = preset_path(args.preset)
    config = load_config(path)
    print(yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None), end="")
    print(f"# file: {path}")
    print(f"# grid shape: {config.grid.spec().shape}")
    return 0
