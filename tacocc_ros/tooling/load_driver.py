"""Drive a running occupancy node at sensor rates with a real frame, optionally with faults, and measure it.

    frame = frame_from_fixture(default_fixture())
    with OccupancyNodeProcess(driver_node_params(frame_cal, "checkpoints/demo.pt"), "runs/drive/node.log") as node:
        report = LoadDriver(frame, DriveOptions(duration_s=60, faults=FAULTS), node_pid=node.pid).run()

What it does, all over real DDS (a private rclpy context, `RosHandle`):
- publishes the rig once on /tf_static, latched, as a vehicle's robot_state_publisher does, so that a
  recording of the drive carries the extrinsics (`drive_tf.TfStaticPublisher`; needs tf2_msgs, which only
  a ROS 2 install has: the report's `tf_static` says whether it was published);
- publishes the frame with fresh stamps (wall clock + a jump offset) at nuScenes rates: LiDAR PointCloud2
  20 Hz, six cameras 12 Hz (JPEG CompressedImage, and one camera as a raw rgb8 Image at half size so that
  raw-image faults have a raw topic), a CameraInfo with each image, /odom 50 Hz; a scheduler thread sleeps
  until the next message is due (no busy wait);
- every `fault_every_s` injects the next fault of `faults` (tacocc_ros/tooling/faults.py) in place of the
  next `fault_repeat` good messages of its stream (the node's queues keep the last few messages of a topic,
  camera_info only the last one, so a busy node may never take a single bad message); good ones follow;
- subscribes to the node's occupancy cloud (end-to-end latency = receipt - publication of its LiDAR stamp)
  and /diagnostics (in-node latency, drops, failures, events: the keys it holds over time);
- samples the RSS and CPU time of the node process and its children (the inference process) from /proc
  every second.

`run()` returns the report dict (`tacocc_ros/tooling/drive_report.py` computes it); the first `warmup_s` are
published but left out of rates, latencies and gaps (the first frames of a fresh process run slower).
"""

from __future__ import annotations

import heapq
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from tacocc_core.bags.topics import LIDAR_TOPIC, ODOM_TOPIC, camera_topics
from tacocc_ros.messages.pointcloud import array_to_cloud
from tacocc_ros.messages.stamps import make_header, stamp_to_ns
from tacocc_ros.node.outputs import CLOUD_TOPIC
from tacocc_ros.tooling import drive_report
from tacocc_ros.tooling import faults as fault_lib
from tacocc_ros.tooling.drive_source import DriveFrame
from tacocc_ros.tooling.drive_tf import TfStaticPublisher
from tacocc_ros.tooling.generated_faults import GeneratedFaults
from tacocc_ros.tooling.node_process import RosHandle

DEFAULT_OUTPUT_TOPIC = "/" + CLOUD_TOPIC  # the node's occupancy cloud, alone or from the launch file
RAW_TOPIC_SUFFIX = "image_raw"
PAGE_KB = 1024


@dataclass(frozen=True)
class DriveOptions:
    """Rates, duration and faults of one drive (times in seconds)."""

    duration_s: float = 60.0
    warmup_s: float = 10.0
    lidar_hz: float = 20.0
    camera_hz: float = 12.0
    odom_hz: float = 50.0
    faults: tuple[str, ...] = ()
    fault_every_s: float = 3.0
    fault_repeat: int = 2  # consecutive messages of its stream a fault replaces (the huge cloud: one)
    fault_start_s: float = 5.0
    faults_until_s: float | None = None  # no fault after this time (None: until the end)
    fault_cameras: fault_lib.FaultCameras = field(default_factory=fault_lib.FaultCameras)
    raw_camera: str | None = "CAM_BACK_RIGHT"
    raw_scale: float = 0.5
    time_jump_s: float = 30.0
    silence_s: float = 5.0
    settle_s: float = 5.0
    sample_period_s: float = 1.0
    output_topic: str = DEFAULT_OUTPUT_TOPIC
    seed: int = 0
    generated_fraction: float = 0.0  # share of each stream's messages replaced by a generated malformed one

    def __post_init__(self) -> None:
        fault_lib.check_faults(self.faults)
        if self.fault_repeat < 1:
            raise ValueError(f"DriveOptions.fault_repeat must be >= 1, got {self.fault_repeat}")
        for name in ("duration_s", "lidar_hz", "camera_hz", "odom_hz", "fault_every_s", "sample_period_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DriveOptions.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.generated_fraction < 1:
            raise ValueError(f"DriveOptions.generated_fraction must be in [0, 1), got {self.generated_fraction}")
        if not 0 <= self.warmup_s < self.duration_s:
            raise ValueError(f"DriveOptions.warmup_s must be in [0, duration_s), got {self.warmup_s}")


def image_topic(camera: str, raw: bool) -> str:
    return f"/{camera}/{RAW_TOPIC_SUFFIX}" if raw else camera_topics(camera)[0]


def driver_node_params(
    calibration: str | os.PathLike[str], checkpoint: str, options: DriveOptions, overrides: dict | None = None
) -> dict:
    """Parameters of a node the driver starts: reliable sensors, the raw camera's topic."""
    params = {
        "model_config": "demo",
        "checkpoint": str(checkpoint),
        "device": "cpu",
        "calibration": str(calibration),
        "extrinsics": "calibration",
        "sensor_reliability": "reliable",
        "min_cameras": 5,
        "diagnostics_period_s": 1.0,
    }
    if options.raw_camera:
        params[f"cameras.{options.raw_camera}.transport"] = "raw"
        params[f"cameras.{options.raw_camera}.image_topic"] = image_topic(options.raw_camera, True)
    params.update(overrides or {})
    return params


def child_pids(pid: int) -> list[int]:
    """The live children of process `pid` (from /proc/<pid>/task/*/children; [] when it is gone)."""
    children = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return children


def read_proc(pid: int) -> tuple[float, float] | None:
    """(RSS MB, user + system CPU seconds) of process `pid` and all its descendants, from /proc.

    The node runs its network in a child process: both count. CPU seconds include children that have
    ended and been waited for (a restarted inference process). None once `pid` is gone.
    """
    got = _read_one(pid, with_waited_children=True)
    if got is None:
        return None
    rss, cpu = got
    pending = child_pids(pid)
    while pending:
        child = pending.pop()
        one = _read_one(child, with_waited_children=False)
        if one is not None:
            rss, cpu = rss + one[0], cpu + one[1]
            pending += child_pids(child)
    return rss, cpu


def process_rss_mb(pid: int) -> float | None:
    """RSS MB of process `pid` alone (not its children); None once it is gone."""
    got = _read_one(pid, with_waited_children=False)
    return None if got is None else got[0]


def _read_one(pid: int, with_waited_children: bool) -> tuple[float, float] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rss_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    used = int(fields[11]) + int(fields[12])
    if with_waited_children:
        used += int(fields[13]) + int(fields[14])
    return rss_kb / PAGE_KB, used / ticks


class FrameMessages:
    """The good messages of one frame, built once; `stamp(msg, ns)` restamps before each publication."""

    def __init__(self, frame: DriveFrame, options: DriveOptions) -> None:
        self.frame = frame
        self.cloud = array_to_cloud(frame.points, make_header(0, frame.lidar_frame), is_dense=True)
        self.images: dict[str, CompressedImage | Image] = {}
        self.infos: dict[str, CameraInfo] = {}
        for name, jpeg in frame.jpegs.items():
            height, width = frame.image_sizes[name]
            k = frame.intrinsics[name].copy()
            if name == options.raw_camera:
                bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                width, height = round(width * options.raw_scale), round(height * options.raw_scale)
                rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                self.images[name] = Image(
                    header=make_header(0, name), height=height, width=width, encoding="rgb8", step=width * 3,
                    data=rgb.tobytes(),
                )  # fmt: skip
                k[:2] *= options.raw_scale
            else:
                self.images[name] = CompressedImage(header=make_header(0, name), format="jpeg", data=jpeg)
            self.infos[name] = CameraInfo(
                header=make_header(0, name), height=height, width=width, k=k.reshape(-1).tolist()
            )
        self.odom = Odometry(header=make_header(0, "map"), child_frame_id="base_link")
        pose = frame.ego2global
        position = self.odom.pose.pose.position
        position.x, position.y, position.z = (float(v) for v in pose[:3, 3])
        from scipy.spatial.transform import Rotation

        q = self.odom.pose.pose.orientation
        q.x, q.y, q.z, q.w = (float(v) for v in Rotation.from_matrix(pose[:3, :3]).as_quat())

    @staticmethod
    def stamp(msg, stamp_ns: int):
        msg.header = make_header(stamp_ns, msg.header.frame_id)
        return msg


class LoadDriver:
    """Publishes, injects faults, listens, samples (see the module docstring); one `run()` per driver."""

    def __init__(
        self, frame: DriveFrame, options: DriveOptions, node_pid: int | None = None, alive=None, recorder=None
    ) -> None:
        self.frame, self.options, self.node_pid = frame, options, node_pid
        self.recorder = recorder  # keeps output clouds for the run's .mcap (drive_foxglove.GridRecorder)
        self._alive = alive  # callable raising when the node process died (OccupancyNodeProcess.check_alive)
        self.messages = FrameMessages(frame, options)
        self._rng = np.random.default_rng(options.seed)
        self.generated = GeneratedFaults(np.random.default_rng(options.seed + 1))
        self._lock = threading.Lock()
        self._t0_ns = 0
        self._offset_ns = 0
        self._silent_until: dict[str, float] = {}
        self._published_lidar: dict[int, int] = {}  # stamp -> monotonic ns of publication
        self.outputs: list[tuple[float, float | None]] = []
        self.diagnostics: list[tuple[float, dict[str, str]]] = []
        self.rss: list[tuple[float, float]] = []
        self.cpu: list[tuple[float, float]] = []
        self.faults_injected: list[tuple[float, str]] = []
        self.last_generated_s: float | None = None
        self.published = {"lidar": 0, "images": 0, "infos": 0, "odom": 0}
        self._huge: PointCloud2 | None = None  # 40 MB, built before the run so that building it stalls nothing
        if "huge_cloud" in options.faults:
            self._huge = fault_lib.bad_cloud("huge_cloud", self.messages.cloud, frame.points, self._rng)
        self._cpu_start = time.process_time()
        self.driver_cpu_s: float | None = None
        self.tf_static = "not published"
        self._stop = threading.Event()

    # --- ROS side ------------------------------------------------------------------------------------
    def _open(self) -> RosHandle:
        ros = RosHandle("tacocc_load_driver")
        node = ros.node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        opts = self.options
        self.pub_images = {
            c: node.create_publisher(type(m), image_topic(c, c == opts.raw_camera), reliable)
            for c, m in self.messages.images.items()
        }
        self.pub_infos = {
            c: node.create_publisher(CameraInfo, camera_topics(c)[1], latched) for c in self.messages.infos
        }
        # A deep LiDAR history: a reliable writer drops a sample from its history once `depth` newer ones are
        # written, and the 40 MB `huge_cloud` takes longer than 10 sweeps (0.5 s) to reach a busy node.
        self.pub_cloud = node.create_publisher(
            PointCloud2, LIDAR_TOPIC, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        )
        self.pub_odom = node.create_publisher(Odometry, ODOM_TOPIC, reliable)
        tf_static = TfStaticPublisher(node)
        if tf_static.publish(self.frame, time.time_ns()):
            self.tf_static = f"published: {len(self.frame.calibration.cameras) + 1} transforms"
        else:
            self.tf_static = f"not published: {tf_static.reason}"
        node.create_subscription(PointCloud2, opts.output_topic, self._on_output, reliable)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        return ros

    def _now_s(self) -> float:
        return (time.monotonic_ns() - self._t0_ns) / 1e9

    def _on_output(self, msg: PointCloud2) -> None:
        received = time.monotonic_ns()
        stamp = stamp_to_ns(msg.header.stamp)
        with self._lock:
            sent = self._published_lidar.pop(stamp, None)
        self.outputs.append((self._now_s(), None if sent is None else (received - sent) / 1e6))
        if self.recorder is not None:
            self.recorder.add(msg)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("tacocc_ros"):
                self.diagnostics.append((self._now_s(), {kv.key: kv.value for kv in status.values}))

    # --- publishing ----------------------------------------------------------------------------------
    def _stamp_ns(self) -> int:
        return time.time_ns() + self._offset_ns

    def _publish_lidar(self, now_s: float, fault: str | None) -> None:
        stamp = self._stamp_ns()
        m = self.messages
        cloud = m.stamp(m.cloud, stamp)
        if fault == "huge_cloud":
            cloud = m.stamp(self._huge, stamp)
        elif fault is not None:
            cloud = fault_lib.bad_cloud(fault, cloud, m.frame.points, self._rng)
        elif self._generate():
            cloud = self.generated.cloud(cloud)
        with self._lock:
            self._published_lidar[stamp] = time.monotonic_ns()
            if len(self._published_lidar) > 2000:  # outputs never came for these: forget the oldest
                for old in sorted(self._published_lidar)[:1000]:
                    del self._published_lidar[old]
        self.pub_cloud.publish(cloud)
        self.published["lidar"] += 1

    def _publish_cameras(self, now_s: float, fault: str | None) -> None:
        stamp = self._stamp_ns()
        m, cams = self.messages, self.options.fault_cameras
        for name, good in m.images.items():
            if self._silent_until.get(name, -1.0) > now_s:
                continue
            msg = m.stamp(good, stamp)
            if fault in ("corrupt_jpeg", "unknown_format") and name == getattr(cams, fault):
                msg = fault_lib.bad_compressed(fault, msg, self._rng)
            elif fault == "wrong_step" and name == cams.wrong_step:
                msg = fault_lib.wrong_step_image(msg)
            elif self._generate():
                msg = self.generated.image(msg)
            self.pub_images[name].publish(msg)
            info = m.stamp(m.infos[name], stamp)
            if fault == "zero_k" and name == cams.zero_k:
                info = fault_lib.zero_k_info(info)
            elif self._generate():
                info = self.generated.info(info)
            self.pub_infos[name].publish(info)
            self.published["images"] += 1
            self.published["infos"] += 1

    def _publish_odom(self, now_s: float, fault: str | None) -> None:
        msg = self.messages.stamp(self.messages.odom, self._stamp_ns())
        if fault == "nan_quaternion":
            msg = fault_lib.nan_quaternion_odom(msg)
        elif self._generate():
            msg = self.generated.odom(msg)
        self.pub_odom.publish(msg)
        self.published["odom"] += 1

    def _generate(self) -> bool:
        """Whether this message is replaced by a generated malformed one (`generated_fraction` of them)."""
        fraction = self.options.generated_fraction
        if fraction <= 0 or self._now_s() < self.options.fault_start_s:
            return False
        if self.options.faults_until_s is not None and self._now_s() > self.options.faults_until_s:
            return False
        if self._rng.random() >= fraction:
            return False
        self.last_generated_s = self._now_s()
        return True

    def _sample(self) -> None:
        if self.node_pid is None:
            return
        got = read_proc(self.node_pid)
        if got is not None:
            now = self._now_s()
            self.rss.append((now, got[0]))
            self.cpu.append((now, got[1]))

    def _fault_stream(self, fault: str) -> str:
        if fault in ("corrupt_jpeg", "unknown_format", "wrong_step", "zero_k"):
            return "cameras"
        if fault == "nan_quaternion":
            return "odom"
        if fault in ("time_jump", "silent_camera"):
            return "now"
        return "lidar"

    def _schedule(self, stop: threading.Event) -> None:
        """Publish until `duration_s`, each stream at its rate; faults replace the next message of their stream."""
        opts = self.options
        periods = {"lidar": 1 / opts.lidar_hz, "cameras": 1 / opts.camera_hz, "odom": 1 / opts.odom_hz}
        periods["sample"] = opts.sample_period_s
        queue = [(0.0, name) for name in ("odom", "cameras", "lidar", "sample")]
        if opts.faults:
            queue.append((opts.fault_start_s, "fault"))
        heapq.heapify(queue)
        pending: dict[str, tuple[str | None, int]] = {}  # stream -> (fault, messages of the stream it still replaces)
        fault_index = 0
        publish = {"lidar": self._publish_lidar, "cameras": self._publish_cameras, "odom": self._publish_odom}
        while queue and not stop.is_set():
            due, what = heapq.heappop(queue)
            if due >= opts.duration_s:
                continue
            wait = due - self._now_s()
            if wait > 0 and stop.wait(wait):
                break
            now = self._now_s()
            if what == "sample":
                self._sample()
            elif what == "fault":
                fault = opts.faults[fault_index % len(opts.faults)]
                fault_index += 1
                self.faults_injected.append((now, fault))
                stream = self._fault_stream(fault)
                if fault == "time_jump":
                    self._offset_ns -= round(opts.time_jump_s * 1e9)
                elif fault == "silent_camera":
                    self._silent_until[opts.fault_cameras.silent_camera] = now + opts.silence_s
                else:
                    pending[stream] = (fault, 1 if fault == "huge_cloud" else opts.fault_repeat)
                next_fault = due + opts.fault_every_s
                if opts.faults_until_s is None or next_fault <= opts.faults_until_s:
                    heapq.heappush(queue, (next_fault, "fault"))
                continue
            else:
                replacing, left = pending.pop(what, (None, 0))
                if left > 1:
                    pending[what] = (replacing, left - 1)
                publish[what](now, replacing)
            heapq.heappush(queue, (due + periods[what], what))

    # --- the run -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """End the publishing of a `run()` in another thread early (it then settles and reports as usual)."""
        self._stop.set()

    def run(self) -> dict:
        """Publish for `duration_s` (or until `stop()`), wait `settle_s` for the last outputs, return the report."""
        self._cpu_start = time.process_time()
        ros = self._open()
        stop = self._stop
        try:
            self._wait_matched()
            self._t0_ns = time.monotonic_ns()
            publisher = threading.Thread(target=self._schedule, args=(stop,), name="drive-publisher", daemon=True)
            publisher.start()
            while publisher.is_alive():
                publisher.join(0.5)
                if self._alive is not None:
                    self._alive()
            end = time.monotonic() + self.options.settle_s
            while time.monotonic() < end:
                time.sleep(0.2)
            self._sample()
        finally:
            stop.set()
            ros.close()
        self.driver_cpu_s = time.process_time() - self._cpu_start
        return self.report()

    def _wait_matched(self, timeout_s: float = 60.0) -> None:
        pubs = [*self.pub_images.values(), self.pub_cloud, self.pub_odom]
        deadline = time.monotonic() + timeout_s
        while not all(p.get_subscription_count() > 0 for p in pubs):
            if self._alive is not None:
                self._alive()
            if time.monotonic() > deadline:
                missing = [p.topic_name for p in pubs if p.get_subscription_count() == 0]
                raise TimeoutError(f"no node subscribed to {', '.join(missing)} within {timeout_s:.0f} s")
            time.sleep(0.1)

    def report(self) -> dict:
        """The measurements so far (see tacocc_ros/tooling/drive_report.py)."""
        opts = self.options
        start, end = opts.warmup_s, opts.duration_s
        measured = [(t, e2e) for t, e2e in self.outputs if start <= t <= end]
        latest = self.diagnostics[-1][1] if self.diagnostics else {}
        key_counts = [(t, len(values)) for t, values in self.diagnostics]
        in_node = [
            {q: _float(values.get(f"latency {q} (ms)")) for q in ("p50", "p99", "max")}
            for t, values in self.diagnostics
            if t >= start
        ]
        cpu_s = self.cpu[-1][1] - self.cpu[0][1] if len(self.cpu) > 1 else None
        cpu_span = self.cpu[-1][0] - self.cpu[0][0] if len(self.cpu) > 1 else None
        last_fault = max((t for t, _ in self.faults_injected), default=None)
        if last_fault is not None and any(f == "silent_camera" for _, f in self.faults_injected[-1:]):
            last_fault += opts.silence_s
        summary = {
            "options": {**asdict(opts), "fault_cameras": asdict(opts.fault_cameras)},
            "source": self.frame.source,
            "tf_static": self.tf_static,
            "duration_s": opts.duration_s,
            "window_s": [start, end],
            "published": dict(self.published),
            "outputs": len(self.outputs),
            "outputs_in_window": len(measured),
            "output_rate_hz": len(measured) / (end - start),
            "latency_end_to_end_ms": drive_report.percentiles([e for _, e in measured]),
            "latency_in_node_ms": {
                "last_window": in_node[-1] if in_node else None,
                "worst_p99": max((x["p99"] for x in in_node if x["p99"] is not None), default=None),
                "worst_max": max((x["max"] for x in in_node if x["max"] is not None), default=None),
            },
            "longest_gap_ms": drive_report.longest_gap([t for t, _ in measured], start, end)["s"] * 1000,
            "longest_gap_at_s": drive_report.longest_gap([t for t, _ in measured], start, end)["at"],
            "dropped": drive_report.counters(latest, "dropped "),
            "failed": drive_report.counters(latest, "failed "),
            "diagnostics_latest": latest,
            "diagnostics_first_seen_s": self._first_seen(),
            "diagnostics_keys": {
                "max": max((n for _, n in key_counts), default=0),
                "at_settle": next((n for t, n in key_counts if t >= drive_report.RSS_SETTLE_S), None),
                "end": key_counts[-1][1] if key_counts else 0,
                "series": key_counts[:: max(1, len(key_counts) // 200)],
            },
            "faults_injected": self.faults_injected,
            "faults_counted": self._faults_counted(latest),
            "outputs_after_last_fault": (
                None if last_fault is None else sum(1 for t, _ in self.outputs if t > last_fault)
            ),
            "generated": dict(sorted(self.generated.counts.items())),
            "generated_total": sum(self.generated.counts.values()),
            "outputs_after_last_generated": (
                None if self.last_generated_s is None else sum(1 for t, _ in self.outputs if t > self.last_generated_s)
            ),
            "rss_mb": self.rss,
            "rss": drive_report.rss_summary(self.rss),
            "node_cpu_percent": None if cpu_s is None or not cpu_span else 100 * cpu_s / cpu_span,
            "driver_cpu_percent": (
                None if self.driver_cpu_s is None else 100 * self.driver_cpu_s / (opts.duration_s + opts.settle_s)
            ),
        }
        return summary

    def _first_seen(self) -> dict[str, float]:
        """When each /diagnostics key first appeared (s since the start): ties a count to its cause."""
        seen: dict[str, float] = {}
        for t, values in self.diagnostics:
            for key in values:
                seen.setdefault(key, round(t, 2))
        return seen

    def _faults_counted(self, latest: dict[str, str]) -> dict:
        out = {}
        for fault in sorted({f for _, f in self.faults_injected}):
            keys = fault_lib.diagnostics_keys(fault, self.options.fault_cameras)
            counts = {k: int(latest[k]) for k in keys if k in latest and latest[k].isdigit()}
            injected = sum(1 for _, f in self.faults_injected if f == fault)
            out[fault] = {"injected": injected, "keys": list(keys), "counted": counts}
        return out


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
