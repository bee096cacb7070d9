import itertools

import numpy as np
import pytest
import torch

import tacocc_core.model.retrieval as retrieval
from tacocc_core.model.retrieval import (
    cube_offsets,
    index_volume,
    knn,
    knn_cube_then_exact,
    knn_exact,
    knn_in_radius,
    knn_tree,
)


def random_sparse(gen: torch.Generator, batch: int, shape: tuple[int, int, int], fill: float) -> torch.Tensor:
    occupied = torch.rand(batch, *shape, generator=gen) < fill
    return occupied.nonzero()


def brute_force(
    queries: torch.Tensor, keys: torch.Tensor, k: int, radius: float, skip_centre: bool = False
) -> list[list[int]]:
    """For each query: keys of the same sample within Chebyshev `radius`, nearest first (ties: lexicographic
    offset), the first k of them; with skip_centre never the key at the query's own voxel."""
    out = []
    for q in queries.tolist():
        near = []
        for row, key in enumerate(keys.tolist()):
            if key[0] != q[0]:
                continue
            d = [key[i] - q[i] for i in (1, 2, 3)]
            if skip_centre and d == [0, 0, 0]:
                continue
            if max(abs(x) for x in d) <= radius:
                near.append((sum(x * x for x in d), tuple(d), row))
        near.sort()
        out.append([row for _, _, row in near[:k]] + [-1] * max(0, k - len(near)))
    return out


@pytest.mark.parametrize(
    ("seed", "shape", "fill", "k", "radius"),
    [
        (0, (8, 8, 4), 0.1, 3, 2),
        (1, (8, 8, 4), 0.02, 3, 2),  # sparse keys: many queries with fewer than k in range
        (2, (6, 7, 2), 0.3, 2, 1),
        (3, (5, 5, 5), 0.5, 1, 0),  # radius 0: only the query's own cell
        (4, (9, 4, 3), 0.15, 3, 3),
    ],
)
def test_matches_brute_force(seed, shape, fill, k, radius):
    gen = torch.Generator().manual_seed(seed)
    queries = random_sparse(gen, 2, shape, 0.2)
    keys = random_sparse(gen, 2, shape, fill)
    index, offset = knn_in_radius(queries, index_volume(keys, shape, 2), k, radius, skip_centre=False)
    assert index.tolist() == brute_force(queries, keys, k, radius)
    hit = index >= 0
    expected = keys[index.clamp(min=0)][..., 1:] - queries[:, None, 1:]
    assert torch.equal(offset[hit], expected[hit].long())
    assert (offset[~hit] == 0).all()


def test_cube_offsets_order():
    offsets = cube_offsets(2)
    assert len(offsets) == 125 and len({tuple(o) for o in offsets.tolist()}) == 125
    d2 = (offsets**2).sum(1)
    assert (d2[1:] >= d2[:-1]).all() and offsets[0].tolist() == [0, 0, 0]
    expected = sorted(itertools.product(range(-1, 2), repeat=3), key=lambda o: (sum(x * x for x in o), o))
    assert cube_offsets(1).tolist() == [list(o) for o in expected]
    with pytest.raises(ValueError, match="search_radius must be >= 0, got -1"):
        cube_offsets(-1)


def test_empty_sets_and_more_slots_than_cells():
    shape = (4, 4, 2)
    keys = torch.tensor([[0, 1, 1, 0]])
    vol = index_volume(keys, shape, 1)
    index, offset = knn_in_radius(torch.zeros(0, 4, dtype=torch.int64), vol, 3, 2)
    assert index.shape == (0, 3) and offset.shape == (0, 3, 3)
    no_keys = index_volume(torch.zeros(0, 4, dtype=torch.int64), shape, 1)
    index, _ = knn_in_radius(torch.tensor([[0, 0, 0, 0]]), no_keys, 3, 2)
    assert index.tolist() == [[-1, -1, -1]]
    index, _ = knn_in_radius(torch.tensor([[0, 1, 1, 0]]), vol, 3, 0, skip_centre=False)  # 1 cell, 3 slots
    assert index.tolist() == [[0, -1, -1]]
    index, _ = knn_in_radius(torch.tensor([[0, 1, 1, 0]]), vol, 3, 0)  # the only cell is the query's own
    assert index.tolist() == [[-1, -1, -1]]


@pytest.mark.parametrize(
    ("seed", "shape", "fill", "k", "radius"),
    [
        (0, (8, 8, 4), 0.1, 3, 2),
        (1, (12, 12, 4), 0.01, 3, 2),  # sparse keys: most queries have fewer than k keys in the cube
        (2, (6, 7, 2), 0.3, 2, 1),
        (3, (9, 4, 3), 0.15, 3, 1),
        (5, (4, 4, 2), 0.05, 3, 1),  # some samples hold fewer than k keys in all
    ],
)
def test_knn_is_exact_beyond_the_radius(seed, shape, fill, k, radius):
    """Every query gets its k nearest keys of the sample (never its own voxel), found in the cube or not."""
    gen = torch.Generator().manual_seed(seed)
    queries = random_sparse(gen, 2, shape, 0.3)
    keys = random_sparse(gen, 2, shape, fill)
    expected = brute_force(queries, keys, k, float("inf"), skip_centre=True)
    exact, exact_offset = knn_exact(queries, keys, k)
    assert exact.tolist() == expected
    index, offset = knn_cube_then_exact(queries, keys, index_volume(keys, shape, 2), k, radius)
    assert index.tolist() == expected and torch.equal(offset, exact_offset)
    assert_all_agree(queries, keys, k, radius, shape, 2)
    hit = index >= 0
    assert torch.equal(offset[hit], (keys[index.clamp(min=0)][..., 1:] - queries[:, None, 1:])[hit])
    for b in range(2):  # slots stay empty only when the sample has fewer keys than k besides the query's own
        rows = queries[:, 0] == b
        n_keys = int((keys[:, 0] == b).sum())
        assert ((index[rows] >= 0).sum(1) >= min(k, n_keys - 1)).all()


def test_knn_exact_in_chunks(monkeypatch):
    import tacocc_core.model.retrieval as retrieval

    gen = torch.Generator().manual_seed(7)
    queries = random_sparse(gen, 2, (8, 8, 4), 0.3)
    keys = random_sparse(gen, 2, (8, 8, 4), 0.05)
    whole = knn_exact(queries, keys, 3)
    monkeypatch.setattr(retrieval, "EXACT_CHUNK_PAIRS", len(keys) * 5)  # 5 queries per chunk
    chunked = knn_exact(queries, keys, 3)
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])


def assert_all_agree(queries, keys, k, radius, shape, batch, skip_centre=True):
    """The tree search, the earlier cube-then-exact search and the plain definition return the same tensors."""
    exact = knn_exact(queries, keys, k, skip_centre)
    tree = knn_tree(queries, keys, k, skip_centre)
    cube = knn_cube_then_exact(queries, keys, index_volume(keys, shape, batch), k, radius, skip_centre)
    results = [tree, cube]
    names = ("CUBE_FIRST_CELLS", "PLAIN_EXACT_PAIRS", "PLAIN_EXACT_PAIRS_PER_KEY")
    defaults = tuple(getattr(retrieval, name) for name in names)
    try:
        # Every path of knn: the tree alone, as shipped, the cubes then the plain search, the cubes then the tree.
        for setting in ((0, 0, 0), defaults, (1 << 40, 1 << 40, 0), (1 << 40, 0, 0)):
            for name, value in zip(names, setting, strict=True):
                setattr(retrieval, name, value)
            results.append(knn(queries, keys, k, radius, (batch, *shape), skip_centre))
    finally:
        for name, value in zip(names, defaults, strict=True):
            setattr(retrieval, name, value)
    for got in results:
        assert torch.equal(got[0], exact[0]) and torch.equal(got[1], exact[1])
    return exact


@pytest.mark.parametrize(
    ("seed", "shape", "fill_q", "fill_k", "k"),
    [
        (10, (100, 100, 8), 0.03, 0.012, 3),  # the nuScenes preset's coarse grid: most queries far from keys
        (11, (100, 100, 8), 0.012, 0.04, 3),  # the other direction: keys dense
        (12, (200, 200, 16), 0.002, 0.001, 3),  # the fine nuScenes grid, the largest coordinates in use
        (13, (40, 40, 4), 0.3, 0.3, 5),
        (14, (24, 24, 4), 0.3, 0.002, 4),  # fewer keys than k in a sample
    ],
)
def test_tree_equals_the_reference_on_large_grids(seed, shape, fill_q, fill_k, k):
    gen = torch.Generator().manual_seed(seed)
    queries = random_sparse(gen, 2, shape, fill_q)
    keys = random_sparse(gen, 2, shape, fill_k)
    assert_all_agree(queries, keys, k, 2, shape, 2)
    assert_all_agree(queries, keys, k, 2, shape, 2, skip_centre=False)


def test_tree_breaks_ties_lexicographically():
    """Keys on shells of equal distance around each query: the order within a shell is (dx, dy, dz)."""
    shape = (21, 21, 21)
    centre = torch.tensor([[0, 10, 10, 10]])
    shell = cube_offsets(3)
    for radius2 in (1, 2, 3, 5, 9, 14):  # whole shells of |d|^2 = radius2, e.g. 6, 12, 8, 24, 30, 48 keys
        on_shell = shell[(shell**2).sum(1) == radius2]
        keys = torch.cat([torch.zeros(len(on_shell), 1, dtype=torch.int64), centre[:, 1:] + on_shell], dim=1)
        keys = keys[torch.randperm(len(keys), generator=torch.Generator().manual_seed(radius2))]
        for k in (1, 3, len(keys) - 1, len(keys), len(keys) + 2):
            index, offset = assert_all_agree(centre, keys, k, 1, shape, 1)
            hit = index[0] >= 0
            assert int(hit.sum()) == min(k, len(keys))
            assert offset[0][hit].tolist() == sorted(on_shell.tolist())[: min(k, len(keys))]


def test_tree_on_a_lattice_full_of_ties():
    """Every key on a regular lattice: most queries have many keys at their k-th distance."""
    shape = (30, 30, 6)
    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in shape), indexing="ij"), -1).reshape(-1, 3)
    keys = grid[(grid % 3 == 0).all(1)]
    keys = torch.cat([torch.zeros(len(keys), 1, dtype=torch.int64), keys], dim=1)
    queries = torch.cat([torch.zeros(len(grid), 1, dtype=torch.int64), grid], dim=1)
    for k in (1, 3, 7):
        assert_all_agree(queries, keys, k, 1, shape, 1)


def test_tree_edge_cases():
    shape = (16, 16, 4)
    gen = torch.Generator().manual_seed(3)
    queries = random_sparse(gen, 3, shape, 0.2)
    # Keys only in sample 1 and far from most queries; sample 0 and 2 have none.
    keys = torch.tensor([[1, 0, 0, 0], [1, 15, 15, 3], [1, 7, 8, 1]])
    index, _ = assert_all_agree(queries, keys, 3, 1, shape, 3)
    assert (index[queries[:, 0] != 1] == -1).all()
    ones = queries[:, 0] == 1
    own = (queries[ones][:, None, 1:] == keys[None, :, 1:]).all(-1).any(1)
    assert ((index[ones] >= 0).sum(1) == 3 - own.long()).all()  # all three keys, less the query's own voxel
    empty = torch.zeros(0, 4, dtype=torch.int64)
    assert_all_agree(queries, empty, 3, 1, shape, 3)  # no keys at all
    assert_all_agree(empty, keys, 3, 1, shape, 3)  # no queries
    assert_all_agree(queries, keys, 0, 1, shape, 3)  # k = 0
    single = torch.tensor([[1, 7, 8, 1]])
    index, _ = assert_all_agree(single, single, 2, 1, shape, 3)  # the only key is the query's own voxel
    assert index.tolist() == [[-1, -1]]


def test_tree_falls_back_to_the_reference_where_float64_cannot_order_ties(monkeypatch):
    """Coordinates so large that the tie-breaking shift drowns in rounding: the plain search answers."""
    calls = []
    monkeypatch.setattr(retrieval, "knn_exact", lambda *a: calls.append(1) or knn_exact(*a))
    queries = torch.tensor([[0, 0, 0, 0], [0, 300, 300, 300]])
    keys = torch.tensor([[0, 1, 0, 0], [0, 0, 1, 0], [0, 299, 300, 300], [0, 300, 301, 300]])
    index, offset = knn_tree(queries, keys, 2)
    assert calls and index.tolist() == [[1, 0], [2, 3]]
    assert torch.equal(offset, knn_exact(queries, keys, 2)[1])
    calls.clear()
    knn_tree(queries[:1], keys[:2], 2)  # small coordinates: the tree
    assert not calls


def test_tie_break_margin_holds_on_the_largest_grid_in_use():
    """The nuScenes fine grid (200 x 200 x 16, offsets of either sign) stays on the tree path."""
    width = np.array([399, 399, 31])
    assert retrieval._tie_break_is_resolvable(199, 1.0 / (2 * int(width.prod())))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the GPU path is the cube-then-exact search")
def test_gpu_path_equals_the_cpu_tree():
    gen = torch.Generator().manual_seed(20)
    shape = (40, 40, 8)
    queries = random_sparse(gen, 2, shape, 0.1)
    keys = random_sparse(gen, 2, shape, 0.01)
    cpu = knn(queries, keys, 3, 2, (2, *shape))
    gpu = knn(queries.cuda(), keys.cuda(), 3, 2, (2, *shape))
    assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
