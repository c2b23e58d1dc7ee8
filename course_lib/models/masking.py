"""Dabkowski and Gal's masking model: one forward pass gives a saliency mask for any image and class.

A U-Net whose encoder is a frozen pretrained classifier's feature pyramid. At the
coarsest scale a **feature filter** keeps the features that agree with the
selected class: ``Y_ij = X_ij * sigmoid(X_ij . C_s)``, ``C`` a learned class
embedding. Upsampler blocks (a transposed convolution doubling the resolution,
concatenation with the encoder's feature map of that scale, a bottleneck block)
climb back to a quarter of the input resolution, where a 1x1 convolution gives
two channels ``C0``, ``C1`` and the mask ``|C0| / (|C0| + |C1|)``, upsampled
bilinearly to the image. The model is trained once on the objective of
``saliency/evidence.py`` against a black-box classifier (``train/objectives/masking.py``).

``quick``'s encoder is the kit's ``SmallResNet`` (``models/fusion.py``): its stages
give maps at 1/2, 1/4, 1/8 and 1/16 of the input (``FeaturePyramid``). The paper's
is torchvision's ImageNet ResNet-50, five maps down to 1/32 (``ResNetPyramid``,
its weights from ``places365.load_imagenet_resnet50``). ``TimmPyramid`` reads the
ImageNet EfficientNet-Lite0 the kit ships (``scenes_masking_efficientnet``), the
other candidate for quick that ``benchmarks/masking_encoder.py`` measures.

``MaskedBlackBox`` pairs a masking model with the classifier it explains, which
is what the zoo trains and stores (recipes at the end of this file).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import Bottleneck


class FrozenPyramid(nn.Module):
    """What every encoder below shares: a frozen network ``net``, in eval mode from construction on.

    ``imagenet``: the network was trained on ImageNet-normalised images, and
    ``normalise(x)`` turns pixels in [0, 1] into them (buffers ``mean``, ``std``).
    Subclasses set ``channels`` (the maps' widths, finest first) and ``forward``.
    """

    def __init__(self, net: nn.Module, imagenet: bool = False):
        super().__init__()
        self.net = net.requires_grad_(False).eval()  # frozen from the start, not from the first train()
        if imagenet:
            from .places365 import IMAGENET_MEAN, IMAGENET_STD

            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "FrozenPyramid":
        super().train(mode)
        self.net.eval()  # frozen: batch-norm statistics included
        return self

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class FeaturePyramid(FrozenPyramid):
    """The stage outputs of a frozen ``SmallResNet``: pixels in [0, 1] -> [1/2, 1/4, 1/8, 1/16] maps, finest first."""

    def __init__(self, net: nn.Module):
        super().__init__(net)
        self.channels = [block.conv2.out_channels for block in net.blocks]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, maps = self.net.stem((x - 0.5) / 0.25), []
        for block in self.net.blocks:
            h = block(h)
            maps.append(h)
        return maps


class ResNetPyramid(FrozenPyramid):
    """The stages of a frozen torchvision ResNet (the paper's ResNet-50): pixels in [0, 1] -> five maps, finest first.

    The stem's output (1/2 of the input), then ``layer1`` to ``layer4`` (1/4,
    1/8, 1/16, 1/32); ImageNet normalisation happens inside.
    """

    def __init__(self, net: nn.Module):
        super().__init__(net, imagenet=True)
        self.channels = [net.conv1.out_channels] + [_out(layer) for layer in (net.layer1, net.layer2, net.layer3,
                                                                               net.layer4)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.net
        h = net.relu(net.bn1(net.conv1(self.normalise(x))))
        maps = [h]
        h = net.maxpool(h)
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            h = layer(h)
            maps.append(h)
        return maps


class TimmPyramid(FrozenPyramid):
    """The stages of a frozen timm network (the ImageNet EfficientNet-Lite0): pixels in [0, 1] -> maps, finest first.

    One map per entry of timm's ``feature_info`` (EfficientNet-Lite0: the outputs
    of ``blocks.0``, ``.1``, ``.2``, ``.4`` and ``.6``, at 1/2 to 1/32 of the input,
    16 to 320 channels); ImageNet normalisation happens inside. ``size``: the
    input is resized to ``size`` x ``size`` first (None: as given), so that small
    images reach the ImageNet network at a scale it knows; the maps are then
    fractions of ``size``, and ``MaskingModel`` resizes its mask to the input.
    """

    def __init__(self, net: nn.Module, size: int | None = None):
        super().__init__(net, imagenet=True)
        self.size = size
        info = net.feature_info
        if [entry["reduction"] for entry in info][:3] != [2, 4, 8] or any(
                not entry["module"].startswith("blocks.") for entry in info):
            raise ValueError(f"TimmPyramid reads maps of 1/2, 1/4, 1/8, ... from timm's blocks.N; this network's "
                             f"feature_info is {info}")
        self.taps = [int(entry["module"].split(".")[1]) for entry in info]  # "blocks.4" -> 4
        self.channels = [entry["num_chs"] for entry in info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        h, maps = self.net.bn1(self.net.conv_stem(self.normalise(x))), []
        for i, block in enumerate(self.net.blocks[: self.taps[-1] + 1]):
            h = block(h)
            if i in self.taps:
                maps.append(h)
        return maps


def _out(layer: nn.Sequential) -> int:
    """Output channels of a torchvision ResNet stage (BasicBlock or Bottleneck)."""
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


class Upsampler(nn.Module):
    """Double the resolution (transposed convolution), join the encoder's map of that scale, one bottleneck block."""

    def __init__(self, channels_in: int, skip: int, channels_out: int):
        super().__init__()
        if channels_out % Bottleneck.expansion:
            raise ValueError(f"channels_out={channels_out} must be a multiple of {Bottleneck.expansion}")
        self.up = nn.ConvTranspose2d(channels_in, channels_out, 2, stride=2)
        joined = channels_out + skip  # torchvision's bottleneck, its shortcut projecting the joined maps
        shortcut = nn.Sequential(nn.Conv2d(joined, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out))
        self.block = Bottleneck(joined, channels_out // Bottleneck.expansion, downsample=shortcut)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.up(x), skip], 1))


class MaskingModel(nn.Module):
    """(B, 3, H, W) pixels in [0, 1] and (B,) class selectors -> (B, H, W) masks in [0, 1] (1: the evidence).

    ``encoder``: a frozen pyramid whose ``forward`` gives maps at 1/2, 1/4, 1/8, ...
    of the input, finest first, and whose ``channels`` lists their widths
    (``FeaturePyramid``: four maps; ``ResNetPyramid``: five). One upsampler per
    scale climbs from the coarsest map to 1/4. ``classes``: how many classes the
    selector chooses from. Only the class embedding, the upsamplers and the last
    1x1 convolution train.
    """

    def __init__(self, encoder: nn.Module, classes: int):
        super().__init__()
        self.encoder, self.classes = encoder, classes
        c = encoder.channels  # finest first: 1/2, 1/4, 1/8, ...
        if len(c) < 3:
            raise ValueError(f"the encoder must give at least three scales (1/2, 1/4, 1/8), it gives {len(c)}")
        self.embedding = nn.Embedding(classes, c[-1])
        # Scaled so that X . C starts near the sigmoid's middle (unit-variance entries would saturate it
        # and stop the embedding's gradient), as the authors' code initialises it.
        nn.init.normal_(self.embedding.weight, 0.0, c[-1] ** -0.5)
        # From the coarsest scale down to 1/4: each doubles the resolution and joins that scale's map.
        self.ups = nn.ModuleList(Upsampler(c[i + 1], c[i], c[i]) for i in range(len(c) - 2, 0, -1))
        self.head = nn.Conv2d(c[1], 2, 1)

    def forward(self, x: torch.Tensor, selector: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"MaskingModel expects (B, 3, H, W) pixels, got {tuple(x.shape)}")
        selector = torch.as_tensor(selector, device=x.device)
        if selector.shape != (len(x),) or selector.min() < 0 or selector.max() >= self.classes:
            raise ValueError(f"give one class selector in [0, {self.classes - 1}] per image; got {selector.tolist()}")
        maps = self.encoder(x)
        coarse = maps[-1]
        agreement = (coarse * self.embedding(selector)[:, :, None, None]).sum(1, keepdim=True)
        y = coarse * torch.sigmoid(agreement)  # the feature filter
        for up, skip in zip(self.ups, maps[-2:0:-1]):
            y = up(y, skip)
        c0, c1 = self.head(y).abs().unbind(1)
        mask = c0 / (c0 + c1 + 1e-6)
        return F.interpolate(mask[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Whether two modules are one, or hold equal parameters and buffers under the same names."""
    if a is b:
        return True
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


class MaskingSaliency:
    """The masking model as a saliency method: ``method(model, x, y)`` -> its masks for classes ``y``.

    ``model`` must be the black box the masking model was trained against, or a
    copy with the same weights (the masks explain that classifier and no other);
    pass it to keep the one interface.
    """

    def __init__(self, masking: MaskingModel, black_box: nn.Module):
        self.masking, self.black_box = masking, black_box

    def __call__(self, model: nn.Module, x: torch.Tensor, y) -> torch.Tensor:
        if not same_weights(model, self.black_box):
            raise ValueError("this masking model was trained to explain another classifier; pass the "
                             "black box it was trained against (or a copy with the same weights)")
        was_training = self.masking.training
        self.masking.eval()
        try:
            with torch.no_grad():
                return self.masking(x, torch.as_tensor(y, device=x.device))
        finally:
            self.masking.train(was_training)


class MaskedBlackBox(nn.Module):
    """A masking model and the black-box classifier it explains, trained and stored together.

    ``masking(x, selector)`` gives the masks; ``black_box`` (pixels -> logits)
    never trains and stays in eval mode. ``forward(x, selector)`` is the masks.
    ``saliency()`` gives the pair as a saliency method of ``black_box``.
    """

    def __init__(self, masking: MaskingModel, black_box: nn.Module):
        super().__init__()
        self.masking, self.black_box = masking, black_box.requires_grad_(False)

    def train(self, mode: bool = True) -> "MaskedBlackBox":
        super().train(mode)
        self.black_box.eval()
        return self

    def forward(self, x: torch.Tensor, selector: torch.Tensor) -> torch.Tensor:
        return self.masking(x, selector)

    def saliency(self) -> MaskingSaliency:
        return MaskingSaliency(self.masking, self.black_box)


# -- zoo recipes --------------------------------------------------------------------------------
# quick: the black box is the zoo's scenes_black_box (models/scenes_black_box.py); a second frozen
# copy of it is the masking model's encoder.
from ..data.scenes import CLASSES, scenes_splits  # noqa: E402
from ..saliency.code_objective import PublishedCodeObjective  # noqa: E402
from ..saliency.evidence import SaliencyObjective  # noqa: E402
from ..train.metrics import MaskQuality  # noqa: E402
from ..train.objectives import MaskingObjective  # noqa: E402
from ..train.recipes import Plan, Recipe, register  # noqa: E402
from .fusion import SmallResNet  # noqa: E402
from .scenes_black_box import SCENES, SCENES_FULL  # noqa: E402

def saliency_objective(settings: dict):
    """The saliency objective a recipe's settings name: ``objective`` "paper" (with its weights) or "code"."""
    if settings["objective"] == "paper":
        return SaliencyObjective(**settings.get("weights", {}))
    return PublishedCodeObjective()


def build_masked_black_box(settings: dict) -> MaskedBlackBox:
    """The pair of a recipe's settings: ``encoder`` "black_box" (a frozen copy of the black box, its
    weights from the zoo), "imagenet_resnet50" (the paper's, from its published file) or
    "imagenet_efficientnet_lite0" (the ImageNet EfficientNet-Lite0 the kit ships; its input resized
    to ``encoder_size`` pixels)."""
    width, classes = settings["width"], len(CLASSES)
    encoder = settings.get("encoder", "black_box")
    if encoder == "imagenet_resnet50":
        from .places365 import load_imagenet_resnet50

        pyramid = ResNetPyramid(load_imagenet_resnet50())
    elif encoder == "imagenet_efficientnet_lite0":
        from .efficientnet_lite import get_efficientnet_lite0

        pyramid = TimmPyramid(get_efficientnet_lite0(num_classes=1000), settings.get("encoder_size"))
    elif encoder == "black_box":
        pyramid = FeaturePyramid(SmallResNet(classes, width))
    else:
        raise ValueError(f"unknown encoder {encoder!r}; valid encoders: black_box, imagenet_resnet50, "
                         "imagenet_efficientnet_lite0")
    return MaskedBlackBox(MaskingModel(pyramid, classes), SmallResNet(classes, width))


def _black_box_parts(settings: dict) -> dict[str, str]:
    if settings.get("encoder", "black_box") != "black_box":  # a published encoder: its weights come with it
        return {"black_box": "scenes_black_box"}
    return {"masking.encoder.net": "scenes_black_box", "black_box": "scenes_black_box"}


def _masking_plan(settings: dict, splits, home) -> Plan:
    objective = saliency_objective(settings)
    return Plan(objective=MaskingObjective(objective, settings["fake_rate"]), metrics=MaskQuality(objective),
                monitor="val_loss")


# The paper's ImageNet weights (full) fail on the 64 px scenes: with l1 = 10 on a 64 x 64 mask the
# TV term outweighs every other and masks stay uniform, and with l2 = 1e-3 they keep 85-90% of the
# image. quick's paper weights come from a sweep of iterative masks (48 test scenes, 300 steps):
# l1 = 10 with l2 in {1e-3, 1, 3, 5, 10, 20} (masks kept 88, 86, 81, 77, 59 and 24% of the image;
# 7 and 36 of the 48 empty at 10 and 20), then l1 in {0.01, 0.1} with l2 in {1, 5}; l1 = 0.1,
# l2 = 5 gave the best saliency metric without empty masks (0.38; the code's objective gave 0.07).
# The chapter measures both objectives.
PAPER_QUICK_WEIGHTS = dict(l1=0.1, l2=5.0)
# quick's epochs: in 7-epoch runs both models' validation area, loss and localisation had settled by
# the 4th epoch (area 0.085 against 0.084-0.095 after it; the paper objective's 0.66-0.67 throughout).
MASKING = dict(SCENES, epochs=4, batch_size=64, optimizer="Adam", lr=3e-3, fake_rate=0.3)
# full: the paper's encoder (ImageNet ResNet-50) on the scenes drawn at 224 px, more of them and
# longer; never run on this project's machines (no GPU was lent), so its settings are a start.
MASKING_FULL = dict(SCENES_FULL, epochs=20, batch_size=64, optimizer="Adam", lr=1e-3, fake_rate=0.3,
                    encoder="imagenet_resnet50")
register(Recipe(
    name="scenes_masking", summary="masking model explaining scenes_black_box, on the authors' code's objective",
    build=build_masked_black_box, data=scenes_splits, quick=dict(MASKING, objective="code"),
    full=dict(MASKING_FULL, objective="code"), plan=_masking_plan, components=_black_box_parts))
# quick's other candidate encoder (the question): the ImageNet EfficientNet-Lite0 the kit
# ships, frozen, on the same objective and epochs; benchmarks/masking_encoder.py measures both.
register(Recipe(
    name="scenes_masking_efficientnet",
    summary="masking model explaining scenes_black_box, its encoder the ImageNet EfficientNet-Lite0 (code's objective)",
    build=build_masked_black_box, data=scenes_splits,
    quick=dict(MASKING, objective="code", encoder="imagenet_efficientnet_lite0", encoder_size=None),
    full=dict(MASKING_FULL, objective="code", encoder="imagenet_efficientnet_lite0", encoder_size=None),
    plan=_masking_plan, components=_black_box_parts))
register(Recipe(
    name="scenes_masking_paper", summary="masking model explaining scenes_black_box, on the paper's objective",
    build=build_masked_black_box, data=scenes_splits, quick=dict(MASKING, objective="paper", weights=PAPER_QUICK_WEIGHTS),
    full=dict(MASKING_FULL, objective="paper"), plan=_masking_plan, components=_black_box_parts))
