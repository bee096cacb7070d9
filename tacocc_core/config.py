"""Typed model configuration, loaded from the YAML presets under `config/`.

Every section is a frozen dataclass whose field types and ranges are checked when a file is loaded:
an unknown key, a value of the wrong type or a value out of range raises `ConfigError` naming the
file, the dotted key and what is allowed. Keys left out of a file take the defaults below, which are
the nuScenes preset; the preset files spell out every key so that they read top to bottom.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from tacocc_core.geometry import GridSpec
from tacocc_core.strict_yaml import STRICT, ConfigError, read_yaml_mapping, to_plain_dict, validate_mapping

# Strict: YAML `"0.5"` is not a float and `2.0` is not an int. Validation goes through JSON mode so
# that YAML lists are accepted where the schema says tuple.


PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
UnitFloat = Annotated[float, Field(ge=0, le=1)]

NUSCENES_CAMERAS = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)


@dataclass(config=STRICT)
class GridConfig:
    """Output voxel grid in the LiDAR frame (metres). Shape = (upper - lower) / voxel_size per axis.

    Args:
        x_range, y_range, z_range: (lower, upper) bounds in metres.
        voxel_size: edge of a cubic voxel in metres.
    """

    x_range: tuple[float, float] = (-50.0, 50.0)
    y_range: tuple[float, float] = (-50.0, 50.0)
    z_range: tuple[float, float] = (-5.0, 3.0)
    voxel_size: PositiveFloat = 0.5

    def spec(self) -> GridSpec:
        return GridSpec.from_ranges(self.x_range, self.y_range, self.z_range, self.voxel_size)


@dataclass(config=STRICT)
class CameraConfig:
    """The camera rig as the network sees it.

    Args:
        names: camera names in network order (nuScenes channel names by default).
        image_size: (height, width) of the images fed to the network after resize/crop.
        sky_mask: mask the sky (unsupervised segmentation) out of the images before the image encoder.
    """

    names: tuple[str, ...] = NUSCENES_CAMERAS
    image_size: tuple[PositiveInt, PositiveInt] = (256, 704)
    sky_mask: bool = True


@dataclass(config=STRICT)
class ImageBackboneConfig:
    """torchvision ResNet trunk + FPN neck.

    Args:
        depth: ResNet depth (18/34 for small presets, 50/101 as in the paper).
        pretrained: optional path of a local torchvision checkpoint; nothing is downloaded.
        fpn_channels: channels of the FPN outputs.
        feature_stride: stride of the FPN level that the view transformer lifts (8 or 16).
        stages: ResNet stages kept (layer1..layer<stages>); the later ones are never built. 4 is the whole
            trunk; 2 ends at stride 8 with a ResNet-18 trunk of 0.7 M instead of 11 M weights (demo preset).
    """

    depth: Literal[18, 34, 50, 101] = 50
    pretrained: str | None = None
    fpn_channels: PositiveInt = 256
    feature_stride: Literal[8, 16] = 16
    stages: Literal[2, 3, 4] = 4


@dataclass(config=STRICT)
class ViewTransformConfig:
    """LSS lift: per-pixel depth distribution x context features, pooled into voxels.

    Args:
        depth_bins: (min, max, step) of the depth candidates in metres.
        channels: channels of the image voxel volume F_I.
        depth_loss_weight: weight of depth supervision from projected LiDAR (0 disables it).
    """

    depth_bins: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = (1.0, 60.0, 0.5)
    channels: PositiveInt = 64
    depth_loss_weight: NonNegativeFloat = 0.0


@dataclass(config=STRICT)
class LidarConfig:
    """LiDAR input, denoising and the sparse encoder.

    Args:
        sweeps: previous sweeps merged into each keyframe (motion-compensated, with a time-lag channel).
        encoder_channels: channels of the spconv stages; the last one is the channels of F_L.
        min_range, max_range: points closer or farther than this (metres, LiDAR frame) are dropped.
        ego_box: (length, width, height) of the ego-vehicle box centred on the LiDAR origin whose
            returns are dropped; (0, 0, 0) keeps them.
        ego_forward_axis: the LiDAR axis along which the ego box's length runs (nuScenes LIDAR_TOP: "y").
        outlier_neighbours, outlier_std: statistical outlier removal (0 neighbours disables it).
    """

    sweeps: NonNegativeInt = 9
    encoder_channels: tuple[PositiveInt, ...] = (16, 32, 64)
    min_range: NonNegativeFloat = 1.0
    max_range: PositiveFloat = 80.0
    ego_box: tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat] = (4.2, 2.0, 2.0)
    ego_forward_axis: Literal["x", "y"] = "y"
    outlier_neighbours: NonNegativeInt = 0
    outlier_std: PositiveFloat = 3.0


@dataclass(config=STRICT)
class FuserConfig:
    """Target-adaptive bidirectional fuser (paper Sec. III-A).

    Args:
        mode: "adaptive" (k per query from the selector), "fixed" (k = fixed_k), "none" (concat only).
        k_candidates: neighbour counts the selector chooses from.
        fixed_k: k in fixed mode.
        num_scales: pyramid scales fused.
        search_radius: neighbours are searched first within this many voxels (Chebyshev) of the query;
            queries that this cube cannot settle get an exact KNN over all keys of their sample.
        gumbel_tau: (start, end) temperature of the selector's softmax, annealed over tau_anneal_steps;
            inference uses the end value.
        tau_anneal_steps: training steps over which tau goes from start to end.
        noise_fade: False (the paper): the Gumbel noise keeps its full scale for the whole of training;
            True: it fades linearly to 0 over tau_anneal_steps, so that training ends on the inference rule.
        context_terms: False (Eq. 1 as printed): F_IL = Concat(F_I, F_L, F_I * w_I, F_L * w_L); True adds the
            retrieved context, Concat(F_I, F_L, F_I * w_I + c_I, F_L * w_L + c_L).
        exclude_own_voxel: False (the paper's reading): the key at the query's own voxel is retrievable
            (k = 1 is that key when the other modality has one there); True: only other voxels are retrieved.
        channels: channels of the fused volume F_IL after its output conv.
    """

    mode: Literal["adaptive", "fixed", "none"] = "adaptive"
    k_candidates: tuple[PositiveInt, ...] = (1, 2, 3)
    fixed_k: PositiveInt = 3
    num_scales: PositiveInt = 2
    search_radius: PositiveInt = 2
    gumbel_tau: tuple[PositiveFloat, PositiveFloat] = (1.0, 0.1)
    tau_anneal_steps: NonNegativeInt = 10000
    noise_fade: bool = False
    context_terms: bool = False
    exclude_own_voxel: bool = False
    channels: PositiveInt = 64


@dataclass(config=STRICT)
class TemporalConfig:
    """ConvLSTM temporal aggregator (paper Eq. 2).

    Args:
        enabled: False bypasses the aggregator.
        window: T, frames per training sequence.
        hidden_channels: channels of the ConvLSTM state.
        max_gap_s: the streaming state resets when consecutive stamps are farther apart than this.
    """

    enabled: bool = True
    window: PositiveInt = 5
    hidden_channels: PositiveInt = 64
    max_gap_s: PositiveFloat = 1.0


@dataclass(config=STRICT)
class HeadConfig:
    """Cascaded occupancy head.

    Args:
        coarse_downsample: the fusion/coarse volume is the output grid divided by this per axis.
        cascade_ratio: upsampling of the fine stage over the coarse one.
        channels: hidden channels of the head.
        fine_topk_train: at most this many coarse voxels are refined per frame during training.
    """

    coarse_downsample: PositiveInt = 2
    cascade_ratio: PositiveInt = 2
    channels: PositiveInt = 64
    fine_topk_train: PositiveInt = 40000


@dataclass(config=STRICT)
class LossConfig:
    """Occupancy loss weights (cross-entropy + Lovasz-softmax on coarse and fine outputs).

    Args:
        ce_weight, lovasz_weight: weight of each term.
        coarse_weight, fine_weight: weight of each stage.
        class_weights: 17 per-class CE weights (empty tuple: uniform).
    """

    ce_weight: NonNegativeFloat = 1.0
    lovasz_weight: NonNegativeFloat = 1.0
    coarse_weight: NonNegativeFloat = 0.5
    fine_weight: NonNegativeFloat = 1.0
    class_weights: tuple[NonNegativeFloat, ...] = ()


@dataclass(config=STRICT)
class RendererConfig:
    """Sequential Gaussian renderer used at training time (paper Sec. III-B/C).

    Args:
        enabled: False trains without photometric supervision (ablation).
        dssim_lambda: lambda of L_rgb = (1 - lambda) L1 + lambda D-SSIM.
        pc_lambda: lambda of the total (1 - lambda) L_occ + lambda L_pc.
        inner_steps: cap on the Gaussian-only optimisation steps on L_rgb (the fit stops earlier once it
            converges, see inner_tolerance).
        max_gaussians: cap on Gaussians per frame (LiDAR + voxel anchors).
        lidar_anchors: LiDAR points subsampled as anchors.
        sh_degree: spherical-harmonics degree of the colours.
        render_scale: rendered image size relative to the network image size.
        velocity_beta_init: initial value of the learnable beta of the velocity gate (paper Eq. 4).
        velocity_widen: factor on the temporal bandwidth sigma_t of Gaussians moving faster than tau.
        velocity_softness: width of the soft gate that gives beta its gradient, relative to tau.
        head_channels: hidden channels of the light conv net that predicts each Gaussian's parameters.
        lidar_offset_max: bound (metres, per axis) of the predicted offset of a LiDAR-anchored Gaussian.
        voxel_offset_max: bound (metres, per axis) of the predicted offset of a voxel-anchored Gaussian.
        voxel_anchor_source: which coarse voxels of F~_IL count as "non-zero" and hold a voxel anchor:
            "feature_norm" (the paper's words: max |feature| above voxel_threshold; on the dense ConvLSTM
            output that is every voxel, the highest-norm ones kept) or "predicted" (the coarse head calls
            them occupied, ranked by 1 - p(empty) when capped).
        voxel_threshold: with voxel_anchor_source "feature_norm", a voxel is non-zero when max |feature|
            exceeds this.
        inner_lr: Adam learning rate of every parameter group when inner_lr_schedule is "uniform".
        inner_lr_schedule: "3dgs": one Adam learning rate per parameter group, the inner_lr_* values
            below (3D Gaussian splatting's); "uniform": inner_lr for every group.
        inner_lr_means: learning rate of the means per metre of scene extent (the grid's half diagonal).
        inner_lr_quats: learning rate of the (unnormalised) rotation quaternions.
        inner_lr_log_scales: learning rate of the log standard deviations.
        inner_lr_opacities: learning rate of the opacity logits.
        inner_lr_sh: learning rate of the SH colour DC term; higher-order terms get a twentieth of it.
        inner_lr_mu_t: learning rate of the temporal centres per second of window duration.
        inner_lr_log_sigma_t: learning rate of the log temporal bandwidths.
        inner_tolerance: the fit has converged when L_rgb fell by less than this fraction over the last
            inner_window steps; 0 runs every one of inner_steps.
        inner_window: steps over which inner_tolerance compares L_rgb.
        pc_reduction: "sum": L_pc = sum_i ||Theta_i^final - Theta_i^0||_1 as the paper writes it; "mean":
            the same divided by the number of Gaussians N.
        neighbour_frames: the Gaussians of frame t are also rendered into the cameras of this many frames
            before and after t in the window (at their times); 0 renders frame t's cameras only; None
            renders into every frame of the temporal window (the paper's T-frame window).
    """

    enabled: bool = True
    dssim_lambda: UnitFloat = 0.2
    pc_lambda: UnitFloat = 0.2
    inner_steps: NonNegativeInt = 1000
    max_gaussians: PositiveInt = 200000
    lidar_anchors: NonNegativeInt = 60000
    sh_degree: Literal[0, 1, 2, 3] = 1
    render_scale: Annotated[float, Field(gt=0, le=1)] = 1.0
    velocity_beta_init: PositiveFloat = 1.0
    velocity_widen: Annotated[float, Field(ge=1)] = 2.0
    velocity_softness: PositiveFloat = 0.1
    head_channels: PositiveInt = 32
    lidar_offset_max: PositiveFloat = 0.1
    voxel_offset_max: PositiveFloat = 0.5
    voxel_anchor_source: Literal["predicted", "feature_norm"] = "predicted"
    voxel_threshold: NonNegativeFloat = 0.0
    inner_lr: PositiveFloat = 0.05
    inner_lr_schedule: Literal["3dgs", "uniform"] = "3dgs"
    inner_lr_means: PositiveFloat = 1.6e-4
    inner_lr_quats: PositiveFloat = 1e-3
    inner_lr_log_scales: PositiveFloat = 5e-3
    inner_lr_opacities: PositiveFloat = 0.05
    inner_lr_sh: PositiveFloat = 2.5e-3
    inner_lr_mu_t: PositiveFloat = 1.6e-4
    inner_lr_log_sigma_t: PositiveFloat = 5e-3
    inner_tolerance: Annotated[float, Field(ge=0, lt=1)] = 0.01
    inner_window: PositiveInt = 50
    pc_reduction: Literal["sum", "mean"] = "sum"
    neighbour_frames: NonNegativeInt | None = None


@dataclass(config=STRICT)
class ModelConfig:
    """Everything that defines a TACOcc network and its training losses.

    Args:
        name: name of the network, shown in logs, error messages and reports (a label only).
    """

    name: str = "nuscenes_r50_256x704"
    grid: GridConfig = dataclasses.field(default_factory=GridConfig)
    cameras: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    image_backbone: ImageBackboneConfig = dataclasses.field(default_factory=ImageBackboneConfig)
    view_transform: ViewTransformConfig = dataclasses.field(default_factory=ViewTransformConfig)
    lidar: LidarConfig = dataclasses.field(default_factory=LidarConfig)
    fuser: FuserConfig = dataclasses.field(default_factory=FuserConfig)
    temporal: TemporalConfig = dataclasses.field(default_factory=TemporalConfig)
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    renderer: RendererConfig = dataclasses.field(default_factory=RendererConfig)

    def __post_init__(self) -> None:
        self._check_consistency()

    def _check_consistency(self) -> None:
        """Cross-field rules that single-field types cannot express."""
        g = self.grid
        for axis, (lo, hi) in zip("xyz", (g.x_range, g.y_range, g.z_range), strict=True):
            if not hi > lo:
                raise ValueError(f"grid.{axis}_range must be (lower, upper) with upper > lower, got ({lo}, {hi})")
        shape = g.spec().shape
        step = self.head.coarse_downsample
        if any(n % step for n in shape):
            raise ValueError(f"grid shape {shape} must be divisible by head.coarse_downsample={step}")
        if self.head.cascade_ratio != step:
            raise ValueError(
                f"head.cascade_ratio={self.head.cascade_ratio} must equal head.coarse_downsample={step}: "
                "the fine stage refines the coarse grid back to the output grid"
            )
        deepest_stride = 2 ** (self.image_backbone.stages + 1)
        if self.image_backbone.feature_stride > deepest_stride:
            raise ValueError(
                f"image_backbone.feature_stride={self.image_backbone.feature_stride} needs a deeper trunk: "
                f"image_backbone.stages={self.image_backbone.stages} ends at stride {deepest_stride}"
            )
        lo, hi, step_d = self.view_transform.depth_bins
        if not hi > lo:
            raise ValueError(f"view_transform.depth_bins must be (min, max, step) with max > min, got {lo, hi}")
        if not self.lidar.max_range > self.lidar.min_range:
            raise ValueError("lidar.max_range must be greater than lidar.min_range")
        if len(self.cameras.names) == 0 or len(set(self.cameras.names)) != len(self.cameras.names):
            raise ValueError(f"cameras.names must be non-empty and unique, got {self.cameras.names}")
        ks = self.fuser.k_candidates
        if not ks or any(a >= b for a, b in zip(ks, ks[1:], strict=False)):
            raise ValueError(f"fuser.k_candidates must be distinct and increasing, got {self.fuser.k_candidates}")
        if self.loss.class_weights and len(self.loss.class_weights) != 17:
            raise ValueError(f"loss.class_weights needs 17 values (classes 0..16), got {len(self.loss.class_weights)}")
        if not self.lidar.encoder_channels:
            raise ValueError("lidar.encoder_channels must name at least one stage")


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> ModelConfig:
    """Validate a nested dict (as read from YAML) into a ModelConfig; `source` names it in errors."""
    return validate_mapping(ModelConfig, data, source)


def load_config(path: str | os.PathLike[str]) -> ModelConfig:
    """Load and validate a model config YAML file."""
    return config_from_dict(read_yaml_mapping(path, "config"), source=str(path))


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """Plain nested dict (lists for tuples), the inverse of `config_from_dict`."""
    return to_plain_dict(config)


def diff_configs(a: ModelConfig, b: ModelConfig) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{prefix}.{key}" if prefix else key)
        elif x != y:
            out.append(prefix)

    walk(config_to_dict(a), config_to_dict(b), "")
    return out


def config_dirs() -> list[Path]:
    """Where presets are looked up, in order: $TACOCC_CONFIG_DIR, the source tree, the install prefix."""
    dirs = []
    if env := os.environ.get("TACOCC_CONFIG_DIR"):
        dirs.append(Path(env))
    dirs.append(Path(__file__).resolve().parent.parent / "config")
    dirs.append(Path(sys.prefix) / "share" / "tacocc_ros" / "config")
    try:  # a ROS 2 install (colcon): the package's share directory
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory("tacocc_ros")) / "config")
    except Exception:  # noqa: BLE001 - not installed through ament, or no ament_index_python
        pass
    return dirs


def demo_checkpoint_path() -> Path:
    """`checkpoints/demo.pt` beside the first preset folder that has one (source tree, then install prefixes)."""
    candidates = [folder.parent / "checkpoints" / "demo.pt" for folder in config_dirs()]
    fallback = Path(__file__).resolve().parents[1] / "checkpoints" / "demo.pt"
    return next((c for c in candidates if c.is_file()), fallback)


PRESETS = ("nuscenes_r50_256x704", "tiny", "demo", "nuscenes_r101_896x1600")


def preset_path(name: str) -> Path:
    """The YAML file of a named preset, or a path given directly."""
    direct = Path(name)
    if direct.suffix in (".yaml", ".yml"):
        if direct.is_file():
            return direct
        raise ConfigError(f"{direct}: config file not found")
    for folder in config_dirs():
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"unknown preset {name!r}: known presets are {', '.join(PRESETS)}, or pass a .yaml path")


def load_preset(name: str) -> ModelConfig:
    """Load a preset by name (`tiny`, `nuscenes_r50_256x704`) or a config YAML path."""
    return load_config(preset_path(name))
