"""Models and the parameter count."""
import pytest
import torch

from course_lib.models import SimpleNet, get_model, get_nof_params


def test_simplenet_has_the_course_parameter_count():
    assert get_nof_params(SimpleNet()) == 16_901_762


def test_get_nof_params_counts_only_trainable_parameters():
    model = SimpleNet()
    for p in model.fc1.parameters():
        p.requires_grad_(False)
    assert get_nof_params(model) == 16_901_762 - (24 * 26 * 26 * 1024 + 1024)


def test_simplenet_maps_a_batch_to_two_logits():
    assert SimpleNet()(torch.zeros(2, 3, 256, 256)).shape == (2, 2)


def test_simplenet_rejects_the_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, 256, 256\), got \(2, 3, 128, 128\)"):
        SimpleNet()(torch.zeros(2, 3, 128, 128))


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'ResNet'; valid models: SimpleNet"):
        get_model("ResNet")
