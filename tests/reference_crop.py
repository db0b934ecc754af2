"""The crop formula written out as the official LoRAT code crops, one object at a time: the pixel-aligned source
rectangle of a float copy of the image resized with ``F.interpolate`` (bilinear, align_corners=False, no
antialias) into its target rectangle, the padding colour around it. The tests hold vot_lorat's one crop
implementation (``CropBatch``) to it."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from vot_lorat.tracking.crop import CropParams, crop_region


def reference_crop(image: torch.Tensor, params: CropParams, size: int,
                   padding: torch.Tensor) -> Tuple[torch.Tensor, CropParams]:
    """(H, W, 3) uint8 -> (3, size, size) float32 0..255 crop, and the realised parameters."""
    h, w = image.shape[:2]
    region = crop_region((w, h), params, (size, size))
    out = padding.to(image.device, torch.float32).view(3, 1, 1).expand(3, size, size).clone()
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
