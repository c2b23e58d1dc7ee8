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

from ._model_state import check_batch, frozen_eval


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
