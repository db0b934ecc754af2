"""Photometric and flip augmentation of crops as the official LoRAT code does it, on (3, H, W) float tensors
in [0, 1]. DeiT III's operations run in Pillow on the crop converted to 8 bits, as in the official code, so
the same random draws give the same pixels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import ImageFilter, ImageOps

from vot_lorat.options import option


@dataclass(frozen=True)
class AugmentConfig:
    """The official code's augmentation: flip, colour jitter in random op order, DeiT III's one-of-three."""

    flip_prob: float = option(0.5, "horizontal flip probability, drawn independently for template and search")
    brightness: float = option(0.4, "colour jitter: brightness factor from U[1-x, 1+x]")
    contrast: float = option(0.4, "colour jitter: contrast factor from U[1-x, 1+x]")
    saturation: float = option(0.4, "colour jitter: saturation factor from U[1-x, 1+x]")
    deit3: bool = option(True, "always one of grayscale / solarize / blur, the same for both crops (DeiT III)")
    blur_radius: Tuple[float, float] = option((0.1, 2.0), "DeiT III Gaussian blur radius range", metavar="R")


def hflip(image: torch.Tensor, box: np.ndarray) -> Tuple[torch.Tensor, np.ndarray]:
    """Mirror a crop and its xyxy box: ``x1' = W - x2``, ``x2' = W - x1``."""
    w = image.shape[-1]
    return image.flip(-1), np.array([w - box[2], box[1], w - box[0], box[3]])


def color_jitter(rng: np.random.Generator, image: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    ops = [(TF.adjust_brightness, cfg.brightness), (TF.adjust_contrast, cfg.contrast),
           (TF.adjust_saturation, cfg.saturation)]
    for i in rng.permutation(len(ops)):
        op, strength = ops[i]
        if strength > 0:
            image = op(image, float(rng.uniform(max(0.0, 1 - strength), 1 + strength)))
    return image


DEIT3_OPS = ("grayscale", "solarize", "blur")


def deit3_choice(rng: np.random.Generator, cfg: AugmentConfig) -> Tuple[str, float]:
    """Which of grayscale / solarize / blur to apply, shared by template and search, and the blur radius (0 for
    the others). The draws are the official code's: the operation's index, then a radius for blur only."""
    kind = DEIT3_OPS[int(rng.choice(len(DEIT3_OPS)))]
    return kind, float(rng.uniform(*cfg.blur_radius)) if kind == "blur" else 0.0


def apply_deit3(image: torch.Tensor, kind: str, radius: float) -> torch.Tensor:
    """One DeiT III operation as the official code applies it: the crop is converted to 8 bits by truncation
    (torchvision's ``to_pil_image``), changed by Pillow (grayscale with its integer luma, solarize at 128, its
    box-blur approximation of a Gaussian of sigma ``radius``), and converted back to [0, 1]."""
    picture = TF.to_pil_image(image)
    if kind == "grayscale":
        picture = picture.convert("L").convert("RGB")
    elif kind == "solarize":
        picture = ImageOps.solarize(picture, threshold=128)
    elif kind == "blur":
        picture = picture.filter(ImageFilter.GaussianBlur(radius))
    else:
        raise ValueError(f"DeiT III operation must be one of {', '.join(DEIT3_OPS)}, got {kind!r}")
    return TF.pil_to_tensor(picture).float() / 255
