"""SiamFC cropping: crop parameters from a box, the pixel-aligned crop, and mapping boxes through it.

A crop is ``out = in * scale + translation`` per axis. The crop itself is pixel-aligned, as in the
official LoRAT code: the image rectangle is mapped into the crop, rasterised, mapped back and
rasterised again, and only that sub-rectangle is resized (bilinear, align_corners=False, no antialias);
the rest is the padding colour. The scale and translation that the rasterised rectangles really realise
are returned and used for every later box mapping, in training and at inference alike.

:class:`CropBatch` is the one implementation of the pixel work, used by the tracker, by training and by SAM.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch

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
        return b * _xyxy(self.scale) + _xyxy(self.translation)

    def invert(self, box) -> np.ndarray:
        """Crop xyxy -> image xyxy."""
        b = np.asarray(box, dtype=np.float64)
        return (b - _xyxy(self.translation)) / _xyxy(self.scale)


def _xyxy(xy: np.ndarray) -> np.ndarray:
    """(..., 2) x, y -> (..., 4) x, y, x, y."""
    return np.concatenate([xy, xy], axis=-1)


def siamfc_params(box, area_factor: float, out_size: Tuple[int, int]) -> CropParams:
    """Centre the box in an ``out_size`` (w, h) crop whose area is the context-padded box area; ``box`` (..., 4)
    gives parameters of the same leading shape.

    ``w' = w + (f-1)(w+h)/2``, ``h' = h + (f-1)(w+h)/2``, ``s = sqrt(Wo*Ho / (w'h'))`` (SiamFC's rule).
    """
    box = np.asarray(box, dtype=np.float64)
    w, h = np.moveaxis(bx.size(box), -1, 0)
    pad = (area_factor - 1) * (w + h) / 2
    s = np.sqrt(out_size[0] * out_size[1] / ((w + pad) * (h + pad)))
    scale = np.stack([s, s], axis=-1)
    out_centre = np.array([out_size[0] / 2, out_size[1] / 2], dtype=np.float64)
    return CropParams(scale, out_centre - bx.centre(box) * scale)


@dataclass(frozen=True)
class CropRegion:
    """Integer rectangles (x1, y1, x2, y2, end-exclusive) of the source pixels and where they land."""

    source: np.ndarray
    target: np.ndarray
    params: CropParams  # the realised parameters

    @property
    def empty(self):
        """True where no image pixel lands in the crop (an array for a batch of crops)."""
        return ~(bx.is_valid(self.source) & bx.is_valid(self.target))


def crop_region(image_size: Tuple[int, int], params: CropParams, out_size: Tuple[int, int]) -> CropRegion:
    """Rasterise the crop: which image pixels are copied to which crop pixels, and the realised params (for
    params of shape (..., 2), regions of the same leading shape)."""
    w, h = image_size
    # np.minimum / np.maximum: np.clip costs ten times more per call on small arrays
    target = bx.rasterize(np.minimum(np.maximum(params.apply([0.0, 0.0, w, h]), 0), [*out_size, *out_size]))
    source = np.minimum(np.maximum(bx.rasterize(params.invert(target)), 0), [w, h, w, h])
    valid = (bx.is_valid(source) & bx.is_valid(target))[..., None]
    # realised scale out_len / in_len and translation out_x1 - in_x1 * s, in float32 as the official code does
    out_len = (target[..., 2:] - target[..., :2]).astype(np.float32)
    in_len = (source[..., 2:] - source[..., :2]).astype(np.float32)
    scale = np.divide(out_len, in_len, out=np.ones_like(out_len), where=in_len > 0)
    translation = target[..., :2].astype(np.float32) - source[..., :2].astype(np.float32) * scale
    # an empty region keeps the requested params
    return CropRegion(source, target, CropParams(np.where(valid, scale.astype(np.float64), params.scale),
                                                 np.where(valid, translation.astype(np.float64), params.translation)))


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


def _linear_taps(target: np.ndarray, source: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Bilinear taps of crops of ``size`` pixels along each axis.

    ``target`` / ``source`` (..., 2): the first and end pixel of each crop's target and source ranges. Returns
    the source index of each output pixel's first tap (..., size) and the weights of it and of the next pixel
    (..., 2, size), placed as F.interpolate(bilinear, align_corners=False) places them: source position
    ``max(s * (i + 0.5) - 0.5, 0)`` with ``s`` the float32 length ratio, rounded once (as an FMA rounds),
    the last source pixel not blended with the one after it. Outside the target range the border repeats.
    """
    out_len = np.maximum(target[..., 1] - target[..., 0], 1)[..., None]
    in_len = np.maximum(source[..., 1] - source[..., 0], 1)[..., None]
    scale = (in_len / out_len).astype(np.float32).astype(np.float64)
    i = np.minimum(np.maximum(np.arange(size) - target[..., :1], 0), out_len - 1)
    position = np.maximum(scale * (i + 0.5) - 0.5, 0).astype(np.float32)
    first = np.minimum(position.astype(np.int64), in_len - 1)
    second = np.where(first < in_len - 1, position - first.astype(np.float32), np.float32(0))
    return first + source[..., :1], np.stack([np.float32(1) - second, second], axis=-2)




class CropBatch:
    """N pixel-aligned crops of one image, written in place into a preallocated (N, 3, S, S) float32 ``batch``.

    Each crop is the image's source rectangle resized bilinearly (``F.interpolate``, align_corners=False, no
    antialias) into its target rectangle, the padding colour around it, then, with ``normalize``, ImageNet-
    normalised: equal to doing exactly that to float copies up to float rounding (about 1e-6), but made from the
    uint8 pixels the bilinear taps read, so its cost grows with the crop's size, not the object's. It runs on
    the image's device (a frame decoded on the GPU is cropped there).

    Args:
        count: crops per call.
        size: side of every crop in pixels.
        device: where the batch (and the images given) live.
        normalize: ImageNet-normalised network input; False keeps 0..255 pixel values.
    """

    def __init__(self, count: int, size: int, device: torch.device, normalize: bool = True) -> None:
        self.batch = torch.empty(count, 3, size, size, device=device)
        self._scale, self._shift = _normalizer(device) if normalize else _identity(device)
        self._scale_values = self._scale.view(3).cpu().numpy()
        # every output pixel blends rows (r, r + 1) and columns (c, c + 1): for both rows, the 6 bytes of
        # pixels c and c + 1
        self._pairs = torch.empty(2 * count * size * size, 6, dtype=torch.uint8, device=device)
        self._rows = torch.empty(count, size, size * 6, device=device)  # the rows blended

    def crop(self, image: torch.Tensor, params: CropParams, padding: torch.Tensor) -> CropParams:
        """Write the crops of ``image`` into ``batch``.

        Args:
            image: (H, W, 3) uint8, on the batch's device.
            params: the requested parameters, (N, 2) scale and translation.
            padding: (N, 3) float32 colours of what lies outside the image, in the batch's units (normalised
                when the batch is).

        Returns:
            The realised parameters (see :func:`crop_region`), for mapping boxes in and out of the crops.
        """
        count, _, size, _ = self.batch.shape
        device = self.batch.device
        height, width = image.shape[:2]
        region = crop_region((width, height), params, (size, size))
        valid = ~region.empty[:, None]
        target = np.where(valid, region.target, 0)  # an empty region is all padding, its taps on pixel 0
        source = np.where(valid, region.source, [0, 0, 1, 1])
        if width < 2:  # a pair needs two columns: the only one twice, the copy with weight 0
            image = torch.cat([image, image], dim=1)
            width = 2
        target = target.reshape(count, 2, 2).transpose(0, 2, 1)  # (N, axis: x then y, first / end pixel)
        first, weights = _linear_taps(target, source.reshape(count, 2, 2).transpose(0, 2, 1), size)
        at_edge = first[:, 0] >= width - 1  # a pair at the last column starts one pixel earlier, weights swapped
        cols = first[:, 0] - at_edge
        col_weights = np.where(at_edge[:, None], weights[:, 0, ::-1], weights[:, 0])
        rows = np.stack([first[:, 1], np.minimum(first[:, 1] + 1, height - 1)])  # (2, N, S)
        starts = torch.from_numpy(rows[:, :, :, None] * width + cols[:, None]).to(device)  # first pixel of each pair
        pixel_pairs = image.reshape(-1).as_strided((height * width - 1, 6), (3, 1))
        torch.index_select(pixel_pairs, 0, starts.view(-1), out=self._pairs)
        taps = self._pairs.view(2, count, size, size * 6)  # uint8, made float inside the products
        row_w = torch.from_numpy(weights[:, 1, :, :, None]).to(device)  # (N, 2, S, 1)
        torch.mul(taps[0], row_w[:, 0], out=self._rows)
        self._rows.addcmul_(taps[1], row_w[:, 1])
        # the column weights, times the normalisation's channel scale (made in numpy: one tensor operation fewer)
        col_w = col_weights.transpose(0, 2, 1)[..., None] * self._scale_values  # (N, S, 2, 3)
        self._rows.mul_(torch.from_numpy(col_w.reshape(count, 1, size * 6)).to(device))
        pair = self._rows.view(count, size, size, 2, 3).permute(3, 0, 4, 1, 2)  # (2, N, 3, S, S)
        torch.add(pair[0], pair[1], out=self.batch).add_(self._shift)
        for k in np.flatnonzero((target[:, :, 0] > 0).any(1) | (target[:, :, 1] < size).any(1)):
            (x1, x2), (y1, y2) = target[k]  # the crop pixels outside these ranges get the padding colour
            colour, crop = padding[k].view(3, 1, 1), self.batch[k]
            for part in (crop[:, :y1], crop[:, y2:], crop[:, :, :x1], crop[:, :, x2:]):
                if part.numel():
                    part.copy_(colour.expand_as(part))
        return region.params


_NORMALIZERS: Dict[torch.device, Tuple[torch.Tensor, torch.Tensor]] = {}


def _normalizer(device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, 1, 1) scale and shift with ``normalize(x) == x * scale + shift`` for 0..255 values."""
    if device not in _NORMALIZERS:
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
        _NORMALIZERS[device] = ((1 / (255 * std)).float().view(1, 3, 1, 1).to(device),
                                (-mean / std).float().view(1, 3, 1, 1).to(device))
    return _NORMALIZERS[device]


def _identity(device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """The scale and shift that keep 0..255 pixel values."""
    return torch.ones(1, 3, 1, 1, device=device), torch.zeros(1, 3, 1, 1, device=device)


def crop_one(image: torch.Tensor, params: CropParams, size: int, padding: torch.Tensor,
             normalize: bool = False) -> Tuple[torch.Tensor, CropParams]:
    """One crop of ``image`` (H, W, 3) uint8 as a (3, size, size) float32 tensor, and its realised parameters;
    ``padding`` (3,) in the crop's units. For code that crops once per image (training pairs)."""
    crops = CropBatch(1, size, image.device, normalize)
    real = crops.crop(image, CropParams(params.scale[None], params.translation[None]), padding[None])
    return crops.batch[0], CropParams(real.scale[0], real.translation[0])
