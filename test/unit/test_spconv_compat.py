import pytest
import torch
import torch.nn.functional as F

from tacocc_core.config import load_preset
from tacocc_core.model.spconv_compat import import_spconv, single_threaded_on_cpu
from tacocc_core.model.voxelize import voxelize
from tacocc_core.synthetic_batch import synthetic_step_batch

spconv = import_spconv()


def sparse_input(seed: int, points: int):
    config = load_preset("tiny")
    step = synthetic_step_batch(config, 1, points, seed)
    return voxelize(step["points"], step["points_batch"], config.grid.spec())


@pytest.mark.parametrize(("seed", "points"), [(0, 2000), (1, 600)])
def test_submanifold_conv_matches_dense_conv_forward_and_backward(seed, points):
    """The real CPU spconv against a dense conv3d at the active sites, with 2 torch threads (where it raced)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        feats, coords = sparse_input(seed, points)
        torch.manual_seed(seed)
        conv = spconv.SubMConv3d(feats.shape[1], 8, 3, padding=1, bias=False)
        x = feats.clone().requires_grad_(True)
        out = conv(spconv.SparseConvTensor(x, coords, [48, 48, 8], 1)).features
        upstream = torch.randn_like(out)
        (out * upstream).sum().backward()

        c = coords.long()
        xd = feats.clone().requires_grad_(True)
        grid = torch.zeros(48, 48, 8, feats.shape[1])
        grid = grid.index_put((c[:, 1], c[:, 2], c[:, 3]), xd)
        weight = conv.weight.detach().permute(0, 4, 1, 2, 3)  # spconv (out, k, k, k, in) -> (out, in, k, k, k)
        ref_full = F.conv3d(grid.permute(3, 0, 1, 2)[None], weight, padding=1)[0]
        ref = ref_full[:, c[:, 1], c[:, 2], c[:, 3]].T
        (ref * upstream).sum().backward()
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(x.grad, xd.grad, atol=1e-3, rtol=1e-4)


def test_single_threaded_wrapper_restores_the_thread_count():
    seen = []
    wrapped = single_threaded_on_cpu(lambda t: seen.append(torch.get_num_threads()) or t)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        wrapped(torch.zeros(1))
        assert seen == [1] and torch.get_num_threads() == 2
        wrapped(3)  # no tensor: left alone
        assert seen == [1, 2]
    finally:
        torch.set_num_threads(threads)
