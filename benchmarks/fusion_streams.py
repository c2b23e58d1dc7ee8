"""Which object stream for contextual fusion's quick profile: the kit's SmallResNet or ImageNet EfficientNet-Lite0.

Both streams read the same 64 px objects-in-context images of the Dissimilar set.
For each, a foreground head (scikit-learn's logistic regression on the frozen
features: the same linear head the chapter trains, fitted in closed form to keep
the comparison about the features) is measured on the clean test images and with
the objects' boxes blurred at the paper's sigma 10 and 20 (at 224 px, scaled), and
the stream's cost is timed: a forward pass (features), and a forward and backward
pass (one FGSM or PGD step), in ms per image.

The SmallResNet is the zoo's ``scenes_object_net`` (trained on first use, about
half a minute), or with ``--stream-epochs N`` a fresh one trained here for N
epochs on the benchmark's own training images (the smoke test's setting).
Writes benchmarks/results/fusion_streams.json.

Usage: .venv/bin/python benchmarks/fusion_streams.py [--device cpu] [--train-size 600] [--test-size 300]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, report  # noqa: E402

from course_lib.config import get_device  # noqa: E402
from course_lib.data.scenes import CLASSES, ScenesDataset, blur_boxes, class_set, load_scenes, scale_sigma  # noqa: E402
from course_lib.models.efficientnet_lite import get_efficientnet_lite0  # noqa: E402
from course_lib.models.fusion import ImageNetStream, NetStream, SmallResNet  # noqa: E402
from course_lib.train import Engine, make_optimizer  # noqa: E402
from course_lib.zoo import build  # noqa: E402

SIZE = 64


def small_stream(args, device) -> NetStream:
    if args.stream_epochs is None:
        return NetStream(build("scenes_object_net", "quick", device=str(device), progress=False).model)
    torch.manual_seed(0)
    net = SmallResNet(len(CLASSES))
    train = ScenesDataset(load_scenes(args.train_size, 0, 0.0, None, SIZE))
    Engine(net, make_optimizer("Adam", net.parameters(), 4e-3), device=device, progress=False,
           monitor=None).fit(train, args.stream_epochs)
    return NetStream(net.eval())


@torch.no_grad()
def features(stream, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([stream(chunk) for chunk in x.split(256)]).cpu()


def measure(name: str, stream, train: dict, test: dict, device) -> dict:
    stream = stream.to(device).eval()
    head = LogisticRegression(max_iter=2000).fit(features(stream, train["x"].to(device)).numpy(),
                                                 train["y"].numpy())
    row = {"object stream": name, "dim": stream.dim}
    for sigma in (0, 10, 20):
        x = blur_boxes(test["x"], test["boxes"], scale_sigma(sigma, SIZE)).to(device)
        row[f"fg acc sigma {sigma} (%)"] = 100 * head.score(features(stream, x).numpy(), test["y"].numpy())
    x = test["x"][:32].to(device)
    row["forward ms/img"] = 1000 * median_seconds(lambda: features(stream, x), device, 3) / len(x)

    def step():
        xg = x.clone().requires_grad_(True)
        stream(xg).sum().backward()

    row["forward+backward ms/img"] = 1000 * median_seconds(step, device, 3) / len(x)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-size", type=int, default=600)
    parser.add_argument("--test-size", type=int, default=300)
    parser.add_argument("--stream-epochs", type=int, default=None,
                        help="train a fresh SmallResNet for this many epochs instead of the zoo's")
    args = parser.parse_args()
    device = get_device(args.device)
    classes = class_set("dissimilar")
    train, test = (ScenesDataset(load_scenes(n, seed, 0.9, classes, SIZE), classes).tensors()
                   for n, seed in ((args.train_size, 100), (args.test_size, 101)))
    imagenet = get_efficientnet_lite0(pretrained=True, num_classes=1000)
    rows = [measure("SmallResNet (scenes_object_net)" if args.stream_epochs is None
                    else f"SmallResNet ({args.stream_epochs} epochs here)", small_stream(args, device), train, test,
                    device),
            measure("EfficientNet-Lite0, ImageNet", ImageNetStream(imagenet, imagenet.num_features), train, test,
                    device)]
    report("fusion_streams", rows, notes=[f"Dissimilar set ({', '.join(classes)}), {SIZE} px, "
                                          f"{args.train_size} training and {args.test_size} test images on "
                                          f"{device.type}; sigma in pixels at 224 px"])


if __name__ == "__main__":
    main()
