"""SiamFC cropping: crop parameters from a box, the pixel-aligned crop, and mapping boxes through it.

A crop is ``out = in * scale + translation`` per axis. The crop itself is pixel-aligned, as in the
official LoRAT code: the image rectangle is mapped into the crop, rasterised, mapped back and
rasterised again, and only that sub-rectangle is resized (bilinear, align_corners=False, no antialias);
the rest is the fill colour. The scale and translation that the rasterised rectangles really realise
are returned and used for every later box mapping, in training and at inference alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from . import box as bx

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropParams:
    """``crop = image * scale + translation``; each is (x, y)."""

    scale: np.ndarray
    translation: np.ndarray

    def apply(self, box) -> np.ndarray:
        """Image xyxy -> crop xyxy."""
        b = np.asarray(box, dtype=np.float64)
        return b * np.tile(self.scale, 2) + np.tile(self.translation, 2)

    def invert(self, box) -> np.ndarray:
        """Crop xyxy -> image xyxy."""
        b = np.asarray(box, dtype=np.float64)
        return (b - np.tile(self.translation, 2)) / np.tile(self.scale, 2)


def siamfc_params(box, area_factor: float, out_size: Tuple[int, int]) -> CropParams:
    """Centre the box in an ``out_size`` (w, h) crop whose area is the context-padded box area.

    ``w' = w + (f-1)(w+h)/2``, ``h' = h + (f-1)(w+h)/2``, ``s = sqrt(Wo*Ho / (w'h'))`` (SiamFC's rule).
    """
    w, h = bx.size(box)
    pad = (area_factor - 1) * (w + h) / 2
    s = np.sqrt(out_size[0] * out_size[1] / ((w + pad) * (h + pad)))
    c = bx.centre(box)
    out_centre = np.array([out_size[0] / 2, out_size[1] / 2], dtype=np.float64)
    return CropParams(np.array([s, s], dtype=np.float64), out_centre - c * s)


@dataclass(frozen=True)
class CropRegion:
    """Integer rectangles (x1, y1, x2, y2, end-exclusive) of the source pixels and where they land."""

    source: np.ndarray
    target: np.ndarray
    params: CropParams  # the realised parameters

    @property
    def empty(self) -> bool:
        return not (bx.is_valid(self.source) and bx.is_valid(self.target))


def crop_region(image_size: Tuple[int, int], params: CropParams, out_size: Tuple[int, int]) -> CropRegion:
    """Rasterise the crop: which image pixels are copied to which crop pixels, and the realised params."""
    w, h = image_size
    target = bx.rasterize(bx.clip(params.apply([0.0, 0.0, w, h]), out_size[0], out_size[1]))
    source = bx.rasterize(params.invert(target))
    source = np.concatenate([np.clip(source[:2], 0, [w, h]), np.clip(source[2:], 0, [w, h])]).astype(np.int64)
    if not (bx.is_valid(source) and bx.is_valid(target)):
        return CropRegion(source, target, params)
    # realised scale out_len / in_len and translation out_x1 - in_x1 * s, in float32 as the official code does
    out_len = (target[2:] - target[:2]).astype(np.float32)
    in_len = (source[2:] - source[:2]).astype(np.float32)
    scale = out_len / in_len
    translation = target[:2].astype(np.float32) - source[:2].astype(np.float32) * scale
    return CropRegion(source, target, CropParams(scale.astype(np.float64), translation.astype(np.float64)))


def crop_image(image: torch.Tensor, params: CropParams, out_size: Tuple[int, int],
               fill: torch.Tensor) -> Tuple[torch.Tensor, CropParams]:
    """Pixel-aligned crop of an (H, W, 3) uint8 image into a (3, Ho, Wo) float32 0..255 tensor.

    ``fill`` (3,) float32 paints what lies outside the image. Returns the crop and the realised params.
    """
    h, w = image.shape[:2]
    region = crop_region((w, h), params, out_size)
    out = fill.to(image.device, torch.float32).view(3, 1, 1).expand(3, out_size[1], out_size[0]).clone()
    if region.empty:
        return out, region.params
    sx1, sy1, sx2, sy2 = (int(v) for v in region.source)
    tx1, ty1, tx2, ty2 = (int(v) for v in region.target)
    patch = image[sy1:sy2, sx1:sx2].permute(2, 0, 1).unsqueeze(0).to(torch.float32)
    if (sy2 - sy1, sx2 - sx1) != (ty2 - ty1, tx2 - tx1):
        patch = F.interpolate(patch, size=(ty2 - ty1, tx2 - tx1), mode="bilinear", align_corners=False,
                              antialias=False)
    out[:, ty1:ty2, tx1:tx2] = patch[0]
    return out, region.params


def normalize(crop: torch.Tensor, max_value: float = 255.0) -> torch.Tensor:
    """0..max_value crop -> ImageNet-normalised network input."""
    mean = torch.tensor(IMAGENET_MEAN, device=crop.device, dtype=crop.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=crop.device, dtype=crop.dtype).view(3, 1, 1)
    return (crop / max_value - mean) / std


def image_mean(image: torch.Tensor) -> torch.Tensor:
    """Per-channel float32 mean of an (H, W, 3) 0..255 image: the crop padding colour."""
    return image.reshape(-1, image.shape[-1]).to(torch.float32).mean(dim=0)


def token_mask(box_in_crop, crop_size: int, grid: int) -> np.ndarray:
    """(grid, grid) int64 map with 1 on every patch the box touches, even partly, as the official code
    rasterises the template's foreground."""
    stride = crop_size / grid
    r = bx.rasterize(np.asarray(box_in_crop, dtype=np.float64) / stride)
    x1, y1 = np.clip(r[:2], 0, grid)
    x2, y2 = np.clip(r[2:], 0, grid)
    mask = np.zeros((grid, grid), dtype=np.int64)
    mask[y1:y2, x1:x2] = 1
    return mask
