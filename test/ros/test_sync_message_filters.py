"""tacocc_ros.node.sync_message_filters: the synchroniser choice; message_filters against ours where it exists."""

import pytest

from tacocc_ros.node import sync_message_filters as smf
from tacocc_ros.node.sync import LidarSynchronizer, SyncConfig, SyncedSet

MS = 1_000_000
T0 = 1_700_000_000_000 * MS
CAMS = ("CAM_FRONT", "CAM_BACK")
CONFIG = SyncConfig(cameras=CAMS, slop_ns=10 * MS, offsets_ns={"CAM_FRONT": -30 * MS})


def test_default_is_the_project_synchroniser():
    sync = smf.make_synchronizer(CONFIG)
    assert isinstance(sync, LidarSynchronizer)
    assert smf.synchronizer_name(sync) == "tacocc LidarSynchronizer"


@pytest.mark.skipif(smf.have_message_filters(), reason="message_filters is importable here")
def test_without_message_filters_asking_for_it_is_an_error_not_a_fallback():
    with pytest.raises(smf.SynchronizerUnavailable, match="use_message_filters is true but message_filters is not"):
        smf.make_synchronizer(CONFIG, use_message_filters=True)
    with pytest.raises(ImportError, match="message_filters is not importable"):
        smf.ApproximateTimeAdapter(CONFIG)


@pytest.mark.skipif(not smf.have_message_filters(), reason="message_filters is not importable (not on PyPI)")
def test_with_message_filters_asking_for_it_gives_it():
    sync = smf.make_synchronizer(CONFIG, use_message_filters=True)
    assert smf.synchronizer_name(sync) == "message_filters ApproximateTimeSynchronizer"


def clean_sequence():
    """Sweeps at 20 Hz; CAM_FRONT fires 30 ms before the sweep (+2 ms jitter), CAM_BACK 3 ms after."""
    out = []
    for i in range(8):
        lidar = T0 + i * 50 * MS
        out += [("CAM_FRONT", lidar - 28 * MS), ("CAM_BACK", lidar + 3 * MS), ("lidar", lidar)]
    return out


@pytest.mark.skipif(not smf.have_message_filters(), reason="message_filters is not importable (not on PyPI)")
def test_message_filters_and_ours_pick_the_same_sets():
    results = []
    for sync in (smf.ApproximateTimeAdapter(CONFIG), LidarSynchronizer(CONFIG)):
        events = []
        for name, stamp in clean_sequence():
            if name == "lidar":
                events += sync.add_lidar(stamp, stamp)
            else:
                events += sync.add_image(name, stamp, stamp)
        results.append([(e.lidar_stamp_ns, e.images) for e in events if isinstance(e, SyncedSet)])
    # The ATS may hold the newest set back until later messages prove it final.
    assert len(results[1]) == 8 and len(results[0]) >= 6
    assert results[0] == results[1][: len(results[0])]
