"""occupancy_node as a managed node, driven through its real lifecycle services over DDS.

The node runs as `python -m tacocc_ros.node.occupancy_node` with `autostart: false` (demo preset,
`checkpoints/demo.pt`, the fixture frame's calibration); this test is a client of its
`~/change_state` and `~/get_state` services and reads its log on /rosout and the ROS graph.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from tacocc_ros.messages.stamps import stamp_to_ns  # noqa: E402
from tacocc_ros.tooling.drive_source import frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, driver_node_params  # noqa: E402
from tacocc_ros.tooling.node_process import child_environment  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
NODE = "occupancy_node"


class Client:
    """A private rclpy participant: lifecycle service clients, /rosout and /diagnostics listeners."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("lifecycle_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.change = self.node.create_client(ChangeState, f"/{NODE}/change_state")
        self.get = self.node.create_client(GetState, f"/{NODE}/get_state")
        rosout = QoSProfile(
            depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.logs: list[Log] = []
        self.node.create_subscription(Log, "/rosout", lambda m: self.logs.append(m) if m.name == NODE else None, rosout)
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def spin_until(self, done, what: str, timeout_s: float = 120.0, process=None) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if process is not None and process.poll() is not None:
                raise AssertionError(f"the node exited with {process.returncode} while waiting for {what}")
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.executor.spin_once(timeout_sec=0.05)

    def call(self, client, request):
        future = client.call_async(request)
        self.spin_until(future.done, f"a response from {client.srv_name}")
        return future.result()

    def state(self) -> str:
        """The node's state. GetState is asked again when an answer takes more than 5 s: a service can be
        "ready" on the client's side before the server's reply path has matched, and DDS then drops the
        reply (it changes nothing, so asking twice is safe; a transition is never resent)."""
        deadline = time.monotonic() + 120.0
        while True:
            future = self.get.call_async(GetState.Request())
            try:
                self.spin_until(future.done, f"a response from {self.get.srv_name}", timeout_s=5.0)
                return future.result().current_state.label
            except AssertionError:
                self.get.remove_pending_request(future)
                assert time.monotonic() < deadline, f"timed out waiting for a response from {self.get.srv_name}"

    def transition(self, label: str = "", transition_id: int = 0) -> bool:
        """Whether the node took the transition. Sent once; if its reply is lost (see `state`), the answer is
        whether the state changed."""
        before = self.state()
        future = self.change.call_async(ChangeState.Request(transition=Transition(id=transition_id, label=label)))
        try:
            self.spin_until(future.done, f"a response from {self.change.srv_name}", timeout_s=60.0)
        except AssertionError:
            self.change.remove_pending_request(future)
            return self.state() != before
        return future.result().success

    def subscriptions(self) -> set[str]:
        try:
            return {name for name, _ in self.node.get_subscriber_names_and_types_by_node(NODE, "/")}
        except Exception:  # noqa: BLE001 - rclpy raises until discovery sees the node
            return set()

    def publishers(self) -> set[str]:
        try:
            return {name for name, _ in self.node.get_publisher_names_and_types_by_node(NODE, "/")}
        except Exception:  # noqa: BLE001
            return set()

    def warned(self, text: str) -> bool:
        return any(m.level == Log.WARN and text in m.msg for m in self.logs)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def node_process(repo_root, nuscenes_frame_dir, tmp_path):
    frame = frame_from_fixture(nuscenes_frame_dir)
    calibration = frame.write_calibration(tmp_path / "calibration.yaml")
    params = driver_node_params(calibration, str(repo_root / "checkpoints" / "demo.pt"), DriveOptions())
    params.update(autostart=False, inference_threads=1, diagnostics_period_s=0.2)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    log = tmp_path / "node.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tacocc_ros.node.occupancy_node", "--ros-args", "--params-file", str(params_file)],
            env=child_environment(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    client = Client()
    try:
        yield process, client, log
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(30)


def inference_pid(log: Path) -> int:
    line = next(line for line in log.read_text().splitlines() if "ready:" in line)
    return int(line.split("inference in process ")[1].split()[0])


def test_configure_activate_deactivate_cleanup_shutdown_with_refusals(node_process):
    process, client, log = node_process
    client.spin_until(lambda: client.get.service_is_ready(), "the lifecycle services", process=process)
    assert client.state() == "unconfigured"
    assert "ready:" not in log.read_text()  # nothing heavy before configure
    assert "/LIDAR_TOP" not in client.subscriptions()

    # Asked in the wrong state: refused with the reason, the node stays where it was.
    assert not client.transition(transition_id=Transition.TRANSITION_ACTIVATE)
    client.spin_until(lambda: client.warned("transition '3' refused: the node is unconfigured"), "the refusal")
    assert client.state() == "unconfigured"

    assert client.transition("configure")
    assert client.state() == "inactive"
    pid = inference_pid(log)
    assert Path(f"/proc/{pid}").exists()
    assert not client.transition("configure")  # asked twice
    client.spin_until(
        lambda: client.warned("transition 'configure' refused: the node is inactive, which allows activate, cleanup"),
        "the refusal of a second configure",
    )
    assert client.state() == "inactive"
    time.sleep(0.5)
    assert "/LIDAR_TOP" not in client.subscriptions() and "/occupancy/markers" not in client.publishers()

    assert client.transition("activate")
    assert client.state() == "active"
    client.spin_until(
        lambda: (
            {"/LIDAR_TOP", "/odom", "/CAM_FRONT/image_rect/compressed"} <= client.subscriptions()
            and {"/occupancy/markers", "/occupancy/cloud"} <= client.publishers()
        ),
        "the inputs and outputs of the active node",
    )
    client.spin_until(lambda: client.diagnostics, "/diagnostics")
    assert not client.transition("activate")  # asked twice
    client.spin_until(lambda: client.warned("transition 'activate' refused: the node is active"), "the refusal")
    values = {kv.key: kv.value for kv in client.diagnostics[-1].status[0].values}
    assert int(values.get("refused transitions", "0")) >= 1

    assert client.transition("deactivate")
    deactivated_ns = time.time_ns()  # the node stamps /diagnostics with its (system) clock
    assert client.state() == "inactive"
    client.spin_until(lambda: "/LIDAR_TOP" not in client.subscriptions(), "the inputs to go")
    client.spin_until(lambda: "/occupancy/markers" not in client.publishers(), "the outputs to go")
    for _ in range(10):  # 1 s: /diagnostics every 0.2 s while active, none now
        client.executor.spin_once(timeout_sec=0.1)
    # By stamp, not by count: on a loaded machine one published before the deactivation may arrive late.
    late = [stamp_to_ns(d.header.stamp) - deactivated_ns for d in client.diagnostics]
    assert max(late) < 0, f"/diagnostics stamped {max(late) / 1e9:.2f} s after the deactivation"

    assert client.transition("cleanup")
    assert client.state() == "unconfigured"
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "the network process outlived cleanup"
        time.sleep(0.1)

    assert client.transition("configure") and client.transition("activate")  # again, from scratch
    assert client.state() == "active"
    assert client.transition("shutdown")  # from active
    assert process.wait(60) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text and "never retrieved" not in text, text[-3000:]


@pytest.fixture(scope="module")
def unconfigurable_node(tmp_path_factory):
    """A node whose calibration file is missing: it starts (unconfigured), and every configure fails."""
    tmp = tmp_path_factory.mktemp("unconfigurable")
    params = {"model_config": "demo", "autostart": False, "calibration": str(tmp / "missing.yaml")}
    (tmp / "params.yaml").write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    with (tmp / "node.log").open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tacocc_ros.node.occupancy_node", "--ros-args", "--params-file",
             str(tmp / "params.yaml")],
            env=child_environment(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    client = Client()
    try:
        yield process, client, tmp
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(30)


# These two share one node process (a start costs seconds) and run in file order.
def test_a_bad_parameter_fails_configure_with_its_reason_and_the_node_keeps_running(unconfigurable_node):
    process, client, tmp = unconfigurable_node
    client.spin_until(lambda: client.get.service_is_ready(), "the lifecycle services", process=process)
    assert not client.transition("configure")
    assert client.state() == "unconfigured"
    client.spin_until(lambda: any("configure failed" in m.msg for m in client.logs), "the configure error")
    error = next(m.msg for m in client.logs if "configure failed" in m.msg)
    assert f"calibration: file '{tmp / 'missing.yaml'}' not found" in error
    assert process.poll() is None


def test_shutdown_from_unconfigured_ends_the_process(unconfigurable_node):
    process, client, tmp = unconfigurable_node
    client.spin_until(lambda: client.get.service_is_ready(), "the lifecycle services", process=process)
    assert client.state() == "unconfigured"
    assert client.transition("shutdown")
    assert process.wait(60) == 0, (tmp / "node.log").read_text()[-3000:]
