"""tacocc_ros.recording without DDS: the byte-bounded queue, split bags read back with rosbags, topic selection."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from rosbags.rosbag2 import Reader

from tacocc_core.bags.convert import LATCHED_QOS, SENSOR_QOS
from tacocc_core.bags.messages import TYPESTORE
from tacocc_ros.commands.record import byte_size
from tacocc_ros.recording.byte_queue import ByteQueue
from tacocc_ros.recording.split_writer import RecordingError, SplitOptions, SplitWriter, partial_path
from tacocc_ros.recording.topics import TopicSelectionError, check_topics, node_input_topics, params_file_values

STRING = "std_msgs/msg/String"


def cdr(text: str) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(TYPESTORE.types[STRING](data=text), STRING))


def read(bag: Path) -> dict[str, list[tuple[int, str]]]:
    out: dict[str, list[tuple[int, str]]] = {}
    with Reader(bag) as reader:
        for conn, stamp, data in reader.messages():
            out.setdefault(conn.topic, []).append((stamp, TYPESTORE.deserialize_cdr(data, conn.msgtype).data))
    return out


def test_queue_refuses_the_newest_past_its_bound_and_drains_after_close():
    queue = ByteQueue(100)
    assert queue.put("a", 60) and queue.put("b", 40)
    assert not queue.put("c", 1)  # full: the newest is refused
    assert queue.get(0) == "a" and queue.put("c", 50)
    queue.close()
    assert not queue.put("d", 0)
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["b", "c", None]
    assert queue.peak_bytes == 100 and queue.closed_and_empty


def test_queue_takes_one_item_larger_than_its_bound_when_empty():
    queue = ByteQueue(10)
    assert queue.put("big", 1000)
    assert not queue.put("small", 1)
    assert queue.put("control", 0, force=True)


def test_queue_get_waits_for_a_put_from_another_thread():
    queue = ByteQueue(10)
    threading.Timer(0.05, lambda: queue.put("x", 1)).start()
    assert queue.get(timeout_s=5) == "x"


def test_split_by_duration_gives_complete_bags_each_with_the_latched_topics(tmp_path):
    writer = SplitWriter(SplitOptions(tmp_path / "rec", "sqlite3", max_duration_ns=1000))
    writer.add_topic("/rig", STRING, [LATCHED_QOS])
    writer.add_topic("/data", STRING, [SENSOR_QOS])
    writer.write("/rig", 0, cdr("rig"))
    for i in range(10):
        writer.write("/data", 10 + 300 * i, cdr(f"m{i}"))
    assert writer.partial is not None and writer.partial.is_dir()
    bags = writer.close()
    assert [b.name for b in bags] == [f"rec_{i}" for i in range(len(bags))] and len(bags) == 3
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [b.name for b in bags]  # no .partial left
    data = []
    for bag in bags:
        got = read(bag)
        assert [text for _, text in got["/rig"]] == ["rig"]  # each split carries the latched topic
        assert got["/rig"][0][0] == min(stamp for stamp, _ in got["/data"] + got["/rig"])  # at the split's start
        assert (bag / f"{bag.name}.db3").is_file()
        data += [text for _, text in got["/data"]]
    assert data == [f"m{i}" for i in range(10)]
    with Reader(bags[1]) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert qos == {"/rig": [LATCHED_QOS], "/data": [SENSOR_QOS]}


def test_an_empty_recording_is_a_readable_bag_with_its_topics(tmp_path):
    writer = SplitWriter(SplitOptions(tmp_path / "empty"))
    writer.add_topic("/data", STRING, [SENSOR_QOS])
    [bag] = writer.close()
    assert bag == tmp_path / "empty" and (bag / "empty.mcap").is_file()
    with Reader(bag) as reader:
        assert [c.topic for c in reader.connections] == ["/data"] and reader.message_count == 0


def test_the_folders_above_the_output_are_made(tmp_path):
    writer = SplitWriter(SplitOptions(tmp_path / "bags" / "drive-0001"))  # `-o bags/drive-0001` in a new checkout
    writer.add_topic("/data", STRING, [SENSOR_QOS])
    writer.write("/data", 5, cdr("x"))
    [bag] = writer.close()
    assert bag == tmp_path / "bags" / "drive-0001" and read(bag) == {"/data": [(5, "x")]}


def test_refuses_an_existing_output_an_interrupted_one_and_an_unknown_type(tmp_path):
    (tmp_path / "there").mkdir()
    with pytest.raises(RecordingError, match="there: exists already"):
        SplitWriter(SplitOptions(tmp_path / "there"))
    partial_path(tmp_path / "cut").mkdir()
    with pytest.raises(RecordingError, match="interrupted"):
        SplitWriter(SplitOptions(tmp_path / "cut"))
    writer = SplitWriter(SplitOptions(tmp_path / "new"))
    with pytest.raises(RecordingError, match="/goals: message type nav_msgs/msg/Goals is unknown"):
        writer.add_topic("/goals", "nav_msgs/msg/Goals", [])
    with pytest.raises(RecordingError, match="storage"):
        SplitOptions(tmp_path / "x", storage="bag")


def test_a_discarded_recording_leaves_nothing(tmp_path):
    for options in (SplitOptions(tmp_path / "one"), SplitOptions(tmp_path / "split", max_bytes=10)):
        writer = SplitWriter(options)
        writer.add_topic("/data", STRING, [SENSOR_QOS])
        writer.write("/data", 1, cdr("x"))
        writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_default_topics_are_the_node_inputs_and_a_params_file_renames_them(tmp_path):
    cameras = ("CAM_FRONT", "CAM_BACK")
    assert node_input_topics(cameras) == (
        "/LIDAR_TOP", "/CAM_FRONT/image_rect/compressed", "/CAM_FRONT/camera_info",
        "/CAM_BACK/image_rect/compressed", "/CAM_BACK/camera_info", "/odom", "/tf", "/tf_static",
    )  # fmt: skip
    params = tmp_path / "node.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "occupancy_node": {
                    "ros__parameters": {
                        "lidar_topic": "/sensing/lidar/points",
                        "cameras": {"CAM_BACK": {"image_topic": "/cam_back/image_raw"}},
                        "cameras.CAM_FRONT.info_topic": "/cam_front/info",
                    }
                }
            }
        )
    )
    topics = node_input_topics(cameras, params_file_values(params))
    assert topics[:5] == (
        "/sensing/lidar/points", "/CAM_FRONT/image_rect/compressed", "/cam_front/info", "/cam_back/image_raw",
        "/CAM_BACK/camera_info",
    )  # fmt: skip
    params.write_text("other_node:\n  ros__parameters: {}\n")
    with pytest.raises(TopicSelectionError, match="node.yaml: no /\\*\\* section or 'occupancy_node'"):
        params_file_values(params)
    assert check_topics(["odom", "/tf", "/odom"]) == ("/odom", "/tf")
    with pytest.raises(TopicSelectionError):
        check_topics(["a b"])


def test_the_command_takes_the_cameras_of_the_params_file_model_config(tmp_path):
    import argparse

    from tacocc_ros.commands import record

    parser = argparse.ArgumentParser()
    record.add_parser(parser.add_subparsers())
    params = tmp_path / "node.yaml"
    params.write_text("/**:\n  ros__parameters:\n    model_config: demo\n    odom_topic: /ego/odom\n")
    args = parser.parse_args(["record", "-o", str(tmp_path / "bag"), "--params-file", str(params)])
    topics = record._topics(args)
    assert len(topics) == 1 + 2 * 6 + 3 and "/ego/odom" in topics and "/CAM_BACK_RIGHT/camera_info" in topics
    args = parser.parse_args(["record", "-o", str(tmp_path / "bag"), "--topics", "odom", "/tf"])
    assert record._topics(args) == ("/odom", "/tf")


def test_sizes_parse_in_binary_units():
    sizes = [byte_size(s) for s in ("1G", "500M", "64k", "1024", "1.5MiB")]
    assert sizes == [1 << 30, 500 << 20, 64 << 10, 1024, 3 << 19]


def test_a_first_signal_asks_to_stop_and_a_second_interrupts_at_once():
    import os
    import signal

    from tacocc_ros.node.spin import stop_on_signals

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop = threading.Event()
    try:
        stop_on_signals(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(5)  # the handler runs here, in the main thread
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
