"""Generated damage to rosbag2 files against tacocc_core/bags/reading.py (`BagReader`: open, iterate, decode).

A small real bag (rosbags writer, MCAP: a PointCloud2, a CameraInfo, a CompressedImage, a message of a
type nobody knows) read whole gives back its messages. Damaged copies (the .mcap cut at any byte, bytes
flipped or overwritten, the metadata.yaml cut or replaced, the .mcap replaced by foreign bytes, payloads
of the right type cut or garbled) either read (a flip can land in padding) or raise BagError naming the
bag; never another exception, and reading never writes into the bag folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import fuzz_tally
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rosbags.rosbag2 import StoragePlugin, Writer

from tacocc_core.bags import messages
from tacocc_core.bags.messages import TYPESTORE
from tacocc_core.bags.reading import BagError, BagReader

BOUNDARY = "rosbag2 (mcap)"
CUSTOM_TYPE = "tacocc_test_msgs/msg/Blob"


@pytest.fixture(scope="module")
def good_bag(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A bag folder and {relative path: bytes} of its files."""
    path = tmp_path_factory.mktemp("bags") / "good"
    points = np.zeros(5, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    msgs = [
        ("/LIDAR_TOP", messages.POINT_CLOUD2, messages.point_cloud(10, "LIDAR_TOP", points)),
        ("/CAM_FRONT/camera_info", messages.CAMERA_INFO, messages.camera_info(10, "CAM_FRONT", np.eye(3), 9, 16)),
        ("/CAM_FRONT/image/compressed", messages.COMPRESSED_IMAGE, messages.compressed_image(10, "CAM_FRONT", b"\xff")),
    ]
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        for stamp, (topic, msgtype, msg) in enumerate(msgs):
            conn = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            writer.write(conn, 100 + stamp, messages.serialize(msg))
        conn = writer.add_connection("/blob", CUSTOM_TYPE, msgdef="uint32 value\n", rihs01="RIHS01_" + "0" * 64)
        writer.write(conn, 200, b"\x00\x01\x00\x00\x07\x00\x00\x00")
    files = {str(p.relative_to(path)): p.read_bytes() for p in path.iterdir()}
    return path, files


def read_all(path: Path) -> list[tuple[str, object]]:
    """Open the bag, read every message and decode it: what `tacocc` does with a bag."""
    out = []
    with BagReader(path) as reader:
        for raw in reader.messages():
            try:
                out.append((raw.topic, reader.decode(raw)))
            except BagError as err:
                if raw.msgtype == CUSTOM_TYPE and "not known here" in str(err):
                    out.append((raw.topic, None))  # the unknown type is named, not decoded
                    continue
                raise
    return out


@st.composite
def damage(draw, files: dict[str, bytes]) -> tuple[str, dict[str, bytes]]:
    files = dict(files)
    mcap = next(name for name in files if name.endswith(".mcap"))
    data = files[mcap]
    kind = draw(st.sampled_from(["good", "cut", "flip", "overwrite", "foreign", "metadata_cut", "metadata_junk"]))
    if kind == "cut":
        files[mcap] = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        files[mcap] = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif kind == "overwrite":
        at = draw(st.integers(0, len(data) - 1))
        junk = draw(st.binary(min_size=1, max_size=32))
        files[mcap] = (data[:at] + junk + data[at + len(junk) :])[: len(data)]
    elif kind == "foreign":
        files[mcap] = draw(st.binary(max_size=200))
    elif kind == "metadata_cut":
        meta = files["metadata.yaml"]
        files["metadata.yaml"] = meta[: draw(st.integers(0, len(meta) - 1))]
    elif kind == "metadata_junk":
        files["metadata.yaml"] = draw(st.binary(max_size=100))
    return kind, files


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("damaged")


@given(data=st.data())
def test_damaged_bags_read_or_raise_a_bag_error(good_bag, folder, data):
    _, files = good_bag
    kind, damaged = data.draw(damage(files))
    bag = folder / "bag"
    shutil.rmtree(bag, ignore_errors=True)
    bag.mkdir()
    for name, content in damaged.items():
        (bag / name).write_bytes(content)
    outcome = fuzz_tally.check(BOUNDARY, kind, lambda: read_all(bag), BagError)
    assert sorted(p.name for p in bag.iterdir()) == sorted(damaged)  # reading wrote nothing
    if kind == "good":
        assert outcome.error is None, outcome.message
        assert [topic for topic, _ in outcome.value] == [
            "/LIDAR_TOP", "/CAM_FRONT/camera_info", "/CAM_FRONT/image/compressed", "/blob"
        ]  # fmt: skip
        assert outcome.value[0][1].width == 5
    elif kind in ("cut", "foreign", "metadata_cut", "metadata_junk") and outcome.error is None:
        # A cut after the last message's record or a metadata cut inside a trailing field may still read.
        assert len(outcome.value) <= 4
    if outcome.error is not None:
        assert str(bag) in outcome.message


def test_an_mcap_whose_index_length_is_flipped_to_a_huge_size_is_a_bag_error(good_bag, tmp_path):
    """Regression (found by the generator): a flipped length field in the summary made rosbags raise MemoryError."""
    _, files = good_bag
    bag = tmp_path / "bag"
    bag.mkdir()
    for name, content in files.items():
        (bag / name).write_bytes(content)
    mcap = next(bag.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    # the footer's summary_start (8 bytes after the footer opcode 0x02 and its 8-byte length, 37 bytes from the end)
    # points at the summary; the first summary record's 8-byte length is set to 2**62
    footer = len(data) - 8 - 29
    summary_start = int.from_bytes(data[footer + 9 : footer + 17], "little")
    data[summary_start + 1 : summary_start + 9] = (2**62).to_bytes(8, "little")
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagError, match="not a readable rosbag2 bag"):
        read_all(bag)
