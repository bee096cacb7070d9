"""LiDAR-anchored synchroniser: one LiDAR sweep + the camera images nearest to it in time.

Plain Python on (stamp_ns, payload) pairs, no rclpy, so the online node and an offline bag reader share
it. All times are message stamps (integer nanoseconds), never the wall clock: a bag replayed at any rate
synchronises the same way.

Rules, for a sweep stamped L and camera c with offset o_c (the nuScenes rig fires its cameras in turn):
- c matches the buffered message whose stamp is nearest to L + o_c, if that is within `slop_ns`.
- A sweep is emitted (`SyncedSet`) as soon as every camera matches. Choose `slop_ns` below half the
  camera period so that at most one image of a camera can match: then the first match is the nearest.
- "Now" is the newest stamp seen on any input. A sweep still incomplete when now > L + `timeout_ns`
  is emitted degraded if at least `min_cameras` matched (missing ones left out), otherwise dropped
  (`DroppedSet` naming the missing cameras).
- Sweeps are emitted in stamp order: when a sweep completes, older pending sweeps are dropped
  ("superseded"); a sweep older than the last emitted one is dropped ("out_of_order").
- Time going backwards by more than `reset_after_ns` on any input (a bag loop, a restarted driver)
  clears every buffer and yields `TimeReset`; pending sweeps are dropped ("time_reset").
- Buffers are bounded: `max_images` per camera, `max_pending` sweeps ("overflow" drops the oldest).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Drop reasons, as counted in `LidarSynchronizer.dropped` and reported on /diagnostics.
TIMEOUT = "timeout"
SUPERSEDED = "superseded"
OUT_OF_ORDER = "out_of_order"
DUPLICATE = "duplicate"
OVERFLOW = "overflow"
TIME_RESET = "time_reset"


@dataclass(frozen=True)
class SyncConfig:
    """How camera images are matched to a LiDAR sweep.

    Args:
        cameras: camera names, in the order a set lists them.
        slop_ns: largest |image stamp - (LiDAR stamp + offset)| accepted.
        timeout_ns: how long (in message time) a sweep waits for its images.
        offsets_ns: per-camera expected image stamp minus LiDAR stamp; cameras not named get 0.
        min_cameras: a sweep that times out with at least this many cameras matched is emitted
            degraded instead of dropped; None means all cameras are required.
        max_images: images kept per camera.
        max_pending: sweeps waiting for images at once.
        reset_after_ns: a stamp this much older than the newest of its input means time went back.
    """

    cameras: tuple[str, ...]
    slop_ns: int = 50_000_000
    timeout_ns: int = 200_000_000
    offsets_ns: dict[str, int] = field(default_factory=dict)
    min_cameras: int | None = None
    max_images: int = 16
    max_pending: int = 4
    reset_after_ns: int = 1_000_000_000

    def __post_init__(self) -> None:
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"SyncConfig.cameras must be non-empty and unique, got {self.cameras}")
        unknown = set(self.offsets_ns) - set(self.cameras)
        if unknown:
            raise ValueError(f"SyncConfig.offsets_ns names unknown cameras {sorted(unknown)}")
        for name in ("slop_ns", "timeout_ns", "reset_after_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyncConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_images < 1 or self.max_pending < 1:
            raise ValueError(
                f"SyncConfig.max_images/max_pending must be >= 1, got {self.max_images}/{self.max_pending}"
            )
        if self.min_cameras is not None and not 0 <= self.min_cameras <= len(self.cameras):
            raise ValueError(f"SyncConfig.min_cameras must be in 0..{len(self.cameras)}, got {self.min_cameras}")


@dataclass
class SyncedSet:
    """A sweep and its images; `images[c] = (stamp_ns, payload)`, cameras in `missing` are absent."""

    lidar_stamp_ns: int
    lidar: Any
    images: dict[str, tuple[int, Any]]
    missing: tuple[str, ...] = ()


@dataclass
class DroppedSet:
    """A sweep that was not emitted, why, and which cameras had no image within the slop."""

    lidar_stamp_ns: int
    reason: str
    missing: tuple[str, ...] = ()


@dataclass
class TimeReset:
    """An input went back in time on `source` from `previous_ns` to `stamp_ns`; all buffers were cleared."""

    source: str
    previous_ns: int
    stamp_ns: int


Event = SyncedSet | DroppedSet | TimeReset


class LidarSynchronizer:
    """Feed images and sweeps as they arrive; each call returns the events it caused, oldest first.

    `dropped` counts drops by reason and, for timeouts, by missing camera (`timeout:CAM_BACK`);
    `resets` counts TimeReset events.
    """

    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        self._images: dict[str, list[tuple[int, Any]]] = {c: [] for c in config.cameras}
        self._pending: list[tuple[int, Any]] = []
        self._newest: dict[str, int] = {}
        self._last_emitted: int | None = None
        self.dropped: Counter[str] = Counter()
        self.resets = 0

    @property
    def now_ns(self) -> int | None:
        """The newest stamp seen on any input since the last reset."""
        return max(self._newest.values(), default=None)

    def add_image(self, camera: str, stamp_ns: int, payload: Any) -> list[Event]:
        if camera not in self._images:
            raise KeyError(f"unknown camera {camera!r}; configured: {', '.join(self.config.cameras)}")
        events = self._observe(camera, int(stamp_ns))
        images = self._images[camera]
        bisect.insort(images, (int(stamp_ns), payload), key=lambda item: item[0])
        if len(images) > self.config.max_images:
            del images[0]
        return events + self._advance()

    def add_lidar(self, stamp_ns: int, payload: Any) -> list[Event]:
        stamp_ns = int(stamp_ns)
        events = self._observe("lidar", stamp_ns)
        if self._last_emitted is not None and stamp_ns <= self._last_emitted:
            reason = DUPLICATE if stamp_ns == self._last_emitted else OUT_OF_ORDER
            return events + [self._drop(stamp_ns, reason)]
        if any(stamp == stamp_ns for stamp, _ in self._pending):
            return events + [self._drop(stamp_ns, DUPLICATE)]
        bisect.insort(self._pending, (stamp_ns, payload), key=lambda item: item[0])
        if len(self._pending) > self.config.max_pending:
            oldest, _ = self._pending.pop(0)
            events.append(self._drop(oldest, OVERFLOW))
        return events + self._advance()

    def _observe(self, source: str, stamp_ns: int) -> list[Event]:
        previous = self._newest.get(source)
        if previous is not None and stamp_ns < previous - self.config.reset_after_ns:
            events: list[Event] = [self._drop(stamp, TIME_RESET) for stamp, _ in self._pending]
            events.append(TimeReset(source, previous, stamp_ns))
            for images in self._images.values():
                images.clear()
            self._pending.clear()
            self._newest.clear()
            self._last_emitted = None
            self.resets += 1
            self._newest[source] = stamp_ns
            return events
        self._newest[source] = max(stamp_ns, previous if previous is not None else stamp_ns)
        return []

    def match(self, lidar_stamp_ns: int) -> dict[str, tuple[int, Any]]:
        """Per camera, the buffered image nearest to `lidar_stamp_ns + offset` within the slop."""
        found = {}
        for camera, images in self._images.items():
            target = lidar_stamp_ns + self.config.offsets_ns.get(camera, 0)
            i = bisect.bisect_left(images, target, key=lambda item: item[0])
            near = [images[j] for j in (i - 1, i) if 0 <= j < len(images)]
            if near:
                best = min(near, key=lambda item: abs(item[0] - target))
                if abs(best[0] - target) <= self.config.slop_ns:
                    found[camera] = best
        return found

    def _advance(self) -> list[Event]:
        """Emit the newest complete sweep, time out stale ones, prune old images."""
        events: list[Event] = []
        now = self.now_ns
        for index in range(len(self._pending) - 1, -1, -1):
            stamp, payload = self._pending[index]
            found = self.match(stamp)
            if len(found) == len(self.config.cameras):
                events += [self._drop(s, SUPERSEDED) for s, _ in self._pending[:index]]
                del self._pending[: index + 1]
                events.append(self._emit(stamp, payload, found))
                break
        while self._pending and now is not None and now - self._pending[0][0] > self.config.timeout_ns:
            stamp, payload = self._pending.pop(0)
            found = self.match(stamp)
            missing = tuple(c for c in self.config.cameras if c not in found)
            needed = len(self.config.cameras) if self.config.min_cameras is None else self.config.min_cameras
            if len(found) >= needed:
                events.append(self._emit(stamp, payload, found, missing))
            else:
                events.append(self._drop(stamp, TIMEOUT, missing))
        self._prune(now)
        return events

    def _emit(self, stamp: int, payload: Any, found: dict, missing: tuple[str, ...] = ()) -> SyncedSet:
        self._last_emitted = stamp
        return SyncedSet(stamp, payload, {c: found[c] for c in self.config.cameras if c in found}, missing)

    def _drop(self, stamp: int, reason: str, missing: tuple[str, ...] = ()) -> DroppedSet:
        self.dropped[reason] += 1
        for camera in missing:
            self.dropped[f"{reason}:{camera}"] += 1
        return DroppedSet(stamp, reason, missing)

    def _prune(self, now: int | None) -> None:
        """Forget images too old to match any sweep that could still be emitted."""
        if now is None:
            return
        reach = self.config.timeout_ns + self.config.slop_ns + max(map(abs, self.config.offsets_ns.values()), default=0)
        oldest_useful = now - reach
        if self._pending:
            oldest_useful = min(oldest_useful, self._pending[0][0] - reach)
        for images in self._images.values():
            cut = bisect.bisect_left(images, oldest_useful, key=lambda item: item[0])
            del images[:cut]
