"""tacocc_core/bags/reading.py: damaged bags, malformed or unknown messages and missing sensor topics are named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mcap.reader import make_reader
from rosbags.rosbag2 import StoragePlugin, Writer

from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes
from tacocc_core.bags.messages import TYPESTORE
from tacocc_core.bags.reading import BagError, BagReader, image_topics, require_sensor_topics, sensor_topic_problems
from tacocc_core.config import NUSCENES_CAMERAS

CUSTOM_TYPE = "tacocc_test_msgs/msg/Blob"
CUSTOM_DEF = "uint32 value\n"


@pytest.fixture(scope="module")
def bag(synthetic_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags")
    [path] = convert_nuscenes(
        synthetic_dataset, "v1.0-mini", out, ["synth-0003-0000"], ConvertOptions(labels="none", progress=False)
    )
    return path


def rewrite(
    src: Path, dst: Path, drop=(), mangle: str | None = None, custom: bool = False, rename: dict | None = None
) -> Path:
    """Copy a bag with rosbags, leaving out topics, truncating the payloads of one topic, adding a custom type
    or renaming topics ({old: new})."""
    rename = rename or {}
    with BagReader(src) as reader, Writer(dst, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {
            t: writer.add_connection(rename.get(t, t), info.msgtype, typestore=TYPESTORE)
            for t, info in reader.topics.items()
            if t not in drop
        }
        if custom:
            conn = writer.add_connection("/blob", CUSTOM_TYPE, msgdef=CUSTOM_DEF, rihs01="RIHS01_" + "0" * 64)
            writer.write(conn, reader.start_ns, b"\x00\x01\x00\x00\x07\x00\x00\x00")
        for msg in reader.messages([t for t in reader.topics if t not in drop]):
            data = msg.data[: len(msg.data) // 2] if msg.topic == mangle else msg.data
            writer.write(conns[msg.topic], msg.stamp_ns, data)
    return dst


def test_a_good_bag_opens_and_lists_its_topics(bag):
    with BagReader(bag) as reader:
        assert reader.topics["/LIDAR_TOP"].msgtype == "sensor_msgs/msg/PointCloud2"
        assert reader.topics["/LIDAR_TOP"].count == 12
        assert reader.topics["/tf_static"].qos[0].durability.name == "TRANSIENT_LOCAL"
        assert reader.message_count == sum(t.count for t in reader.topics.values())
        assert sensor_topic_problems(reader.topics, NUSCENES_CAMERAS) == []
        require_sensor_topics(reader, NUSCENES_CAMERAS)


def test_missing_path_and_unknown_topic(bag, tmp_path):
    with pytest.raises(BagError, match="nothere: no such bag"):
        BagReader(tmp_path / "nothere")
    with BagReader(bag) as reader, pytest.raises(BagError, match="no topic /CAM_TOP/image.*the bag has /CAM_BACK"):
        next(reader.messages(["/LIDAR_TOP", "/CAM_TOP/image"]))


@pytest.mark.parametrize("damage", ["truncated", "bad_magic", "no_metadata"])
def test_damaged_bag_is_refused_when_opened(bag, tmp_path, damage):
    copy = tmp_path / bag.name
    shutil.copytree(bag, copy)
    storage = copy / f"{bag.name}.mcap"
    data = storage.read_bytes()
    if damage == "truncated":
        storage.write_bytes(data[: len(data) // 2])
    elif damage == "bad_magic":
        storage.write_bytes(b"\x00" * 8 + data[8:])
    else:
        (copy / "metadata.yaml").unlink()
    with pytest.raises(BagError, match=f"{copy}: not a readable rosbag2 bag"):
        BagReader(copy)


def test_damaged_chunk_is_found_while_reading_and_named(bag, tmp_path):
    copy = tmp_path / bag.name
    shutil.copytree(bag, copy)
    storage = copy / f"{bag.name}.mcap"
    with storage.open("rb") as f:
        chunks = sorted(make_reader(f).get_summary().chunk_indexes, key=lambda c: c.chunk_start_offset)
    assert len(chunks) >= 2
    victim = chunks[1]
    data = bytearray(storage.read_bytes())
    # Chunk record: opcode, length, start/end time, uncompressed size, crc, compression string, size, records.
    records = victim.chunk_start_offset + 9 + 8 + 8 + 8 + 4 + 4 + len(victim.compression) + 8
    data[records : records + 64] = b"\xff" * 64
    storage.write_bytes(bytes(data))
    with BagReader(copy) as reader:
        with pytest.raises(BagError, match=f"{copy}: corrupt or truncated bag, after the message at"):
            for _ in reader.messages():
                pass


def test_malformed_message_names_topic_and_stamp(bag, tmp_path):
    bad = rewrite(bag, tmp_path / "mangled", mangle="/odom")
    with BagReader(bad) as reader:
        first = next(reader.messages(["/odom"]))
        with pytest.raises(BagError, match=f"topic /odom: malformed nav_msgs/msg/Odometry at {first.stamp_ns} ns"):
            reader.decode(first)
        reader.decode(next(reader.messages(["/LIDAR_TOP"])))  # the other topics still decode


def test_unknown_message_type_is_named(bag, tmp_path):
    odd = rewrite(bag, tmp_path / "custom", custom=True)
    with BagReader(odd) as reader:
        assert reader.topics["/blob"].msgtype == CUSTOM_TYPE
        [blob] = list(reader.messages(["/blob"]))
        with pytest.raises(BagError, match=f"topic /blob has message type {CUSTOM_TYPE}, which is not known here"):
            reader.decode(blob)


def test_missing_camera_and_camera_info_topics_are_listed(bag, tmp_path):
    lacking = rewrite(bag, tmp_path / "lacking", drop=("/CAM_BACK/camera_info", "/CAM_FRONT/image_rect/compressed"))
    with BagReader(lacking) as reader:
        problems = sensor_topic_problems(reader.topics, NUSCENES_CAMERAS)
        assert problems == [
            "no topic /CAM_FRONT/image_rect/compressed (sensor_msgs/msg/Image or CompressedImage) in the bag; "
            "set cameras.CAM_FRONT.image_topic",
            "no topic /CAM_BACK/camera_info (sensor_msgs/msg/CameraInfo) in the bag; set cameras.CAM_BACK.info_topic",
        ]
        with pytest.raises(BagError, match=f"no topic /CAM_FRONT/image_rect/compressed .* in {lacking}; set"):
            require_sensor_topics(reader, NUSCENES_CAMERAS)
        assert sensor_topic_problems(reader.topics, ["CAM_FRONT_LEFT"]) == []


def test_a_bag_with_the_older_compressed_names_still_has_every_sensor_topic(bag, tmp_path):
    old = {f"/{c}/image_rect/compressed": f"/{c}/image_rect_compressed" for c in NUSCENES_CAMERAS}
    renamed = rewrite(bag, tmp_path / "old_names", rename=old)
    with BagReader(renamed) as reader:
        assert "/CAM_BACK/image_rect_compressed" in reader.topics
        assert sensor_topic_problems(reader.topics, NUSCENES_CAMERAS) == []
        require_sensor_topics(reader, NUSCENES_CAMERAS)
        assert image_topics(reader.topics, NUSCENES_CAMERAS)["CAM_BACK"] == "/CAM_BACK/image_rect_compressed"
