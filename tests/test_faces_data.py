"""FacesDataset, the course transforms and the offline stand-in generator."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.config import FacesSizes
from course_lib.data import (TRANSFORM_TEST, TRANSFORM_TRAIN, FacesDataset, faces_root,
                             generate_faces_dataset, load_dataset)
from course_lib.data.synth_faces import class_counts, generate_image

from .conftest import write_images


def test_real_images_come_first_with_label_0(small_split):
    ds = FacesDataset(small_split)
    assert len(ds) == 5
    assert (ds.real_len, ds.fake_len) == (3, 2)  # the course project's names
    assert [ds[i][1] for i in range(5)] == [0, 0, 0, 1, 1]
    assert ds.labels() == [0, 0, 0, 1, 1]
    assert np.asarray(ds[0][0]).mean() == 20 and np.asarray(ds[4][0]).mean() == 230
    assert ds[-1][1] == 1


def test_transform_is_applied(small_split):
    ds = FacesDataset(small_split, transform=TRANSFORM_TEST)
    image, label = ds[0]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 256, 256) and label == 0
    train_image, _ = FacesDataset(small_split, transform=TRANSFORM_TRAIN)[3]
    assert train_image.shape == (3, 256, 256)


def test_decoded_images_are_kept_and_handed_out_as_copies(small_split, monkeypatch):
    from course_lib.data import faces

    crops = FacesDataset(small_split, transform=TRANSFORM_TRAIN)
    assert len({tuple(crops[3][0][:, :6, :6].flatten().tolist()) for _ in range(12)}) > 1  # still random
    dataset = FacesDataset(small_split)
    first = dataset[0][0]
    first.paste((255, 0, 0), (0, 0, 10, 10))  # the caller draws on its image
    assert dataset[0][0].getpixel((0, 0)) == (20, 20, 20)
    monkeypatch.setattr(faces, "DECODED_CACHE_BYTES", 0)
    uncached = FacesDataset(small_split)
    uncached[0]
    monkeypatch.setattr(faces.Image, "open", lambda path: pytest.fail(f"decoded {path} again"))
    assert dataset[0][0].getpixel((5, 5)) == (20, 20, 20)  # from memory: no second decode
    with pytest.raises(pytest.fail.Exception, match="decoded .*real"):
        uncached[0]  # with no budget every read decodes


def test_index_out_of_range(small_split):
    with pytest.raises(IndexError, match="out of range"):
        FacesDataset(small_split)[5]


def test_missing_root_names_the_path_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*expected layout"):
        FacesDataset(tmp_path / "nowhere")


@pytest.mark.parametrize("missing", ["real", "fake"])
def test_missing_class_folder(tmp_path, missing):
    present = "fake" if missing == "real" else "real"
    write_images(tmp_path / present, 1, 0)
    with pytest.raises(FileNotFoundError, match=f"missing class folder .*{missing}.*expected layout"):
        FacesDataset(tmp_path)


def test_empty_class_folder(tmp_path):
    write_images(tmp_path / "real", 2, 0)
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match="holds no images"):
        FacesDataset(tmp_path)


def test_unreadable_image_names_the_file(small_split):
    (small_split / "fake" / "001.png").write_bytes(b"this is not a png")
    ds = FacesDataset(small_split)
    with pytest.raises(ValueError, match=r"cannot read image .*001\.png"):
        ds[4]


def test_wrong_mode_and_size_give_clear_errors(tmp_path):
    write_images(tmp_path / "real", 1, 10, mode="L")
    write_images(tmp_path / "fake", 1, 10, size=(128, 128))
    ds = FacesDataset(tmp_path)
    with pytest.raises(ValueError, match="mode 'L', expected 'RGB'.*convert"):
        ds[0]
    with pytest.raises(ValueError, match="128x128, expected 256x256"):
        ds[1]
    assert FacesDataset(tmp_path, image_size=None)[1][0].size == (128, 128)


def test_load_dataset_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'faces'.*fakes_dataset, synthetic_dataset"):
        load_dataset(tmp_path, "faces", "train")
    with pytest.raises(ValueError, match="unknown split 'training'.*train, val, test"):
        load_dataset(tmp_path, "fakes_dataset", "training")


def test_full_profile_without_course_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="Assignment4_datasets.*quick profile"):
        faces_root("full", tmp_path)


# -- the stand-in generator ----------------------------------------------------------------

TINY = FacesSizes(train=6, val=3, test=6)


def test_generated_layout_counts_and_proportions(tmp_path):
    root = generate_faces_dataset(tmp_path, TINY, seed=3, progress=False, workers=1)
    for dataset in ("fakes_dataset", "synthetic_dataset"):
        for split in ("train", "val", "test"):
            ds = FacesDataset(root / dataset / split, transform=TRANSFORM_TEST)
            counts = class_counts(TINY, dataset, split)
            assert ds.labels() == [0] * counts["real"] + [1] * counts["fake"]
            assert ds[0][0].shape == (3, 256, 256)
    assert class_counts(TINY, "fakes_dataset", "test") == {"real": 4, "fake": 2}  # 2 real per fake
    assert class_counts(TINY, "synthetic_dataset", "test") == {"real": 3, "fake": 3}
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_generation_is_deterministic_and_cached(tmp_path):
    a = generate_image(7, "fakes_dataset", "train", "fake", 2)
    assert a.shape == (256, 256, 3) and a.dtype == np.uint8
    assert np.array_equal(a, generate_image(7, "fakes_dataset", "train", "fake", 2))
    assert not np.array_equal(a, generate_image(8, "fakes_dataset", "train", "fake", 2))
    root = generate_faces_dataset(tmp_path, TINY, seed=1, progress=False, workers=2)
    image = root / "synthetic_dataset" / "val" / "fake" / "00000.png"
    assert np.array_equal(np.asarray(Image.open(image)), generate_image(1, "synthetic_dataset", "val", "fake", 0))
    stamp = image.stat().st_mtime_ns
    assert generate_faces_dataset(tmp_path, TINY, seed=1, progress=False) == root
    assert image.stat().st_mtime_ns == stamp  # served from the cache, not redrawn


def _nyquist_peak(image: np.ndarray) -> float:
    grey = image.mean(axis=2) - image.mean()
    spec = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(grey))))
    c = spec.shape[0] // 2
    return float((spec[0, c] + spec[c, 0]) / 2 - np.concatenate([spec[2:20, c], spec[c, 2:20]]).mean())


def test_gan_like_fakes_carry_the_upsampling_fingerprint():
    real = [_nyquist_peak(generate_image(0, "synthetic_dataset", "test", "real", i)) for i in range(8)]
    fake = [_nyquist_peak(generate_image(0, "synthetic_dataset", "test", "fake", i)) for i in range(8)]
    assert min(fake) > max(real)



def test_crop_transforms_cut_squares_without_resizing(small_split):
    from course_lib.data import crop_transforms, load_dataset

    train, test = crop_transforms(64)
    dataset = FacesDataset(small_split, transform=test)
    image, _ = dataset[0]
    assert image.shape == (3, 64, 64)
    full = FacesDataset(small_split, transform=crop_transforms(256)[1])[0][0]
    torch.testing.assert_close(image, full[:, 96:160, 96:160])  # the centre, pixel for pixel
    assert FacesDataset(small_split, transform=train)[0][0].shape == (3, 64, 64)
    with pytest.raises(ValueError, match=r"crop_size must be in \[1, 256\]"):
        crop_transforms(0)
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset(small_split, "fakes_dataset", "dev", crop_size=64)


def test_face_swap_mask_belongs_to_its_image():
    """The stand-in's swap mask is replayed from the image's own random stream."""
    from course_lib.data.faces import CLASSES, DATASETS, SPLITS
    from course_lib.data.synth_faces import _face_swap, face_swap_mask

    mask = face_swap_mask(0, "test", 3)
    image = generate_image(0, "fakes_dataset", "test", "fake", 3)
    # drawn together from the image's coordinates, the fake and its mask are these two
    stream = np.random.default_rng([0, DATASETS.index("fakes_dataset"), SPLITS.index("test"),
                                    CLASSES.index("fake"), 3])
    drawn_image, drawn_mask = _face_swap(stream, 256)
    assert np.array_equal(drawn_image, image) and np.array_equal(drawn_mask, mask)
    assert mask.shape == image.shape[:2] and 0.02 < (mask > 0.5).mean() < 0.5
    # the darker seam line runs where the mask is between 0 and 1
    grey = image.astype(float).mean(axis=2)
    edge, inside = (mask > 0.2) & (mask < 0.8), mask > 0.99
    assert grey[edge].mean() < grey[inside].mean()
    assert not np.array_equal(mask, face_swap_mask(0, "test", 4))
