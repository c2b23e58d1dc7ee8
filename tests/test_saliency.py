"""Gradient saliency and Grad-CAM leave the model exactly as they found it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.models import SimpleNet
from course_lib.saliency import compute_gradient_saliency_maps, grad_cam


def _model_with_grads(training: bool) -> nn.Module:
    torch.manual_seed(0)
    model = SimpleNet()
    model(torch.randn(1, 3, 256, 256)).sum().backward()  # the caller's own gradients
    model.fc3.weight.requires_grad_(False)  # and a frozen layer of their own
    model.train(training)
    return model


def _snapshot(model):
    return ([None if p.grad is None else p.grad.clone() for p in model.parameters()],
            [p.requires_grad for p in model.parameters()], model.training)


def _assert_unchanged(model, before):
    grads, flags, training = before
    now_grads, now_flags, now_training = _snapshot(model)
    assert now_training == training and now_flags == flags
    for a, b in zip(grads, now_grads):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("training", [True, False])
def test_gradient_saliency_leaves_the_model_as_it_was(training):
    model = _model_with_grads(training)
    before = _snapshot(model)
    maps = compute_gradient_saliency_maps(torch.rand(3, 3, 256, 256), [0, 1, 1], model)
    assert maps.shape == (3, 256, 256) and (maps >= 0).all() and not maps.requires_grad
    _assert_unchanged(model, before)


def test_gradient_saliency_is_the_abs_max_input_gradient_per_image():
    model = _model_with_grads(False)
    x = torch.rand(3, 3, 256, 256)
    labels = torch.tensor([1, 0, 1])
    batch = compute_gradient_saliency_maps(x, labels, model)
    for i in range(3):
        xi = x[i:i + 1].clone().requires_grad_(True)
        model.eval()
        (g,) = torch.autograd.grad(model(xi)[0, labels[i]], xi)
        torch.testing.assert_close(batch[i], g.abs().amax(dim=1)[0])
        torch.testing.assert_close(batch[i:i + 1], compute_gradient_saliency_maps(x[i:i + 1], labels[i:i + 1], model))


def test_gradient_saliency_bad_input():
    model = SimpleNet()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*unsqueeze"):
        compute_gradient_saliency_maps(torch.rand(3, 256, 256), [0], model)
    with pytest.raises(ValueError, match="one label per sample"):
        compute_gradient_saliency_maps(torch.rand(2, 3, 256, 256), [0], model)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        compute_gradient_saliency_maps(torch.rand(1, 3, 256, 256), [2], model)
    assert model.training


@pytest.mark.parametrize("training", [True, False])
def test_grad_cam_leaves_the_model_as_it_was_and_releases_hooks(training):
    model = _model_with_grads(training)
    before = _snapshot(model)
    maps = grad_cam(model, torch.rand(2, 3, 256, 256), [0, 1], model.conv3)
    assert maps.shape == (2, 256, 256) and maps.min() >= 0 and maps.max() <= 1
    _assert_unchanged(model, before)
    assert not model.conv3._forward_hooks and not model.conv3._backward_hooks


def test_grad_cam_uses_one_target_per_image():
    model = _model_with_grads(False)
    x = torch.rand(2, 3, 256, 256)
    batch = grad_cam(model, x, [1, 0], model.conv3)
    np.testing.assert_allclose(batch[1], grad_cam(model, x[1:], [0], model.conv3)[0], atol=1e-5)
    with pytest.raises(ValueError, match="one label per sample: 2 samples"):
        grad_cam(model, x, [1], model.conv3)  # pytorch-grad-cam would explain image 0 only
    with pytest.raises(IndexError):
        grad_cam(model, x[:1], [5], model.conv3)  # not swallowed
    assert not model.conv3._forward_hooks


def test_grad_cam_visualization_of_a_test_image(small_split):
    from course_lib.data import TRANSFORM_TEST, FacesDataset
    from course_lib.saliency import get_grad_cam_visualization

    dataset = FacesDataset(small_split, transform=TRANSFORM_TEST)
    model = _model_with_grads(True)
    before = _snapshot(model)
    visualization, label = get_grad_cam_visualization(dataset, model, index=4)
    assert visualization.shape == (256, 256, 3) and visualization.dtype == np.uint8 and label == 1
    _assert_unchanged(model, before)
    again, _ = get_grad_cam_visualization(dataset, model, seed=3)
    assert np.array_equal(again, get_grad_cam_visualization(dataset, model, seed=3)[0])
    with pytest.raises(ValueError, match="no conv3; pass target_layer"):
        get_grad_cam_visualization(dataset, nn.Sequential(nn.Flatten(), nn.LazyLinear(2)), index=0)


# -- class model visualisation (Simonyan et al.) -----------------------------------------------

def test_class_model_of_a_linear_score_is_its_weights_over_twice_lambda():
    """For S_c(I) = w_c . I + b_c the regularised optimum is I* = w_c / (2 lam): known in closed form."""
    from course_lib.saliency import class_model_visualisation

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    model.train()
    for target in (0, 2):
        image = class_model_visualisation(model, target, (3, 2, 2), steps=3000, lr=0.01, l2=0.5)
        expected = model[1].weight[target].detach().reshape(1, 3, 2, 2) / (2 * 0.5)
        assert torch.allclose(image, expected, atol=0.03), (image - expected).abs().max()
    assert model.training and all(p.grad is None for p in model.parameters())  # left as found


def test_class_model_bad_target_says_how_many_classes():
    from course_lib.saliency import class_model_visualisation

    with pytest.raises(ValueError, match="target 5 is not a class of a model with 3 outputs"):
        class_model_visualisation(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), 5, (1, 2, 2), steps=1)
