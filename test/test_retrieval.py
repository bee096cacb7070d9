import itertools

import pytest
import torch

from tacocc_core.model.retrieval import cube_offsets, index_volume, knn, knn_exact, knn_in_radius


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
    index, offset = knn(queries, keys, index_volume(keys, shape, 2), k, radius)
    assert index.tolist() == expected and torch.equal(offset, exact_offset)
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
