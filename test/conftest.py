"""Shared test setup: ROS traffic kept on this machine, and the real-data fixtures beside the checkout."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

# Before anything imports rclpy: DDS discovery on loopback only, a domain of this run's own.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
# Under pytest-xdist (`-n N`) every worker gets a domain of its own, TACOCC_TEST_DOMAIN_BASE + its index:
# two workers' nodes on one domain would hear each other's topics. `make test` picks the base per run.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ...: set by xdist before conftest is imported
if _WORKER:
    os.environ["ROS_DOMAIN_ID"] = str(int(os.environ.get("TACOCC_TEST_DOMAIN_BASE", "40")) + int(_WORKER[2:]))
    # The workers share the cores: each gets its share of torch threads (unless OMP_NUM_THREADS says otherwise),
    # instead of every worker running as many threads as there are cores.
    _WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("TACOCC_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def nuscenes_frame_dir() -> Path:
    folder = FIXTURES / "nuscenes_frame"
    if not (folder / "calib.json").is_file():
        pytest.skip(f"real nuScenes fixture not found at {folder} (set TACOCC_FIXTURES)")
    return folder


@pytest.fixture(scope="session")
def occ3d_labels_path() -> Path:
    path = FIXTURES / "occ3d" / "labels.npz"
    if not path.is_file():
        pytest.skip(f"real Occ3D fixture not found at {path} (set TACOCC_FIXTURES)")
    return path


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """A tiny generated nuScenes-layout dataset (2 scenes x 4 keyframes, 160x90 images, the built-in rig).

    Read-only for the tests. Under pytest-xdist the workers share one copy in this run's temporary folder:
    the first to get the lock generates it (the generator renames a finished folder into place)."""
    from tacocc_core.data.synthetic.writer import GenerateOptions, generate_dataset

    opts = GenerateOptions(
        scenes=2, keyframes=4, seed=3, image_size=(160, 90), sweeps_per_keyframe=2, lidar_azimuths=540
    )
    if not _WORKER:
        return generate_dataset(tmp_path_factory.mktemp("synthetic") / "nuscenes", opts)
    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/, the parent of every worker's popen-gwK/
    out = shared / "synthetic" / "nuscenes"
    out.parent.mkdir(exist_ok=True)
    with open(shared / "synthetic.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return out if out.is_dir() else generate_dataset(out, opts)


@pytest.fixture(scope="session")
def read_foxglove_mcap():
    """A reader of the Foxglove `.mcap` files the project writes, with a reader the project does not use
    otherwise (`mcap` + `mcap-protobuf-support`, classes built from the file's own schemas):
    path -> ({topic: (schema name, schema encoding, message encoding)}, [(topic, log_time, decoded)])."""
    from mcap.reader import make_reader
    from mcap_protobuf.decoder import DecoderFactory

    def read(path: Path) -> tuple[dict, list]:
        with open(path, "rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            summary = reader.get_summary()
            channels = {
                c.topic: (summary.schemas[c.schema_id].name, summary.schemas[c.schema_id].encoding, c.message_encoding)
                for c in summary.channels.values()
            }
            messages = [(ch.topic, m.log_time, decoded) for _, ch, m, decoded in reader.iter_decoded_messages()]
        return channels, messages

    return read


# --- generated-input tests (test/*/test_fuzz_*.py) -----------------------------------------------------
# Two hypothesis profiles: "fast" (the default: a fixed, derandomized handful per test, part of `make test`)
# and "fuzz" (at least 10,000 generated cases per boundary: `pytest --fuzz test/unit/test_fuzz_labels.py`).
# `--fuzz-report PATH` writes the tally of every boundary (cases, outcomes by kind, crashes, slowest case).
import fuzz_tally  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("fast", max_examples=12, derandomize=True, deadline=None, database=None,
                          suppress_health_check=_SUPPRESS, print_blob=True)  # fmt: skip
settings.register_profile("fuzz", max_examples=fuzz_tally.FUZZ_EXAMPLES, deadline=None, database=None,
                          suppress_health_check=_SUPPRESS, print_blob=True)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fuzz", "generated bad input")
    group.addoption("--fuzz", action="store_true", help="run the generated-input tests with the 'fuzz' profile")
    group.addoption("--fuzz-report", default=None, metavar="PATH", help="write the per-boundary tally as JSON")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--fuzz"):
        settings.load_profile("fuzz")


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--fuzz-report")
    if path:
        fuzz_tally.write_report(Path(path), settings.default.max_examples)


# --- order ---------------------------------------------------------------------------------------------
# The layers that start processes (nodes, trainings, the demo) run first and the short unit files last, so
# that under `-n 2 --dist loadfile` the workers end together instead of one waiting for the other's long file.
_LAYER_ORDER = {"system": 0, "ros": 1, "unit": 2}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def layer(item: pytest.Item) -> int:
        parts = Path(str(item.path)).relative_to(REPO_ROOT / "test").parts
        return _LAYER_ORDER.get(parts[0], len(_LAYER_ORDER)) if len(parts) > 1 else len(_LAYER_ORDER)

    items.sort(key=layer)  # stable: within a layer, files and tests keep their order
