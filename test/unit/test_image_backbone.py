import pytest
import torch
import torchvision

from tacocc_core.config import ImageBackboneConfig
from tacocc_core.model.image_backbone import ImageBackbone, build_resnet


@pytest.mark.parametrize(("depth", "stride", "channels"), [(18, 8, 32), (18, 16, 16), (50, 16, 24)])
def test_output_shape(depth, stride, channels):
    net = ImageBackbone(ImageBackboneConfig(depth=depth, feature_stride=stride, fpn_channels=channels)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 176))
    assert out.shape == (2, channels, 64 // stride, 176 // stride)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("stages", "stride", "dropped"), [(2, 8, ("layer3", "layer4")), (3, 16, ("layer4",))])
def test_fewer_stages_build_a_shorter_trunk_with_the_same_output(stages, stride, dropped):
    config = ImageBackboneConfig(depth=18, feature_stride=stride, fpn_channels=16, stages=stages)
    net = ImageBackbone(config).eval()
    kept = {name for name, _ in net.trunk.named_children()}
    assert not kept & set(dropped) and f"layer{stages}" in kept
    whole = ImageBackbone(ImageBackboneConfig(depth=18, feature_stride=stride, fpn_channels=16))
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in whole.parameters())
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 176))
    assert out.shape == (1, 16, 64 // stride, 176 // stride)


def test_local_checkpoint_is_loaded(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    loaded = build_resnet(18, str(path))
    assert torch.equal(loaded.conv1.weight, reference.conv1.weight)
    assert torch.equal(loaded.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    net = ImageBackbone(ImageBackboneConfig(depth=18, pretrained=str(path), fpn_channels=8))
    assert torch.equal(net.trunk.conv1.weight, reference.conv1.weight)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"image_backbone.pretrained: checkpoint .*absent.pth not found"):
        build_resnet(18, str(tmp_path / "absent.pth"))
    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"r34.pth does not fit a torchvision ResNet-18: .*unexpected \['layer1.2"):
        build_resnet(18, str(path))
