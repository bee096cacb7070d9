"""tacocc_core.bags.topics: image_transport camera names, the older names bags already use, and the topic
names of a params file shared with the nodes (`SensorTopics`, `read_params_file`)."""

from pathlib import Path

import pytest
import yaml

from tacocc_core.bags.reading import image_topics
from tacocc_core.bags.topics import (
    SensorTopics,
    camera_topics,
    image_topic_in,
    legacy_image_topic,
    read_params_file,
)

REPO = Path(__file__).resolve().parents[2]


def test_camera_topics_follow_image_transport():
    image, info = camera_topics("CAM_FRONT")
    assert image == "/CAM_FRONT/image_rect/compressed" and image.rsplit("/", 1)[1] == "compressed"
    assert info == "/CAM_FRONT/camera_info"


def test_the_older_name_of_a_compressed_topic():
    assert legacy_image_topic("/CAM_FRONT/image_rect/compressed") == "/CAM_FRONT/image_rect_compressed"
    assert legacy_image_topic("/camera/image_raw") is None
    assert legacy_image_topic("/compressed") is None


def test_a_bag_with_either_name_is_read_and_the_current_name_wins():
    old = {"/CAM_BACK/image_rect_compressed", "/LIDAR_TOP"}
    assert image_topic_in(old, "CAM_BACK") == "/CAM_BACK/image_rect_compressed"
    both = old | {"/CAM_BACK/image_rect/compressed"}
    assert image_topic_in(both, "CAM_BACK") == "/CAM_BACK/image_rect/compressed"
    assert image_topic_in({"/LIDAR_TOP"}, "CAM_BACK") is None
    assert image_topics(old, ["CAM_BACK", "CAM_FRONT"]) == {
        "CAM_BACK": "/CAM_BACK/image_rect_compressed",
        "CAM_FRONT": "/CAM_FRONT/image_rect/compressed",  # neither: the current name (for the error message)
    }


def test_sensor_topics_default_to_the_converters_names():
    topics = SensorTopics()
    assert (topics.lidar, topics.odom, topics.labels, topics.tf, topics.ego_frame) == (
        "/LIDAR_TOP", "/odom", "/occupancy/gt", "/tf", "base_link"
    )  # fmt: skip
    assert (topics.image("CAM_BACK"), topics.info("CAM_BACK")) == camera_topics("CAM_BACK")
    assert topics.cameras == ()


def test_the_occupancy_nodes_own_params_file_gives_its_topic_names():
    values = read_params_file(REPO / "config" / "occupancy_node.yaml")
    topics = SensorTopics.from_params(values)
    assert topics.lidar == values["lidar_topic"] and topics.odom == values["odom_topic"]
    assert topics.image("CAM_FRONT") == values["cameras.CAM_FRONT.image_topic"]
    assert "CAM_BACK" in topics.cameras


def test_a_params_file_with_other_names_and_a_node_section(tmp_path):
    path = tmp_path / "robot.yaml"
    doc = {
        "/**": {"ros__parameters": {"lidar_topic": "/points", "ego_frame": "vehicle",
                                    "cameras": {"CAM_FRONT": {"image_topic": "/cam_front/image_raw"}}}},
        "training_node": {"ros__parameters": {"labels_topic": "/labels", "lidar_topic": "/points_raw"}},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc))
    shared = SensorTopics.from_params(read_params_file(path))
    assert (shared.lidar, shared.labels, shared.ego_frame) == ("/points", "/occupancy/gt", "vehicle")
    assert shared.image("CAM_FRONT") == "/cam_front/image_raw" and shared.info("CAM_FRONT") == "/CAM_FRONT/camera_info"
    own = SensorTopics.from_params(read_params_file(path, "training_node"))  # the node's section wins
    assert (own.lidar, own.labels) == ("/points_raw", "/labels")
    assert SensorTopics.param_of("image", "CAM_FRONT") == "cameras.CAM_FRONT.image_topic"
    assert SensorTopics.param_of("odom") == "odom_topic"


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1, 2]", "a mapping of node names"), ("other: {ros__parameters: {a: 1}}", "no /\\*\\* section"),
     ("/**: {params: 1}", "must hold a ros__parameters mapping"), ("a: [", "not a readable YAML")],
)  # fmt: skip
def test_bad_params_files_are_named(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_params_file(path)
    assert str(path) in str(err.value)
