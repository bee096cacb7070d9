"""The occupancy node as a child process, for scripts and tests that drive it over real DDS.

`OccupancyNodeProcess(params, log_path)` writes `params` to a ROS 2 parameters file, starts
`python -m tacocc_ros.node.occupancy_node --ros-args --params-file <yaml>` (the code of this checkout: its root
goes first on the child's PYTHONPATH) with stdout and stderr in `log_path`, and, as a context manager,
waits until the node subscribes to its LiDAR topic and every camera topic, offers its
`~/reload_checkpoint` service and has logged its `ready:` line (the end of its setup: the graph shows the
subscriptions a moment before); on exit it stops the node with SIGINT (the node's own Ctrl-C path) and
keeps its exit code in `returncode`. A node that exits before it is ready raises `NodeProcessError`
carrying the tail of its log.

Readiness is read from the ROS graph through a private rclpy context (`RosHandle`), so the caller's
own `rclpy.init()` (or the lack of one) is left alone. The same handle sets the node's parameters and
calls its reload service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import rclpy
import yaml
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.client import Client
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from std_srvs.srv import Trigger

from tacocc_core.bags.topics import LIDAR_TOPIC, camera_topics
from tacocc_core.config import load_preset
from tacocc_ros.messages.transport import large_message_environment

NODE_NAME = "occupancy_node"
REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_CHARS = 4000


class NodeProcessError(RuntimeError):
    """The node process exited or did not get ready; the message carries the tail of its log."""


def ros_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) with DDS on this machine, a domain id and the large-message profile set.

    Each is set only when the caller has not: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID, and
    the Fast DDS profile for large messages (`tacocc_ros.messages.transport`).

    The domain id defaults to one derived from this process id, so that parallel runs do not see each other;
    set ROS_DOMAIN_ID yourself to share a domain with other processes.
    """
    env = large_message_environment(dict(os.environ if base is None else base))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    return env


def child_environment() -> dict[str, str]:
    """The environment of child processes: `ros_environment()`, this checkout first on PYTHONPATH, unbuffered."""
    env = ros_environment()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    return env


def apply_ros_environment() -> None:
    """Set the defaults of `ros_environment()` in this process (before its first rclpy.init)."""
    for key, value in ros_environment().items():
        os.environ.setdefault(key, value)


def call_service(client: Any, request: Any, timeout_s: float, hint: str = "") -> Any:
    """Call `client`'s service and wait for the answer, which a thread spinning the client's node delivers.

    TimeoutError naming the service when it does not appear within `timeout_s` (with `hint` appended) or
    does not answer within `timeout_s`.
    """
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise TimeoutError(f"no service {client.srv_name} within {timeout_s:.0f} s{hint}")
    future = client.call_async(request)
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout_s):
        raise TimeoutError(f"{client.srv_name} did not answer within {timeout_s:.0f} s")
    return future.result()


class RosHandle:
    """A private rclpy context with one node, spun on a background thread until `close()`."""

    def __init__(self, node_name: str) -> None:
        apply_ros_environment()
        self.context = Context()
        rclpy.init(context=self.context)
        try:
            self.node = rclpy.create_node(node_name, context=self.context)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
        except BaseException:
            rclpy.try_shutdown(context=self.context)
            raise
        self._thread = threading.Thread(target=self._spin, name=f"{node_name}-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, rclpy.executors.ShutdownException):
            pass

    def call(self, client, request, timeout_s: float):
        """Call a service and wait for its response (the spin thread delivers it); TimeoutError otherwise."""
        return call_service(client, request, timeout_s)

    def close(self) -> None:
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()


def _parameter_value(value: Any) -> ParameterValue:
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    if isinstance(value, str):
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    raise TypeError(f"parameter values must be bool, int, float or str, got {type(value).__name__} {value!r}")


class OccupancyNodeProcess:
    """A running `occupancy_node` process (see the module docstring).

    Args:
        params: the node's parameters ({name: value}, names as in config/occupancy_node.yaml).
        log_path: file receiving the node's stdout and stderr (its folder is created).
        startup_timeout_s: how long `start()` waits for the subscriptions and the reload service.
        stop_timeout_s: how long `stop()` waits after SIGINT before it kills the process.
        module: the module run with `python -m` (a benchmark's own way of running the node).
    """

    def __init__(
        self,
        params: dict[str, Any],
        log_path: str | os.PathLike[str],
        startup_timeout_s: float = 180.0,
        stop_timeout_s: float = 30.0,
        module: str = "tacocc_ros.node.occupancy_node",
    ) -> None:
        self.params = dict(params)
        self.module = module
        self.log_path = Path(log_path)
        self.startup_timeout_s, self.stop_timeout_s = startup_timeout_s, stop_timeout_s
        self.returncode: int | None = None
        self._process: subprocess.Popen | None = None
        self._ros: RosHandle | None = None
        self._clients: dict[str, Client[Any, Any]] = {}
        self._params_dir: tempfile.TemporaryDirectory | None = None
        self._log: TextIO | None = None

    # --- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> OccupancyNodeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> OccupancyNodeProcess:
        """Start the process and wait until it is ready; NodeProcessError (with its log) when it is not."""
        config = load_preset(self.params.get("model_config", "nuscenes_r50_256x704"))
        lidar_topic = self.params.get("lidar_topic", LIDAR_TOPIC)
        image_topics = [self.params.get(f"cameras.{c}.image_topic", camera_topics(c)[0]) for c in config.cameras.names]
        self._params_dir = tempfile.TemporaryDirectory(prefix="tacocc-node-")
        params_file = Path(self._params_dir.name) / "params.yaml"
        params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": self.params}}))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        command = [
            sys.executable,
            "-m",
            self.module,
            "--ros-args",
            "--params-file",
            str(params_file),
        ]
        self._process = subprocess.Popen(command, env=child_environment(), stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._ros = RosHandle("occupancy_node_control")
            # The service clients are made with the control node, before the node is ready: a reply sent before
            # the node has matched a client's reply path is lost, and a client made at the call would wait for it.
            self._clients = {
                "set_parameters": self._ros.node.create_client(SetParameters, f"/{NODE_NAME}/set_parameters"),
                "reload_checkpoint": self._ros.node.create_client(Trigger, f"/{NODE_NAME}/reload_checkpoint"),
            }
            self._wait_ready([lidar_topic, *image_topics])
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, topics: list[str]) -> None:
        """Wait for the 'ready:' log line and, in the ROS graph, the node's input topics and reload service.

        The graph is read by node name: another node named occupancy_node on the domain (see `_namesakes`)
        hides this one, and the timeout error then says so.
        """
        deadline = time.monotonic() + self.startup_timeout_s
        service = f"/{NODE_NAME}/reload_checkpoint"
        while True:
            self.check_alive("while starting")
            node = self._control.node
            try:
                subscribed = {name for name, _ in node.get_subscriber_names_and_types_by_node(NODE_NAME, "/")}
                services = {name for name, _ in node.get_service_names_and_types_by_node(NODE_NAME, "/")}
            except Exception:  # noqa: BLE001 - rclpy raises NodeNameNonExistentError until discovery sees it
                subscribed, services = set(), set()
            missing = [t for t in topics if t not in subscribed] + ([service] if service not in services else [])
            if not self._said_ready():
                missing.append("the 'ready:' log line")
            if not missing:
                return
            if time.monotonic() > deadline:
                raise NodeProcessError(
                    f"occupancy node not ready after {self.startup_timeout_s:.0f} s (still missing: "
                    f"{', '.join(missing)}){self._namesakes(node)}\n--- {self.log_path} (tail) ---\n{self.log_tail()}"
                )
            time.sleep(0.1)

    @staticmethod
    def _namesakes(node: Any) -> str:
        """A note when the graph holds more than one node of the name: lookups by name may then read another."""
        same = sum(1 for name, ns in node.get_node_names_and_namespaces() if (name, ns) == (NODE_NAME, "/"))
        if same < 2:
            return ""
        return (
            f"; the ROS graph of domain {os.environ.get('ROS_DOMAIN_ID', '0')} holds {same} nodes named /{NODE_NAME}"
            " (another process, or a node built in this one, has the name)"
        )

    def _said_ready(self) -> bool:
        if self._log is not None:
            self._log.flush()
        try:
            return any("ready:" in line for line in self.log_path.read_text(errors="replace").splitlines())
        except OSError:
            return False

    def stop(self) -> int | None:
        """SIGINT, wait (kill after `stop_timeout_s`); the exit code, also kept in `returncode`."""
        if self._ros is not None:
            self._ros.close()
            self._ros = None
            self._clients = {}
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGINT)
                try:
                    self._process.wait(timeout=self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self.returncode = self._process.returncode
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._params_dir is not None:
            self._params_dir.cleanup()
            self._params_dir = None
        return self.returncode

    # --- while running -------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The node process's id while it runs (RSS and CPU are read from /proc/<pid>)."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    @property
    def _control(self) -> RosHandle:
        """The handle that talks to the node; NodeProcessError when the node was not started or is stopped."""
        if self._ros is None:
            raise NodeProcessError("the occupancy node is not running (start() it first)")
        return self._ros

    def check_alive(self, doing: str) -> None:
        """NodeProcessError with the log tail when the process has exited."""
        if self._process is not None and self._process.poll() is not None:
            self.returncode = self._process.returncode
            if self._log is not None:
                self._log.flush()
            raise NodeProcessError(
                f"occupancy node exited with status {self.returncode} {doing}\n"
                f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
            )

    def set_parameter(self, name: str, value: Any, timeout_s: float = 60.0) -> None:
        """Set one parameter of the running node; NodeProcessError with the node's reason when refused."""
        self.check_alive(f"before setting {name}")
        request = SetParameters.Request(parameters=[Parameter(name=name, value=_parameter_value(value))])
        result = self._control.call(self._clients["set_parameters"], request, timeout_s).results[0]
        if not result.successful:
            raise NodeProcessError(f"occupancy node refused {name}={value!r}: {result.reason}")
        self.params[name] = value

    def reload_checkpoint(self, path: str | os.PathLike[str] | None = None, timeout_s: float = 60.0) -> str:
        """Load new weights without a restart; returns the node's message.

        Sets the `checkpoint` parameter to `path` when it differs from the current one, otherwise calls
        `~/reload_checkpoint` (the node re-reads the same file, e.g. after a training node rewrote it).
        """
        if path is not None and str(path) != self.params.get("checkpoint", ""):
            self.set_parameter("checkpoint", str(path), timeout_s)
            return f"checkpoint set to {path}"
        self.check_alive("before reloading the checkpoint")
        response = self._control.call(self._clients["reload_checkpoint"], Trigger.Request(), timeout_s)
        if not response.success:
            raise NodeProcessError(f"occupancy node could not reload its checkpoint: {response.message}")
        return response.message
