"""`write_foxglove_mcap`: occupancy frames -> one `.mcap` file with the Foxglove channels of foxglove_messages.py.

The file opens in the Foxglove app (Open local file) with the layout `foxglove_layout/tacocc_layout.json`. It is
written by the `foxglove-sdk` MCAP writer to a hidden temporary name in the target folder and renamed when
complete, so a reader never sees half a file and a failed run leaves an older file as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import foxglove

from tacocc_core.geometry import GridSpec
from tacocc_core.viz.foxglove_messages import FoxgloveChannels, FoxgloveFrame

METADATA_NAME = "tacocc"


def write_foxglove_mcap(
    path: str | os.PathLike[str],
    frames: Iterable[FoxgloveFrame],
    grid: GridSpec,
    cameras: Sequence[str],
    ground_truth: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> tuple[Path, int]:
    """Write `frames` (in stamp order) to `path`; (the path, the number of messages written).

    Args:
        path: the `.mcap` file; replaced only once the new one is complete.
        frames: the frames; each channel gets the parts a frame has (see FoxgloveChannels.log).
        grid: the grid of the label grids.
        cameras: the camera names (one image channel each).
        ground_truth: add the `/occupancy/ground_truth` channel.
        metadata: string pairs stored in the file's `tacocc` metadata record (checkpoint, source, ...).

    Raises:
        OSError: the folder cannot be written; ValueError: a frame does not fit `grid` (nothing is left behind).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the file is an ordinary output
    context = foxglove.Context()
    count = 0
    try:
        writer = foxglove.open_mcap(tmp, allow_overwrite=True, context=context)
        try:
            channels = FoxgloveChannels(context, grid, cameras, ground_truth)
            if metadata:
                writer.write_metadata(METADATA_NAME, {str(k): str(v) for k, v in metadata.items()})
            for frame in frames:
                count += channels.log(frame)
        finally:
            writer.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, count
