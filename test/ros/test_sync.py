"""tacocc_ros.node.sync: LiDAR-anchored matching with offsets, timeouts, drops and time resets, on built stamps."""

import numpy as np
import pytest

from tacocc_ros.node.sync import (
    DroppedSet,
    LidarSynchronizer,
    SyncConfig,
    SyncedSet,
    TimeReset,
)

MS = 1_000_000
T0 = 1_532_402_927_000 * MS
CAMS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK")
OFFSETS = {"CAM_FRONT": -35 * MS, "CAM_FRONT_RIGHT": -27 * MS, "CAM_BACK": 0}


def config(**kw):
    base = dict(cameras=CAMS, slop_ns=20 * MS, timeout_ns=150 * MS, offsets_ns=OFFSETS)
    return SyncConfig(**(base | kw))


def sets(events):
    return [e for e in events if isinstance(e, SyncedSet)]


def drops(events):
    return [e for e in events if isinstance(e, DroppedSet)]


def feed_sweep(sync, lidar_stamp, jitter=None, skip=(), lidar_first=False):
    """Images stamped at the LiDAR stamp + offset + jitter (ms), then (or first) the sweep itself."""
    jitter = jitter or {}
    events = sync.add_lidar(lidar_stamp, f"lidar@{lidar_stamp}") if lidar_first else []
    for cam in CAMS:
        if cam not in skip:
            stamp = lidar_stamp + OFFSETS[cam] + jitter.get(cam, 0) * MS
            events += sync.add_image(cam, stamp, f"{cam}@{stamp}")
    if not lidar_first:
        events += sync.add_lidar(lidar_stamp, f"lidar@{lidar_stamp}")
    return events


@pytest.mark.parametrize("lidar_first", [False, True])
def test_each_sweep_gets_its_images(lidar_first):
    sync = LidarSynchronizer(config())
    out = []
    for i in range(6):
        out += feed_sweep(sync, T0 + i * 50 * MS, {"CAM_FRONT": 7, "CAM_BACK": -12}, lidar_first=lidar_first)
    got = sets(out)
    assert [s.lidar_stamp_ns for s in got] == [T0 + i * 50 * MS for i in range(6)]
    for s in got:
        assert list(s.images) == list(CAMS) and s.missing == ()
        assert s.lidar == f"lidar@{s.lidar_stamp_ns}"
        assert s.images["CAM_FRONT"][0] == s.lidar_stamp_ns - 28 * MS
        assert s.images["CAM_BACK"][1] == f"CAM_BACK@{s.lidar_stamp_ns - 12 * MS}"
    assert not drops(out) and sync.dropped == {}


def test_nearest_image_is_chosen_among_several_in_the_slop():
    sync = LidarSynchronizer(config(slop_ns=40 * MS))
    for cam in CAMS:
        for dt in (-30, -4, 25):
            sync.add_image(cam, T0 + OFFSETS[cam] + dt * MS, dt)
    (s,) = sets(sync.add_lidar(T0, "l"))
    assert {c: payload for c, (_, payload) in s.images.items()} == {c: -4 for c in CAMS}


def test_late_camera_drops_the_sweep_and_names_the_camera():
    sync = LidarSynchronizer(config())
    events = feed_sweep(sync, T0, skip=("CAM_FRONT_RIGHT",))
    assert events == []  # waiting, nothing emitted or dropped yet
    # Time moves on (other sensors keep publishing) past the timeout; the image comes too late.
    events = feed_sweep(sync, T0 + 200 * MS, skip=("CAM_FRONT_RIGHT",))
    (drop,) = drops(events)
    assert (drop.lidar_stamp_ns, drop.reason, drop.missing) == (T0, "timeout", ("CAM_FRONT_RIGHT",))
    assert sync.dropped["timeout"] == 1 and sync.dropped["timeout:CAM_FRONT_RIGHT"] == 1
    late = sync.add_image("CAM_FRONT_RIGHT", T0 + OFFSETS["CAM_FRONT_RIGHT"], "late")
    assert sets(late) == []  # the sweep is gone; its late image completes nothing
    events = sync.add_image("CAM_FRONT_RIGHT", T0 + 200 * MS + OFFSETS["CAM_FRONT_RIGHT"], "x")
    assert [s.lidar_stamp_ns for s in sets(events)] == [T0 + 200 * MS]


def test_missing_camera_degrades_when_configured():
    sync = LidarSynchronizer(config(min_cameras=2))
    feed_sweep(sync, T0, skip=("CAM_BACK",))
    events = sync.add_image("CAM_FRONT", T0 + 151 * MS, "later")  # message time passes the timeout
    (s,) = sets(events)
    assert s.lidar_stamp_ns == T0 and s.missing == ("CAM_BACK",) and list(s.images) == ["CAM_FRONT", "CAM_FRONT_RIGHT"]
    assert sync.dropped == {}


def test_too_few_cameras_still_drop_with_min_cameras():
    sync = LidarSynchronizer(config(min_cameras=2))
    feed_sweep(sync, T0, skip=("CAM_BACK", "CAM_FRONT"))
    (drop,) = drops(sync.add_image("CAM_FRONT", T0 + 151 * MS, "later"))
    assert drop.missing == ("CAM_FRONT", "CAM_BACK")


def test_out_of_order_and_duplicate_sweeps():
    sync = LidarSynchronizer(config())
    feed_sweep(sync, T0)
    feed_sweep(sync, T0 + 100 * MS)
    (old,) = sync.add_lidar(T0 + 50 * MS, "old")  # arrives after a newer sweep was emitted
    assert (old.reason, old.lidar_stamp_ns) == ("out_of_order", T0 + 50 * MS)
    (dup,) = sync.add_lidar(T0 + 100 * MS, "dup")
    assert dup.reason == "duplicate"


def test_images_out_of_order_are_still_matched():
    sync = LidarSynchronizer(config())
    for i in (2, 0, 1):  # the three sweeps' images arrive shuffled
        for cam in CAMS:
            sync.add_image(cam, T0 + i * 50 * MS + OFFSETS[cam], i)
    events = []
    for i in range(3):
        events += sync.add_lidar(T0 + i * 50 * MS, i)
    assert [[p for _, p in s.images.values()] for s in sets(events)] == [[0] * 3, [1] * 3, [2] * 3]


def test_a_complete_newer_sweep_supersedes_an_incomplete_older_one():
    sync = LidarSynchronizer(config())
    feed_sweep(sync, T0, skip=("CAM_BACK",))
    events = feed_sweep(sync, T0 + 50 * MS)
    assert [type(e) for e in events] == [DroppedSet, SyncedSet]
    assert (events[0].lidar_stamp_ns, events[0].reason) == (T0, "superseded")


def test_time_going_backwards_resets_everything():
    sync = LidarSynchronizer(config())
    for i in range(3):
        feed_sweep(sync, T0 + i * 50 * MS)
    feed_sweep(sync, T0 + 150 * MS, skip=("CAM_BACK",))  # pending when the bag loops
    events = sync.add_image("CAM_BACK", T0 - 60_000 * MS, "looped")
    assert isinstance(events[-1], TimeReset) and events[-1].source == "CAM_BACK"
    assert (events[-1].previous_ns, events[-1].stamp_ns) == (T0 + 100 * MS, T0 - 60_000 * MS)  # its last image
    assert [(d.lidar_stamp_ns, d.reason) for d in drops(events)] == [(T0 + 150 * MS, "time_reset")]
    assert sync.resets == 1 and sync.now_ns == T0 - 60_000 * MS
    # The loop starts again at an earlier time and is synchronised like a fresh stream.
    again = feed_sweep(sync, T0 - 60_000 * MS)
    assert [s.lidar_stamp_ns for s in sets(again)] == [T0 - 60_000 * MS]


def test_small_reordering_is_not_a_reset():
    sync = LidarSynchronizer(config())
    sync.add_image("CAM_BACK", T0, "a")
    assert sync.add_image("CAM_BACK", T0 - 300 * MS, "b") == []
    assert sync.resets == 0


def test_buffers_are_bounded():
    sync = LidarSynchronizer(config(max_images=3, max_pending=2, timeout_ns=10_000 * MS))
    for i in range(10):
        sync.add_image("CAM_FRONT", T0 + i * MS, i)
    assert len(sync._images["CAM_FRONT"]) == 3
    events = []
    for i in range(4):
        events += sync.add_lidar(T0 + i * 50 * MS, i)
    assert [(d.lidar_stamp_ns, d.reason) for d in drops(events)] == [(T0, "overflow"), (T0 + 50 * MS, "overflow")]
    assert len(sync._pending) == 2


def test_old_images_are_pruned():
    sync = LidarSynchronizer(config())
    for i in range(40):
        feed_sweep(sync, T0 + i * 50 * MS)
    reach = 150 * MS + 20 * MS + 35 * MS
    assert all(stamp >= sync.now_ns - reach for imgs in sync._images.values() for stamp, _ in imgs)


def brute_force_match(images, cfg, lidar_stamp):
    out = {}
    for cam, entries in images.items():
        target = lidar_stamp + cfg.offsets_ns.get(cam, 0)
        best = None
        for stamp, payload in entries:
            if abs(stamp - target) <= cfg.slop_ns and (best is None or abs(stamp - target) < abs(best[0] - target)):
                best = (stamp, payload)
        if best is not None:
            out[cam] = best
    return out


@pytest.mark.parametrize("seed", range(6))
def test_match_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    cfg = config(slop_ns=30 * MS, max_images=64, timeout_ns=10**12)
    sync = LidarSynchronizer(cfg)
    images = {c: [] for c in CAMS}
    for _ in range(60):
        cam = CAMS[rng.integers(len(CAMS))]
        stamp = T0 + int(rng.integers(-400, 400)) * MS + int(rng.integers(0, 1000))
        if all(s != stamp for s, _ in images[cam]):
            images[cam].append((stamp, stamp))
            sync.add_image(cam, stamp, stamp)
    for lidar in T0 + rng.integers(-450, 450, size=20) * MS:
        assert sync.match(int(lidar)) == brute_force_match(images, cfg, int(lidar))


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        (dict(cameras=()), "cameras must be non-empty and unique"),
        (dict(cameras=("A", "A")), "cameras must be non-empty and unique"),
        (dict(offsets_ns={"CAM_SIDE": 1}), r"offsets_ns names unknown cameras \['CAM_SIDE'\]"),
        (dict(slop_ns=-1), "slop_ns must be >= 0, got -1"),
        (dict(max_images=0), "max_images/max_pending must be >= 1"),
        (dict(min_cameras=4), r"min_cameras must be in 0..3, got 4"),
    ],
)
def test_config_errors(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        config(**kw)


def test_unknown_camera_is_named():
    with pytest.raises(KeyError, match="unknown camera 'CAM_SIDE'"):
        LidarSynchronizer(config()).add_image("CAM_SIDE", T0, None)


def test_sync_imports_no_ros_client_library():
    """The offline bag reader reuses the synchroniser where no rclpy runs."""
    import ast
    import inspect

    from tacocc_ros.node import sync

    tree = ast.parse(inspect.getsource(sync))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.split(".")[0] in ("rclpy", "message_filters")}
