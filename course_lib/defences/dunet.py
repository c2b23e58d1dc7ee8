"""HGD's denoising U-Net (Liao et al., 2018) and the denoiser-in-front-of-a-classifier module."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def _blocks(in_channels: int, out_channels: int, count: int, stride: int = 1) -> nn.Sequential:
    """``count`` conv3x3-BN-ReLU blocks; the first has ``stride`` and changes the channel count."""
    layers = []
    for i in range(count):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3,
                             stride=stride if i == 0 else 1, padding=1, bias=False),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class DUNet(nn.Module):
    """(B, C, H, W) image -> (B, C, H, W) denoised image, ``x + residual(x)``.

    Encoder: stages of conv-BN-ReLU blocks with ``encoder_widths`` channels and
    ``encoder_blocks`` blocks each; every stage after the first starts with a
    stride-2 block. Decoder: from the deepest stage up, upsample to the lateral
    encoder feature's size, concatenate it, apply ``decoder_blocks`` blocks of
    ``decoder_widths`` channels. A 1x1 convolution maps the last decoder feature
    to ``channels`` and the result is added to the input: the network predicts
    the change that removes the adversarial noise (HGD's -dx). HGD's sizes are
    the defaults; the MNIST recipes scale the widths down.
    """

    def __init__(self, channels: int = 1, encoder_widths: Sequence[int] = (64, 128, 256, 256, 256),
                 encoder_blocks: Sequence[int] = (2, 3, 3, 3, 3), decoder_widths: Sequence[int] = (64, 128, 256, 256),
                 decoder_blocks: Sequence[int] = (2, 3, 3, 3)):
        super().__init__()
        if len(encoder_widths) != len(encoder_blocks) or len(decoder_widths) != len(decoder_blocks):
            raise ValueError("give one block count per width, for the encoder and for the decoder")
        if len(decoder_widths) != len(encoder_widths) - 1:
            raise ValueError(f"the decoder needs one stage fewer than the encoder: {len(encoder_widths)} encoder "
                             f"stages, {len(decoder_widths)} decoder stages")
        self.encoder = nn.ModuleList()
        previous = channels
        for i, (width, count) in enumerate(zip(encoder_widths, encoder_blocks)):
            self.encoder.append(_blocks(previous, width, count, stride=1 if i == 0 else 2))
            previous = width
        # decoder stage i merges the deeper result with encoder stage i, deepest first
        self.decoder = nn.ModuleList()
        deeper = encoder_widths[-1]
        for i in reversed(range(len(decoder_widths))):
            self.decoder.insert(0, _blocks(deeper + encoder_widths[i], decoder_widths[i], decoder_blocks[i]))
            deeper = decoder_widths[i]
        self.to_image = nn.Conv2d(decoder_widths[0], channels, 1)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted change, (B, C, H, W)."""
        features = []
        h = x
        for stage in self.encoder:
            h = stage(h)
            features.append(h)
        h = features[-1]
        for i in reversed(range(len(self.decoder))):
            lateral = features[i]
            h = F.interpolate(h, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            h = self.decoder[i](torch.cat([h, lateral], dim=1))
        return self.to_image(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class Denoised(nn.Module):
    """``classifier(denoiser(x))``: pixels in [0, 1] -> logits, the denoiser in front of a classifier.

    When ``freeze_classifier`` (HGD: the target model is fixed), the classifier's
    parameters do not train and it stays in eval mode whatever ``train()`` says.
    Attacking this module end to end attacks the denoiser and the classifier together.
    """

    def __init__(self, denoiser: nn.Module, classifier: nn.Module, freeze_classifier: bool = True):
        super().__init__()
        self.denoiser, self.classifier, self.freeze_classifier = denoiser, classifier, freeze_classifier
        if freeze_classifier:
            self.classifier.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_classifier:
            self.classifier.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.denoiser(x))
