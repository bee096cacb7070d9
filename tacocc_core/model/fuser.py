"""Target-adaptive bidirectional fuser (paper Sec. III-A, Fig. 2, Eq. 1).

At each pyramid scale s (the coarse volume pooled by 2**s): every non-zero image voxel retrieves its
k nearest non-zero LiDAR voxels and every non-zero LiDAR voxel its k nearest non-zero image voxels
(retrieval.py), with k chosen per query by the selector (selector.py) or fixed. The retrieved keys are
stacked with the query and their offsets, scored per channel, softmax-weighted over the retrieved
slots, and turned into a per-query, per-channel weight w in (0, 1). Weights of all scales are
upsampled to the coarse grid and averaged, giving w_I and w_L, and

    F_IL = conv(Concat(F_I, F_L, F_I * w_I, F_L * w_L))

with F_I, F_L the two volumes projected to `fuser.channels`. Voxels that are no query have w = 0;
so does a query with no key inside its search radius.

Modes: "adaptive" (selector), "fixed" (k = fixed_k for every query, the ablation of Table III/IV),
"none" (the paper's Base: no retrieval, F_IL = conv(Concat(F_I, F_L))).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tacocc_core.config import ModelConfig
from tacocc_core.model.grids import coarse_grid
from tacocc_core.model.retrieval import index_volume, knn_in_radius
from tacocc_core.model.selector import NeighbourhoodSelector, select_k, slot_mask

MODALITIES = ("image", "lidar")


@dataclass
class KStats:
    """Chosen-k histogram per frame, modality and scale (paper Table V).

    Args:
        candidates: the k values counted, in order.
        counts: (B, 2, S, K) int64: queries of frame b, modality m (0 image, 1 LiDAR queries) at scale s
            that chose candidates[i].
    """

    candidates: tuple[int, ...]
    counts: torch.Tensor

    def as_dict(self, frame: int = 0) -> dict[str, dict[int, dict[int, int]]]:
        """{modality: {scale: {k: count}}} of one frame, for logs and /diagnostics."""
        c = self.counts[frame].tolist()
        return {
            m: {s: dict(zip(self.candidates, c[i][s], strict=True)) for s in range(len(c[i]))}
            for i, m in enumerate(MODALITIES)
        }


class CrossModalAttention(nn.Module):
    """Queries of one modality, keys of the other -> per-query, per-channel weight in (0, 1).

    forward(query (N, C), keys (N, S, C), offsets (N, S, 3) in voxels / radius, slots (N, S) mask) -> (N, C).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(2 * channels + 3, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels)
        )
        self.value = nn.Linear(channels, channels)
        self.weight = nn.Linear(2 * channels, channels)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, offsets: torch.Tensor, slots: torch.Tensor
    ) -> torch.Tensor:
        n, s, c = keys.shape
        scores = self.score(torch.cat([query[:, None].expand(n, s, c), keys, offsets.to(keys.dtype)], dim=-1))
        scores = scores.float()
        scores = scores - scores.max(dim=1, keepdim=True).values.detach()
        attn = scores.exp() * slots[..., None]
        attn = attn / attn.sum(dim=1, keepdim=True).clamp(min=1e-6)
        context = (attn * self.value(keys).float()).sum(dim=1)
        has_key = (slots.detach() > 0).any(dim=1, keepdim=True)
        w = torch.sigmoid(self.weight(torch.cat([query.float(), context], dim=-1)))
        return w * has_key


def masked_pool(volume: torch.Tensor, occupied: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, X, Y, Z) volume and (B, X, Y, Z) mask -> mean over occupied voxels in 2**scale blocks, and mask."""
    if scale == 0:
        return volume, occupied
    f = 2**scale
    m = occupied[:, None].to(volume.dtype)
    pooled = F.avg_pool3d(volume * m, f, ceil_mode=True)
    weight = F.avg_pool3d(m, f, ceil_mode=True)
    return pooled / weight.clamp(min=1e-6), (weight[:, 0] > 0)


class AdaptiveFuser(nn.Module):
    """forward(image_volume, image_occupied, lidar_volume, lidar_occupied, tau) -> (F_IL, KStats).

    image_volume: (B, C_I, X, Y, Z); lidar_volume: (B, C_L, X, Y, Z); *_occupied: (B, X, Y, Z) bool,
    the non-zero voxels; coarse grid, LiDAR frame. F_IL: (B, fuser.channels, X, Y, Z).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        f = config.fuser
        self.mode = f.mode
        self.radius = f.search_radius
        self.num_scales = f.num_scales
        self.shape = coarse_grid(config).shape
        c = f.channels
        self.proj_image = nn.Conv3d(config.view_transform.channels, c, 1)
        self.proj_lidar = nn.Conv3d(config.lidar.encoder_channels[-1], c, 1)
        if self.mode == "adaptive":
            candidates = f.k_candidates
        elif self.mode == "fixed":
            candidates = (f.fixed_k,)
        else:
            candidates = ()
        self.candidates = tuple(candidates)
        self.register_buffer("k_values", torch.tensor(self.candidates, dtype=torch.float32), persistent=False)
        # One selector and one attention per scale and query modality, at index scale * 2 + modality
        # (0: image voxels query LiDAR voxels, 1: LiDAR voxels query image voxels).
        directions = len(MODALITIES) * self.num_scales if self.mode != "none" else 0
        self.selectors = nn.ModuleList(
            NeighbourhoodSelector(c, len(candidates)) for _ in range(directions if self.mode == "adaptive" else 0)
        )
        self.attention = nn.ModuleList(CrossModalAttention(c) for _ in range(directions))
        cin = 2 * c if self.mode == "none" else 4 * c
        self.out = nn.Sequential(nn.Conv3d(cin, c, 3, padding=1, bias=False), nn.BatchNorm3d(c), nn.ReLU(inplace=True))

    def forward(
        self,
        image_volume: torch.Tensor,
        image_occupied: torch.Tensor,
        lidar_volume: torch.Tensor,
        lidar_occupied: torch.Tensor,
        tau: float = 1.0,
    ) -> tuple[torch.Tensor, KStats]:
        b = image_volume.shape[0]
        if image_volume.shape[2:] != self.shape or lidar_volume.shape[2:] != self.shape:
            raise ValueError(
                f"AdaptiveFuser: volumes must be on the coarse grid {self.shape}, got image "
                f"{tuple(image_volume.shape[2:])} and LiDAR {tuple(lidar_volume.shape[2:])}"
            )
        f_i = self.proj_image(image_volume) * image_occupied[:, None]
        f_l = self.proj_lidar(lidar_volume) * lidar_occupied[:, None]
        counts = torch.zeros(b, 2, self.num_scales if self.candidates else 0, len(self.candidates), dtype=torch.int64)
        if self.mode == "none":
            return self.out(torch.cat([f_i, f_l], dim=1)), KStats(self.candidates, counts)

        w_i = torch.zeros_like(f_i, dtype=torch.float32)
        w_l = torch.zeros_like(f_l, dtype=torch.float32)
        for s in range(self.num_scales):
            vi, mi = masked_pool(f_i, image_occupied, s)
            vl, ml = masked_pool(f_l, lidar_occupied, s)
            for d, (q_vol, q_occ, k_vol, k_occ, acc) in enumerate(((vi, mi, vl, ml, w_i), (vl, ml, vi, mi, w_l))):
                slot = s * 2 + d
                weights, k_hist = self._retrieve(q_vol, q_occ, k_vol, k_occ, slot, tau)
                counts[:, d, s] = k_hist.cpu()
                acc += F.interpolate(weights, size=self.shape, mode="nearest") / self.num_scales
        fused = torch.cat([f_i, f_l, f_i * w_i.to(f_i.dtype), f_l * w_l.to(f_l.dtype)], dim=1)
        return self.out(fused), KStats(self.candidates, counts)

    def _retrieve(
        self,
        q_vol: torch.Tensor,
        q_occ: torch.Tensor,
        k_vol: torch.Tensor,
        k_occ: torch.Tensor,
        slot: int,
        tau: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights (B, C, Xs, Ys, Zs) of the query voxels of one scale and direction, and the k histogram (B, K)."""
        b, c = q_vol.shape[:2]
        q_coords = q_occ.nonzero()  # (N, 4) [b, x, y, z]
        k_coords = k_occ.nonzero()
        query = q_vol.permute(0, 2, 3, 4, 1)[q_occ]  # (N, C)
        keys = k_vol.permute(0, 2, 3, 4, 1)[k_occ]  # (M, C)
        n_cand = len(self.candidates)
        if self.mode == "adaptive":
            logits = self.selectors[slot](query)
            k, k_soft = select_k(logits, self.k_values, tau, self.training)
        else:
            k = torch.full((len(query),), float(self.candidates[0]), device=query.device)
            k_soft = k
        k_max = int(max(self.candidates))
        index, offset = knn_in_radius(q_coords, index_volume(k_coords, tuple(k_occ.shape[1:]), b), k_max, self.radius)
        slots = slot_mask(k, k_soft, k_max) * (index >= 0)
        gathered = keys[index.clamp(min=0)] if len(keys) else query.new_zeros(len(query), k_max, c)
        w = self.attention[slot](query, gathered, offset.float() / max(self.radius, 1), slots)
        out = torch.zeros(b, *q_occ.shape[1:], c, dtype=w.dtype, device=w.device)
        out[q_occ] = w
        choice = torch.searchsorted(self.k_values, k.detach().contiguous()).clamp(max=n_cand - 1)
        hist = torch.zeros(b * n_cand, dtype=torch.int64, device=w.device)
        hist.index_add_(0, q_coords[:, 0] * n_cand + choice, torch.ones_like(choice))
        return out.permute(0, 4, 1, 2, 3), hist.view(b, n_cand)
