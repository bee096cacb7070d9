"""k-nearest-neighbour retrieval between two sparse voxel sets through a dense voxel-index volume.

No N_query x N_key distance matrix: the keys are written into a dense (B, X, Y, Z) index volume; each
query reads the (2r + 1)^3 cells of the cube of Chebyshev radius r = `radius` around it, visited in
order of Euclidean distance (ties by (dx, dy, dz) lexicographic, which for keys of one query is the
order of their linear index), and keeps the first `k` cells that hold a key. Cost: O(N_query * (2r+1)^3).

Within the radius this is exact KNN among the keys of the cube. Any key outside the cube lies farther
than r voxels away, so whenever the k-th neighbour found is within Euclidean distance r it is also
the exact global k-th nearest neighbour. When fewer than k keys lie inside the cube the remaining
slots are -1 (empty): the fuser masks them out, and a query with no key in range attends to nothing
(its attention weight is 0, see fuser.py). With r = 2 and k <= 3 that is a neighbourhood of 125
cells, i.e. 5 voxels across at each pyramid scale.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F


def cube_offsets(radius: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(M, 3) int64 offsets of the cube of Chebyshev radius `radius`, nearest first (then lexicographic)."""
    if radius < 0:
        raise ValueError(f"fuser.search_radius must be >= 0, got {radius}")
    rng = range(-radius, radius + 1)
    offsets = sorted(itertools.product(rng, rng, rng), key=lambda o: (o[0] ** 2 + o[1] ** 2 + o[2] ** 2, o))
    return torch.tensor(offsets, dtype=torch.int64, device=device)


def index_volume(coords: torch.Tensor, shape: tuple[int, int, int], batch_size: int) -> torch.Tensor:
    """(B, X, Y, Z) int64 volume holding the row of `coords` ((N, 4) [b, x, y, z]) in each cell, -1 elsewhere."""
    vol = torch.full((batch_size, *shape), -1, dtype=torch.int64, device=coords.device)
    c = coords.long()
    vol[c[:, 0], c[:, 1], c[:, 2], c[:, 3]] = torch.arange(len(c), device=coords.device)
    return vol


def knn_in_radius(
    query_coords: torch.Tensor, key_volume: torch.Tensor, k: int, radius: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest keys of each query inside its search cube.

    Args:
        query_coords: (N, 4) int [b, x, y, z] voxel indices.
        key_volume: (B, X, Y, Z) int64 from `index_volume` of the keys.
        k: neighbours per query (slots).
        radius: Chebyshev search radius in voxels.

    Returns:
        index: (N, k) int64 rows of the key set, -1 for empty slots, nearest first.
        offset: (N, k, 3) int64 key voxel - query voxel (0 for empty slots).
    """
    n = len(query_coords)
    offsets = cube_offsets(radius, query_coords.device)  # (M, 3)
    m = len(offsets)
    if n == 0 or k == 0:
        empty = torch.full((n, k), -1, dtype=torch.int64, device=query_coords.device)
        return empty, torch.zeros(n, k, 3, dtype=torch.int64, device=query_coords.device)
    # Pad the volume by the radius with -1 so that every cell of every query's cube is addressable
    # without bounds checks: cube cell = query's linear index + a fixed linear offset.
    padded = F.pad(key_volume, (radius,) * 6, value=-1)
    _, px, py, pz = padded.shape
    q = query_coords.long()
    q_lin = ((q[:, 0] * px + q[:, 1] + radius) * py + q[:, 2] + radius) * pz + q[:, 3] + radius
    off_lin = (offsets[:, 0] * py + offsets[:, 1]) * pz + offsets[:, 2]
    found = padded.reshape(-1)[q_lin[:, None] + off_lin[None]]  # (N, M) key rows, -1 for empty cells
    # Visiting rank of each cell that holds a key (M for empty ones); keep the k smallest.
    rank = torch.arange(m, device=q.device).expand(n, m)
    order = torch.where(found >= 0, rank, m)
    first = torch.topk(order, min(k, m), dim=1, largest=False).values  # (N, min(k, M)) ascending
    hit = first < m
    pos = torch.where(hit, first, 0)
    index = torch.where(hit, found.gather(1, pos), -1)
    offset = offsets[pos] * hit[..., None]
    if k > m:  # more slots than cells in the cube
        pad = k - m
        index = torch.cat([index, index.new_full((n, pad), -1)], dim=1)
        offset = torch.cat([offset, offset.new_zeros((n, pad, 3))], dim=1)
    return index, offset
