"""The course's face datasets: real vs face-swapped or GAN-made faces.

Layout of one dataset (the course's, and the stand-in's)::

    <dataset>/{train,val,test}/{real,fake}/*.png     256x256 RGB

``FacesDataset`` reads one split. Real images come first with label 0, then
fake images with label 1.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms

DATASETS = ("fakes_dataset", "synthetic_dataset")
SPLITS = ("train", "val", "test")
CLASSES = ("real", "fake")  # index = label
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

# The course's normalisation constants (per-channel mean and std).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)



def denormalize(image):
    """Undo the course's normalisation: (3, H, W) tensor -> (H, W, 3) float32 array in [0, 1]."""
    mean = torch.tensor(MEAN, device=image.device)[:, None, None]
    std = torch.tensor(STD, device=image.device)[:, None, None]
    return (image.detach() * std + mean).clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float32)


TRANSFORM_TRAIN = transforms.Compose([
    transforms.RandomCrop(256, padding=4),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize(MEAN, STD),
])
TRANSFORM_TEST = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize(MEAN, STD),
])

DECODED_CACHE_BYTES = 256 * 2**20  # per dataset: 1,300 images of 256x256 RGB

_LAYOUT = "expected layout: <split>/real/*.png and <split>/fake/*.png (256x256 RGB images)"


class FacesDataset(Dataset):
    """One split of a face dataset: ``root_path/real/*`` then ``root_path/fake/*``.

    Args:
        root_path: a split folder, e.g. ``.../fakes_dataset/train``.
        transform: applied to each PIL image (e.g. ``TRANSFORM_TRAIN``).
        image_size: expected (width, height), or None to accept any size.

    ``dataset[i]`` is ``(image, label)``: the transformed image (a PIL RGB
    image when ``transform`` is None) and 0 for real, 1 for fake.

    Decoded images are kept in memory up to ``DECODED_CACHE_BYTES`` per dataset
    (the quick profile's splits fit whole), so later epochs skip the PNG decode,
    ~2 ms of the ~3 ms an image costs. Random transforms still run every time.
    """

    def __init__(self, root_path, transform=None, image_size: tuple[int, int] | None = (256, 256)):
        self.root_path = Path(root_path)
        self.transform = transform
        self.image_size = image_size
        if not self.root_path.is_dir():
            raise FileNotFoundError(f"dataset folder {self.root_path} does not exist; {_LAYOUT}")
        self.real_image_names = self._list_images("real")
        self.fake_image_names = self._list_images("fake")
        self._decoded: dict[int, Image.Image] = {}
        self._decoded_bytes = 0

    def _list_images(self, label: str) -> list[str]:
        folder = self.root_path / label
        if not folder.is_dir():
            raise FileNotFoundError(f"missing class folder {folder}; {_LAYOUT}")
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            raise FileNotFoundError(
                f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); {_LAYOUT}")
        return names

    @property
    def real_len(self) -> int:
        """Number of real images (indices ``0 .. real_len - 1``); the course project's name."""
        return len(self.real_image_names)

    @property
    def fake_len(self) -> int:
        """Number of fake images (indices ``real_len .. len - 1``); the course project's name."""
        return len(self.fake_image_names)

    def __len__(self) -> int:
        return self.real_len + self.fake_len

    def path_and_label(self, index: int) -> tuple[Path, int]:
        """Where image ``index`` lives and its label (0 real, 1 fake)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        index %= len(self)
        if index < self.real_len:
            return self.root_path / "real" / self.real_image_names[index], 0
        return self.root_path / "fake" / self.fake_image_names[index - self.real_len], 1

    def __getitem__(self, index: int):
        path, label = self.path_and_label(index)  # checks the range
        key = index % len(self)  # -1 and len - 1 are one image
        image = self._decoded.get(key)
        if image is None:
            image = self._read(path)
            size = image.width * image.height * len(image.getbands())
            if self._decoded_bytes + size <= DECODED_CACHE_BYTES:
                self._decoded[key] = image
                self._decoded_bytes += size
        if self.transform is not None:
            return self.transform(image), label
        return image.copy(), label  # a copy: the caller may draw on it

    def _read(self, path: Path) -> Image.Image:
        """Decode and check one image file."""
        try:
            with Image.open(path) as im:
                im.load()
                image = im
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read image {path}: {err}. Replace or delete the file.") from err
        if image.mode != "RGB":
            raise ValueError(
                f"image {path} has mode {image.mode!r}, expected 'RGB'; convert it with "
                f"PIL.Image.open(p).convert('RGB').save(p)")
        if self.image_size is not None and image.size != tuple(self.image_size):
            raise ValueError(
                f"image {path} is {image.size[0]}x{image.size[1]}, expected "
                f"{self.image_size[0]}x{self.image_size[1]}; resize it, or pass image_size=None")
        return image

    def labels(self) -> list[int]:
        """All labels in dataset order, without reading any image."""
        return [0] * self.real_len + [1] * self.fake_len


def check_name(kind: str, name: str, valid) -> None:
    """Raise a ValueError listing the valid choices when ``name`` is not one."""
    if name not in valid:
        raise ValueError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(valid)}")


def crop_transforms(crop_size: int) -> tuple[transforms.Compose, transforms.Compose]:
    """(train, test) transforms that cut ``crop_size`` squares out of the 256x256 faces.

    Train: a random crop and a flip; test: the centre crop. Cropping (unlike
    resizing) keeps pixel-level traces such as a GAN's upsampling pattern.
    """
    if not 1 <= crop_size <= 256:
        raise ValueError(f"crop_size must be in [1, 256] pixels, got {crop_size}")
    train = transforms.Compose([transforms.RandomCrop(crop_size), transforms.RandomHorizontalFlip(),
                                transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    test = transforms.Compose([transforms.CenterCrop(crop_size), transforms.ToTensor(),
                               transforms.Normalize(MEAN, STD)])
    return train, test


def load_dataset(faces_root, dataset_name: str, dataset_part: str,
                 crop_size: int | None = None) -> FacesDataset:
    """One split with the course's transform (random crop and flip for ``train``).

    Args:
        faces_root: folder holding ``fakes_dataset/`` and ``synthetic_dataset/``
            (see ``faces_root()``).
        dataset_name: "fakes_dataset" or "synthetic_dataset".
        dataset_part: "train", "val" or "test".
        crop_size: None for the whole 256x256 image; else squares of this
            side (see ``crop_transforms``).
    """
    check_name("dataset", dataset_name, DATASETS)
    check_name("split", dataset_part, SPLITS)
    train, test = (TRANSFORM_TRAIN, TRANSFORM_TEST) if crop_size is None else crop_transforms(crop_size)
    transform = train if dataset_part == "train" else test
    return FacesDataset(Path(faces_root) / dataset_name / dataset_part, transform=transform)


COURSE_FOLDER_NAME = "Assignment4_datasets"


def faces_root(profile: str = "quick", data_home=None, seed: int = 0, progress: bool | None = None) -> Path:
    """The folder holding both face datasets for a profile.

    ``quick`` draws the offline stand-in (cached under DATA_HOME).
    ``full`` reads the course's dataset from ``DATA_HOME/Assignment4_datasets``
    and raises a FileNotFoundError saying how to get it when it is missing.
    """
    from ..config import data_home as resolve_home, get_profile
    from .synth_faces import generate_faces_dataset

    prof = get_profile(profile)
    home = resolve_home(data_home)
    if prof.faces_source == "stand-in":
        return generate_faces_dataset(home / "faces_standin", prof.faces_sizes, seed=seed, progress=progress)
    root = home / COURSE_FOLDER_NAME
    missing = [str(root / d) for d in DATASETS if not (root / d).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"the full profile reads the course's face datasets, but {', '.join(missing)} "
            f"is missing. Copy the course's {COURSE_FOLDER_NAME} folder (with fakes_dataset/ and "
            f"synthetic_dataset/, each {{train,val,test}}/{{real,fake}}/*.png) to {root}, or run "
            f"the quick profile, which draws an offline stand-in.")
    return root


def faces_splits(dataset_name: str):
    """Zoo data source for one face dataset: ``(profile, settings, data_home, seed) -> Splits``.

    ``settings["crop"]`` (None or a side in pixels) picks the transforms, as ``load_dataset``.
    """
    def source(profile, settings: dict, data_home=None, seed: int = 0):
        from .splits import Splits

        root = faces_root(profile.name, data_home, seed=seed)
        parts = [load_dataset(root, dataset_name, part, crop_size=settings.get("crop")) for part in SPLITS]
        return Splits(*parts, source=f"{dataset_name} from {root}",
                      identity={"faces": str(Path(root).resolve()), "dataset": dataset_name,
                                "sizes": [len(p) for p in parts]})
    source.__qualname__ = f"faces_splits({dataset_name!r})"
    return source
