"""Target-adaptive bidirectional fuser (paper Sec. III-A, Fig. 2, Eq. 1).

At each pyramid scale s (the coarse volume pooled by 2**s): every non-zero image voxel retrieves its
k nearest non-zero LiDAR voxels and every non-zero LiDAR voxel its k nearest non-zero image voxels
(retrieval.py: exact KNN; the key at the query's own voxel is retrievable unless
`fuser.exclude_own_voxel`), with k chosen per query by the selector (selector.py) or fixed. The retrieved
keys are stacked with the query and their offsets and scored per channel; each key's value is weighted
by the sigmoid of its score and the k of them are summed into a context c (a sum, not a mean: a larger
neighbourhood brings more context), and a weight w in (0, 1) per channel is computed from query and
context. Weights (and contexts) of all scales are upsampled to the coarse grid and averaged, and

    F_IL = conv(Concat(F_I, F_L, F_I * w_I, F_L * w_L))                    (Eq. 1, `context_terms: false`)
    F_IL = conv(Concat(F_I, F_L, F_I * w_I + c_I, F_L * w_L + c_L))        (`context_terms: true`)

with F_I, F_L the two volumes projected to `fuser.channels`. With the context terms the retrieved keys
reach F_IL directly and not only through the weight. Voxels that are no query have w = c = 0; so does a
query when the other modality has no voxel at all in its sample.

Training: the selector's hard k is used in the forward pass; every candidate k's gate and context are
computed and mixed with the straight-through one-hot of the choice (`selector.KChoice.mix`), so the
occupancy loss reaches the selector with the difference the candidates make to F_IL.

Modes: "adaptive" (selector), "fixed" (k = fixed_k for every query, the ablation of Table III/IV),
"none" (the paper's Base: no retrieval, F_IL = conv(Concat(F_I, F_L, 0, 0)), computed without the
zero half). The modes share every module but the selectors, so a fixed-k or retrieval-off variant of a
trained adaptive fuser is a fuser of that mode loaded with its weights (`load_state_dict(strict=False)`).
Every module the modes share is built from its own seed drawn once from the global stream, so that
for one seed all modes start from the same weights and leave the global stream in the same state for
the modules built after the fuser. The Gumbel noise has generators of its own, one per sample,
seeded from (`seed_noise`, the sample's key, scale and direction): a sample draws the same noise whatever
batch or process it is in, so that DDP over N processes equals one process with an N times larger batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from tacocc_core.config import ModelConfig
from tacocc_core.model.grids import coarse_grid
from tacocc_core.model.retrieval import knn
from tacocc_core.model.selector import KChoice, NeighbourhoodSelector, choose_k, gumbel_noise

MODALITIES = ("image", "lidar")
ModuleT = TypeVar("ModuleT", bound=nn.Module)
# Offsets fed to the attention are in search radii, clipped: far keys (exact KNN beyond the cube) read
# as "far in this direction".
MAX_OFFSET_RADII = 4.0


@dataclass
class KStats:
    """Chosen-k histogram per frame, modality and scale (paper Table V), and where each k was chosen.

    Args:
        candidates: the k values counted, in order.
        counts: (B, 2, S, K) int64: queries of frame b, modality m (0 image, 1 LiDAR queries) at scale s
            that chose candidates[i].
        maps: per (scale s, modality m) at index s * 2 + m: (B, Xs, Ys, Zs) int8 chosen k of each query
            voxel of that scale's grid (the coarse grid pooled by 2**s), 0 where there is no query.
    """

    candidates: tuple[int, ...]
    counts: torch.Tensor
    maps: list[torch.Tensor] = field(default_factory=list)

    def as_dict(self, frame: int = 0) -> dict[str, dict[int, dict[int, int]]]:
        """{modality: {scale: {k: count}}} of one frame, for logs and /diagnostics."""
        c = self.counts[frame].tolist()
        return {
            m: {s: dict(zip(self.candidates, c[i][s], strict=True)) for s in range(len(c[i]))}
            for i, m in enumerate(MODALITIES)
        }


class CrossModalAttention(nn.Module):
    """Queries of one modality, keys of the other -> per-query, per-channel gate in (0, 1) and context.

    forward(query (N, C), keys (N, S, C), offsets (N, S, 3) in search radii, valid (N, S) bool,
    limits (N, L) int: slot j is used for variant l when j < limits[:, l]) -> gate (N, L, C), context (N, L, C).
    Variants: one per candidate k in training (the relaxation), one (the chosen k) at inference.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(2 * channels + 3, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels)
        )
        self.value = nn.Linear(channels, channels)
        self.weight = nn.Linear(2 * channels, channels)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, offsets: torch.Tensor, valid: torch.Tensor, limits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, s, c = keys.shape
        scores = self.score(torch.cat([query[:, None].expand(n, s, c), keys, offsets.to(keys.dtype)], dim=-1))
        j = torch.arange(s, device=keys.device)
        slots = (valid[:, None, :] & (j[None, None] < limits[..., None])).float()  # (N, L, S)
        attn = torch.sigmoid(scores.float())[:, None] * slots[..., None]  # (N, L, S, C)
        context = (attn * self.value(keys).float()[:, None]).sum(dim=2)  # (N, L, C)
        has_key = (slots.sum(dim=2, keepdim=True) > 0).float()
        q = query.float()[:, None].expand(n, limits.shape[1], c)
        gate = torch.sigmoid(self.weight(torch.cat([q, context], dim=-1).to(query.dtype)).float())
        return gate * has_key, context * has_key


def masked_pool(volume: torch.Tensor, occupied: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, X, Y, Z) volume and (B, X, Y, Z) mask -> mean over occupied voxels in 2**scale blocks, and mask."""
    if scale == 0:
        return volume, occupied
    f = 2**scale
    m = occupied[:, None].to(volume.dtype)
    pooled = F.avg_pool3d(volume * m, f, ceil_mode=True)
    weight = F.avg_pool3d(m, f, ceil_mode=True)
    return pooled / weight.clamp(min=1e-6), (weight[:, 0] > 0)


def _to_coarse_grid(volume: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(B, C, Xs, Ys, Zs) -> (B, C, *shape) by nearest upsampling; the volume itself where it is on the grid."""
    return volume if tuple(volume.shape[2:]) == tuple(shape) else F.interpolate(volume, size=shape, mode="nearest")


def _seeded(seed: int, build: Callable[[], ModuleT]) -> ModuleT:
    """Build a module with the global generator seeded by `seed`, leaving the global stream as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class AdaptiveFuser(nn.Module):
    """forward(image_volume, image_occupied, lidar_volume, lidar_occupied, tau, noise_scale) -> (F_IL, KStats).

    image_volume: (B, C_I, X, Y, Z); lidar_volume: (B, C_L, X, Y, Z); *_occupied: (B, X, Y, Z) bool,
    the non-zero voxels; coarse grid, LiDAR frame. F_IL: (B, fuser.channels, X, Y, Z).
    """

    k_values: torch.Tensor  # (K,) int64 buffer: the candidates

    def __init__(self, config: ModelConfig):
        super().__init__()
        f = config.fuser
        self.mode = f.mode
        self.radius = f.search_radius
        self.num_scales = f.num_scales
        self.context_terms = f.context_terms
        self.skip_own_voxel = f.exclude_own_voxel
        self.shape = coarse_grid(config).shape
        c = self.channels = f.channels
        if self.mode == "adaptive":
            candidates = f.k_candidates
        elif self.mode == "fixed":
            candidates = (f.fixed_k,)
        else:
            candidates = ()
        self.candidates = tuple(int(k) for k in candidates)
        self.register_buffer("k_values", torch.tensor(self.candidates, dtype=torch.int64), persistent=False)
        # One draw from the global stream in every mode; each module below gets its own seed from it.
        base = int(torch.randint(0, 2**31 - 1, (1,)))
        vt, lc = config.view_transform.channels, config.lidar.encoder_channels[-1]
        self.proj_image = _seeded(base, lambda: nn.Conv3d(vt, c, 1))
        self.proj_lidar = _seeded(base + 1, lambda: nn.Conv3d(lc, c, 1))
        # One selector and one attention per scale and query modality, at index scale * 2 + modality
        # (0: image voxels query LiDAR voxels, 1: LiDAR voxels query image voxels).
        directions = len(MODALITIES) * self.num_scales if self.mode != "none" else 0
        self.attention = nn.ModuleList(
            _seeded(base + 100 + i, lambda: CrossModalAttention(c)) for i in range(directions)
        )
        self.selectors = nn.ModuleList(
            _seeded(base + 200 + i, lambda: NeighbourhoodSelector(c, len(candidates)))
            for i in range(directions if self.mode == "adaptive" else 0)
        )
        self.out = _seeded(
            base + 2,
            lambda: nn.Sequential(
                nn.Conv3d(4 * c, c, 3, padding=1, bias=False), nn.BatchNorm3d(c), nn.ReLU(inplace=True)
            ),
        )
        self.noise_seed = base + 3

    def seed_noise(self, seed: int) -> None:
        """Seed of the Gumbel noise (the training loop sets it per step)."""
        self.noise_seed = int(seed)

    def forward(
        self,
        image_volume: torch.Tensor,
        image_occupied: torch.Tensor,
        lidar_volume: torch.Tensor,
        lidar_occupied: torch.Tensor,
        tau: float = 1.0,
        noise_scale: float = 0.0,
        noise_keys: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, KStats]:
        """Fuse; `noise_keys` names each sample for its Gumbel noise (the frame's stamp; default: its index)."""
        b = image_volume.shape[0]
        keys = list(noise_keys) if noise_keys is not None else list(range(b))
        if image_volume.shape[2:] != self.shape or lidar_volume.shape[2:] != self.shape:
            raise ValueError(
                f"AdaptiveFuser: volumes must be on the coarse grid {self.shape}, got image "
                f"{tuple(image_volume.shape[2:])} and LiDAR {tuple(lidar_volume.shape[2:])}"
            )
        f_i = self.proj_image(image_volume) * image_occupied[:, None]
        f_l = self.proj_lidar(lidar_volume) * lidar_occupied[:, None]
        counts = torch.zeros(b, 2, self.num_scales if self.candidates else 0, len(self.candidates), dtype=torch.int64)
        if self.mode == "none":
            return self._output(torch.cat([f_i, f_l], dim=1)), KStats(self.candidates, counts)

        acc = [torch.zeros_like(f_i, dtype=torch.float32) for _ in range(4)]  # w_I, c_I, w_L, c_L
        maps = []
        for s in range(self.num_scales):
            vi, mi = masked_pool(f_i, image_occupied, s)
            vl, ml = masked_pool(f_l, lidar_occupied, s)
            for d, (q_vol, q_occ, k_vol, k_occ) in enumerate(((vi, mi, vl, ml), (vl, ml, vi, mi))):
                gate, context, k_map, k_hist = self._retrieve(
                    q_vol, q_occ, k_vol, k_occ, s * 2 + d, tau, noise_scale, keys
                )
                counts[:, d, s] = k_hist.cpu()
                maps.append(k_map)
                acc[2 * d] += _to_coarse_grid(gate, self.shape) / self.num_scales
                acc[2 * d + 1] += _to_coarse_grid(context, self.shape) / self.num_scales
        w_i, c_i, w_l, c_l = (a.to(f_i.dtype) for a in acc)
        if self.context_terms:
            term_i = (f_i * w_i + c_i) * image_occupied[:, None]
            term_l = (f_l * w_l + c_l) * lidar_occupied[:, None]
        else:
            term_i, term_l = f_i * w_i, f_l * w_l
        fused = torch.cat([f_i, f_l, term_i, term_l], dim=1)
        return self._output(fused), KStats(self.candidates, counts, maps)

    def _output(self, fused: torch.Tensor) -> torch.Tensor:
        """The output conv; with 2C input channels (mode none) only the weights of the first 2C are used."""
        conv = cast(nn.Conv3d, self.out[0])
        if fused.shape[1] == conv.in_channels:
            x = conv(fused)
        else:
            x = F.conv3d(fused, conv.weight[:, : fused.shape[1]], padding=conv.padding)
        return self.out[2](self.out[1](x))

    def _choose(
        self, query: torch.Tensor, sample: torch.Tensor, slot: int, tau: float, noise_scale: float, keys: list[int]
    ) -> KChoice | None:
        """The selector's choice (adaptive mode), else None. `sample`: (N,) batch index, sorted."""
        if self.mode != "adaptive":
            return None
        logits = self.selectors[slot](query)
        noise = None
        if self.training and noise_scale > 0:
            per_sample = torch.bincount(sample, minlength=len(keys)).tolist()
            noise = torch.cat(
                [
                    gumbel_noise((n, logits.shape[1]), torch.Generator().manual_seed(self._noise_seed(key, slot)))
                    for key, n in zip(keys, per_sample, strict=True)
                ]
            )
        return choose_k(logits, self.k_values, tau, noise, noise_scale)

    def _noise_seed(self, key: int, slot: int) -> int:
        return ((self.noise_seed * 1_000_003 + int(key)) * 64 + slot) % (2**63 - 1)

    def _retrieve(
        self,
        q_vol: torch.Tensor,
        q_occ: torch.Tensor,
        k_vol: torch.Tensor,
        k_occ: torch.Tensor,
        slot: int,
        tau: float,
        noise_scale: float,
        noise_keys: list[int],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One scale and direction -> gate, context (B, C, Xs, Ys, Zs) at the queries, k map, histogram (B, K)."""
        b, c = q_vol.shape[:2]
        q_coords = q_occ.nonzero()  # (N, 4) [b, x, y, z]
        k_coords = k_occ.nonzero()
        query = q_vol.permute(0, 2, 3, 4, 1)[q_occ]  # (N, C)
        keys = k_vol.permute(0, 2, 3, 4, 1)[k_occ]  # (M, C)
        n = len(query)
        choice = self._choose(query, q_coords[:, 0], slot, tau, noise_scale, noise_keys)
        if choice is not None:
            k = choice.k
        else:
            k = torch.full((n,), self.candidates[0], dtype=torch.int64, device=query.device)
        k_max = max(self.candidates)
        index, offset = knn(q_coords, k_coords, k_max, self.radius, tuple(k_occ.shape), self.skip_own_voxel)
        gathered = keys[index.clamp(min=0)] if len(keys) else query.new_zeros(n, k_max, c)
        offsets = (offset.float() / max(self.radius, 1)).clamp(-MAX_OFFSET_RADII, MAX_OFFSET_RADII)
        attention = self.attention[slot]
        if choice is not None and self.training:
            # The relaxation: every candidate's output, mixed by the straight-through one-hot of the choice.
            limits = self.k_values[None].expand(n, -1)
            gates, contexts = attention(query, gathered, offsets, index >= 0, limits)
            gate = (choice.mix[..., None] * gates).sum(dim=1)
            context = (choice.mix[..., None] * contexts).sum(dim=1)
        else:
            gates, contexts = attention(query, gathered, offsets, index >= 0, k[:, None])
            gate, context = gates[:, 0], contexts[:, 0]
        out = torch.zeros(2, b, *q_occ.shape[1:], c, dtype=gate.dtype, device=gate.device)
        out[0][q_occ] = gate
        out[1][q_occ] = context
        k_map = torch.zeros(q_occ.shape, dtype=torch.int8, device=q_occ.device)
        k_map[q_occ] = k.to(torch.int8)
        n_cand = len(self.candidates)
        index_k = torch.searchsorted(self.k_values, k.contiguous()).clamp(max=n_cand - 1)
        hist = torch.zeros(b * n_cand, dtype=torch.int64, device=gate.device)
        hist.index_add_(0, q_coords[:, 0] * n_cand + index_k, torch.ones_like(index_k))
        return out[0].permute(0, 4, 1, 2, 3), out[1].permute(0, 4, 1, 2, 3), k_map, hist.view(b, n_cand)
