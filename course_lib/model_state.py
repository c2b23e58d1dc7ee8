"""Leave a model exactly as it was found: mode, parameter gradients, requires_grad."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def frozen_eval(model: nn.Module):
    """Eval mode and frozen parameters inside the block; everything restored after.

    Saliency methods need gradients with respect to the *input* only. Freezing
    the parameters means no ``.grad`` is written to them (and the backward pass
    skips the weight gradients); the caller's own ``.grad`` tensors, mode and
    ``requires_grad`` flags are put back on exit, also after an error.
    """
    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad_(flag)
            p.grad = grad
        model.train(was_training)


def check_batch(samples: torch.Tensor, labels) -> torch.Tensor:
    """Validate a (B, C, H, W) batch and its (B,) integer labels; return labels as a tensor."""
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"samples must be a (B, C, H, W) tensor, got {shape}; add a batch "
                         "dimension with x.unsqueeze(0) for one image")
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or len(labels) != len(samples):
        raise ValueError(f"need one label per sample: {len(samples)} samples, labels of shape "
                         f"{tuple(labels.shape)}")
    if labels.dtype.is_floating_point:
        raise ValueError("labels must be integers (class indices)")
    return labels


def forward_with_layers(model: nn.Module, x: torch.Tensor, layers) -> tuple[torch.Tensor, dict]:
    """``(model(x), {name: output of model.get_submodule(name)})`` from one forward pass.

    Forward hooks read the named submodules and are removed afterwards, also
    after an error. The autograd graph is kept; callers that need no gradient
    wrap the call in ``torch.no_grad()``. An unknown name is a ValueError that
    lists the model's layers.
    """
    captured = {}
    handles = []
    try:
        for name in layers:
            try:
                module = model.get_submodule(name)
            except AttributeError as err:
                names = [n for n, _ in model.named_modules() if n]
                raise ValueError(f"model has no layer {name!r}; its layers: {', '.join(names)}") from err
            handles.append(module.register_forward_hook(
                lambda _module, _inputs, output, name=name: captured.__setitem__(name, output)))
        logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return logits, captured
