"""Scene splits and windows of T consecutive keyframes that never cross a scene boundary.

Splits: a dataset folder with `splits.json` (written by `tacocc generate-scenes`) uses it; real
nuScenes uses the official lists of `nuscenes.utils.splits.create_splits_scenes`.
"""

from __future__ import annotations

import json
from pathlib import Path

from nuscenes.nuscenes import NuScenes
from nuscenes.utils.splits import create_splits_scenes


def split_scenes(nusc: NuScenes, split: str) -> list[str]:
    """Names of the scenes of `split` present in `nusc`, in table order."""
    path = Path(nusc.dataroot) / "splits.json"
    if path.is_file():
        splits = json.loads(path.read_text())
        where = str(path)
    else:
        splits = create_splits_scenes(verbose=False)
        where = "nuscenes.utils.splits"
    if split not in splits:
        raise ValueError(f"{where}: unknown split {split!r}; known: {sorted(splits)}")
    wanted = set(splits[split])
    return [s["name"] for s in nusc.scene if s["name"] in wanted]


def scene_samples(nusc: NuScenes, scene_name: str) -> list[str]:
    """Sample tokens of one scene in time order (following `next`)."""
    scene = next((s for s in nusc.scene if s["name"] == scene_name), None)
    if scene is None:
        raise ValueError(f"no scene named {scene_name!r} in {nusc.dataroot}/{nusc.version}")
    tokens, tok = [], scene["first_sample_token"]
    while tok:
        tokens.append(tok)
        tok = nusc.get("sample", tok)["next"]
    return tokens


def windows(samples_per_scene: list[list[str]], length: int, stride: int = 1) -> list[list[str]]:
    """All runs of `length` consecutive tokens inside each list (scene); scenes shorter than that give none."""
    if length < 1 or stride < 1:
        raise ValueError(f"windows: length and stride must be >= 1, got {length}, {stride}")
    out: list[list[str]] = []
    for tokens in samples_per_scene:
        out.extend(tokens[i : i + length] for i in range(0, len(tokens) - length + 1, stride))
    return out
