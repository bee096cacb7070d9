"""A rosbag2 bag as a robot records it, rewritten from a converted bag, for the "any bag in" tests.

Other topic names than the converter's (`/sensing/lidar/top/points`, `/cam_front/image_raw` as raw rgb8
sensor_msgs/Image, camera_info under `/sensing/camera/<cam>/camera_info`), the rig on /tf_static, the ego
motion on /tf only (`map -> odom` once, `odom -> base_link` at every odometry stamp; no nav_msgs/Odometry),
no labels, no calibration.yaml; written as .mcap or .db3. `robot_params` is the params file entries that
name these topics for the occupancy node and the training node alike.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from scipy.spatial.transform import Rotation

from tacocc_core.bags import messages as m
from tacocc_core.bags.messages import TYPESTORE
from tacocc_core.bags.reading import BagReader
from tacocc_core.geometry import make_transform, pose_to_transform

LIDAR = "/sensing/lidar/top/points"
MAP2ODOM = make_transform(Rotation.from_euler("z", 0.3).as_matrix(), [5.0, -2.0, 0.0])  # map <- odom


def image_topic(camera: str) -> str:
    return f"/{camera.lower()}/image_raw"


def info_topic(camera: str) -> str:
    return f"/sensing/camera/{camera.lower()}/camera_info"


def robot_params(cameras: tuple[str, ...]) -> dict:
    """ROS parameters (nested, as in a params file) naming the robot bag's topics."""
    return {
        "lidar_topic": LIDAR,
        "cameras": {
            c: {"image_topic": image_topic(c), "info_topic": info_topic(c), "transport": "raw"} for c in cameras
        },
    }


def _raw_image(compressed):
    rgb = cv2.cvtColor(cv2.imdecode(np.asarray(compressed.data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    return TYPESTORE.types["sensor_msgs/msg/Image"](
        header=compressed.header,
        height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3, data=rgb.reshape(-1),
    )  # fmt: skip


def write_robot_bag(src: Path, dst: Path, storage: str = "mcap", ego_motion: bool = True) -> Path:
    """Rewrite the converted bag `src` as a robot's bag at `dst` (module docstring); `ego_motion=False` leaves
    /tf out (and so every source of ego motion)."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with BagReader(src) as reader, Writer(dst, version=8, storage_plugin=plugin) as writer:
        cams = {t.split("/")[1] for t in reader.topics if t.endswith("/camera_info")}
        rename = {"/LIDAR_TOP": LIDAR, "/tf_static": "/tf_static"}
        rename.update({f"/{c}/image_rect/compressed": image_topic(c) for c in cams})
        rename.update({f"/{c}/camera_info": info_topic(c) for c in cams})
        types = {image_topic(c): "sensor_msgs/msg/Image" for c in cams}
        conns = {
            old: writer.add_connection(new, types.get(new, reader.topics[old].msgtype), typestore=TYPESTORE)
            for old, new in rename.items()
        }
        tf = writer.add_connection("/tf", m.TF_MESSAGE, typestore=TYPESTORE) if ego_motion else None
        first = True
        for raw in reader.messages([*rename, "/odom"]):
            if raw.topic == "/odom":
                if tf is None:
                    continue
                odom = reader.decode(raw)
                stamp = odom.header.stamp.sec * 10**9 + odom.header.stamp.nanosec
                p, q = odom.pose.pose.position, odom.pose.pose.orientation
                base2odom = pose_to_transform(np.array([p.x, p.y, p.z]), np.array([q.w, q.x, q.y, q.z]))
                if first:  # the map -> odom correction, published once before the motion
                    writer.write(tf, raw.stamp_ns, m.serialize(m.tf_message(stamp, "map", {"odom": MAP2ODOM})))
                    first = False
                writer.write(tf, raw.stamp_ns, m.serialize(m.tf_message(stamp, "odom", {"base_link": base2odom})))
            elif raw.topic.endswith("/image_rect/compressed"):
                writer.write(conns[raw.topic], raw.stamp_ns, m.serialize(_raw_image(reader.decode(raw))))
            else:
                writer.write(conns[raw.topic], raw.stamp_ns, raw.data)
    return dst
