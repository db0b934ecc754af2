"""Photometric and flip augmentation of crops as the official LoRAT code does it, on (3, H, W) float tensors
in [0, 1]."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

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


def deit3_choice(rng: np.random.Generator, cfg: AugmentConfig) -> Tuple[str, float]:
    """Which of grayscale / solarize / blur to apply (and the blur radius), shared by template and search."""
    kind = ("grayscale", "solarize", "blur")[int(rng.integers(3))]
    return kind, float(rng.uniform(*cfg.blur_radius))


def apply_deit3(image: torch.Tensor, kind: str, radius: float) -> torch.Tensor:
    if kind == "grayscale":
        return TF.rgb_to_grayscale(image, num_output_channels=3)
    if kind == "solarize":
        return TF.solarize(image, threshold=0.5)  # PIL threshold 128 of 255
    kernel = 2 * int(np.ceil(3 * radius)) + 1  # PIL's radius is the Gaussian sigma
    return TF.gaussian_blur(image, [kernel, kernel], [radius, radius])
