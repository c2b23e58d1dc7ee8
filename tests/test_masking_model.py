"""The masking model's architecture (issue 25's first part): its encoder, filter, mask range and errors."""
from __future__ import annotations

import copy

import pytest
import torch

from course_lib.models.fusion import SmallResNet
from course_lib.models.masking import FeaturePyramid, MaskingModel, MaskingSaliency


def _model(seed: int = 0) -> tuple[MaskingModel, SmallResNet]:
    torch.manual_seed(seed)
    net = SmallResNet(5, width=8).eval()
    return MaskingModel(FeaturePyramid(net), 5), net


def test_the_pyramid_is_the_frozen_classifiers_own_stages():
    model, net = _model()
    x = torch.rand(3, 3, 32, 32)
    maps = model.encoder(x)
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2]  # 1/2 ... 1/16 of the input
    assert torch.allclose(maps[-1].mean((2, 3)), net.features(x), atol=1e-6)
    model.train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"embedding", "ups", "head"} and len(model.ups) == 2  # 1/16 -> 1/8 -> 1/4


def test_masks_lie_in_zero_one_with_the_images_shape_and_follow_the_selector():
    model, _ = _model()
    x = torch.rand(4, 3, 32, 32)
    a = model(x, torch.tensor([0, 1, 2, 3]))
    b = model(x, torch.tensor([4, 4, 4, 4]))
    assert a.shape == (4, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, b)  # the feature filter reads the class embedding


def test_the_saliency_adapter_explains_only_its_black_box_and_restores_the_mode():
    model, net = _model()
    model.train()
    method = MaskingSaliency(model, net)
    x = torch.rand(2, 3, 32, 32)
    masks = method(net, x, [1, 2])
    assert torch.equal(masks, model.eval()(x, torch.tensor([1, 2])))
    model.train()
    method(net, x, [1, 2])
    assert model.training
    assert torch.equal(method(copy.deepcopy(net), x, [1, 2]), masks)  # a copy of the black box is the black box
    with pytest.raises(ValueError, match="trained to explain another classifier"):
        method(SmallResNet(5), x, [1, 2])
    changed = copy.deepcopy(net)
    changed.fc.bias.data += 1
    with pytest.raises(ValueError, match="trained to explain another classifier"):
        method(changed, x, [1, 2])


@pytest.mark.parametrize("selector, message", [([0, 5], r"selector in \[0, 4\]"), ([0], "one class selector")])
def test_a_bad_selector_is_a_clear_error(selector, message):
    model, _ = _model()
    with pytest.raises(ValueError, match=message):
        model(torch.rand(2, 3, 32, 32), torch.tensor(selector))


def test_the_papers_resnet50_pyramid_gives_five_frozen_scales_and_the_model_climbs_to_a_quarter():
    from torchvision.models import resnet50

    from course_lib.models.masking import ResNetPyramid

    pyramid = ResNetPyramid(resnet50(weights=None))
    assert pyramid.channels == [64, 256, 512, 1024, 2048]
    x = torch.rand(2, 3, 64, 64)
    maps = pyramid(x)
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2]
    model = MaskingModel(pyramid, 7).train()
    assert not pyramid.net.training and len(model.ups) == 3  # 1/32 -> 1/16 -> 1/8 -> 1/4
    masks = model(x, torch.tensor([0, 6]))
    assert masks.shape == (2, 64, 64) and 0 <= masks.min() and masks.max() <= 1
    assert not any(p.requires_grad for p in pyramid.parameters())
    with pytest.raises(ValueError, match="at least three scales"):
        MaskingModel(type("Tiny", (torch.nn.Module,), {"channels": [4, 8]})(), 3)


def test_the_resnet50_weights_are_an_error_that_says_where_to_get_them(tmp_path, monkeypatch):
    from course_lib.models import places365

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"resnet50-0676ba61\.pth.*98 MB"):
        places365.load_imagenet_resnet50(data_home=tmp_path)


def test_the_efficientnet_pyramid_taps_timms_stages_frozen_and_resizes_its_input():
    import timm

    from course_lib.models.masking import TimmPyramid

    torch.manual_seed(0)
    net = timm.create_model("efficientnet_lite0")
    pyramid = TimmPyramid(net)
    assert pyramid.channels == [16, 24, 40, 112, 320] and pyramid.taps == [0, 1, 2, 4, 6]
    x = torch.rand(2, 3, 64, 64)
    maps = pyramid(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 32, 32), (24, 16, 16), (40, 8, 8), (112, 4, 4),
                                                  (320, 2, 2)]
    # The coarsest map is timm's own forward_features up to blocks.6 (conv_head, bn2 and the pool follow it).
    inside = {}
    net.blocks[6].register_forward_hook(lambda module, inputs, output: inside.update(last=output))
    net.eval().forward_features((x - pyramid.mean) / pyramid.std)
    assert torch.allclose(maps[-1], inside["last"], atol=1e-5)
    model = MaskingModel(pyramid, 4).train()
    assert not net.training and not any(p.requires_grad for p in pyramid.parameters())
    masks = model(x, torch.tensor([0, 3]))
    assert masks.shape == (2, 64, 64) and 0 <= masks.min() and masks.max() <= 1
    resized = TimmPyramid(net, size=128)
    assert [m.shape[-1] for m in resized(x)] == [64, 32, 16, 8, 4]
    with pytest.raises(ValueError, match="feature_info"):
        TimmPyramid(timm.create_model("resnet18"))
