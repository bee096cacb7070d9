"""`tacocc drive` against a real occupancy node process: every fault class survived and counted, outputs after;
then generated malformed messages on the same node (`--generated`).

The 24-second run is the CI version of the 30-minute soak (same driver, same faults); it checks survival,
counting and outputs after the last fault, never timings (the machine is shared). The soak is `slow`.
"""

import socket
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("rclpy")

from tacocc_core.config import load_preset  # noqa: E402
from tacocc_core.viz.foxglove_messages import OCCUPANCY_TOPIC, TF_TOPIC, camera_topic, labels_from_cells  # noqa: E402
from tacocc_ros.tooling import faults  # noqa: E402
from tacocc_ros.tooling.drive_session import SessionOptions, drive  # noqa: E402
from tacocc_ros.tooling.drive_source import frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, driver_node_params  # noqa: E402
from tacocc_ros.tooling.node_process import OccupancyNodeProcess  # noqa: E402

pytestmark = pytest.mark.ros

# A 24 MB cloud can be pushed out of the node's depth-5 sensor queue by newer sweeps while DDS still carries
# it (faults.py), so over DDS it is injected and survived but not always seen; test_occupancy_node_bad_input.py
# hands it to the node directly and checks the count.
MAY_NOT_ARRIVE = {"huge_cloud"}


def check_survived(report: dict, injected_each: int) -> None:
    __tracebackhide__ = True
    assert report["node_alive_at_end"], f"the node died; see {report['node_log']}"
    assert report["node_exit_code"] == 0, f"exit code {report['node_exit_code']}; see {report['node_log']}"
    check_counted(report, injected_each)


def check_counted(report: dict, injected_each: int) -> None:
    """Every fault injected, counted under its /diagnostics keys (a fresh node's counters), grids after."""
    __tracebackhide__ = True
    counted = report["faults_counted"]
    assert set(counted) == set(faults.FAULTS)
    for fault, c in counted.items():
        assert c["injected"] >= injected_each, (fault, c)
        if fault in MAY_NOT_ARRIVE:
            continue
        assert sum(c["counted"].values()) >= 1, f"{fault} injected {c['injected']} times, never counted: {c}"
    assert report["outputs_after_last_fault"] >= 3, "no grids after the last fault"
    assert report["diagnostics_keys"]["max"] < 100, report["diagnostics_latest"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_foxglove(report: dict, read_foxglove_mcap) -> None:
    """A Foxglove client was served every channel through the faults, and the run's .mcap holds the grids."""
    __tracebackhide__ = True
    served = report["foxglove_client"]["messages"]
    cameras = load_preset("demo").cameras.names
    assert all(served.get(t, 0) > 0 for t in (OCCUPANCY_TOPIC, TF_TOPIC, *map(camera_topic, cameras))), served
    channels, messages = read_foxglove_mcap(report["mcap"]["path"])
    assert channels[OCCUPANCY_TOPIC] == ("foxglove.VoxelGrid", "protobuf", "protobuf")
    grids = [m for topic, _, m in messages if topic == OCCUPANCY_TOPIC]
    assert len(grids) == report["mcap"]["grids"] >= 3
    shape = load_preset("demo").grid.spec().shape
    assert all(np.count_nonzero(labels_from_cells(g.data, shape)) > 0 for g in grids)


@pytest.fixture(scope="module")
def node(repo_root, nuscenes_frame_dir, tmp_path_factory):
    """One node process for the two drives of this file (a start costs seconds), as `tacocc drive` starts it,
    with its Foxglove bridge on. The drives run in file order; the last one stops it."""
    tmp = tmp_path_factory.mktemp("drive_node")
    frame = frame_from_fixture(nuscenes_frame_dir)
    port = free_port()
    calibration = frame.write_calibration(tmp / "calibration.yaml")
    params = driver_node_params(
        calibration, str(repo_root / "checkpoints" / "demo.pt"), DriveOptions(), {"foxglove_port": port}
    )
    process = OccupancyNodeProcess(params, tmp / "node.log")
    with process:
        yield SimpleNamespace(process=process, frame=frame, port=port, log=tmp / "node.log", failed_before=None)


def session_on(node, repo_root, **changes) -> SessionOptions:
    return SessionOptions(
        checkpoint=str(repo_root / "checkpoints" / "demo.pt"), bench=False, start_node=False,
        node_pid=node.process.pid, **changes,
    )  # fmt: skip


@pytest.mark.timeout(400)
def test_half_a_minute_of_every_fault_is_survived_counted_and_followed_by_grids(
    node, repo_root, tmp_path, read_foxglove_mcap
):
    # Every fault, one a second from t=3 s; the last at 15 s, the silent camera until 17 s, then 7 s clean.
    # Each replaces 10 messages of its stream (0.8 s of camera_info, which the node queues one deep; the next
    # camera fault comes 1 s later): a node on a loaded machine may take no single given message of a topic,
    # and with 6 (0.5 s) a loaded node once took none of a zero-K CameraInfo's. The huge cloud keeps a loaded node
    # busy for a while, so it comes after the faults of single messages, followed only by the two that last
    # (every stamp from then on earlier, a camera silent for 2 s: its frames time out or run degraded
    # after the 0.2 s sync timeout).
    lasting = ("huge_cloud", "time_jump", "silent_camera")
    order = tuple(f for f in faults.FAULTS if f not in lasting) + lasting
    options = DriveOptions(
        duration_s=24.0, warmup_s=3.0, faults=order, fault_start_s=3.0, fault_every_s=1.0, faults_until_s=16.0,
        fault_repeat=10, silence_s=2.0,
    )  # fmt: skip
    # With the Foxglove bridge served to a client all along, and the run's .mcap.
    session = session_on(
        node,
        repo_root,
        node_params={"foxglove_port": node.port},
        foxglove_client=True,
        mcap=str(tmp_path / "drive.mcap"),
    )
    report = drive(node.frame, options, session, tmp_path / "drive.json")
    node.process.check_alive(f"after the fault drive (log {node.log})")
    check_counted(report, injected_each=1)
    node.failed_before = report["failed"]
    check_foxglove(report, read_foxglove_mcap)
    assert (tmp_path / "drive.json").is_file() and (tmp_path / "drive.png").is_file()
    assert report["rss_mb"] and report["published"]["lidar"] > 0 and report["outputs"] > 0


@pytest.mark.timeout(300)
def test_a_short_drive_with_generated_bad_messages_keeps_the_node_publishing(node, repo_root, tmp_path):
    """`tacocc drive --generated`: a fifth of every stream malformed (3 s of it, about 130 messages, then
    3.5 s clean) leaves the node alive, publishing grids after the last bad message, with a bounded log.
    Its counters are compared with those at the end of the fault drive before it (None: a fresh node)."""
    options = DriveOptions(
        duration_s=7.5, warmup_s=1.5, fault_start_s=1.5, faults_until_s=4.5, generated_fraction=0.2, settle_s=3.0
    )
    before = node.failed_before or {}
    lines_before = len(node.log.read_text(errors="replace").splitlines())
    report = drive(node.frame, options, session_on(node, repo_root), tmp_path / "drive.json")
    node.process.check_alive(f"after the generated drive (log {node.log})")
    assert report["generated_total"] > 50, report["generated"]
    assert {key.split()[0] for key in report["generated"]} >= {"lidar", "compressed", "info", "odom"}
    assert report["outputs_after_last_generated"] >= 1, "no grid after the last generated message"
    counted = {k: n - before.get(k, 0) for k, n in report["failed"].items() if n > before.get(k, 0)}
    assert counted, f"the node counted none of the malformed messages: {report['failed']} (before: {before})"
    lines = len(node.log.read_text(errors="replace").splitlines()) - lines_before
    assert lines < 200, f"{lines} log lines in 7.5 s: not throttled"
    assert node.process.stop() == 0, node.log.read_text()[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_thirty_minute_soak_survives_without_growing(repo_root, nuscenes_frame_dir, tmp_path):
    options = DriveOptions(duration_s=1800.0, warmup_s=60.0, faults=faults.FAULTS, fault_every_s=4.0)
    session = SessionOptions(checkpoint=str(repo_root / "checkpoints" / "demo.pt"), bench=False)
    report = drive(frame_from_fixture(nuscenes_frame_dir), options, session, tmp_path / "soak.json")
    check_survived(report, injected_each=30)
    assert report["rss"]["growth_after_settle_mb"] <= 20.0, report["rss"]
