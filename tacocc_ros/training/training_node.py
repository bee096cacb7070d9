"""`training_node`: fine-tunes a checkpoint on recorded bags and reports its progress over ROS 2.

    ros2 run tacocc_ros training_node --ros-args -p bags:="['/data/bags/scene-0061']" \
        -p model_config:=tiny -p train_config:=config/train_tiny.yaml -p out_dir:=runs/online

Reads the bags directly (no playback), assembles frames as the occupancy node does (`bag_frames`) and
trains with the training engine (`bag_training.FineTuner`). The topic parameters are the occupancy
node's (`lidar_topic`, `odom_topic`, `ego_frame`, `cameras.<NAME>.image_topic` / `info_topic`, the
matching parameters `slop_s`, `timeout_s`, `min_cameras`, `cameras.<NAME>.offset_s`) plus
`labels_topic`, so one params file (`--ros-args --params-file`) serves both nodes; parameters of the
other node in it are ignored here (`training_params.py`). The rig of each bag comes from `calibration`,
else the bag's `calibration.yaml`, else its /tf_static and camera_info; the log says which. Every
`checkpoint_interval` steps it writes `<out_dir>/latest.pt` atomically; point the occupancy node's
`checkpoint` parameter at it (or call its `~/reload_checkpoint` service) to use the new weights without a
restart. Each step publishes `{"step", "total_steps", "loss", "terms", "frames_per_s", "checkpoint"}` as
JSON in a std_msgs/String on `~/progress` and logs it. Nothing partial is written (checkpoints are
written to a temp name, then renamed).

A managed (lifecycle) node; with `autostart` (the default) it configures and activates itself at startup
and the process exits when the steps are done (status 0), or with status 1 when configure fails:
- configure: parameters checked, the bags read into frames, the initial checkpoint (or with `resume`,
  `latest.pt`) loaded, the FineTuner built, the `~/progress` publisher created (inactive). Bad input (a
  missing bag or topic, no labels in supervised mode, a mismatching checkpoint, an existing `latest.pt`
  without `resume`) fails the transition with its reason logged, naming the bag/topic/file; the node stays
  unconfigured (with `autostart`, the process exits with status 1 and the reason on stderr).
- activate: the steps run in a worker thread (the lifecycle services keep answering), `~/progress` is
  published, `latest.pt` every `checkpoint_interval` steps and at the last step.
- deactivate: answers once the step in progress has ended and `latest.pt` is written at that step;
  activate continues from it with the batches an uninterrupted run takes (a batch is a function of the
  seed and the step).
- cleanup: the model, optimiser and frames released.
- shutdown (from any state): the step in progress ends, `latest.pt` is written if steps were done since
  the last one, and the process exits with status 0.
When the steps are done (latest.pt written, the last progress published) without `autostart`, the node
stays active and idle: deactivate, cleanup or shutdown as above. A failing step is logged and leaves it
idle the same way (with `autostart` the process exits with status 1). A transition the current state
does not allow is refused with its reason in the log; the node stays in its state.

SIGINT (Ctrl-C) or SIGTERM (a launch shutdown) ends the step in progress, writes `latest.pt` at that step,
publishes that step's progress and exits with status 0; `resume:=true` continues from there. A second
signal stops at once (the last checkpoint written stands). rclpy's own handlers are left out: they shut
the context down at the signal, so that the step's progress could no longer be published or logged.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading

import rclpy
import torch
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle.publisher import LifecyclePublisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

from tacocc_core.allocator import keep_freed_memory
from tacocc_core.config import load_preset
from tacocc_ros.node.lifecycle_guard import refuse_with_reason
from tacocc_ros.node.spin import stop_on_signals
from tacocc_ros.training.bag_training import FineTuner, Progress
from tacocc_ros.training.training_params import (
    CAMERA_SHARED,
    INPUT_PARAMS,
    PARAMS,
    SHARED,
    camera_param_defaults,
    camera_params_of,
    fine_tune_spec,
)

__all__ = [
    "CAMERA_SHARED",
    "INPUT_PARAMS",
    "PARAMS",
    "SHARED",
    "TrainingNode",
    "camera_param_defaults",
    "camera_params_of",
    "main",
]
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
JOIN_POLL_S = 0.2  # joins wait in slices so that a second signal reaches the main thread


class TrainingNode(LifecycleNode):
    """The training node (module docstring).

    `TrainingNode(stop, **node_kwargs)` with `autostart` comes up configured (inactive), or raises the
    error configure failed with; `run()` (or `trigger_activate()`) starts the steps. `stop` set (by a
    signal) ends them after the step in progress.
    """

    def __init__(self, stop: threading.Event | None = None, **kwargs) -> None:
        super().__init__("training_node", **kwargs)
        self.stop = stop or threading.Event()
        for name, (default, description) in {**PARAMS, **INPUT_PARAMS}.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        self.config = load_preset(self.get_parameter("model_config").value)
        per_camera = {k: v for c in self.config.cameras.names for k, v in camera_param_defaults(c).items()}
        for name, (default, description) in per_camera.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        self.names = [*PARAMS, *INPUT_PARAMS, *per_camera]
        self.autostart: bool = self.get_parameter("autostart").value
        self.tuner: FineTuner | None = None
        self.pub_progress: LifecyclePublisher | None = None
        self.configure_error: str | None = None
        self.train_error: str | None = None
        self.finished = threading.Event()  # the steps are done, or a step failed
        self.finalized = False  # the shutdown transition was taken
        self._pause = threading.Event()
        self._resumable_by_activate = False
        self._worker: threading.Thread | None = None
        self._configure_exception: Exception | None = None
        refuse_with_reason(self, self._on_refused)
        if self.autostart and self.trigger_configure() != SUCCESS:
            raise self._configure_exception or RuntimeError(self.configure_error or "configure failed")

    # --- lifecycle -----------------------------------------------------------------------------------
    def _on_refused(self, reason: str) -> None:
        self.get_logger().warning(reason)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.configure_error = self._configure_exception = None
        try:
            spec = fine_tune_spec({name: self.get_parameter(name).value for name in self.names}, self.config)
            self.tuner = FineTuner(spec, log=self.get_logger().info)
        except Exception as err:  # noqa: BLE001 - a failed configure is reported and leaves the node unconfigured
            self._configure_exception = err
            self.configure_error = f"{type(err).__name__}: {err}"
            self.get_logger().error(f"configure failed: {self.configure_error}")
            self._release()
            return FAILURE
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_progress = self.create_lifecycle_publisher(String, "~/progress", qos)
        tc = self.tuner.train_config
        self.get_logger().info(
            f"fine-tuning {spec.config.name} on {len(spec.bags)} bag(s), {len(self.tuner.sequences)} sequences, "
            f"from step {self.tuner.step} to {tc.steps}, checkpoints every {tc.ckpt_every} steps in {spec.out_dir}"
        )
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables ~/progress
        if result != SUCCESS or self.tuner is None:
            return FAILURE
        if self.finished.is_set():
            self.get_logger().info(f"nothing to do: training ended at step {self.tuner.step}")
            return SUCCESS
        self._pause.clear()
        self._worker = threading.Thread(target=self._train, name="training", daemon=True)
        self._worker.start()
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._join_worker(deactivating=True)  # its last progress goes out before ~/progress is disabled
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._join_worker()
        self._release()
        self.finalized = True
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._join_worker()
        self._release()
        return SUCCESS

    # --- the steps -----------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        """Whether the worker thread is running steps."""
        return self._worker is not None and self._worker.is_alive()

    def on_progress(self, progress: Progress) -> None:
        text = json.dumps(progress.as_dict())
        if self.pub_progress is not None:
            self.pub_progress.publish(String(data=text))
        self.get_logger().info(f"progress {text}")

    def _should_stop(self) -> bool:
        return self._pause.is_set() or self.stop.is_set() or not self.context.ok()

    def _train(self) -> None:
        """The worker thread: steps until done or asked to stop; latest.pt at the step it stops at."""
        tuner = self.tuner
        assert tuner is not None
        total = tuner.train_config.steps
        try:
            step = tuner.run(self.on_progress, should_stop=self._should_stop)
            if step > tuner.saved_step:
                path = tuner.save()
                if not self._resumable_by_activate or self.stop.is_set() or not self.context.ok():
                    self.get_logger().info(f"stopped at step {step}: wrote {path}; resume:=true continues from it")
                else:
                    self.get_logger().info(f"paused at step {step}: wrote {path}; activate continues from it")
            if step >= total:
                self.get_logger().info(f"done at step {step}")
                self.finished.set()
        except Exception as err:  # noqa: BLE001 - a failing step is reported; the node stays up, idle
            self.train_error = f"{type(err).__name__}: {err}"
            self.get_logger().error(f"training failed at step {tuner.step + 1}: {self.train_error}")
            self.finished.set()

    def _join_worker(self, deactivating: bool = False) -> None:
        """Ask the worker to stop after the step in progress and wait for it (it writes latest.pt)."""
        self._resumable_by_activate = deactivating  # what its log line says continues the run
        self._pause.set()
        while self._worker is not None and self._worker.is_alive():
            self._worker.join(JOIN_POLL_S)
        self._worker = None

    def _release(self) -> None:
        """Drop what configure made (a shutdown first writes the steps done since the last latest.pt)."""
        if self.tuner is not None and self.tuner.step > self.tuner.saved_step:
            self.get_logger().info(f"wrote {self.tuner.save()} at step {self.tuner.step}")
        if self.pub_progress is not None:
            self.destroy_lifecycle_publisher(self.pub_progress)
            self.pub_progress = None
        cuda = self.tuner is not None and self.tuner.device.type == "cuda"
        self.tuner = None
        self.finished.clear()
        self.train_error = None
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    def run(self) -> int:
        """Activate (when inactive) and wait until the steps are done, a step fails or `stop` is set.

        Returns the step reached; the node stays active.
        """
        if self._state_machine.current_state[1] == "inactive" and self.trigger_activate() != SUCCESS:
            raise RuntimeError("activate failed (see the log)")
        while (worker := self._worker) is not None and worker.is_alive():
            worker.join(JOIN_POLL_S)
        if self.train_error is not None:
            raise RuntimeError(self.train_error)
        return self.tuner.step if self.tuner is not None else 0


def _spin(node: TrainingNode, stop: threading.Event) -> int:
    """Answer the lifecycle services until shutdown, a signal or (with autostart) the end of the steps."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not node.finalized and node.context.ok():
            if stop.is_set() or (node.autostart and node.finished.is_set()):
                node._join_worker()  # the step in progress ends, latest.pt is written
                break
            executor.spin_once(timeout_sec=JOIN_POLL_S)
    finally:
        executor.shutdown(timeout_sec=5.0)
    return 1 if node.autostart and node.train_error is not None else 0


def main(args: list[str] | None = None) -> int:
    malloc = keep_freed_memory()  # before the first step's tensors: see tacocc_core.allocator
    stop = threading.Event()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop_on_signals(stop)
    rclpy.logging.get_logger("training_node").info(malloc or "glibc malloc settings left as they are")
    node = None
    status = 0
    try:
        node = TrainingNode(stop)
        if node.autostart and node.trigger_activate() != SUCCESS:
            raise RuntimeError("activate failed (see the log)")
        status = _spin(node, stop)
        if status:
            print(f"training_node: {node.train_error}", file=sys.stderr)
    except KeyboardInterrupt:  # a second signal: stop at once, the last checkpoint written stands
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    except Exception as err:  # noqa: BLE001 - bad input ends the process with its message, not a trace
        print(f"training_node: {type(err).__name__}: {err}", file=sys.stderr)
        status = 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
