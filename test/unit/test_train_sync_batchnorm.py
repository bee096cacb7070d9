import pytest
import torch
from torch import nn

from tacocc_core.train.sync_batchnorm import SyncBatchNorm, sync_batch_norm


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_single_process_equals_torch_batchnorm(dims, momentum):
    """Without a process group the layer is ordinary batch norm: forward, backward and running statistics."""
    torch.manual_seed(dims)
    reference = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](4, momentum=momentum)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    ours = SyncBatchNorm.convert(nn.Sequential(reference)).float()[0]
    assert isinstance(ours, SyncBatchNorm)
    reference = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](4, momentum=momentum)
    reference.load_state_dict(ours.state_dict())
    shape = (5, 4) + (3,) * dims
    for step in range(3):
        x = torch.randn(shape) * (step + 1) + step
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = reference(xa), ours(xb)
        torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-5)
        grad = torch.randn_like(ya)
        ya.backward(grad)
        yb.backward(grad)
        torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)
    assert ours.num_batches_tracked == reference.num_batches_tracked == 3
    ours.eval()
    reference.eval()
    x = torch.randn(shape)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_convert_keeps_shared_state_and_nesting():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Sequential(nn.BatchNorm2d(2), nn.ReLU()))
    weight = model[1][0].weight
    converted = SyncBatchNorm.convert(model)
    assert isinstance(converted[1][0], SyncBatchNorm) and converted[1][0].weight is weight


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"expected \(B, C, \.\.\.\) input, got \(3,\)"):
        sync_batch_norm(torch.zeros(3), None, None, None, None, 0.1, 1e-5)
    with pytest.raises(ValueError, match="SyncBatchNorm"):
        SyncBatchNorm(3)(torch.zeros(3))
