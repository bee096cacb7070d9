"""`tacocc demo`: synthetic scenes -> rosbag2 -> occupancy node + bag player over DDS -> pictures and report.

Stages (each announced on stderr with its time):
1. generate scenes in the nuScenes layout with a seed the demo checkpoint was not trained on;
2. convert them to one rosbag2 per scene;
3. replay each bag through the occupancy node, node and player as separate processes over DDS, recording
   what the node publishes (`tacocc_ros.tooling.replay.record_replay`);
4. write the report (`tacocc_core.demo.report`): frames/*.png, demo.gif, report.md, report.json;
5. write `foxglove.mcap` (`tacocc_core.demo.foxglove_frames`): the predicted and ground-truth grids, the
   sweeps, the images and TF of the replayed frames, for the Foxglove app.

The dataset and the bags are cached under `<out>/.work/<key>/`, keyed by the options that shape them, so
a second run with the same options starts at stage 3; caches of other options are removed after a run
unless `--keep-work`. ROS traffic stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST)
in a DDS domain of this run's own unless the caller set them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from tacocc_core.commands.generate_scenes import _size
from tacocc_core.config import demo_checkpoint_path

DEFAULT_CHECKPOINT = demo_checkpoint_path()
DEFAULT_MODEL_CONFIG = "demo"
DEFAULT_SEED = 1  # the demo checkpoint is trained on seed 0 scenes: the demo shows scenes it has not seen
DEFAULT_IMAGE_SIZE = (352, 198)  # the size of the checkpoint's training images
SWEEPS_PER_KEYFRAME = 1  # one more LiDAR sweep before each keyframe (the model accumulates 2 sweeps)
# The generated cameras fire once per keyframe, at their rig offsets from the keyframe's LiDAR stamp. The node
# is told those offsets and a slop under half the LiDAR period, so each image set pairs with its keyframe
# sweep only (one frame per keyframe); the sweep before it finds no images and is not a frame.
SLOP_S = 0.02
# A sweep waits this long (message time; 2 s of wall time at rate 0.5) for its images: on a busy CPU an image
# callback can run late, and a keyframe should not be lost for that.
TIMEOUT_S = 1.0
MIN_KEYFRAMES = 4  # 1.55 s of bag: the recorded pass starts more than 1 s before the warm-up pass ended
LIDAR_AZIMUTHS = 1084
WORK_DIR = ".work"
FOXGLOVE_FILE = "foxglove.mcap"  # the grids, sweeps, images and TF of the replay, for the Foxglove app


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="end to end: synthetic scenes -> bag -> occupancy node over DDS -> pictures + report"
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--scenes", type=int, default=1, help="scenes to generate and replay (one report each)")
    p.add_argument("--keyframes", type=int, default=8, help="keyframes (2 Hz) per scene")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="scene seed (the checkpoint was trained on 0)")
    p.add_argument("--image-size", type=_size, default=DEFAULT_IMAGE_SIZE, metavar="WxH")
    p.add_argument("--rate", type=float, default=0.5, help="replay rate (1.0 = recorded timing)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="weights + config (.pt)")
    p.add_argument("--model-config", default=DEFAULT_MODEL_CONFIG, help="preset name or config .yaml")
    p.add_argument("--device", default="cpu", help="the node's device: cpu, cuda, cuda:N or auto")
    p.add_argument(
        "--keep-work",
        action="store_true",
        help="keep the cached datasets and bags of other options under <out>/.work (default: only this run's)",
    )
    p.set_defaults(run=run)


class _Stages:
    """Prints `[demo] <stage> ...` and, when it ends, its time, on stderr."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, text: str):
        return _Stage(text)

    def total(self) -> float:
        return time.perf_counter() - self.start


class _Stage:
    def __init__(self, text: str) -> None:
        self.text = text

    def __enter__(self) -> _Stage:
        print(f"[demo] {self.text} ...", file=sys.stderr, flush=True)
        self.start = time.perf_counter()
        return self

    def __exit__(self, kind, *_) -> None:
        status = "done" if kind is None else "failed"
        print(f"[demo] {self.text}: {status} in {time.perf_counter() - self.start:.1f} s", file=sys.stderr, flush=True)


def work_key(args: argparse.Namespace) -> str:
    """The cache folder name of the dataset and bags these options produce."""
    w, h = args.image_size
    calib = os.environ.get("TACOCC_CALIB")
    rig = "builtin" if not calib else "calib" + hashlib.sha1(Path(calib).resolve().read_bytes()).hexdigest()[:8]
    return (
        f"scenes{args.scenes}-kf{args.keyframes}-seed{args.seed}-{w}x{h}-sw{SWEEPS_PER_KEYFRAME}"
        f"-az{LIDAR_AZIMUTHS}-{rig}"
    )


def ros_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set DDS discovery to this machine and a per-run domain id where the caller has not; returns them."""
    env = os.environ if environ is None else environ
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    return {k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")}


def _check_args(args: argparse.Namespace) -> str | None:
    if args.scenes < 1 or args.keyframes < MIN_KEYFRAMES:
        return (
            f"--scenes must be >= 1 and --keyframes >= {MIN_KEYFRAMES} (the node starts again when time goes back "
            f"by more than 1 s, so a bag shorter than that cannot follow its warm-up pass), "
            f"got {args.scenes} and {args.keyframes}"
        )
    if not 0 < args.rate <= 10:
        return f"--rate must be in (0, 10], got {args.rate}"
    if not args.checkpoint.is_file():
        hint = (
            " (the project's demo checkpoint: checkpoints/README.md)" if args.checkpoint == DEFAULT_CHECKPOINT else ""
        )
        return f"--checkpoint {args.checkpoint}: file not found{hint}"
    return None


def run(args: argparse.Namespace) -> int:
    problem = _check_args(args)
    if problem:
        print(f"tacocc demo: error: {problem}", file=sys.stderr)
        return 2
    ros_environment()
    # Imported here: torch, nuscenes-devkit and rclpy cost seconds that `tacocc --help` should not pay.
    from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes
    from tacocc_core.bags.reading import BagError
    from tacocc_core.checkpoint import INFERENCE_IRRELEVANT, CheckpointError, load_checkpoint
    from tacocc_core.config import ConfigError, load_preset
    from tacocc_core.data.nuscenes_reader import DataError, NuScenesReader
    from tacocc_core.data.synthetic.rig import load_rig
    from tacocc_core.data.synthetic.writer import GenerateOptions, generate_dataset
    from tacocc_core.demo.foxglove_frames import write_replay_mcap
    from tacocc_core.demo.provenance import Provenance
    from tacocc_core.demo.report import write_demo_report
    from tacocc_core.lidar_baseline import dataset_baseline
    from tacocc_core.recording import RecordingError

    stages = _Stages()
    calib = os.environ.get("TACOCC_CALIB") or None  # the rig of the generated scenes (None: the built-in one)
    out = args.out
    work = out / WORK_DIR / work_key(args)
    dataset, bag_dir = work / "dataset", work / "bags"
    checkpoint = args.checkpoint.resolve()
    try:  # the model config and the checkpoint are checked before any work
        config = load_preset(args.model_config)
        load_checkpoint(checkpoint, expected=config, ignore=INFERENCE_IRRELEVANT)
    except (ConfigError, CheckpointError) as err:
        print(f"tacocc demo: error: {err}", file=sys.stderr)
        return 2
    try:
        from tacocc_ros.tooling.replay import ReplayError, ReplayOptions, record_replay
    except ImportError as err:
        print(f"tacocc demo: error: needs rclpy and the ROS 2 message packages ({err})", file=sys.stderr)
        return 2
    try:
        options = GenerateOptions(
            scenes=args.scenes,
            keyframes=args.keyframes,
            seed=args.seed,
            image_size=args.image_size,
            sweeps_per_keyframe=SWEEPS_PER_KEYFRAME,
            lidar_azimuths=LIDAR_AZIMUTHS,
            workers=min(2, os.cpu_count() or 1, args.scenes),
        )
        if dataset.is_dir():
            print(f"[demo] scenes: cached in {dataset}", file=sys.stderr)
        else:
            with stages(f"generating {args.scenes} scene(s) x {args.keyframes} keyframes, seed {args.seed}"):
                generate_dataset(dataset, options, calib)
        bags = _cached_bags(bag_dir)
        if bags:
            print(f"[demo] bags: cached in {bag_dir}", file=sys.stderr)
        else:
            with stages("converting the scenes to rosbag2"):
                staging = work / ".bags.tmp"
                shutil.rmtree(staging, ignore_errors=True)
                convert_nuscenes(dataset, options.version, staging, None, ConvertOptions(progress=False))
                staging.rename(bag_dir)
            bags = _cached_bags(bag_dir)
        node_params = {
            "model_config": args.model_config,
            "checkpoint": str(checkpoint),
            "device": args.device,
            "slop_s": SLOP_S,
            "timeout_s": TIMEOUT_S,
            **{f"cameras.{name}.offset_s": us * 1e-6 for name, us in load_rig(calib).camera_offset_us.items()},
        }
        data = {
            "generator": "tacocc generate-scenes",
            "scenes": str(args.scenes),
            "keyframes": str(args.keyframes),
            "seed": str(args.seed),
            "image_size": "x".join(map(str, args.image_size)),
            "sweeps per keyframe": str(SWEEPS_PER_KEYFRAME),
        }
        command = shlex.join(["tacocc", *sys.argv[1:]]) if Path(sys.argv[0]).name == "tacocc" else ""
        with stages("voxelising the LiDAR sweeps of every keyframe (the baseline the report scores)"):
            baseline = dataset_baseline(NuScenesReader.open(dataset, options.version, config))
        for bag in bags:
            target = out if len(bags) == 1 else out / bag.name
            with stages(f"replaying {bag.name} through the occupancy node at rate {args.rate:g}"):
                recording = record_replay(
                    bag, target / "recording", node_params, args.rate, ReplayOptions(warmup=True), target / "node.log"
                )
            with stages(f"drawing {len(recording.received_stamps)} frames and writing the report"):
                provenance = Provenance(str(checkpoint), args.model_config, str(bag), args.rate, command, data)
                report = write_demo_report(recording, bag, config.grid.spec(), target, provenance, baseline=baseline)
            with stages("writing the Foxglove recording"):  # the same channels as the node's live Foxglove view
                mcap, _ = write_replay_mcap(
                    target / FOXGLOVE_FILE, recording, bag, config.grid.spec(), config.cameras.names,
                    {"checkpoint": str(checkpoint), "model_config": args.model_config, "bag": str(bag)},
                )  # fmt: skip
            n = report.numbers
            miou = "-" if n.overall is None else f"{100 * n.overall.miou:.1f}%"
            print(
                f"[demo] {bag.name}: {n.received}/{n.expected} frames, {n.dropped} dropped, mIoU {miou}; "
                f"see {report.markdown}; Foxglove: {mcap}",
                file=sys.stderr,
            )
    except (DataError, BagError, RecordingError, ReplayError, ValueError, OSError) as err:
        print(f"tacocc demo: error: {err}", file=sys.stderr)
        return 1
    if not args.keep_work:
        for stale in _stale_work(out / WORK_DIR, work.name):
            shutil.rmtree(stale, ignore_errors=True)
    print(f"[demo] finished in {stages.total():.1f} s", file=sys.stderr)
    return 0


def _stale_work(work_root: Path, keep: str) -> list[Path]:
    """Cache folders under `work_root` of other options than `keep`."""
    if not work_root.is_dir():
        return []
    return sorted(p for p in work_root.iterdir() if p.is_dir() and p.name != keep)


def _cached_bags(bag_dir: Path) -> list[Path]:
    """The bag folders of a finished conversion (empty when there is none)."""
    if not bag_dir.is_dir():
        return []
    return sorted(p for p in bag_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
