"""Contextual fusion on CIFAR-10, the paper's second dataset (its Figure 4c-d): the object stream fine-tuned.

On CIFAR-10 Akumalla, Haney and Bazhenov do not freeze the object network: they
train every layer of an ImageNet-initialised ResNet-18 on CIFAR-10 (the
foreground classifier), train only the last layer on the Places365 ResNet-18 (the
background classifier), and train the joint head on the two fixed feature
vectors, concatenated. Two recipes rebuild that in ``full``:

- ``cifar10_object_net``: ``FineTuned`` (torchvision's ImageNet ResNet-18 from its
  file, a new 10-way layer, every layer trained) on CIFAR-10;
- ``fusion_cifar10``: ``FusionClassifier`` with that network's features as the
  object stream and the Places365 ResNet-18's as the scene stream; its three
  heads train (the foreground head refits the fine-tuned network's last layer).

CIFAR-10's 32 px images are kept at their size (49,000 training images resized to
224 px would be 29 GB as floats); both streams upsample to 224 px inside
(``ImageNetStream(size=224)``), so attacks perturb the 32 px images themselves.

``quick`` has no CIFAR-10 (it cannot download). ``fusion_cifar10``'s quick settings
are its stand-in: the objects-in-context scenes at ``context`` 0, where the scene is
drawn independently of the class, as CIFAR-10's backgrounds say little about it;
its object stream (``scenes_object_net``) was trained on the task's classes, as the
paper's CIFAR-10 object network was. ``cifar10_object_net``'s quick settings read
CIFAR-10 too (one epoch): building it needs the dataset in either profile.
"""
from __future__ import annotations

from torch import nn

from ..data.cifar10 import cifar10_splits
from ..train.callbacks import OneCycle
from ..train.recipes import Plan, Recipe, register
from .fusion import (HEADS_FULL, HEADS_QUICK, SET_SIZES, FusionClassifier, ImageNetStream, NetStream,
                     build_fusion, fusion_data, fusion_plan, stream_parts)

CIFAR10_CLASSES = 10
INPUT_SIZE = 224  # what the paper feeds both ResNet-18s ("resized and cropped to 224x224")


class FineTuned(nn.Module):
    """An ImageNet network's pooled features and a new linear layer, every layer trainable.

    (B, 3, H, W) pixels in [0, 1] -> (B, classes) logits. ``features(x)`` is the
    (B, ``dim``) vector the linear layer reads (so ``NetStream`` can wrap it).
    """

    def __init__(self, stream: ImageNetStream, classes: int):
        super().__init__()
        self.stream, self.dim = stream, stream.dim
        self.fc = nn.Linear(stream.dim, classes)

    def features(self, x):
        return self.stream(x)

    def forward(self, x):
        return self.fc(self.features(x))


def _resnet18_stream(weights: str) -> ImageNetStream:
    """A ResNet-18 feature stream at 224 px: "imagenet" or "places365" (their files), or "none" (the
    architecture alone, for weights a zoo component supplies)."""
    from torchvision.models import resnet18

    from .places365 import load_imagenet_resnet18, load_places365_resnet18

    net = {"imagenet": load_imagenet_resnet18, "places365": load_places365_resnet18,
           "none": lambda: resnet18(weights=None)}[weights]()
    return ImageNetStream(net, 512, size=INPUT_SIZE)


def build_object_net(settings: dict) -> FineTuned:
    return FineTuned(_resnet18_stream("imagenet"), CIFAR10_CLASSES)


def build_cifar10_fusion(settings: dict) -> FusionClassifier:
    """The fusion classifier of the settings: CIFAR-10's (full) or the scenes' stand-in (quick)."""
    if settings["source"] != "cifar10":
        return build_fusion(settings)
    object_stream = NetStream(FineTuned(_resnet18_stream("none"), CIFAR10_CLASSES))  # weights: the component
    return FusionClassifier(object_stream, _resnet18_stream("places365"), CIFAR10_CLASSES)


def _data(profile, settings: dict, data_home=None, seed: int = 0):
    if settings["source"] == "cifar10":
        return cifar10_splits(profile, settings, data_home, seed)
    return fusion_data(profile, settings, data_home, seed)


def _parts(settings: dict) -> dict[str, str]:
    if settings["source"] == "cifar10":
        return {"object_stream.net": "cifar10_object_net"}
    return stream_parts(settings)


def _object_plan(settings: dict, splits, home) -> Plan:
    return Plan(callbacks=[OneCycle(settings["lr"])])


# The paper gives no schedule for the fine-tuning; a few epochs of SGD with a one-cycle schedule
# fine-tune an ImageNet ResNet-18 on CIFAR-10 at 224 px. Never run on this project's machines
# (no GPU was lent): a start, not a measured setting.
OBJECT_NET = dict(epochs=5, batch_size=128, optimizer="SGD", lr=0.01, weight_decay=5e-4, size=None)
register(Recipe(
    name="cifar10_object_net", summary="ImageNet ResNet-18, every layer fine-tuned on CIFAR-10 (fusion's object "
                                       "stream on CIFAR-10; needs CIFAR-10 in both profiles)",
    build=build_object_net, data=cifar10_splits, quick=dict(OBJECT_NET, epochs=1), full=OBJECT_NET,
    plan=_object_plan))
register(Recipe(
    name="fusion_cifar10",
    summary="fusion's heads on CIFAR-10 (full); quick: the scenes at context 0, its stand-in",
    build=build_cifar10_fusion, data=_data,
    quick=dict(HEADS_QUICK, class_set="all", **dict(SET_SIZES["all"], context=0.0)),
    full=dict(HEADS_FULL, source="cifar10", streams="cifar10_finetuned_places365", size=None),
    plan=fusion_plan, components=_parts))
