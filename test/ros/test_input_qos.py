"""tacocc_ros.node.input_qos: the subscription profile adapted to the publishers' offers, and who is not heard.

The DDS side (publishers of each profile on every input of a running node) is test_occupancy_node_qos.py.
"""

import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.topic_endpoint_info import TopicEndpointInfo, TopicEndpointTypeEnum
from sensor_msgs.msg import CameraInfo, CompressedImage

from tacocc_ros.node.input_qos import QosChoice, adapted_profile, type_name, unheard

DEFAULT = QoSProfile(depth=10)
SENSOR = qos_profile_sensor_data
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
AUTO = QosChoice("auto", "auto", 5)


def policies(profile):
    return profile.reliability, profile.durability


@pytest.mark.parametrize(
    ("offers", "want"),
    [
        ([], (ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)),
        ([DEFAULT], (ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE)),
        ([SENSOR], (ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)),
        ([LATCHED], (ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)),
        ([LATCHED, DEFAULT], (ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE)),
        ([LATCHED, SENSOR], (ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)),
    ],
)
def test_auto_takes_what_every_publisher_offers(offers, want):
    profile = adapted_profile(offers, AUTO)
    assert policies(profile) == want and profile.depth == 5
    for offer in offers:  # and it hears each of them
        assert not unheard([endpoint(offer)], profile, type_name(CompressedImage))


def test_a_fixed_choice_stays_and_names_the_publishers_it_cannot_hear():
    latched = adapted_profile([DEFAULT, SENSOR], QosChoice("reliable", "transient_local", 1))
    assert policies(latched) == (ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)
    reasons = unheard([endpoint(DEFAULT, "cam"), endpoint(SENSOR, "lidar"), endpoint(LATCHED)], latched, "x/msg/Y")
    assert len(reasons) == 3 and all("publishes" in r for r in reasons)  # another type first
    reasons = unheard(
        [endpoint(DEFAULT, "cam"), endpoint(SENSOR, "driver"), endpoint(LATCHED)], latched, type_name(CompressedImage)
    )
    assert len(reasons) == 2
    assert reasons[0].startswith("/cam offers reliable volatile, the node asks reliable transient_local")
    assert reasons[1].startswith("/driver offers best_effort volatile")


def test_type_names_are_the_graph_s():
    assert type_name(CameraInfo) == "sensor_msgs/msg/CameraInfo"


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="reliability must be auto, reliable or best_effort"):
        QosChoice("latched", "auto", 1)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        QosChoice("auto", "auto", 0)


def endpoint(profile: QoSProfile, node: str = "driver") -> TopicEndpointInfo:
    return TopicEndpointInfo(
        node_name=node,
        node_namespace="/",
        topic_type=type_name(CompressedImage),
        endpoint_type=TopicEndpointTypeEnum.PUBLISHER,
        qos_profile=profile,
    )
