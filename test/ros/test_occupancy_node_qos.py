"""The node hears what drivers publish: default, sensor-data and latched QoS on every input, over real DDS.

A real OccupancyNode (demo preset, `checkpoints/demo.pt`) spins in this process; the publishers are a
second rclpy participant in the same domain. For each profile, new publishers on every camera image,
CameraInfo, LiDAR and odometry topic; each input must receive. The latched phase publishes once, before
the node's subscriptions adapt, and the message must still arrive (what a bag player's CameraInfo does).
A camera whose only publisher uses the older `<base>_compressed` name is heard there; a publisher of
another message type on a camera topic is reported in the log and on /diagnostics.
"""

import threading
import time
from collections import Counter

import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from ros_domains import in_process_domain  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402

from tacocc_core.bags.topics import legacy_image_topic  # noqa: E402
from tacocc_ros.node.occupancy_node import OccupancyNode  # noqa: E402
from tacocc_ros.tooling.drive_source import frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, FrameMessages, driver_node_params  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
S = 1_000_000_000
PROFILES = {
    "default (reliable volatile)": QoSProfile(depth=10),
    "sensor data (best effort volatile)": qos_profile_sensor_data,
    "latched (reliable transient local)": QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    ),
}


@pytest.fixture(scope="module")
def rig(repo_root, nuscenes_frame_dir, tmp_path_factory):
    frame = frame_from_fixture(nuscenes_frame_dir)
    calibration = frame.write_calibration(tmp_path_factory.mktemp("calib") / "calibration.yaml")
    params = driver_node_params(calibration, str(repo_root / "checkpoints" / "demo.pt"), DriveOptions(raw_camera=None))
    params.pop("sensor_reliability")  # auto: the QoS follows the publishers
    params.update(inference_threads=1, diagnostics_period_s=0.3)
    domain = in_process_domain("qos")
    node_context, talker_context = Context(), Context()
    rclpy.init(context=node_context, domain_id=domain)
    rclpy.init(context=talker_context, domain_id=domain)
    node = OccupancyNode(
        context=node_context, parameter_overrides=[Parameter(name, value=value) for name, value in params.items()]
    )
    heard: Counter[str] = Counter()
    on_input = node.stats.on_input

    def count(topic, now_ns):  # every message a callback got, by its input topic
        heard[topic] += 1
        on_input(topic, now_ns)

    node.stats.on_input = count
    executor = SingleThreadedExecutor(context=node_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    talker = rclpy.create_node("driver", context=talker_context)
    diagnostics: list[DiagnosticArray] = []
    talker.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    talker.logs = []
    # /rosout is latched (transient local): the listener also gets lines logged before it was matched.
    rosout = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    talker.create_subscription(Log, "/rosout", lambda m: talker.logs.append(m), rosout)
    talker_executor = SingleThreadedExecutor(context=talker_context)
    talker_executor.add_node(talker)
    threading.Thread(target=talker_executor.spin, daemon=True).start()
    messages = FrameMessages(frame, DriveOptions(raw_camera=None))
    yield node, talker, heard, messages, diagnostics
    executor.shutdown()
    talker_executor.shutdown()
    node.close()
    node.destroy_node()
    talker.destroy_node()
    rclpy.try_shutdown(context=node_context)
    rclpy.try_shutdown(context=talker_context)


def input_topics(node) -> dict[str, type]:
    topics = {node.values["lidar_topic"]: PointCloud2, node.values["odom_topic"]: Odometry}
    for cam in node.inputs:
        topics[cam.image_topic] = CompressedImage
        topics[cam.info_topic] = CameraInfo
    return topics


def message_for(topic: str, msg_type: type, node, messages: FrameMessages, stamp_ns: int):
    if msg_type is PointCloud2:
        return messages.stamp(messages.cloud, stamp_ns)
    if msg_type is Odometry:
        return messages.stamp(messages.odom, stamp_ns)
    cam = next(c for c in node.inputs if topic in (c.image_topic, c.info_topic, legacy_image_topic(c.image_topic)))
    source = messages.infos if msg_type is CameraInfo else messages.images
    return messages.stamp(source[cam.name], stamp_ns)


def wait_heard(heard: Counter, before: Counter, topics, publish, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        missing = sorted(t for t in topics if heard[t] <= before[t])
        if not missing:
            return
        assert time.monotonic() < deadline, f"nothing heard on {missing} within {timeout_s} s"
        publish()
        time.sleep(0.1)


def test_a_camera_publishing_only_under_the_older_compressed_name_is_heard(rig):
    node, talker, heard, messages, _ = rig
    cam = node.inputs[0]
    legacy = legacy_image_topic(cam.image_topic)
    assert cam.image_topic == f"/{cam.name}/image_rect/compressed" and legacy == f"/{cam.name}/image_rect_compressed"
    publisher = talker.create_publisher(CompressedImage, legacy, QoSProfile(depth=10))
    before = heard.copy()
    try:
        wait_heard(heard, before, [cam.image_topic], lambda: publisher.publish(messages.images[cam.name]))
    finally:
        talker.destroy_publisher(publisher)
    assert legacy in node.node_inputs.subscriptions


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_input_hears_publishers_of_each_profile(rig, profile):
    node, talker, heard, messages, _ = rig
    qos = PROFILES[profile]
    topics = input_topics(node)
    publishers = {topic: talker.create_publisher(msg_type, topic, qos) for topic, msg_type in topics.items()}
    before = heard.copy()
    stamp = [1_700_000_000 * S + list(PROFILES).index(profile) * 100 * S]

    def publish_all():
        stamp[0] += S // 10
        for topic, publisher in publishers.items():
            publisher.publish(message_for(topic, topics[topic], node, messages, stamp[0]))

    try:
        if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
            publish_all()  # once: heard live or, once the subscriptions adapt, as the latched history
            wait_heard(heard, before, topics, lambda: None)
            deadline = time.monotonic() + 10  # the subscriptions follow the offers: reliable transient local
            while any(node.node_inputs.profiles()[t] != "reliable transient_local" for t in topics):
                assert time.monotonic() < deadline, node.node_inputs.profiles()
                time.sleep(0.1)
        else:
            wait_heard(heard, before, topics, publish_all)
    finally:
        for publisher in publishers.values():
            talker.destroy_publisher(publisher)
    assert node.frames.camera_info, "no CameraInfo kept"


def test_a_latched_camera_info_published_before_the_node_listens_is_heard(rig):
    """What a bag player or a driver's latched CameraInfo does: one message, sent before the node subscribed."""
    node, talker, heard, messages, _ = rig
    cam = node.inputs[2]
    latched = PROFILES["latched (reliable transient local)"]
    node.trigger_deactivate()  # no subscription while the message goes out
    try:
        publisher = talker.create_publisher(CameraInfo, cam.info_topic, latched)
        publisher.publish(messages.infos[cam.name])
        node.frames.camera_info.pop(cam.name, None)
        before = heard.copy()
    finally:
        node.trigger_activate()
    try:
        wait_heard(heard, before, [cam.info_topic], lambda: None)
    finally:
        talker.destroy_publisher(publisher)
    assert cam.name in node.frames.camera_info


def test_a_publisher_the_node_cannot_hear_is_reported_in_the_log_and_on_diagnostics(rig):
    node, talker, _, _, diagnostics = rig
    topic = node.inputs[1].image_topic  # a CompressedImage input
    publisher = talker.create_publisher(Image, topic, QoSProfile(depth=1))
    key = f"unheard publishers {topic}"
    try:
        deadline = time.monotonic() + 20
        while True:
            statuses = [d.status[0] for d in list(diagnostics)[-3:]]
            found = [s for s in statuses if any(kv.key == key for kv in s.values)]
            if found:
                break
            assert time.monotonic() < deadline, f"no {key!r} on /diagnostics: {[s.values for s in statuses]}"
            time.sleep(0.1)
    finally:
        talker.destroy_publisher(publisher)
    status = found[-1]
    assert status.level == DiagnosticStatus.WARN and topic in status.message
    assert {kv.key: kv.value for kv in status.values}[key] == "1"
    why = "publishes sensor_msgs/msg/Image, the node subscribes sensor_msgs/msg/CompressedImage"
    assert len(node.unheard[topic]) == 1 and why in node.unheard[topic][0]

    def warned() -> bool:
        lines = [m.msg for m in list(talker.logs) if m.level == Log.WARN and "cannot hear" in m.msg]
        return any(topic in line and why in line for line in lines)

    deadline = time.monotonic() + 20  # /rosout is its own topic: the line may come after the diagnostics
    while not warned() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert warned(), [m.msg for m in list(talker.logs)][-10:]
