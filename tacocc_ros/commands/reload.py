"""`tacocc reload`: hand new weights to a running occupancy node, without a ROS install (`ros2 param set`).

    tacocc reload --checkpoint runs/online/latest.pt      # sets the node's `checkpoint` parameter
    tacocc reload                                        # the node re-reads its current checkpoint file

With `--checkpoint` it sets the node's `checkpoint` parameter through the node's parameter service (the
node loads and checks the file before it accepts the value, and keeps its old weights when it refuses);
without, it calls the node's `~/reload_checkpoint` service (for a training node that rewrote the same
`latest.pt`). It talks on the ROS domain of the environment (`ROS_DOMAIN_ID`, `ROS_AUTOMATIC_DISCOVERY_RANGE`),
as the node does. Exit status 0 when the node took the weights, 1 with its reason when it refused them or
did not answer within `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reload", help="make a running occupancy node load new weights (sets its checkpoint, or re-reads it)"
    )
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="weights to load (sets the node's checkpoint); omitted: re-read its file")  # fmt: skip
    p.add_argument("--node", default="/occupancy_node", help="the node's name (default /occupancy_node)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the node's service and its answer (default 60)")  # fmt: skip
    p.set_defaults(run=run)


def _call(node: Any, srv_type: Any, name: str, request: Any, timeout_s: float) -> Any:
    """Call service `name` of `node`'s graph and wait for the answer; TimeoutError naming the service otherwise."""
    from tacocc_ros.tooling.node_process import call_service

    client = node.create_client(srv_type, name)
    return call_service(client, request, timeout_s, hint=": is the node running on this ROS_DOMAIN_ID?")


def _spin(executor: Any) -> None:
    """Spin until the context shuts down (the end of `reload`)."""
    from rclpy.executors import ExternalShutdownException

    try:
        executor.spin()
    except ExternalShutdownException:
        pass


def reload(node_name: str, checkpoint: Path | None, timeout_s: float) -> tuple[bool, str]:
    """(accepted, the node's message): set `checkpoint` on node `node_name`, or ask it to re-read its file."""
    import rclpy
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from std_srvs.srv import Trigger

    node_name = "/" + node_name.strip("/")
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("tacocc_reload", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
    spinner.start()
    try:
        if checkpoint is not None:
            value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(checkpoint.resolve()))
            request = SetParameters.Request(parameters=[Parameter(name="checkpoint", value=value)])
            result = _call(node, SetParameters, f"{node_name}/set_parameters", request, timeout_s).results[0]
            return bool(result.successful), result.reason or f"{node_name} loaded {checkpoint}"
        response = _call(node, Trigger, f"{node_name}/reload_checkpoint", Trigger.Request(), timeout_s)
        return bool(response.success), response.message
    finally:  # the spin thread ends before the node and the context go (else the process aborts at exit)
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5)
        executor.shutdown(timeout_sec=1)
        node.destroy_node()


def run(args: argparse.Namespace) -> int:
    if args.checkpoint is not None and not args.checkpoint.is_file():
        print(f"tacocc reload: error: {args.checkpoint}: no such file", file=sys.stderr)
        return 1
    try:
        accepted, message = reload(args.node, args.checkpoint, args.timeout)
    except TimeoutError as err:
        print(f"tacocc reload: error: {err}", file=sys.stderr)
        return 1
    if not accepted:
        print(f"tacocc reload: {args.node} refused the weights: {message}", file=sys.stderr)
        return 1
    print(message)
    return 0
