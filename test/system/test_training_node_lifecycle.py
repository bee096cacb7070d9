"""training_node as a managed node (`autostart: false`), driven through its real lifecycle services over DDS.

The node runs as `python -m tacocc_ros.training.training_node` on a bag converted from a generated scene
(tiny preset, renderer off, 3 steps); this test is a client of its `~/change_state` and `~/get_state`
services and reads `~/progress` and its log on /rosout.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Log
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from test_training_node import TRAIN_YAML, command, environment
from test_training_node import bag as bag  # the module's converted bag, a fixture

from tacocc_core.checkpoint import load_checkpoint
from tacocc_core.config import load_preset

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
NODE = "training_node"
LATCHED = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Client:
    """A private rclpy participant: the node's lifecycle services, its ~/progress and its /rosout lines."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("training_lifecycle_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.change = self.node.create_client(ChangeState, f"/{NODE}/change_state")
        self.get = self.node.create_client(GetState, f"/{NODE}/get_state")
        self.logs: list[Log] = []
        self.node.create_subscription(
            Log, "/rosout", lambda m: self.logs.append(m) if m.name == NODE else None, LATCHED
        )
        self.progress: list[dict] = []
        self.node.create_subscription(
            String, f"/{NODE}/progress", lambda m: self.progress.append(json.loads(m.data)), LATCHED
        )

    def _on_log(self, message: Log) -> None:
        if message.name == NODE:
            self.logs.append(message)

    def spin_until(self, done: Callable[[], bool], what: str, timeout_s: float = 120.0, process=None) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if process is not None and process.poll() is not None:
                raise AssertionError(f"the node exited with {process.returncode} while waiting for {what}")
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.executor.spin_once(timeout_sec=0.05)

    def state(self) -> str:
        """The node's state from `get_state`; asked again when an answer takes more than 5 s (a reply sent
        before the server's reply path matched the client is dropped by DDS; asking twice changes nothing)."""
        deadline = time.monotonic() + 120.0
        while True:
            future = self.get.call_async(GetState.Request())
            try:
                self.spin_until(future.done, "a get_state response", timeout_s=5.0)
                return future.result().current_state.label
            except AssertionError:
                self.get.remove_pending_request(future)
                assert time.monotonic() < deadline, "timed out waiting for a get_state response"

    def transition(self, label: str = "", transition_id: int = 0) -> bool:
        """Whether the node took the transition (sent once; the state is already known to answer)."""
        future = self.change.call_async(ChangeState.Request(transition=Transition(id=transition_id, label=label)))
        self.spin_until(future.done, f"a {label or transition_id} response", timeout_s=120.0)
        return future.result().success

    def logged(self, level: int, text: str) -> bool:
        return any(m.level == level and text in m.msg for m in self.logs)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def start(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(args, env=environment(), stdout=out, stderr=subprocess.STDOUT)


def test_configure_activate_pause_continue_finish(bag, tmp_path):
    """Steps run while active; deactivate ends the step in progress and writes latest.pt at it; activate
    goes on from that step to the last; the node then stays active until shutdown ends the process (0)."""
    run = tmp_path / "run"
    no_renderer = tmp_path / "train.yaml"  # steps of seconds on a CPU
    no_renderer.write_text(TRAIN_YAML.read_text().replace("renderer: true", "renderer: false"))
    args = command(bag, run, 3, 100, "autostart:=false", f"train_config:={no_renderer}")
    process = start(args, tmp_path / "node.log")
    client = Client()
    try:
        client.spin_until(client.get.service_is_ready, "the lifecycle services", process=process)
        assert client.state() == "unconfigured"
        assert not client.transition(transition_id=Transition.TRANSITION_ACTIVATE)  # not configured yet
        client.spin_until(
            lambda: client.logged(Log.WARN, "transition '3' refused: the node is unconfigured"), "the refusal"
        )
        assert client.state() == "unconfigured"

        assert client.transition("configure")
        assert client.state() == "inactive" and not run.exists()
        assert client.transition("activate")
        client.spin_until(lambda: client.progress, "the first step's progress", process=process)
        assert client.state() == "active"  # answered while a step runs

        assert client.transition("deactivate")  # answered once the step in progress has ended
        assert client.state() == "inactive"
        paused = load_checkpoint(run / "latest.pt", expected=load_preset("tiny"))["step"]
        client.spin_until(lambda: client.logged(Log.INFO, f"paused at step {paused}"), "the pause line")
        assert 1 <= paused < 3 and client.progress[-1]["step"] == paused

        assert client.transition("activate")
        client.spin_until(lambda: client.logged(Log.INFO, "done at step 3"), "the last step", process=process)
        assert [p["step"] for p in client.progress] == [1, 2, 3]  # from the pause on, no step repeated
        assert client.progress[-1]["checkpoint"] == str(run / "latest.pt")
        assert load_checkpoint(run / "latest.pt", expected=load_preset("tiny"))["step"] == 3
        assert client.state() == "active" and process.poll() is None

        assert client.transition("shutdown")
        assert process.wait(60) == 0
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(30)
    text = (tmp_path / "node.log").read_text()
    assert "Traceback" not in text, text[-3000:]
    assert [p.name for p in run.iterdir()] == ["latest.pt"]


def test_configure_on_a_missing_bag_fails_with_its_reason_and_the_node_stays(tmp_path):
    missing = tmp_path / "missing_bag"
    process = start(command(missing, tmp_path / "run", 1, 1, "autostart:=false"), tmp_path / "node.log")
    client = Client()
    try:
        client.spin_until(client.get.service_is_ready, "the lifecycle services", process=process)
        assert client.state() == "unconfigured"
        assert not client.transition("configure")
        assert client.state() == "unconfigured"
        client.spin_until(
            lambda: client.logged(Log.ERROR, f"configure failed: BagError: {missing}: no such bag"), "the reason"
        )
        assert process.poll() is None
        assert client.transition("shutdown")
        assert process.wait(60) == 0
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(30)
    assert not (tmp_path / "run").exists()
