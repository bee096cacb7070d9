"""k-nearest-neighbour retrieval between two sparse voxel sets: a KD-tree search, exact to the integer.

`knn` returns, for every query voxel, the k nearest key voxels of the same sample (Euclidean distance in
voxels, ties by (dx, dy, dz) lexicographic), never the key at the query's own voxel: what lies there
already enters the fused volume through the concatenation (fuser.py), the retrieval is for the context
around it. Slots stay empty (-1) only when the sample holds fewer than k other keys. Keys are distinct
voxels, so this order is a total order and the answer is unique: every implementation below returns it.

`knn` picks the cheapest of the searches below for the sizes at hand (all give the same answer); on the
nuScenes preset's 100 x 100 x 8 grid that is the KD-tree for the image voxels' queries at full scale (many
queries, sparse LiDAR keys) and the cube searches for the others. `knn_tree`: one `scipy.spatial.cKDTree`
per sample over its keys. A KD-tree breaks ties of equal distance by its own traversal, so each query
point is moved by -eps * a / 2 with a = (Wy * Wz, Wz, 1) (W_i: the
number of values the offset can take on axis i): the squared distance to a key at offset d becomes
|d|^2 + eps * a.d + const, and a.d is an integer that orders offsets lexicographically. With eps =
1 / (2 * Wx * Wy * Wz) that term moves a distance by less than 1/2, so it orders keys of equal |d|^2
without reordering different ones, and it separates equal-|d|^2 keys by >= eps, far above the float64
rounding of the distances (`_tie_break_is_resolvable` checks this, else `knn_exact` runs). The tree
returns k + 3 candidates (the own voxel and two spare), and their exact integer order picks the k. Cost
O(N log M), against O(N * M) for the queries the cube search below cannot settle.

The reference twins, kept and tested against: `knn_cube_then_exact` (the earlier `knn`, still used on
GPU): the keys are written into a dense (B, X, Y, Z) index volume (`index_volume`); each query reads
the (2r + 1)^3 cells of the cube of Chebyshev radius r around it, nearest first, and keeps the first k
that hold a key (`knn_in_radius`). Any key outside the cube lies at least r + 1 voxels away, so when the
k-th key found is nearer than r + 1 the answer is the exact one; the other queries go to `knn_exact`:
integer squared distances to every key of the sample (in chunks of queries), the plain definition.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree


def cube_offsets(radius: int, device: torch.device | str = "cpu", skip_centre: bool = False) -> torch.Tensor:
    """(M, 3) int64 offsets of the cube of Chebyshev radius `radius`, nearest first (then lexicographic).

    `skip_centre` leaves out (0, 0, 0), the query's own voxel.
    """
    if radius < 0:
        raise ValueError(f"fuser.search_radius must be >= 0, got {radius}")
    offsets = _sorted_cube(radius)
    return torch.tensor(offsets[1:] if skip_centre else offsets, dtype=torch.int64, device=device)


@functools.cache
def _sorted_cube(radius: int) -> tuple[tuple[int, int, int], ...]:
    """The cube's offsets in visiting order, sorted once per radius (every retrieval of a frame asks again)."""
    rng = range(-radius, radius + 1)
    return tuple(sorted(itertools.product(rng, rng, rng), key=lambda o: (o[0] ** 2 + o[1] ** 2 + o[2] ** 2, o)))


def index_volume(coords: torch.Tensor, shape: tuple[int, ...], batch_size: int) -> torch.Tensor:
    """(B, X, Y, Z) int64 volume holding the row of `coords` ((N, 4) [b, x, y, z]) in each cell, -1 elsewhere."""
    vol = torch.full((batch_size, *shape), -1, dtype=torch.int64, device=coords.device)
    c = coords.long()
    vol[c[:, 0], c[:, 1], c[:, 2], c[:, 3]] = torch.arange(len(c), device=coords.device)
    return vol


def knn_in_radius(
    query_coords: torch.Tensor, key_volume: torch.Tensor, k: int, radius: int, skip_centre: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest keys of each query inside its search cube.

    Args:
        query_coords: (N, 4) int [b, x, y, z] voxel indices.
        key_volume: (B, X, Y, Z) int64 from `index_volume` of the keys.
        k: neighbours per query (slots).
        radius: Chebyshev search radius in voxels.
        skip_centre: never return the key at the query's own voxel.

    Returns:
        index: (N, k) int64 rows of the key set, -1 for empty slots, nearest first.
        offset: (N, k, 3) int64 key voxel - query voxel (0 for empty slots).
    """
    n = len(query_coords)
    offsets = cube_offsets(radius, query_coords.device, skip_centre)  # (M, 3)
    m = len(offsets)
    if n == 0 or k == 0 or m == 0:
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


# Pairs of (query, key) distances held at once by `knn_exact` (int64: 64 MB).
EXACT_CHUNK_PAIRS = 1 << 23


def knn_exact(
    query_coords: torch.Tensor, key_coords: torch.Tensor, k: int, skip_centre: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest keys of each query among all keys of its sample (the plain reference).

    Args:
        query_coords: (N, 4) int [b, x, y, z].
        key_coords: (M, 4) int [b, x, y, z], one row per key.
        k: neighbours per query.
        skip_centre: never return the key at the query's own voxel.

    Returns:
        index: (N, k) int64 rows of key_coords, -1 where the sample has fewer keys; nearest first, ties by
            (dx, dy, dz) lexicographic as in `cube_offsets`.
        offset: (N, k, 3) int64 key voxel - query voxel (0 for empty slots).
    """
    n, m = len(query_coords), len(key_coords)
    device = query_coords.device
    index = torch.full((n, k), -1, dtype=torch.int64, device=device)
    offset = torch.zeros(n, k, 3, dtype=torch.int64, device=device)
    if n == 0 or m == 0 or k == 0:
        return index, offset
    q, keys = query_coords.long(), key_coords.long()
    half = int(max(q[:, 1:].abs().max(), keys[:, 1:].abs().max())) * 2 + 1  # |dx| <= half
    side = 2 * half + 1
    never = torch.iinfo(torch.int64).max
    kk = min(k, m)
    chunk = max(1, EXACT_CHUNK_PAIRS // m)
    for lo in range(0, n, chunk):
        qc = q[lo : lo + chunk]
        d = keys[None, :, 1:] - qc[:, None, 1:]  # (n', M, 3)
        d2 = (d * d).sum(-1)
        lex = ((d[..., 0] + half) * side + d[..., 1] + half) * side + d[..., 2] + half
        order = d2 * side**3 + lex
        other = keys[None, :, 0] != qc[:, None, 0]
        if skip_centre:
            other |= d2 == 0
        order = order.masked_fill(other, never)
        best, rows = torch.topk(order, kk, dim=1, largest=False)
        hit = best != never
        index[lo : lo + chunk, :kk] = torch.where(hit, rows, -1)
        offset[lo : lo + chunk, :kk] = d.gather(1, rows[..., None].expand(-1, -1, 3)) * hit[..., None]
    return index, offset


def _unsettled(index: torch.Tensor, offset: torch.Tensor, radius: int) -> torch.Tensor:
    """(N,) bool: queries whose cube search (`knn_in_radius`) may miss one of their k nearest keys.

    Keys outside the cube lie at Chebyshev distance >= r + 1, so at Euclidean distance >= r + 1: a k-th key
    found nearer than that is the exact k-th neighbour.
    """
    last = (offset[:, -1] ** 2).sum(-1)
    return (index[:, -1] < 0) | (last >= (radius + 1) ** 2)


def knn_cube_then_exact(
    query_coords: torch.Tensor,
    key_coords: torch.Tensor,
    key_volume: torch.Tensor,
    k: int,
    radius: int,
    skip_centre: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest keys per query: the cube search, `knn_exact` for the queries it cannot settle.

    Args:
        query_coords, key_coords: (N, 4) and (M, 4) int [b, x, y, z].
        key_volume: `index_volume(key_coords, ...)`.
        k, radius, skip_centre: as in `knn_in_radius`.

    Returns: as `knn_exact` (identical results).
    """
    index, offset = knn_in_radius(query_coords, key_volume, k, radius, skip_centre)
    if k == 0 or len(query_coords) == 0:
        return index, offset
    unsettled = _unsettled(index, offset, radius)
    if bool(unsettled.any()):
        rows = unsettled.nonzero()[:, 0]
        index[rows], offset[rows] = knn_exact(query_coords[rows], key_coords, k, skip_centre)
    return index, offset


# Candidates the tree returns beyond k: the query's own voxel and two spare, re-ranked exactly.
TREE_SPARE = 2
# Queries from which the tree searches on torch's threads.
TREE_THREADED_QUERIES = 20000
# Chebyshev radius of the first cube search: where keys are dense, most queries find their k keys in the
# 27 cells around them, and only the rest pay for the cube of the configured radius.
FIRST_RADIUS = 1
# Cells of the first cube search (queries x (2 FIRST_RADIUS + 1)^3) up to which the cubes go first (above, the
# tree alone is cheaper).
CUBE_FIRST_CELLS = 1 << 19
# The plain search answers the queries the cubes leave while their (query, key) pairs number at most
# PLAIN_EXACT_PAIRS + PLAIN_EXACT_PAIRS_PER_KEY * keys: the tree's fixed cost and its build per key, in
# pairs of the plain search (about where the two searches cost the same on a 2-core CPU, for 264 to 62k keys).
PLAIN_EXACT_PAIRS = 1 << 14
PLAIN_EXACT_PAIRS_PER_KEY = 6


def knn(
    query_coords: torch.Tensor,
    key_coords: torch.Tensor,
    k: int,
    radius: int,
    volume_shape: tuple[int, ...],
    skip_centre: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest keys per query, by whichever search is cheapest for the sizes (the same answer).

    On CPU: many queries (queries x first cube cells > `CUBE_FIRST_CELLS`): the KD-tree for all. Otherwise
    the cube search of radius `FIRST_RADIUS` first, the cube of `radius` for the queries it cannot settle,
    then for those still unsettled the plain search when they are few (`PLAIN_EXACT_PAIRS`), else the
    tree. Off the CPU: `knn_cube_then_exact`.

    Args:
        query_coords, key_coords: (N, 4) and (M, 4) int [b, x, y, z] voxel indices, each key voxel once.
        k: neighbours per query.
        radius: the cube search's Chebyshev radius.
        volume_shape: (B, X, Y, Z) of the grid the coordinates index.
        skip_centre: never return the key at the query's own voxel.

    Returns: as `knn_exact` (identical results).
    """
    on_cpu = query_coords.device.type == "cpu"
    first = min(radius, FIRST_RADIUS)
    if on_cpu and len(query_coords) * (2 * first + 1) ** 3 > CUBE_FIRST_CELLS:
        return knn_tree(query_coords, key_coords, k, skip_centre)
    volume = index_volume(key_coords, tuple(volume_shape[1:]), volume_shape[0])
    if not on_cpu:
        return knn_cube_then_exact(query_coords, key_coords, volume, k, radius, skip_centre)
    index, offset = knn_in_radius(query_coords, volume, k, first, skip_centre)
    if k == 0 or len(query_coords) == 0:
        return index, offset
    rows = _unsettled(index, offset, first).nonzero()[:, 0]
    if len(rows) and radius > first:
        index[rows], offset[rows] = wider = knn_in_radius(query_coords[rows], volume, k, radius, skip_centre)
        rows = rows[_unsettled(*wider, radius)]
    if len(rows):
        m = len(key_coords)
        search = knn_exact if len(rows) * m <= PLAIN_EXACT_PAIRS + PLAIN_EXACT_PAIRS_PER_KEY * m else knn_tree
        index[rows], offset[rows] = search(query_coords[rows], key_coords, k, skip_centre)
    return index, offset


def _tie_break_is_resolvable(largest_coordinate: int, eps: float) -> bool:
    """Whether the shift eps separates keys of equal distance far above the float64 rounding of distances.

    The computed squared distance is off by a few units of 2**-53 times 3 * (largest |coordinate| + 1)^2 at
    most; demand eps 1024 times that.
    """
    return eps > 1024 * 2.0**-53 * 3 * (largest_coordinate + 1) ** 2


def knn_tree(
    query_coords: torch.Tensor, key_coords: torch.Tensor, k: int, skip_centre: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """`knn_exact`'s answer from one cKDTree per sample (CPU tensors). Args and returns as `knn_exact`."""
    n, m = len(query_coords), len(key_coords)
    index = np.full((n, k), -1, dtype=np.int64)
    offset = np.zeros((n, k, 3), dtype=np.int64)
    if n == 0 or m == 0 or k == 0:
        return torch.from_numpy(index), torch.from_numpy(offset)
    q = query_coords.long().numpy()
    keys = key_coords.long().numpy()
    # Offsets d = key - query lie in [low, high] per axis: `width` values each.
    width = keys[:, 1:].max(0) - q[:, 1:].min(0) - (keys[:, 1:].min(0) - q[:, 1:].max(0)) + 1
    lex = np.array([width[1] * width[2], width[2], 1], dtype=np.int64)  # lex . d orders offsets lexicographically
    product = int(width[0]) * int(width[1]) * int(width[2])  # > |lex . (d1 - d2)| for any two offsets
    eps = 1.0 / (2 * product)
    largest = int(max(np.abs(q[:, 1:]).max(), np.abs(keys[:, 1:]).max()))
    if not _tie_break_is_resolvable(largest, eps):
        return knn_exact(query_coords, key_coords, k, skip_centre)
    never = np.iinfo(np.int64).max
    shift = eps * lex.astype(np.float64) / 2
    # Threads pay off only for many queries (each call starts its own).
    workers = max(1, torch.get_num_threads()) if n >= TREE_THREADED_QUERIES else 1
    q_batch, k_batch = q[:, 0], keys[:, 0]
    one_sample = q_batch.min() == q_batch.max() == k_batch.min() == k_batch.max()
    for b in [q_batch[0]] if one_sample else np.unique(q_batch):
        q_rows = slice(None) if one_sample else np.flatnonzero(q_batch == b)
        k_rows = np.arange(m) if one_sample else np.flatnonzero(k_batch == b)
        if len(k_rows) == 0:
            continue
        key_xyz = keys[k_rows, 1:]
        query_xyz = q[q_rows, 1:]
        tree = cKDTree(key_xyz.astype(np.float64), balanced_tree=False)
        wanted = min(k + int(skip_centre) + TREE_SPARE, len(k_rows))
        _, cand = tree.query(query_xyz.astype(np.float64) - shift, k=wanted, workers=workers)
        cand = cand.reshape(len(query_xyz), wanted)
        d = key_xyz[cand] - query_xyz[:, None]  # (n_b, wanted, 3) exact integer offsets
        d2 = (d * d).sum(-1)
        order = d2 * product + d @ lex  # the exact (|d|^2, dx, dy, dz) order
        if skip_centre:
            order[d2 == 0] = never
        pick = np.argsort(order, axis=1)[:, :k]
        hit = np.take_along_axis(order, pick, 1) != never
        kk = pick.shape[1]
        index[q_rows, :kk] = np.where(hit, k_rows[np.take_along_axis(cand, pick, 1)], -1)
        offset[q_rows, :kk] = np.take_along_axis(d, pick[..., None], 1) * hit[..., None]
    return torch.from_numpy(index), torch.from_numpy(offset)
