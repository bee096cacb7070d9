"""Run a bag through a running occupancy node and record what it publishes.

    from tacocc_ros.tooling.replay import record_replay, load_recording
    recording = record_replay("bags/scene-0061", "runs/replay", {"model_config": "tiny", "checkpoint": "t.pt",
                              "device": "cpu"}, rate=0.5)
    recording.dropped_stamps, recording.latency_ms, load_recording("runs/replay").preds

Pieces, all real processes over DDS:
- the node: `OccupancyNodeProcess` (tacocc_ros/tooling/node_process.py), with the bag's `calibration.yaml` as its
  `calibration` and the defaults of `replay_node_params` (reliable sensor QoS, latency from arrival, ...);
- the recorder: `ReplayRecorder` (tacocc_ros/tooling/replay_recorder.py), an rclpy node in this process;
- the player: `python -m tacocc_ros.cli play BAG --rate R --wait-subscribers S --delay D --topics ...` as a
  separate process, publishing the cameras, camera_info, LiDAR, odometry and `/occupancy/gt` of the bag.

After the player exits, a pass waits for the grids of every expected stamp (the LiDAR stamps of
`bag_frames(bag, config, sync)` with the node's own matching rule: the frames the node should build) or
`settle_s`, then for a `/diagnostics` message that counts them. `ReplaySession` keeps one node and one
recorder for several passes (e.g. a checkpoint reload in between); `record_replay` is one session with one
pass, written with `tacocc_core.recording.save_recording` once the node has exited (its exit code is part
of the recording).

The node is keep-latest: a frame that arrives while the worker is still busy with the one before the
previous is dropped (`dropped replaced` on /diagnostics, missing from `received_stamps`). Pick `rate` so
that the node keeps up; `ReplayOptions.warmup` plays the bag once unrecorded first, since the first frames
of a fresh process run several times slower. Passes are separated by time going backwards (the bag
starting again), which resets the node's synchroniser, sweep buffer and temporal state; that needs a bag
longer than the node's reset threshold (1 s).

Errors: a bag that does not exist, is not readable, lacks a sensor topic or its calibration.yaml raises
BagError / CalibrationError before any process starts; a node that exits early raises NodeProcessError
with the tail of its log; a player that fails raises ReplayError with its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tacocc_core.bags.reading import BagError, BagReader, image_topics, require_sensor_topics
from tacocc_core.bags.topics import LABELS_TOPIC, LIDAR_TOPIC, ODOM_TOPIC, camera_topics
from tacocc_core.config import ModelConfig, load_preset
from tacocc_core.geometry import GridSpec
from tacocc_core.recording import Recording, load_recording, save_recording
from tacocc_core.rig.calibration_file import load_calibration
from tacocc_ros.bags.bag_frames import bag_frames
from tacocc_ros.node.node_params import param_values, sync_config
from tacocc_ros.node.sync import SyncConfig
from tacocc_ros.tooling.node_process import NodeProcessError, OccupancyNodeProcess, child_environment
from tacocc_ros.tooling.replay_recorder import GRID_TOPIC, PassResult, ReplayRecorder

__all__ = [
    "NodeProcessError",
    "OccupancyNodeProcess",
    "Recording",
    "ReplayError",
    "ReplayOptions",
    "ReplayPlan",
    "ReplaySession",
    "load_recording",
    "node_sync_config",
    "plan_replay",
    "record_replay",
    "replay_node_params",
]

# Node parameters a replay sets unless the caller does: no sample lost on the way in,
# frequent diagnostics, and time for a late odometry message.
REPLAY_NODE_DEFAULTS: dict[str, Any] = {
    "extrinsics": "calibration",
    "sensor_reliability": "reliable",
    "diagnostics_period_s": 0.5,
    "odom_wait_s": 2.0,
}


class ReplayError(RuntimeError):
    """The player failed or the replay could not be run; the message says which and why."""


@dataclass(frozen=True)
class ReplayOptions:
    """How a pass is run.

    Args:
        warmup: play the bag once unrecorded before the recorded pass (the node's first frames are slow).
        warmup_rate: the speed of that pass (its frames may be dropped; only its last one is waited for).
        wait_subscribers_s: the player waits up to this long for the node's and the recorder's subscriptions.
        delay_s: then this long before its first message (the subscribers' side of discovery).
        settle_s: after the player exits, wait at most this long for the grids of the expected stamps.
        player_timeout_s: extra time the player may take beyond the bag's duration / rate.
    """

    warmup: bool = False
    warmup_rate: float = 2.0
    wait_subscribers_s: float = 30.0
    delay_s: float = 1.0
    settle_s: float = 60.0
    player_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.warmup_rate > 0:
            raise ValueError(f"ReplayOptions.warmup_rate must be > 0, got {self.warmup_rate}")
        for name in ("wait_subscribers_s", "delay_s", "settle_s", "player_timeout_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ReplayOptions.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class ReplayPlan:
    """What a bag should give: the topics to play, the expected LiDAR stamps (ascending), its label grid."""

    bag: Path
    config: ModelConfig
    topics: tuple[str, ...]
    expected_stamps: tuple[int, ...]
    label_grid: GridSpec | None
    duration_s: float


def plan_replay(bag: str | os.PathLike[str], config: ModelConfig, sync: SyncConfig | None = None) -> ReplayPlan:
    """Check the bag and list its expected frames, without starting anything.

    `sync` is the node's matching rule (`node_sync_config` of its parameters); default: the node's defaults.

    Raises:
        BagError: no such bag, unreadable, a missing camera / camera_info / LiDAR topic (named).
        CalibrationError: a missing or invalid calibration.yaml in the bag folder.
    """
    bag = Path(bag)
    if not bag.exists():
        raise BagError(f"{bag}: no such bag (expected a rosbag2 folder written by tacocc convert-nuscenes)")
    cameras = tuple(config.cameras.names)
    with BagReader(bag) as reader:
        require_sensor_topics(reader, cameras)
        images = image_topics(reader.topics, cameras)
        wanted = [
            LIDAR_TOPIC,
            ODOM_TOPIC,
            LABELS_TOPIC,
            *(t for c in cameras for t in (images[c], camera_topics(c)[1])),
        ]
        topics = tuple(t for t in wanted if t in reader.topics)
        duration_s = reader.duration_ns / 1e9
    expected = tuple(sorted(item.frame.stamp_ns for item in bag_frames(bag, config, sync)))
    label_grid = load_calibration(bag).label_grid if LABELS_TOPIC in topics else None
    return ReplayPlan(bag, config, topics, expected, label_grid, duration_s)


def replay_node_params(bag: str | os.PathLike[str], node_params: dict[str, Any]) -> dict[str, Any]:
    """`node_params` over REPLAY_NODE_DEFAULTS, with the bag's calibration.yaml as `calibration` unless given."""
    if "model_config" not in node_params:
        raise ValueError("node_params must name the model_config (a preset name or YAML path)")
    return {**REPLAY_NODE_DEFAULTS, "calibration": str(Path(bag) / "calibration.yaml"), **node_params}


def node_sync_config(node_params: dict[str, Any], config: ModelConfig) -> SyncConfig:
    """How the node with `node_params` (over its defaults) matches images to sweeps."""
    cameras = tuple(config.cameras.names)
    return sync_config(param_values(cameras, node_params), cameras)


class ReplaySession:
    """One occupancy node process and one recorder, for one or more passes of bags.

    Args:
        node_params: the node's parameters (see `replay_node_params`); `model_config` is required.
        log_path: the node's log file.
        options: how passes are run.
    """

    def __init__(
        self, node_params: dict[str, Any], log_path: str | os.PathLike[str], options: ReplayOptions = ReplayOptions()
    ) -> None:
        if "model_config" not in node_params:
            raise ValueError("node_params must name the model_config (a preset name or YAML path)")
        self.config = load_preset(node_params["model_config"])
        self.sync = node_sync_config(node_params, self.config)
        self.options = options
        self.node = OccupancyNodeProcess(node_params, log_path)
        self.recorder: ReplayRecorder | None = None

    def __enter__(self) -> ReplaySession:
        self.node.start()
        try:
            self.recorder = ReplayRecorder(self.config.grid.spec())
        except BaseException:
            self.node.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> int | None:
        """Stop the recorder and the node; the node's exit code."""
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        return self.node.stop()

    def warm_up(self, bag: str | os.PathLike[str], rate: float = 2.0) -> None:
        """One unrecorded pass: the first frames of a fresh node process run several times slower."""
        self._pass(plan_replay(bag, self.config, self.sync), rate)

    def replay(self, bag: str | os.PathLike[str], rate: float = 1.0) -> Recording:
        """Play `bag` once (after a warm-up pass if the options say so) and return what arrived.

        The Recording's `node_exit_code` is -1: the node is still running (`record_replay` fills it in).
        """
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if self.recorder is None:
            raise ReplayError("ReplaySession.replay outside `with ReplaySession(...)`")
        plan = plan_replay(bag, self.config, self.sync)
        if self.options.warmup:
            self._pass(plan, self.options.warmup_rate)
        result = self._pass(plan, rate)
        return Recording(
            bag=str(plan.bag),
            model_config=str(self.node.params["model_config"]),
            checkpoint=str(self.node.params.get("checkpoint", "")),
            rate=float(rate),
            expected_stamps=plan.expected_stamps,
            received_stamps=tuple(sorted(result.preds)),
            latency_ms=result.latency_ms,
            diagnostics=result.diagnostics,
            node_exit_code=-1,
            preds=result.preds,
            gts=result.gts,
        )

    # --- one pass ------------------------------------------------------------------------------------
    def _pass(self, plan: ReplayPlan, rate: float) -> PassResult:
        recorder, node = self.recorder, self.node
        if recorder is None:
            raise ReplayError("replay: the recorder is not running (the replay was closed)")
        self._wait(lambda: recorder.matched_publishers(GRID_TOPIC) > 0, 30.0, f"the node's {GRID_TOPIC} publisher")
        before = recorder.latest_diagnostics()
        published_before = int(before[1].get("published", 0)) if before else 0
        recorder.start_pass()
        self._play(plan, rate)
        # The node's worker takes frames in order and the last one is never replaced: once its grid is
        # here, every other expected grid has come or was dropped.
        if plan.expected_stamps:
            last = plan.expected_stamps[-1]
            self._wait(lambda: last in recorder.grid_stamps(), self.options.settle_s, None)
        received = len(recorder.grid_stamps())
        period = float(node.params.get("diagnostics_period_s", 1.0))
        self._wait(lambda: self._published_since(published_before) >= received, 3 * period + 2.0, None)
        return recorder.pass_result(label_grid=plan.label_grid, label_source=str(plan.bag))

    def _published_since(self, before: int) -> int:
        if self.recorder is None:
            raise ReplayError("replay: the recorder is not running (the replay was closed)")
        latest = self.recorder.latest_diagnostics()
        return int(latest[1].get("published", 0)) - before if latest else 0

    def _wait(self, condition, timeout_s: float, what: str | None) -> bool:
        """Poll `condition` while the node lives; False after `timeout_s`, or ReplayError naming `what`."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            self.node.check_alive("during the replay")
            if time.monotonic() > deadline:
                if what is not None:
                    raise ReplayError(f"timed out after {timeout_s:.0f} s waiting for {what}")
                return False
            time.sleep(0.05)
        return True

    def _play(self, plan: ReplayPlan, rate: float) -> None:
        opts = self.options
        command = [
            sys.executable, "-m", "tacocc_ros.cli", "play", str(plan.bag), "--rate", repr(float(rate)),
            "--wait-subscribers", str(opts.wait_subscribers_s), "--delay", str(opts.delay_s), "--topics", *plan.topics,
        ]  # fmt: skip
        timeout = opts.wait_subscribers_s + opts.delay_s + plan.duration_s / rate + opts.player_timeout_s
        with tempfile.TemporaryFile("w+") as output:
            player = subprocess.Popen(command, env=child_environment(), stdout=output, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            try:
                while player.poll() is None:
                    self.node.check_alive("while the bag was playing")
                    if time.monotonic() > deadline:
                        raise ReplayError(f"tacocc play {plan.bag} still running after {timeout:.0f} s")
                    time.sleep(0.05)
            finally:
                if player.poll() is None:
                    player.kill()
                    player.wait()
            if player.returncode != 0:
                output.seek(0)
                raise ReplayError(f"tacocc play {plan.bag} exited with status {player.returncode}:\n{output.read()}")


def record_replay(
    bag: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    node_params: dict[str, Any],
    rate: float = 1.0,
    options: ReplayOptions = ReplayOptions(),
    log_path: str | os.PathLike[str] | None = None,
) -> Recording:
    """Start a node on `bag`'s calibration, play the bag once through it, stop it, write the recording.

    Args:
        bag: a bag folder written by `tacocc convert-nuscenes` (calibration.yaml inside).
        out_dir: the recording directory (tacocc_core/recording.py), written atomically.
        node_params: the node's parameters; `model_config` is required, see `replay_node_params` for defaults.
        rate: playback speed factor.
        options: warm-up, waits, settle time.
        log_path: the node's log (default `<out_dir>.node.log` beside the recording).

    Returns:
        The Recording as written (`load_recording(out_dir)` reads it back).
    """
    params = replay_node_params(bag, node_params)
    config = load_preset(params["model_config"])
    plan_replay(bag, config, node_sync_config(params, config))  # bad bags fail here, before any process starts
    out_dir = Path(out_dir)
    log_path = Path(log_path) if log_path is not None else out_dir.with_name(out_dir.name + ".node.log")
    with ReplaySession(params, log_path, options) as session:
        recording = session.replay(bag, rate)
    exit_code = session.node.returncode
    recording = replace(recording, node_exit_code=-1 if exit_code is None else int(exit_code))
    save_recording(out_dir, recording)
    return recording
