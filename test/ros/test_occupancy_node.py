"""tacocc_ros.node.occupancy_node over real DDS: the node in its own process, this process plays a generated scene.

The player publishes JPEG CompressedImages (one camera as a raw rgb8 Image), CameraInfo (transient local),
PointCloud2 sweeps and Odometry with the dataset stamps, waits for each output, and checks it against
`Predictor.predict` run here on frames built from the same messages. The phases share one node process
(starting it costs most of the time) and run in file order, each with stamps after the previous ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from tacocc_core.bags.topics import camera_topics  # noqa: E402
from tacocc_core.checkpoint import save_checkpoint  # noqa: E402
from tacocc_core.config import load_preset  # noqa: E402
from tacocc_core.data.nuscenes_reader import read_pcd_bin  # noqa: E402
from tacocc_core.frame import Frame  # noqa: E402
from tacocc_core.geometry import invert_transform, pose_to_transform  # noqa: E402
from tacocc_core.labels import CLASS_NAMES  # noqa: E402
from tacocc_core.model.tacocc import TACOcc  # noqa: E402
from tacocc_core.predictor import Predictor, PredictorOptions  # noqa: E402
from tacocc_ros.messages.images import decode_for_network  # noqa: E402
from tacocc_ros.messages.pointcloud import array_to_cloud, cloud_to_array, cloud_to_points  # noqa: E402
from tacocc_ros.messages.stamps import make_header, stamp_to_ns  # noqa: E402
from tacocc_ros.node.calibration import CameraCalibration, RigCalibration, save_calibration  # noqa: E402
from tacocc_ros.node.frame_builder import PoseBuffer, SweepBuffer, camera_arrays, pose_xyzw_to_transform  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
NODE = "/occupancy_node"
RAW_CAMERA = "CAM_BACK_RIGHT"  # published as a raw rgb8 Image; the others as JPEG
WAIT_S = 60.0


# --- the scene as messages ---------------------------------------------------------------------------
def scene_messages(dataroot: Path, config):
    """Scene 0 of the generated dataset: calibration, CameraInfo Ks, and per LiDAR sample_data the sweep,
    the ego pose and (keyframes) the six images, in stamp order."""
    from nuscenes.nuscenes import NuScenes

    nusc = NuScenes("v1.0-mini", str(dataroot), verbose=False)
    scene = nusc.scene[0]
    first = nusc.get("sample", scene["first_sample_token"])
    lidar_cs = nusc.get(
        "calibrated_sensor", nusc.get("sample_data", first["data"]["LIDAR_TOP"])["calibrated_sensor_token"]
    )
    lidar2ego = pose_to_transform(lidar_cs["translation"], lidar_cs["rotation"])
    cameras, intrinsics = {}, {}
    for name in config.cameras.names:
        cs = nusc.get("calibrated_sensor", nusc.get("sample_data", first["data"][name])["calibrated_sensor_token"])
        cam2ego = pose_to_transform(cs["translation"], cs["rotation"])
        intrinsics[name] = np.asarray(cs["camera_intrinsic"], dtype=np.float64)
        cameras[name] = CameraCalibration(invert_transform(lidar2ego) @ cam2ego, intrinsics[name], name)
    calibration = RigCalibration("LIDAR_TOP", cameras, lidar2ego)

    sweeps = []
    sd = nusc.get("sample_data", first["data"]["LIDAR_TOP"])
    while sd["prev"]:
        sd = nusc.get("sample_data", sd["prev"])
    while sd is not None:
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        images = None
        if sd["is_key_frame"]:
            sample = nusc.get("sample", sd["sample_token"])
            images = {
                n: (Path(dataroot) / nusc.get("sample_data", sample["data"][n])["filename"]).read_bytes()
                for n in config.cameras.names
            }
        sweeps.append(
            {
                "stamp": int(sd["timestamp"]) * 1000,
                "points": read_pcd_bin(Path(dataroot) / sd["filename"]),
                "pose": (pose["translation"], pose["rotation"]),
                "images": images,
            }
        )
        if sum(s["images"] is not None for s in sweeps) == 4:
            break
        sd = nusc.get("sample_data", sd["next"]) if sd["next"] else None
    return calibration, intrinsics, sweeps


def cloud_msg(points: np.ndarray, stamp: int) -> PointCloud2:
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<f4")])
    array = np.zeros(len(points), dtype=dtype)
    for i, name in enumerate(dtype.names):
        array[name] = points[:, i]
    return array_to_cloud(array, make_header(stamp, "LIDAR_TOP"), is_dense=True)


def odom_msg(pose, stamp: int) -> Odometry:
    translation, wxyz = pose
    msg = Odometry(header=make_header(stamp, "map"), child_frame_id="base_link")
    msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = map(float, translation)
    q = msg.pose.pose.orientation
    q.w, q.x, q.y, q.z = map(float, wxyz)
    return msg


def image_msg(name: str, jpeg: bytes, stamp: int):
    header = make_header(stamp, name)
    if name != RAW_CAMERA:
        return CompressedImage(header=header, format="jpeg", data=jpeg)
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3,
                 data=rgb.tobytes())  # fmt: skip


# --- the expected outputs --------------------------------------------------------------------------
class Reference:
    """The node's inputs replayed into a Predictor here, frame by frame, in the order the node sees them."""

    def __init__(self, config, checkpoint: Path, calibration: RigCalibration, intrinsics: dict) -> None:
        self.config = config
        self.predictor = Predictor.from_checkpoint(checkpoint, config, PredictorOptions(device="cpu", timings=False))
        self.calibration, self.intrinsics = calibration, intrinsics
        self.poses = PoseBuffer()
        self.sweeps = SweepBuffer(config.lidar.sweeps)

    def odom(self, msg: Odometry) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        self.poses.add(stamp_to_ns(msg.header.stamp), pose_xyzw_to_transform((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))

    def cloud(self, msg: PointCloud2) -> None:
        self.sweeps.add(stamp_to_ns(msg.header.stamp), cloud_to_points(msg))

    def expect(self, cloud: PointCloud2, images: dict) -> np.ndarray:
        stamp = stamp_to_ns(cloud.header.stamp)
        size = tuple(self.config.cameras.image_size)
        decoded = {n: decode_for_network(m, size) for n, m in images.items()}
        extrinsics = {n: c.cam2lidar for n, c in self.calibration.cameras.items()}
        arrays = camera_arrays(self.config.cameras.names, size, decoded, self.intrinsics, extrinsics)[:4]

        def lidar2global(s):
            pose = self.poses.lookup(s)
            return None if pose is None else pose @ self.calibration.lidar2ego

        points = self.sweeps.accumulate(stamp, cloud_to_points(cloud), lidar2global)
        frame = Frame(*arrays[:3], points, lidar2global(stamp), stamp, camera_valid=arrays[3], stream_id="LIDAR_TOP")
        prediction = self.predictor.predict(frame)
        assert prediction.error is None, prediction.error
        return np.where((prediction.labels > 0) & (prediction.labels < 17), prediction.labels, 0).astype(np.uint8)


def cloud_to_grid(msg: PointCloud2, grid) -> np.ndarray:
    points = cloud_to_array(msg)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1)
    index, inside = grid.point_to_index(xyz)
    assert inside.all(), "published voxel centres outside the grid"
    labels = np.zeros(grid.shape, dtype=np.uint8)
    labels[tuple(index.T)] = points["label"]
    return labels


# --- the running node and the player -----------------------------------------------------------------
class Player:
    def __init__(self, config, calibration_intrinsics) -> None:
        self.node = rclpy.create_node("scene_player")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        n = self.node
        self.pub_images = {
            c: n.create_publisher(Image, f"/{c}/image_rect", reliable)
            if c == RAW_CAMERA
            else n.create_publisher(CompressedImage, camera_topics(c)[0], reliable)
            for c in config.cameras.names
        }
        self.pub_infos = {c: n.create_publisher(CameraInfo, f"/{c}/camera_info", latched) for c in config.cameras.names}
        self.pub_cloud = n.create_publisher(PointCloud2, "/LIDAR_TOP", reliable)
        self.pub_odom = n.create_publisher(Odometry, "/odom", reliable)
        self.clouds: dict[int, PointCloud2] = {}
        self.markers: dict[int, MarkerArray] = {}
        self.diagnostics: list[DiagnosticArray] = []
        n.create_subscription(PointCloud2, "/occupancy/cloud", self._on_cloud, reliable)
        n.create_subscription(MarkerArray, "/occupancy/markers", self._on_markers, reliable)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.set_params = n.create_client(SetParameters, f"{NODE}/set_parameters")
        self.reload = n.create_client(Trigger, f"{NODE}/reload_checkpoint")
        for name, k in calibration_intrinsics.items():
            self.pub_infos[name].publish(
                CameraInfo(header=make_header(0, name), height=90, width=160, k=k.reshape(-1).tolist())
            )

    def _on_cloud(self, msg):
        self.clouds[stamp_to_ns(msg.header.stamp)] = msg

    def _on_markers(self, msg):
        self.markers[stamp_to_ns(msg.markers[0].header.stamp)] = msg

    def spin_until(self, condition, what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for_node(self, process: subprocess.Popen) -> None:
        pubs = [*self.pub_images.values(), *self.pub_infos.values(), self.pub_cloud, self.pub_odom]

        def ready():
            if process.poll() is not None:
                raise AssertionError(f"the node exited with {process.returncode}")
            return all(p.get_subscription_count() > 0 for p in pubs) and self.set_params.service_is_ready()

        self.spin_until(ready, "the node's subscriptions and services", 120.0)
        self.spin_until(lambda: self.diagnostics, "the first /diagnostics")

    def call(self, client, request):
        future = client.call_async(request)
        self.spin_until(future.done, f"a response from {client.srv_name}")
        return future.result()

    def set_param(self, name: str, value) -> object:
        if isinstance(value, bool):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        elif isinstance(value, int):
            pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        elif isinstance(value, float):
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        return self.call(self.set_params, SetParameters.Request(parameters=[Parameter(name=name, value=pv)])).results[0]

    def latest_diagnostics(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values} if self.diagnostics else {}

    def wait_diagnostics(self, predicate, what: str) -> dict[str, str]:
        """Spin until the newest /diagnostics satisfies `predicate`; return its values."""
        try:
            self.spin_until(lambda: predicate(self.latest_diagnostics()), f"/diagnostics with {what}")
        except AssertionError as err:  # say what the node did count
            counted = {k: v for k, v in self.latest_diagnostics().items() if k.startswith(("failed", "dropped"))}
            raise AssertionError(f"{err}; the latest /diagnostics counted {counted}") from None
        return self.latest_diagnostics()


@pytest.fixture(scope="module")
def session(synthetic_dataset, tmp_path_factory):
    tiny = load_preset("tiny")
    folder = tmp_path_factory.mktemp("node")
    torch.manual_seed(0)
    checkpoint = folder / "tiny.pt"
    save_checkpoint(checkpoint, TACOcc(tiny).state_dict(), tiny)
    calibration, intrinsics, sweeps = scene_messages(synthetic_dataset, tiny)
    save_calibration(folder / "calibration.yaml", calibration)
    params = {
        "model_config": "tiny",
        "checkpoint": str(checkpoint),
        "device": "cpu",
        "calibration": str(folder / "calibration.yaml"),
        "extrinsics": "calibration",
        "sensor_reliability": "reliable",
        "diagnostics_period_s": 0.3,
        "odom_wait_s": 10.0,
        "slop_s": 0.03,
        f"cameras.{RAW_CAMERA}.transport": "raw",
        f"cameras.{RAW_CAMERA}.image_topic": f"/{RAW_CAMERA}/image_rect",
    }
    (folder / "params.yaml").write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    log = (folder / "node.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tacocc_ros.node.occupancy_node", "--ros-args", "--params-file", folder / "params.yaml"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    rclpy.init()
    try:
        player = Player(tiny, intrinsics)
        player.reference = Reference(tiny, checkpoint, calibration, intrinsics)
        player.sweeps, player.grid, player.checkpoint = sweeps, tiny.grid.spec(), checkpoint
        try:
            player.wait_for_node(process)
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- node log ---\n{(folder / 'node.log').read_text()}") from None
        yield player
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        finally:
            log.close()
            rclpy.try_shutdown()
    assert process.returncode == 0, (folder / "node.log").read_text()


def play(player: Player, sweep: dict, stamp: int, images: dict | None = None, expect: bool = True):
    """Publish odometry and the sweep, then the images; with `expect`, wait for and return (got, want)."""
    player.clouds.pop(stamp, None)  # a replayed stamp (bag loop) must wait for its new grid
    odom = odom_msg(sweep["pose"], stamp)
    cloud = cloud_msg(sweep["points"], stamp)
    player.pub_odom.publish(odom)
    player.reference.odom(odom)
    player.pub_cloud.publish(cloud)
    player.reference.cloud(cloud)
    images = images if images is not None else {}
    for name, msg in images.items():
        player.pub_images[name].publish(msg)
    if not expect:
        player.executor.spin_once(timeout_sec=0.05)
        return None
    want = player.reference.expect(cloud, images)
    player.spin_until(lambda: stamp in player.clouds, f"the grid of sweep {stamp}")
    return cloud_to_grid(player.clouds[stamp], player.grid), want


def images_at(sweep: dict, stamp: int, omit: tuple[str, ...] = ()) -> dict:
    """The keyframe's images stamped 5 ms before `stamp`: within the 30 ms slop of this sweep, outside that of
    the sweep 50 ms earlier (which may reach the node after them: topics are not ordered among each other)."""
    return {n: image_msg(n, data, stamp - 5_000_000) for n, data in sweep["images"].items() if n not in omit}


# --- the phases ----------------------------------------------------------------------------------------
def test_each_sweep_gives_the_predictor_grid_with_its_stamp_and_frame(session):
    keyframes = 0
    for sweep in session.sweeps:
        stamp = sweep["stamp"]
        if sweep["images"] is None:
            play(session, sweep, stamp, expect=False)
            continue
        got, want = play(session, sweep, stamp, images_at(sweep, stamp))
        keyframes += 1
        assert session.clouds[stamp].header.frame_id == "LIDAR_TOP"
        assert (want > 0).sum() > 0
        np.testing.assert_array_equal(got, want)
    assert keyframes == 4
    session.spin_until(lambda: session.markers, "markers")
    stamp = max(session.markers)
    markers = session.markers[stamp].markers
    assert markers[0].action == Marker.DELETEALL and markers[0].header.frame_id == "LIDAR_TOP"
    occupied = cloud_to_grid(session.clouds[stamp], session.grid)
    assert sum(len(m.points) for m in markers[1:]) == (occupied > 0).sum()
    assert {m.ns for m in markers[1:]} == {CLASS_NAMES[c] for c in np.unique(occupied[occupied > 0])}
    values = session.wait_diagnostics(lambda v: v.get("published") == "4", "4 published")
    assert float(values["rate /LIDAR_TOP (Hz)"]) > 0 and values["latency p50 (ms)"] != "n/a"
    assert sum(int(v) for k, v in values.items() if k.startswith("k=")) > 0


def next_stamp(session) -> int:
    return max(session.clouds) + 500_000_000


def test_malformed_inputs_are_counted_and_the_next_good_frame_is_served(session):
    key = next(s for s in session.sweeps if s["images"])
    good = cloud_msg(key["points"], 0)
    no_z = PointCloud2(header=good.header, height=1, width=good.width, is_bigendian=False,
                       point_step=good.point_step, row_step=good.row_step, data=good.data,
                       fields=[f for f in good.fields if f.name != "z"])  # fmt: skip
    short_step = PointCloud2(header=good.header, height=1, width=good.width, fields=good.fields, is_bigendian=False,
                             point_step=12, row_step=12 * good.width, data=good.data)  # fmt: skip
    truncated = PointCloud2(header=good.header, height=1, width=good.width, fields=good.fields, is_bigendian=False,
                            point_step=good.point_step, row_step=good.row_step,
                            data=bytes(good.data[:100]))  # fmt: skip
    assert all(isinstance(f, PointField) for f in no_z.fields)
    stamp = next_stamp(session)
    for i, bad in enumerate((no_z, short_step, truncated)):
        bad.header = make_header(stamp + i * 10_000_000, "LIDAR_TOP")
        session.pub_cloud.publish(bad)

    # Refused in the callback by their header (never reach the synchroniser, so the frame times out without them):
    stamp += 500_000_000  # a frame whose raw camera has an unknown encoding
    images = images_at(key, stamp)
    images[RAW_CAMERA].encoding = "yuv422_weird"
    play(session, key, stamp, images, expect=False)
    session.wait_diagnostics(lambda v: f"failed image {RAW_CAMERA}" in v, "the unknown encoding")
    stamp += 500_000_000  # a frame with a JPEG whose header is garbage
    images = images_at(key, stamp)
    images["CAM_FRONT"].data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    play(session, key, stamp, images, expect=False)
    # Found only when the worker decodes it: a JPEG cut in half (its header is intact).
    stamp += 500_000_000
    images = images_at(key, stamp)
    images["CAM_FRONT"].data = bytes(images["CAM_FRONT"].data)[: len(images["CAM_FRONT"].data) // 2]
    play(session, key, stamp, images, expect=False)
    # Counted before the next frame is played: a good frame arriving while the worker is still busy would
    # replace this one in the worker's slot (counted "dropped replaced") on a loaded machine.
    session.wait_diagnostics(lambda v: v.get("failed too few cameras") == "1", "the failed frame")
    stamp += 500_000_000
    got, want = play(session, key, stamp, images_at(key, stamp))
    np.testing.assert_array_equal(got, want)
    values = session.wait_diagnostics(lambda v: v.get("failed too few cameras") == "1", "the failed frame")
    assert values["failed bad PointCloud2"] == "3"
    assert values[f"failed image {RAW_CAMERA}"] == "1" and values["failed image CAM_FRONT"] == "2"
    # At least the frame each refused image left incomplete timed out; a loaded machine may add a late image's.
    assert int(values[f"dropped timeout:{RAW_CAMERA}"]) >= 1 and int(values["dropped timeout:CAM_FRONT"]) >= 1


def test_a_missing_camera_drops_the_frame_or_degrades_it_as_configured(session):
    key = next(s for s in session.sweeps if s["images"])
    stamp = next_stamp(session)
    play(session, key, stamp, images_at(key, stamp, omit=("CAM_BACK",)), expect=False)
    later = stamp + 300_000_000  # a sweep without images moves message time past the timeout
    play(session, key, later, expect=False)
    values = session.wait_diagnostics(lambda v: "dropped timeout:CAM_BACK" in v, "the timeout drop")
    assert values["dropped timeout:CAM_BACK"] == "1" and stamp not in session.clouds

    result = session.set_param("min_cameras", 5)
    assert result.successful, result.reason
    stamp = later + 500_000_000
    play(session, key, stamp, images_at(key, stamp, omit=("CAM_BACK",)), expect=False)
    want = session.reference.expect(cloud_msg(key["points"], stamp), images_at(key, stamp, omit=("CAM_BACK",)))
    play(session, key, stamp + 300_000_000, expect=False)
    session.spin_until(lambda: stamp in session.clouds, "the degraded frame")
    np.testing.assert_array_equal(cloud_to_grid(session.clouds[stamp], session.grid), want)
    values = session.wait_diagnostics(lambda v: "degraded CAM_BACK" in v, "the degraded frame")
    assert values["degraded CAM_BACK"] == "1"
    assert session.set_param("min_cameras", 6).successful


def test_time_going_backwards_resets_the_temporal_state(session):
    # Diagnostics come every 0.3 s: wait for one that counts every grid received so far, so that the resets of
    # earlier frames are in `before` and only the reset of the replayed frame is new.
    received = len(session.clouds)
    before = session.wait_diagnostics(lambda v: int(v.get("published", 0)) >= received, "all grids so far")
    first = next(s for s in session.sweeps if s["images"])
    session.reference.sweeps.clear()
    got, want = play(session, first, first["stamp"], images_at(first, first["stamp"]))
    np.testing.assert_array_equal(got, want)
    published = int(before["published"]) + 1
    values = session.wait_diagnostics(lambda v: int(v.get("published", 0)) >= published, "the replayed frame")
    assert values["time went backwards"] == "1"
    resets = [k for k in values if k.startswith("temporal reset")]
    assert sum(int(values[k]) for k in resets) == sum(int(before.get(k, 0)) for k in resets) + 1


def test_checkpoint_reload_by_service_and_parameter(session):
    response = session.call(session.reload, Trigger.Request())
    assert response.success, response.message
    refused = session.set_param("checkpoint", str(session.checkpoint.parent / "absent.pt"))
    assert not refused.successful and "absent.pt" in refused.reason
    wrong_type = session.set_param("slop_s", "fast")
    assert not wrong_type.successful
    out_of_range = session.set_param("slop_s", -1.0)
    assert not out_of_range.successful and "slop_s: must be >= 0.0" in out_of_range.reason
    read_only = session.set_param("device", "cuda")
    assert not read_only.successful
    session.wait_diagnostics(lambda v: v.get("checkpoint reloads") == "1", "one checkpoint reload")


def test_tacocc_reload_hands_new_weights_to_the_running_node(session, tmp_path, capsys):
    """`tacocc reload` (the guide's `ros2 param set` without ROS): re-read, a new file, a refused file."""
    from tacocc_ros.cli import main as tacocc

    counted = session.wait_diagnostics(lambda v: "checkpoint reloads" in v, "the reload count")
    before = int(counted["checkpoint reloads"])
    copy = tmp_path / "copy.pt"
    copy.write_bytes(session.checkpoint.read_bytes())
    assert tacocc(["reload", "--node", NODE, "--timeout", "60"]) == 0
    assert tacocc(["reload", "--node", NODE, "--checkpoint", str(copy), "--timeout", "60"]) == 0
    assert tacocc(["reload", "--node", NODE, "--checkpoint", str(session.checkpoint), "--timeout", "60"]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert tacocc(["reload", "--node", NODE, "--checkpoint", str(bad), "--timeout", "60"]) == 1
    assert f"{NODE} refused the weights: checkpoint:" in capsys.readouterr().err
    assert tacocc(["reload", "--node", "/no_such_node", "--timeout", "1"]) == 1
    assert "no service /no_such_node/reload_checkpoint within 1 s" in capsys.readouterr().err
    session.wait_diagnostics(
        lambda v: int(v.get("checkpoint reloads", 0)) == before + 3, "three more reloads (re-read, copy, original)"
    )
