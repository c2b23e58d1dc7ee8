"""Offline stand-in for the course's face datasets.

The course trains detectors on ``fakes_dataset`` (face swaps) and
``synthetic_dataset`` (GAN-made faces). Those folders cannot be downloaded
here, so this module *draws* a stand-in with the same layout::

    ROOT/{fakes_dataset,synthetic_dataset}/{train,val,test}/{real,fake}/NNNNN.png

Every image is 256x256 RGB and depends only on (seed, dataset, split, class,
index), so the result is the same on every machine and any image can be
re-made alone.

How the images are made (the notebook and the book say the same):

* **real**: a cartoon face with a random identity (face shape, skin tone,
  eyes, brows, nose, mouth, hair, ears), pose (position, scale, roll, yaw),
  background and lighting, then a camera model (slight blur, sensor noise).
* **fakes_dataset / fake** (face swap): a real image of identity A whose inner
  face (eyes, brows, nose, mouth) is replaced by that of identity B, rendered
  at lower resolution, slightly misaligned, with only partial colour
  correction and a narrow blend, so a seam and a colour step remain.
* **synthetic_dataset / fake** (GAN-like): a face drawn at half resolution and
  upsampled by zero insertion and a fixed, slightly unbalanced kernel, as a
  transposed convolution does. This leaves a faint period-2 pattern (a peak at
  the Nyquist frequency of the spectrum) and no seam.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..config import FacesSizes, data_home, show_progress
from .faces import CLASSES, DATASETS, SPLITS

# Bump when the drawing code changes: it is part of the cache key.
GENERATOR_VERSION = 3
IMAGE_SIZE = 256

_SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 158], [224, 172, 125], [198, 134, 90],
     [160, 105, 70], [120, 78, 52], [90, 58, 40], [250, 210, 180]], dtype=float)
_HAIR_COLOURS = np.array(
    [[20, 16, 14], [60, 40, 25], [110, 72, 40], [170, 130, 80], [225, 200, 140],
     [140, 60, 30], [150, 150, 150], [235, 235, 230]], dtype=float)
_EYE_COLOURS = np.array(
    [[60, 40, 25], [90, 60, 30], [60, 100, 150], [70, 120, 80], [40, 40, 40]], dtype=float)


def _identity(rng: np.random.Generator) -> dict:
    """Random person: what stays the same across photos of one face."""
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.normal(0, 8, 3)
    return {
        "face_w": rng.uniform(0.26, 0.36),  # half-width, fraction of the image
        "face_h": rng.uniform(0.34, 0.44),
        "skin": np.clip(skin, 0, 255),
        "hair": _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))],
        "hair_style": int(rng.integers(3)),  # 0 short, 1 long, 2 bald-ish
        "eye": _EYE_COLOURS[rng.integers(len(_EYE_COLOURS))],
        "eye_dx": rng.uniform(0.32, 0.45),  # fractions of face_w
        "eye_y": rng.uniform(-0.22, -0.08),  # fractions of face_h
        "eye_r": rng.uniform(0.10, 0.16),
        "brow_t": rng.uniform(0.02, 0.05),
        "nose_len": rng.uniform(0.18, 0.32),
        "mouth_w": rng.uniform(0.25, 0.45),
        "mouth_y": rng.uniform(0.38, 0.52),
        "smile": rng.uniform(-0.3, 1.0),
        "lips": np.clip(np.array([190, 90, 90]) + rng.normal(0, 20, 3), 0, 255),
        "clothes": rng.uniform(30, 230, 3),
    }


def _pose(rng: np.random.Generator) -> dict:
    """Random photo: where the face sits, how it is lit, what is behind it."""
    return {
        "cx": rng.uniform(0.42, 0.58),
        "cy": rng.uniform(0.44, 0.56),
        "scale": rng.uniform(0.85, 1.1),
        "roll": rng.uniform(-15, 15),  # degrees
        "yaw": rng.uniform(-0.25, 0.25),  # shifts features sideways
        "bg1": rng.uniform(0, 255, 3),
        "bg2": rng.uniform(0, 255, 3),
        "bg_angle": rng.uniform(0, 2 * np.pi),
        "light_angle": rng.uniform(0, 2 * np.pi),
        "light": rng.uniform(0.0, 0.35),
        "exposure": rng.uniform(0.85, 1.15),
    }


def _background(pose: dict, size: int) -> np.ndarray:
    t = np.linspace(-1, 1, size)
    xx, yy = np.meshgrid(t, t)
    g = np.clip((xx * np.cos(pose["bg_angle"]) + yy * np.sin(pose["bg_angle"])) * 0.5 + 0.5, 0, 1)
    return pose["bg1"] * (1 - g[..., None]) + pose["bg2"] * g[..., None]


def _draw_face(ident: dict, pose: dict, size: int, inner_only: bool = False) -> Image.Image:
    """Draw the face on a transparent RGBA layer of ``size`` x ``size`` pixels."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    s = size * pose["scale"]
    cx, cy = pose["cx"] * size, pose["cy"] * size
    fw, fh = ident["face_w"] * s, ident["face_h"] * s
    yaw = pose["yaw"] * fw

    def rgb(c, k=1.0):
        return tuple(int(v) for v in np.clip(np.asarray(c) * k, 0, 255)) + (255,)

    skin, hair = ident["skin"], ident["hair"]
    if not inner_only:
        if ident["hair_style"] == 1:  # long hair behind the head
            d.ellipse([cx - fw * 1.25, cy - fh * 1.15, cx + fw * 1.25, cy + fh * 1.3], fill=rgb(hair))
        d.ellipse([cx - fw * 1.6, cy + fh * 0.95, cx + fw * 1.6, cy + fh * 2.2], fill=rgb(ident["clothes"]))
        d.rectangle([cx - fw * 0.4, cy + fh * 0.5, cx + fw * 0.4, cy + fh * 1.1], fill=rgb(skin, 0.85))
        for side in (-1, 1):  # ears
            ex = cx + side * fw * 0.98 + yaw * 0.3
            d.ellipse([ex - fw * 0.14, cy - fh * 0.15, ex + fw * 0.14, cy + fh * 0.2], fill=rgb(skin, 0.92))
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=rgb(skin))
    # eyes and brows
    ey = cy + ident["eye_y"] * fh
    er = ident["eye_r"] * fw
    for side in (-1, 1):
        ex = cx + side * ident["eye_dx"] * fw + yaw
        d.ellipse([ex - er * 1.5, ey - er, ex + er * 1.5, ey + er], fill=(245, 245, 240, 255))
        d.ellipse([ex - er * 0.8 + yaw * 0.1, ey - er * 0.8, ex + er * 0.8 + yaw * 0.1, ey + er * 0.8],
                  fill=rgb(ident["eye"]))
        d.ellipse([ex - er * 0.35, ey - er * 0.35, ex + er * 0.35, ey + er * 0.35], fill=(10, 10, 10, 255))
        by = ey - er * 2.0
        d.line([ex - er * 1.7, by + er * 0.3, ex, by - er * 0.2, ex + er * 1.7, by + er * 0.3],
               fill=rgb(hair, 0.9), width=max(2, int(ident["brow_t"] * s)))
    # nose
    ny = cy + ident["eye_y"] * fh + er
    nl = ident["nose_len"] * fh
    d.polygon([(cx + yaw * 1.2, ny), (cx - fw * 0.12 + yaw * 1.3, ny + nl),
               (cx + fw * 0.12 + yaw * 1.3, ny + nl)], fill=rgb(skin, 0.82))
    # mouth: a chord whose bulge depends on the smile
    my = cy + ident["mouth_y"] * fh
    mw = ident["mouth_w"] * fw
    mh = fh * 0.06 * (1 + abs(ident["smile"]))
    box = [cx - mw + yaw, my - mh, cx + mw + yaw, my + mh]
    start, end = (0, 180) if ident["smile"] >= 0 else (180, 360)
    d.chord(box, start, end, fill=rgb(ident["lips"]))
    if not inner_only and ident["hair_style"] != 2:  # hair on top
        d.chord([cx - fw * 1.05, cy - fh * 1.12, cx + fw * 1.05, cy + fh * 0.2], 180, 360, fill=rgb(hair))
    return layer.rotate(pose["roll"], resample=Image.BICUBIC, center=(cx, cy))


def _compose(ident: dict, pose: dict, size: int) -> np.ndarray:
    """Background + face + lighting, as float RGB in [0, 255] of shape (size, size, 3)."""
    bg = Image.fromarray(np.clip(_background(pose, size), 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    img = np.asarray(Image.alpha_composite(bg, _draw_face(ident, pose, size)).convert("RGB"), float)
    t = np.linspace(-1, 1, size)
    xx, yy = np.meshgrid(t, t)
    light = 1 + pose["light"] * (xx * np.cos(pose["light_angle"]) + yy * np.sin(pose["light_angle"]))
    return img * light[..., None] * pose["exposure"]


def _camera(img: np.ndarray, rng: np.random.Generator, blur: float) -> np.ndarray:
    """Lens blur and sensor noise, then 8-bit quantisation: (H, W, 3) uint8."""
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    pil = pil.filter(ImageFilter.GaussianBlur(blur))
    noisy = np.asarray(pil, float) + rng.normal(0, rng.uniform(1.5, 4.0), (img.shape[0], img.shape[1], 1))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def make_real(rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A photo-like real face: (size, size, 3) uint8."""
    return _camera(_compose(_identity(rng), _pose(rng), size), rng, blur=rng.uniform(0.5, 1.0))


def make_face_swap(rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A face-swap fake: identity B's inner face planted into a photo of A."""
    return _face_swap(rng, size)[0]


def _face_swap(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the fake (size, size, 3) uint8, its blend mask (size, size) in [0, 1]: 1 = donor's face)."""
    target, donor = _identity(rng), _identity(rng)
    pose = _pose(rng)
    base = _compose(target, pose, size)
    # The donor face is aligned to the target's pose but not perfectly:
    # a few pixels of shift and a few percent of scale.
    donor_pose = dict(pose, cx=pose["cx"] + rng.uniform(-0.025, 0.025),
                      cy=pose["cy"] + rng.uniform(-0.025, 0.025),
                      scale=pose["scale"] * rng.uniform(0.94, 1.06))
    donor["face_w"], donor["face_h"] = target["face_w"], target["face_h"]
    # Swap pipelines synthesise the face at low resolution and upsample it.
    low = size // 4
    donor_low = _compose(donor, dict(donor_pose, light=pose["light"]), low)
    donor_img = np.asarray(Image.fromarray(np.clip(donor_low, 0, 255).astype(np.uint8)).resize(
        (size, size), Image.BILINEAR), float)
    # Partial colour correction: move the donor's skin part of the way to the target's.
    correction = rng.uniform(0.0, 0.25)
    donor_img = donor_img + correction * (target["skin"] - donor["skin"]) * pose["exposure"]
    # Mask of the inner face (brows to chin), narrow feather: the seam stays.
    s = size * pose["scale"]
    cx, cy = pose["cx"] * size, pose["cy"] * size
    mw, mh = target["face_w"] * s * 0.72, target["face_h"] * s * 0.72
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse([cx - mw, cy - mh * 0.75, cx + mw, cy + mh * 1.05], fill=255)
    mask = mask.rotate(pose["roll"], resample=Image.BILINEAR, center=(cx, cy))
    mask = np.asarray(mask.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2))), float)[..., None] / 255
    out = base * (1 - mask) + donor_img * mask
    # Blending often leaves a darker line along the mask's edge: draw one where
    # the mask is between 0 and 1 (4m(1-m) peaks at 1 on the edge, 0 elsewhere).
    seam = 4 * mask * (1 - mask)
    out = out * (1 - rng.uniform(0.1, 0.25) * seam)
    return _camera(out, rng, blur=rng.uniform(0.5, 1.0)), mask[..., 0]


# Zero-insertion upsampling followed by this 1-D kernel (applied along rows and
# columns) is what a stride-2 transposed convolution does. Its even and odd taps
# sum to 1.0 and 1.06, so odd pixels come out 6% brighter: a period-2 pattern.
_UPSAMPLE_KERNEL = np.array([0.53, 1.0, 0.53])


def _transposed_conv_upsample(img: np.ndarray) -> np.ndarray:
    h, w, c = img.shape
    up = np.zeros((h * 2, w * 2, c))
    up[::2, ::2] = img
    k = _UPSAMPLE_KERNEL
    for axis in (0, 1):
        padded = np.concatenate([np.take(up, [-1], axis), up, np.take(up, [0], axis)], axis)
        n = up.shape[axis]
        up = (k[0] * np.take(padded, range(0, n), axis) + k[1] * np.take(padded, range(1, n + 1), axis)
              + k[2] * np.take(padded, range(2, n + 2), axis))
    return up


def make_gan_like(rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A GAN-like fake: drawn at half resolution, upsampled as a generator does."""
    low = _compose(_identity(rng), _pose(rng), size // 2)
    low = np.asarray(Image.fromarray(np.clip(low, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.4)), float)
    up = _transposed_conv_upsample(low)
    # GAN outputs carry little sensor noise; keep a little so noise level alone is no cue.
    noisy = up + rng.normal(0, rng.uniform(1.0, 2.5), (size, size, 1))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


_MAKERS = {
    ("fakes_dataset", "real"): make_real,
    ("fakes_dataset", "fake"): make_face_swap,
    ("synthetic_dataset", "real"): make_real,
    ("synthetic_dataset", "fake"): make_gan_like,
}


def class_counts(sizes: FacesSizes, dataset: str, split: str) -> dict[str, int]:
    """Number of real and fake images of one split of one dataset."""
    total = getattr(sizes, split)
    ratio = sizes.fakes_real_per_fake if dataset == "fakes_dataset" else 1
    n_fake = max(1, round(total / (ratio + 1)))
    return {"real": total - n_fake, "fake": n_fake}


def generate_image(seed: int, dataset: str, split: str, label: str, index: int) -> np.ndarray:
    """One image of the stand-in, (256, 256, 3) uint8, fixed by its coordinates."""
    rng = np.random.default_rng(
        [seed, DATASETS.index(dataset), SPLITS.index(split), CLASSES.index(label), index])
    return _MAKERS[dataset, label](rng)


def face_swap_mask(seed: int, split: str, index: int) -> np.ndarray:
    """The blend mask of the stand-in's fake ``index`` of ``fakes_dataset/<split>``: (256, 256) in [0, 1].

    1 where the donor's inner face was pasted, 0 outside, the feathered seam in
    between; the image it belongs to is ``<split>/fake/{index:05d}.png`` of the
    stand-in drawn with ``seed``. Only the stand-in knows it (the course's
    photographs come without masks).
    """
    rng = np.random.default_rng(
        [seed, DATASETS.index("fakes_dataset"), SPLITS.index(split), CLASSES.index("fake"), index])
    return _face_swap(rng, IMAGE_SIZE)[1]


def _cache_key(seed: int, sizes: FacesSizes) -> str:
    blob = json.dumps({"v": GENERATOR_VERSION, "seed": seed, "sizes": asdict(sizes)}, sort_keys=True)
    return f"v{GENERATOR_VERSION}-seed{seed}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _write_image(job: tuple) -> None:
    seed, ds, sp, lab, i, folder = job
    Image.fromarray(generate_image(seed, ds, sp, lab, i)).save(folder / f"{i:05d}.png", compress_level=1)


def _pool(workers: int):
    """A process pool for drawing; fork where the platform has it (no re-import of torch)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def generate_faces_dataset(
    root: str | os.PathLike | None = None,
    sizes: FacesSizes | None = None,
    seed: int = 0,
    progress: bool | None = None,
    workers: int | None = None,
) -> Path:
    """Write the stand-in datasets and return the folder that holds both.

    Args:
        root: where to cache; ``None`` uses ``data_home()/faces_standin``.
        sizes: images per split (``get_profile("quick").faces_sizes`` by default).
        seed: fixes every image.
        progress: show a tqdm progress bar.
        workers: drawing processes (default: up to 4, one per core).

    Returns:
        ``ROOT/<key>``, holding ``fakes_dataset/`` and ``synthetic_dataset/``.
        The key encodes generator version, seed and sizes, so a second call
        with the same arguments returns at once. The folder appears only when
        complete (written under a temporary name, then renamed), so a killed
        run never leaves a half dataset behind.
    """
    from tqdm.auto import tqdm

    from ..config import get_profile

    sizes = sizes or get_profile("quick").faces_sizes
    base = Path(root) if root is not None else data_home() / "faces_standin"
    final = base / _cache_key(seed, sizes)
    if (final / "manifest.json").is_file():
        return final
    tmp = base / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    jobs = [(seed, ds, sp, lab, i, tmp / ds / sp / lab) for ds in DATASETS for sp in SPLITS
            for lab, n in class_counts(sizes, ds, sp).items() for i in range(n)]
    for folder in {job[-1] for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    workers = workers or min(4, os.cpu_count() or 1)
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), desc="drawing stand-in faces", disable=not show_progress(progress))
    if workers == 1:
        for job in jobs:
            _write_image(job)
            bar.update()
    else:
        with _pool(workers) as pool:
            for _ in pool.map(_write_image, jobs, chunksize=16):
                bar.update()
    bar.close()
    manifest = {"generator_version": GENERATOR_VERSION, "seed": seed, "sizes": asdict(sizes),
                "images": len(jobs), "seconds": round(time.perf_counter() - start, 2)}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    try:
        os.replace(tmp, final)
    except OSError:
        # Another process finished the same dataset first: keep theirs.
        if not (final / "manifest.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return final
