"""`message_filters.ApproximateTimeSynchronizer` behind the `LidarSynchronizer` interface, and the choice.

message_filters is part of a ROS 2 install (not on PyPI). Its ApproximateTimeSynchronizer matches sets
whose stamps lie within `slop` of each other; per-camera offsets are applied here by shifting each image
stamp by -offset before it goes in, so the ATS sees every camera at the LiDAR time. What it does not do:
report which camera was missing when a set never completes (it forgets such sets silently), emit
degraded sets, or clear its queues when time goes backwards. That is why `make_synchronizer` returns the
project's `LidarSynchronizer` unless message_filters is asked for explicitly: the node then behaves the
same with and without a ROS install, and its drop diagnostics stay complete. Asking for message_filters
where it is not importable is an error (`SynchronizerUnavailable`), never a silent fallback.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Protocol

from tacocc_ros.node.sync import Event, LidarSynchronizer, SyncConfig, SyncedSet

try:  # a ROS 2 install
    import message_filters as _message_filters
except ImportError:
    _message_filters = None

_LIDAR = "__lidar__"


class Synchronizer(Protocol):
    """What the node calls: feed messages, get events back; `config` says what it waits for."""

    config: SyncConfig

    def add_image(self, camera: str, stamp_ns: int, payload: Any) -> list[Event]: ...

    def add_lidar(self, stamp_ns: int, payload: Any) -> list[Event]: ...


class SynchronizerUnavailable(RuntimeError):
    """The synchroniser asked for cannot be built here (message_filters is not importable)."""


def have_message_filters() -> bool:
    return _message_filters is not None


def synchronizer_name(sync: Synchronizer) -> str:
    """What the node's `ready` line and diagnostics call the synchroniser in use."""
    if isinstance(sync, ApproximateTimeAdapter):
        return "message_filters ApproximateTimeSynchronizer"
    if isinstance(sync, LidarSynchronizer):
        return "tacocc LidarSynchronizer"
    return type(sync).__name__


class ApproximateTimeAdapter:
    """LiDAR + images through message_filters.ApproximateTimeSynchronizer (see the module docstring)."""

    def __init__(self, config: SyncConfig) -> None:
        if _message_filters is None:
            raise ImportError("message_filters is not importable (it comes with a ROS 2 install)")
        self.config = config
        self._inputs = {name: _message_filters.SimpleFilter() for name in (_LIDAR, *config.cameras)}
        self._sync = _message_filters.ApproximateTimeSynchronizer(
            list(self._inputs.values()), queue_size=config.max_images, slop=config.slop_ns / 1e9
        )
        self._sync.registerCallback(self._on_set)
        self._events: list[Event] = []

    def add_image(self, camera: str, stamp_ns: int, payload: Any) -> list[Event]:
        if camera not in self._inputs or camera == _LIDAR:
            raise KeyError(f"unknown camera {camera!r}; configured: {', '.join(self.config.cameras)}")
        shifted = int(stamp_ns) - self.config.offsets_ns.get(camera, 0)
        return self._signal(camera, shifted, (int(stamp_ns), payload))

    def add_lidar(self, stamp_ns: int, payload: Any) -> list[Event]:
        return self._signal(_LIDAR, int(stamp_ns), (int(stamp_ns), payload))

    def _signal(self, name: str, match_ns: int, item: tuple[int, Any]) -> list[Event]:
        from builtin_interfaces.msg import Time

        stamp = Time(sec=match_ns // 1_000_000_000, nanosec=match_ns % 1_000_000_000)
        self._inputs[name].signalMessage(SimpleNamespace(header=SimpleNamespace(stamp=stamp), item=item))
        events, self._events = self._events, []
        return events

    def _on_set(self, lidar: SimpleNamespace, *images: SimpleNamespace) -> None:
        stamp_ns, payload = lidar.item
        found = {cam: image.item for cam, image in zip(self.config.cameras, images, strict=True)}
        self._events.append(SyncedSet(stamp_ns, payload, found))


def make_synchronizer(config: SyncConfig, use_message_filters: bool = False) -> Synchronizer:
    """message_filters' ATS when `use_message_filters`, the project's LidarSynchronizer otherwise.

    Raises SynchronizerUnavailable when message_filters is asked for and is not importable.
    """
    if not use_message_filters:
        return LidarSynchronizer(config)
    if _message_filters is None:
        raise SynchronizerUnavailable(
            "use_message_filters is true but message_filters is not importable (it comes with a ROS 2 install, "
            "e.g. the ros-<distro>-message-filters package, and is not on PyPI); set use_message_filters to false "
            "for the project's LidarSynchronizer"
        )
    return ApproximateTimeAdapter(config)
