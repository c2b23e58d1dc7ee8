"""Contextual fusion (Akumalla, Haney and Bazhenov): an object stream, a scene stream and three linear heads.

Two frozen feature extractors look at the whole image: an **object-centric**
one (the paper: ImageNet ResNet-18) and a **scene-centric** one (the paper:
Places365 ResNet-18). Three linear heads are trained on their features: the
**foreground** head on the object features, the **background** head on the
scene features and the **joint** head on both, concatenated (late fusion).
Only the heads train. ``FusionClassifier.head(name)`` gives each head as an
ordinary module from pixels in [0, 1] to logits, so the kit's attacks, checklist
and saliency methods apply to it unchanged.

The streams are modules from pixels in [0, 1] to (B, D) features with an
attribute ``dim``: ``NetStream`` (a classifier's penultimate layer, e.g. the
kit's ``SmallResNet`` trained on the scene-only backgrounds) and
``ImageNetStream`` (a timm or torchvision ImageNet network, normalisation inside).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

HEADS = ("fg", "bg", "joint")


class SmallResNet(nn.Module):
    """A four-stage residual network for small images: (B, 3, H, W) pixels in [0, 1] -> (B, classes) logits.

    A stride-2 stem, then one torchvision ``BasicBlock`` per stage (widths
    ``width`` x 1, 2, 4, 8; stages 2-4 halve the resolution), global average
    pooling and a linear layer. ``features(x)`` is the (B, 8 * width) pooled
    vector before that layer: what a frozen stream of the fusion model reads.
    Pixels are centred inside (``(x - 0.5) / 0.25``), as the MNIST models do.
    """

    def __init__(self, classes: int, width: int = 16):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        blocks, inplanes = [], width
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes:
                down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                     nn.BatchNorm2d(planes))
            blocks.append(BasicBlock(inplanes, planes, stride, down))
            inplanes = planes
        self.blocks = nn.Sequential(*blocks)
        self.dim = widths[-1]
        self.fc = nn.Linear(self.dim, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"SmallResNet expects (B, 3, H, W) pixels in [0, 1], got {tuple(x.shape)}")
        return self.blocks(self.stem((x - 0.5) / 0.25)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class NetStream(nn.Module):
    """The penultimate features of ``net`` (any module with ``features(x)`` and ``dim``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.dim = net, net.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)


class ImageNetStream(nn.Module):
    """An ImageNet network's pooled features of pixels in [0, 1] (ImageNet normalisation inside).

    ``net`` is a timm model (``forward_features`` + ``forward_head(pre_logits=True)``,
    e.g. EfficientNet-Lite0) or a torchvision ResNet (its ``fc`` is skipped).
    ``size``: images are resized to it first (None: as given).
    """

    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def __init__(self, net: nn.Module, dim: int, size: int | None = None):
        super().__init__()
        self.net, self.dim, self.size = net, dim, size
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        if hasattr(self.net, "forward_features"):  # timm
            return self.net.forward_head(self.net.forward_features(x), pre_logits=True)
        net = self.net  # torchvision ResNet: everything up to the pooled vector
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return torch.flatten(net.avgpool(x), 1)


class FusionClassifier(nn.Module):
    """Two frozen streams and three linear heads: (B, 3, H, W) pixels in [0, 1] -> joint (B, classes) logits.

    ``forward`` is the joint classifier; ``all_logits(x)`` gives every head's
    logits and ``head(name)`` one head as a module. The streams never train:
    their parameters do not require gradients and they stay in eval mode (their
    batch-norm statistics included) whatever mode the classifier is put in.
    """

    def __init__(self, object_stream: nn.Module, scene_stream: nn.Module, classes: int):
        super().__init__()
        self.object_stream, self.scene_stream = object_stream, scene_stream
        for stream in (object_stream, scene_stream):
            stream.requires_grad_(False)
        self.object_dim, self.scene_dim = object_stream.dim, scene_stream.dim
        self.fg = nn.Linear(self.object_dim, classes)
        self.bg = nn.Linear(self.scene_dim, classes)
        self.joint = nn.Linear(self.object_dim + self.scene_dim, classes)

    def train(self, mode: bool = True) -> "FusionClassifier":
        super().train(mode)
        self.object_stream.eval()
        self.scene_stream.eval()
        return self

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(object features (B, object_dim), scene features (B, scene_dim)) of pixels ``x``."""
        return self.object_stream(x), self.scene_stream(x)

    def heads(self, objects: torch.Tensor, scenes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each head's (B, classes) logits from the two streams' features."""
        return {"fg": self.fg(objects), "bg": self.bg(scenes), "joint": self.joint(torch.cat([objects, scenes], 1))}

    def all_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(*self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_logits(x)["joint"]

    def foreground_weights(self) -> torch.Tensor:
        """The joint head's weights on the object features, (classes, object_dim): the paper's theta_fg."""
        return self.joint.weight[:, : self.object_dim]

    def background_weights(self) -> torch.Tensor:
        """The joint head's weights on the scene features, (classes, scene_dim)."""
        return self.joint.weight[:, self.object_dim:]

    def head(self, name: str) -> "FusionHead":
        """Head ``name`` ("fg", "bg" or "joint") as a module from pixels to logits."""
        return FusionHead(self, name)


class FusionHead(nn.Module):
    """One head of a ``FusionClassifier`` as a classifier of pixels (it shares the classifier's weights)."""

    def __init__(self, fusion: FusionClassifier, name: str):
        super().__init__()
        if name not in HEADS:
            raise ValueError(f"unknown head {name!r}; the heads are {', '.join(HEADS)}")
        self.fusion, self.name = fusion, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.name == "fg":  # one stream only: the background head's stream is not even run
            return self.fusion.fg(self.fusion.object_stream(x))
        if self.name == "bg":
            return self.fusion.bg(self.fusion.scene_stream(x))
        return self.fusion(x)


# -- zoo recipes --------------------------------------------------------------------------------
# quick: 64 px objects in context (data/scenes.py). The scene stream is a SmallResNet trained
# on backgrounds without objects (the stand-in for Places365); the object stream a SmallResNet
# trained on the objects over scenes drawn independently of the class (context 0: an
# object-centric set, the stand-in for ImageNet). Both are then frozen and only the heads
# train, on features computed once per fit (FrozenFeatures). full: the paper's ImageNet and
# Places365 ResNet-18s from their files, on MS COCO (data/coco.py) at 224 px; the context dial
# stays on the scenes, larger. CIFAR-10, the paper's other dataset: models/fusion_cifar10.py.
from ..attacks import FGSMAttack  # noqa: E402
from ..data.coco import coco_splits  # noqa: E402
from ..data.scenes import CLASSES, SCENE_TYPES, class_set, scene_only_splits, scenes_splits  # noqa: E402
from ..train.batches import AttackBatches, FrozenFeatures  # noqa: E402
from ..train.callbacks import OneCycle  # noqa: E402
from ..train.metrics import HeadAccuracies  # noqa: E402
from ..train.objectives import FusionHeads  # noqa: E402
from ..train.recipes import Plan, Recipe, register  # noqa: E402

DATA_SOURCES = {"scenes": scenes_splits, "coco": coco_splits}  # settings["source"] -> zoo data source
# Akumalla et al. retrain on FGSM at eps 0.3 of images normalised with CIFAR-10's statistics.
# The paper states no std; with CIFAR-10's per-channel std over the training set (0.2470,
# 0.2435, 0.2616) 0.3 x std = 0.074, 0.073, 0.078 in pixel units; the kit uses their mean as one
# eps for every channel. (The other std often quoted for CIFAR-10, 0.2023, 0.1994, 0.2010, the
# mean of per-image stds, would give 0.061.)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
PAPER_RETRAIN_EPS = round(0.3 * sum(CIFAR10_STD) / 3, 3)  # 0.075 in pixels in [0, 1]


def fusion_data(profile, settings: dict, data_home=None, seed: int = 0):
    return DATA_SOURCES[settings["source"]](profile, settings, data_home, seed)


def _classes(settings: dict) -> int:
    if settings["source"] == "coco":
        return 24 if settings["class_set"] == "all" else 8
    return len(class_set(settings["class_set"], settings.get("supercategory"), seed=settings.get("set_seed", 0)))


def _streams(settings: dict) -> tuple[nn.Module, nn.Module]:
    if settings["streams"] == "small_resnets":  # weights come from the zoo components below
        return (NetStream(SmallResNet(len(CLASSES), settings["width"])),
                NetStream(SmallResNet(len(SCENE_TYPES), settings["width"])))
    from .places365 import load_imagenet_resnet18, load_places365_resnet18

    return (ImageNetStream(load_imagenet_resnet18(), 512), ImageNetStream(load_places365_resnet18(), 512))


def build_fusion(settings: dict) -> FusionClassifier:
    """The fusion classifier of a recipe's settings (streams untrained in quick until the zoo loads them)."""
    object_stream, scene_stream = _streams(settings)
    return FusionClassifier(object_stream, scene_stream, _classes(settings))


def stream_parts(settings: dict) -> dict[str, str]:
    if settings["streams"] != "small_resnets":
        return {}
    return {"object_stream.net": "scenes_object_net", "scene_stream.net": "scenes_scene_net"}


def fusion_plan(settings: dict, splits, home) -> Plan:
    metrics = HeadAccuracies()
    if settings.get("retrain_eps"):  # adversarial retraining: FGSM on the joint classifier at every step
        return Plan(objective=FusionHeads(), batches=AttackBatches(FGSMAttack(settings["retrain_eps"])),
                    metrics=metrics, monitor="val_acc_mean")
    # One rule for every variant: the epoch best for the three heads together.
    return Plan(objective=FusionHeads(settings.get("alpha", 0.0)), batches=FrozenFeatures(), metrics=metrics,
                monitor="val_acc_mean")


def _stream_plan(settings: dict, splits, home) -> Plan:
    return Plan(callbacks=[OneCycle(settings["lr"])])  # a one-cycle schedule ends the short run steadily


STREAM = dict(batch_size=64, optimizer="Adam", lr=4e-3, width=16, size=64)
register(Recipe(
    name="scenes_scene_net", summary="SmallResNet on scene backgrounds without objects (fusion's scene stream)",
    build=lambda settings: SmallResNet(len(SCENE_TYPES), settings["width"]), data=scene_only_splits,
    quick=dict(STREAM, epochs=3, n_train=1600, n_val=200, n_test=400),
    full=dict(STREAM, epochs=3, n_train=1600, n_val=200, n_test=400), plan=_stream_plan))
register(Recipe(
    name="scenes_object_net",
    summary="SmallResNet on objects over scenes drawn independently of the class (fusion's object stream)",
    build=lambda settings: SmallResNet(len(CLASSES), settings["width"]), data=scenes_splits,
    quick=dict(STREAM, epochs=8, class_set="all", context=0.0, n_train=3000, n_val=300, n_test=600),
    full=dict(STREAM, epochs=8, class_set="all", context=0.0, n_train=3000, n_val=300, n_test=600),
    plan=_stream_plan))

HEADS_QUICK = dict(epochs=8, batch_size=128, optimizer="Adam", lr=5e-3, source="scenes", streams="small_resnets",
                   width=16, size=64, context=0.9)
HEADS_FULL = dict(epochs=15, batch_size=128, optimizer="Adam", lr=1e-3, source="coco", streams="imagenet_places",
                  size=224)
SET_SIZES = {"all": dict(n_train=1800, n_val=240, n_test=600), "similar": dict(n_train=600, n_val=120, n_test=300),
             "dissimilar": dict(n_train=600, n_val=120, n_test=300)}
CONTEXTS = (0.0, 0.5, 0.75, 1.0)  # the context dial: on the scenes in both profiles (COCO's context is what it is)
DIAL_FULL = dict(HEADS_QUICK, epochs=15, class_set="all", n_train=6000, n_val=600, n_test=2000)
ALPHAS = (0.1, 1.0, 10.0)               # Akumalla et al.'s Figure 5 range


def _register_fusion(name: str, summary: str, quick: dict, full: dict, start_from: str | None = None) -> None:
    register(Recipe(name=name, summary=summary, build=build_fusion, data=fusion_data, quick=quick, full=full,
                    plan=fusion_plan, components=stream_parts, start_from=start_from))


for _set in ("all", "similar", "dissimilar"):
    _register_fusion(f"fusion_{_set}", f"contextual fusion's three heads on the {_set!r} class set",
                     dict(HEADS_QUICK, class_set=_set, **SET_SIZES[_set]), dict(HEADS_FULL, class_set=_set))
for _alpha in ALPHAS:
    _register_fusion(f"fusion_all_alpha{_alpha:g}", f"fusion on 'all', joint head with alpha={_alpha:g} on theta_fg",
                     dict(HEADS_QUICK, class_set="all", alpha=_alpha, **SET_SIZES["all"]),
                     dict(HEADS_FULL, class_set="all", alpha=_alpha))
_register_fusion("fusion_all_retrained", f"fusion on 'all', heads retrained on FGSM eps={PAPER_RETRAIN_EPS}",
                 dict(HEADS_QUICK, class_set="all", epochs=2, lr=1e-3, retrain_eps=PAPER_RETRAIN_EPS,
                      **SET_SIZES["all"]),
                 dict(HEADS_FULL, class_set="all", epochs=3, retrain_eps=PAPER_RETRAIN_EPS),
                 start_from="fusion_all")
for _context in CONTEXTS:
    _register_fusion(f"fusion_all_context{_context:g}", f"fusion on 'all' with context={_context:g} (the dial)",
                     dict(HEADS_QUICK, class_set="all", **dict(SET_SIZES["all"], context=_context)),
                     dict(DIAL_FULL, context=_context))
