"""Models and the parameter count."""
import pytest
import torch

from course_lib.models import SimpleNet, get_model, get_nof_parameters, get_nof_params


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
