"""tacocc_core.bags.topics: image_transport camera names, and the older names bags already use."""

from tacocc_core.bags.reading import image_topics
from tacocc_core.bags.topics import camera_topics, image_topic_in, legacy_image_topic


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
