"""Grad-CAM through pytorch-grad-cam, without its traps.

pytorch-grad-cam's ``GradCAM`` puts the model in eval mode and leaves it
there, zeroes (sets to None) the parameters' ``.grad``, and when given a
one-element target list silently explains every image of the batch with
that one target's loss summed over ``zip(targets, outputs)``, i.e. only the
first image. Its context manager also swallows IndexError (an out-of-range
class index) with a print. ``grad_cam`` checks the targets, lets errors
through, restores the model, and releases the hooks.
"""
from __future__ import annotations

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from ..model_state import check_batch, frozen_eval


def grad_cam(model: nn.Module, samples: torch.Tensor, targets, target_layer: nn.Module) -> np.ndarray:
    """Grad-CAM maps of ``samples`` for one target class per image.

    Args:
        model: returns (B, n_classes) logits.
        samples: (B, C, H, W) images as the model takes them.
        targets: (B,) class indices, one per image (a list of another length
            is an error, not a broadcast).
        target_layer: the convolutional layer to explain, e.g. ``model.conv3``.

    Returns:
        (B, H, W) float32 maps in [0, 1] (each normalised to its maximum).
    """
    labels = check_batch(samples, targets)
    # Parameters are frozen, so the input must carry the graph to the target layer.
    with frozen_eval(model):
        cam = GradCAM(model=model, target_layers=[target_layer])
        cam.compute_input_gradient = True
        try:
            maps = cam(input_tensor=samples.detach(),
                       targets=[ClassifierOutputTarget(int(t)) for t in labels])
        finally:  # not `with cam:`, whose __exit__ hides IndexError
            cam.activations_and_grads.release()
    return maps.astype(np.float32)


def get_grad_cam_visualization(test_dataset, model: nn.Module, index: int | None = None,
                               target_layer: nn.Module | None = None, seed: int = 0):
    """Grad-CAM of one test image for its true label, overlaid on the image.

    Args:
        test_dataset: yields (normalised (3, H, W) tensor, label), e.g. a
            ``FacesDataset`` with the course's test transform.
        model: the detector; ``model.conv3`` is explained unless
            ``target_layer`` says otherwise.
        index: which image; None draws one at random with ``seed``.

    Returns:
        (visualization, true_label): an (H, W, 3) uint8 RGB overlay made by
        pytorch-grad-cam's ``show_cam_on_image``, and the image's label.
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from ..data.faces import denormalize

    if index is None:
        index = int(torch.randint(len(test_dataset), (1,), generator=torch.Generator().manual_seed(seed)))
    image, true_label = test_dataset[index]
    layer = target_layer if target_layer is not None else getattr(model, "conv3", None)
    if layer is None:
        raise ValueError(f"{type(model).__name__} has no conv3; pass target_layer=<a conv layer>")
    device = next(model.parameters()).device
    cam = grad_cam(model, image[None].to(device), [int(true_label)], layer)[0]
    visualization = show_cam_on_image(denormalize(image), cam, use_rgb=True)
    return visualization, int(true_label)
