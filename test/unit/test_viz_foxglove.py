"""tacocc_core.viz.foxglove_messages and foxglove_recording: the Foxglove messages of a frame and the MCAP file.

The file is read back with `mcap` + `mcap-protobuf-support` (the conftest's `read_foxglove_mcap`), which
builds the message classes from the schemas stored in the file: what the Foxglove app reads.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import IGNORE, PALETTE
from tacocc_core.viz.foxglove_messages import (
    CELL_STRIDE,
    GROUND_TRUTH_TOPIC,
    LIDAR_TOPIC,
    OCCUPANCY_TOPIC,
    TF_TOPIC,
    WORLD_FRAME,
    FoxgloveFrame,
    Transform,
    camera_topic,
    frame_transforms,
    labels_from_cells,
    rig_transforms,
    timestamp,
    voxel_cells,
)
from tacocc_core.viz.foxglove_recording import write_foxglove_mcap

GRID = GridSpec(lower=(-4.0, -3.0, -1.0), voxel_size=(0.5, 0.5, 0.25), shape=(8, 6, 4))
CAMERAS = ("CAM_FRONT", "CAM_BACK")
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(60))


def random_labels(seed: int) -> np.ndarray:
    labels = np.random.default_rng(seed).integers(0, 17, GRID.shape).astype(np.uint8)
    labels[0, 0, 0], labels[7, 5, 3] = IGNORE, 0
    return labels


def test_cells_are_z_y_x_with_class_colours_and_transparent_empty_cells():
    labels = random_labels(0)
    cells = voxel_cells(labels)
    assert cells.shape == (4, 6, 8, CELL_STRIDE) and cells.flags.c_contiguous
    x, y, z = 5, 2, 3
    assert cells[z, y, x, 4] == labels[x, y, z]
    occupied = (labels > 0) & (labels < 17)
    alpha = cells[..., 3].transpose(2, 1, 0)
    assert np.array_equal(alpha == 255, occupied) and not alpha[~occupied].any()
    rgb = cells[..., :3].transpose(2, 1, 0, 3)
    assert np.array_equal(rgb[occupied], PALETTE[labels[occupied]])
    assert np.array_equal(labels_from_cells(cells.tobytes(), GRID.shape), labels)


def test_bad_grids_and_data_are_refused():
    with pytest.raises(ValueError, match="uint8 label grid"):
        voxel_cells(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="expected 8x6x4 cells"):
        labels_from_cells(b"\x00" * 10, GRID.shape)
    with pytest.raises(ValueError, match=">= 0 ns"):
        timestamp(-1)
    with pytest.raises(ValueError, match="LIDAR_TOP -> CAM_FRONT"):
        frame_transforms([Transform("LIDAR_TOP", "CAM_FRONT", np.full((4, 4), np.nan))], 0)


def frames(n: int) -> list[FoxgloveFrame]:
    out = []
    for i in range(n):
        cam2lidar = {c: np.eye(4) for c in CAMERAS}
        cam2lidar["CAM_BACK"][:3, 3] = (1.0, 2.0, 3.0)
        world = np.eye(4)
        world[0, 3] = float(i)
        points = np.random.default_rng(i).normal(size=(50, 5)).astype(np.float32)
        out.append(
            FoxgloveFrame(
                stamp_ns=1_700_000_000_000_000_000 + i * 500_000_000,
                lidar_frame="LIDAR_TOP",
                labels=random_labels(i),
                ground_truth=random_labels(100 + i),
                points=points,
                images={c: (JPEG, "jpeg") for c in CAMERAS},
                transforms=rig_transforms("LIDAR_TOP", cam2lidar, world),
            )
        )
    return out


def test_the_mcap_holds_every_channel_with_its_schema_and_the_exact_grids(tmp_path, read_foxglove_mcap):
    written = frames(3)
    path, count = write_foxglove_mcap(tmp_path / "run.mcap", written, GRID, CAMERAS, True, {"checkpoint": "x.pt"})
    assert count == 3 * (2 + 1 + len(CAMERAS) + 1)
    channels, messages = read_foxglove_mcap(path)
    assert channels == {
        OCCUPANCY_TOPIC: ("foxglove.VoxelGrid", "protobuf", "protobuf"),
        GROUND_TRUTH_TOPIC: ("foxglove.VoxelGrid", "protobuf", "protobuf"),
        LIDAR_TOPIC: ("foxglove.PointCloud", "protobuf", "protobuf"),
        camera_topic("CAM_FRONT"): ("foxglove.CompressedImage", "protobuf", "protobuf"),
        camera_topic("CAM_BACK"): ("foxglove.CompressedImage", "protobuf", "protobuf"),
        TF_TOPIC: ("foxglove.FrameTransforms", "protobuf", "protobuf"),
    }
    by_topic: dict[str, list] = {}
    for topic, log_time, msg in messages:
        by_topic.setdefault(topic, []).append((log_time, msg))
    for frame, (log_time, grid) in zip(written, by_topic[OCCUPANCY_TOPIC], strict=True):
        assert log_time == frame.stamp_ns == grid.timestamp.seconds * 10**9 + grid.timestamp.nanos
        assert (grid.column_count, grid.row_count, grid.frame_id) == (8, 6, "LIDAR_TOP")
        assert (grid.cell_size.x, grid.cell_size.y, grid.cell_size.z) == GRID.voxel_size
        assert (grid.pose.position.x, grid.pose.position.y, grid.pose.position.z) == GRID.lower
        assert [f.name for f in grid.fields] == ["red", "green", "blue", "alpha", "label"]
        assert np.array_equal(labels_from_cells(grid.data, GRID.shape, grid.cell_stride), frame.labels)
    for frame, (_, gt) in zip(written, by_topic[GROUND_TRUTH_TOPIC], strict=True):
        assert np.array_equal(labels_from_cells(gt.data, GRID.shape), frame.ground_truth)
    _, cloud = by_topic[LIDAR_TOPIC][0]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"] and cloud.point_stride == 16
    assert np.array_equal(np.frombuffer(cloud.data, "<f4").reshape(-1, 4), written[0].points[:, :4])
    _, image = by_topic[camera_topic("CAM_BACK")][0]
    assert (image.data, image.format, image.frame_id) == (JPEG, "jpeg", "CAM_BACK")
    _, tf = by_topic[TF_TOPIC][2]
    links = {(t.parent_frame_id, t.child_frame_id): t for t in tf.transforms}
    assert set(links) == {(WORLD_FRAME, "LIDAR_TOP"), ("LIDAR_TOP", "CAM_FRONT"), ("LIDAR_TOP", "CAM_BACK")}
    assert links[(WORLD_FRAME, "LIDAR_TOP")].translation.x == 2.0
    back = links[("LIDAR_TOP", "CAM_BACK")]
    assert (back.translation.x, back.translation.y, back.translation.z, back.rotation.w) == (1.0, 2.0, 3.0, 1.0)
    assert os.listdir(tmp_path) == ["run.mcap"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, read_foxglove_mcap):
    path, _ = write_foxglove_mcap(tmp_path / "run.mcap", frames(1), GRID, CAMERAS)
    before = path.read_bytes()
    bad = FoxgloveFrame(stamp_ns=5, lidar_frame="LIDAR_TOP", labels=np.zeros((3, 3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"label grid \(3, 3, 3\) does not match the grid \(8, 6, 4\)"):
        write_foxglove_mcap(path, [*frames(2), bad], GRID, CAMERAS)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["run.mcap"]
    channels, _ = read_foxglove_mcap(path)
    assert GROUND_TRUTH_TOPIC not in channels  # written without ground truth


def test_the_shipped_layout_is_the_one_the_code_builds(repo_root):
    from tacocc_core.viz.foxglove_layout import layout_json

    shipped = (repo_root / "foxglove_layout" / "tacocc_layout.json").read_text()
    assert shipped == layout_json(), "run: python -m tacocc_core.viz.foxglove_layout foxglove_layout/tacocc_layout.json"
    for topic in (OCCUPANCY_TOPIC, GROUND_TRUTH_TOPIC, LIDAR_TOPIC, camera_topic("CAM_BACK_LEFT")):
        assert f'"{topic}"' in shipped
