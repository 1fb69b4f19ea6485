"""A small, synthetic, offline image-classification data set for demos and tests (DEMO ONLY).

It stands in for CIFAR-10 where no data can be downloaded: 3x32x32 images in 10 classes, generated
from a seed in well under a second. Every class is a few smooth colour patterns ("modes"); an image
is one mode of its class, shifted by a few pixels, rescaled in contrast, mixed with a fainter pattern
of another class and covered in noise. Convolutions with some spatial extent separate the classes
much better than a linear model, so architectures differ in accuracy after a few epochs, which is
all a demo of the search loop needs. Accuracies on it say nothing about CIFAR or any real task.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

DEMO_NUM_CLASSES = 10


def _smooth_patterns(rng: np.random.Generator, n: int, size: int, low: int) -> np.ndarray:
    """``n`` smooth 3-channel patterns: random ``low x low`` grids upsampled to ``size x size``."""
    coarse = torch.from_numpy(rng.standard_normal((n, 3, low, low)).astype(np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    fine = fine / fine.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    return fine.numpy()


def make_demo_images(
    n: int,
    *,
    seed: int = 0,
    num_classes: int = DEMO_NUM_CLASSES,
    image_size: int = 32,
    modes_per_class: int = 3,
    noise: float = 0.9,
    max_shift: int = 16,
    pattern_seed: int = 1234,
    color_shift: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` demo images and labels.

    Args:
        n: number of images.
        seed: seeds the draw of images (labels, modes, shifts, noise).
        num_classes: number of classes (>= 2).
        image_size: height and width.
        modes_per_class: distinct patterns per class.
        noise: standard deviation of the pixel noise (patterns have unit standard deviation).
        max_shift: images are shifted (cyclically) by up to this many pixels in each direction.
        pattern_seed: seeds the class patterns; keep it fixed so train and validation sets share classes.
        color_shift: standard deviation of the per-class colour cast (a weak shortcut that makes the
            first epochs informative even for tiny networks).

    Returns:
        ``(images [n, 3, size, size] float32, labels [n] int64)``, roughly zero mean and unit variance.
    """
    if n < 1 or num_classes < 2 or image_size < 8 or modes_per_class < 1:
        raise ValueError(
            f"need n >= 1, num_classes >= 2, image_size >= 8, modes_per_class >= 1; got n={n}, "
            f"num_classes={num_classes}, image_size={image_size}, modes_per_class={modes_per_class}"
        )
    pattern_rng = np.random.default_rng(pattern_seed)
    patterns = _smooth_patterns(pattern_rng, num_classes * modes_per_class, image_size, 8)
    # A weak per-class colour cast: even a pooled linear model gets above chance, convolutions go further.
    colours = color_shift * pattern_rng.standard_normal((num_classes, 3, 1, 1)).astype(np.float32)
    rng = np.random.default_rng(seed)
    labels = rng.integers(num_classes, size=n)
    modes = labels * modes_per_class + rng.integers(modes_per_class, size=n)
    distractor = (labels + rng.integers(1, num_classes, size=n)) % num_classes
    distractor_modes = distractor * modes_per_class + rng.integers(modes_per_class, size=n)
    contrast = rng.uniform(0.6, 1.4, size=(n, 1, 1, 1)).astype(np.float32)
    images = contrast * patterns[modes] + colours[labels] + 0.5 * patterns[distractor_modes]
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    for i, (dy, dx) in enumerate(shifts):
        images[i] = np.roll(images[i], (int(dy), int(dx)), axis=(1, 2))
    images += noise * rng.standard_normal(images.shape).astype(np.float32)
    images /= images.std()
    return torch.from_numpy(images.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def demo_datasets(
    n_train: int = 2000, n_val: int = 500, *, seed: int = 0, num_classes: int = DEMO_NUM_CLASSES, image_size: int = 32
) -> tuple[TensorDataset, TensorDataset]:
    """Train and validation ``TensorDataset``\\ s of the synthetic DEMO data (see the module docstring).

    Both share the class patterns; the images are independent draws (seeds ``seed`` and ``seed + 1``).
    """
    x_train, y_train = make_demo_images(n_train, seed=2 * seed, num_classes=num_classes, image_size=image_size)
    x_val, y_val = make_demo_images(n_val, seed=2 * seed + 1, num_classes=num_classes, image_size=image_size)
    return TensorDataset(x_train, y_train), TensorDataset(x_val, y_val)
