"""A template/search pair -> network inputs and labels, with the runtime's own cropping code."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import torch

from vot_lorat.model.config import LoRATConfig
from vot_lorat.options import option
from vot_lorat.tracking import box as bx
from vot_lorat.tracking.crop import CropParams, crop_one, image_mean, normalize, siamfc_params, token_mask

from .augment import AugmentConfig, apply_deit3, color_jitter, deit3_choice, hflip


@dataclass(frozen=True)
class JitterConfig:
    """The search crop's random scale and shift; the defaults are the official LoRAT code's."""

    scale: float = option(0.25, "search scale jitter: log-normal sigma, per axis")
    translation: float = option(3.0, "search translation jitter: a shift of up to x/2 (w + h) per axis, w and h "
                                     "the box's size in the crop")
    min_object_size: float = option(10.0, "the jittered box must keep sides of at least this many crop pixels")
    max_attempts: int = option(12, "jitter draws before the pair is dropped and another one drawn")


@dataclass(frozen=True)
class TransformConfig:
    jitter: JitterConfig = field(default_factory=JitterConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def jitter_params(rng: np.random.Generator, box: np.ndarray, area_factor: float, out_size: int,
                  cfg: JitterConfig) -> CropParams:
    """SiamFC search params with scale ``s / exp(N(0,1) * 0.25)`` per axis and a translation of
    ``U(-1, 1) * translation/2 * (w*s_x + h*s_y)`` per axis."""
    base = siamfc_params(box, area_factor, (out_size, out_size))
    scale = base.scale / np.exp(rng.standard_normal(2) * cfg.scale)
    w, h = bx.size(box)
    translation = out_size / 2 - bx.centre(box) * scale
    translation = translation + rng.uniform(-1, 1, 2) * 0.5 * cfg.translation * (w * scale[0] + h * scale[1])
    return CropParams(scale, translation)


class PairTransform:
    """Crops, jitter, augmentation, normalisation and labels for one training pair."""

    def __init__(self, model_config: LoRATConfig, cfg: TransformConfig = TransformConfig()) -> None:
        self.mc = model_config
        self.cfg = cfg

    def search_params(self, rng: np.random.Generator, box: np.ndarray) -> Optional[CropParams]:
        """Jittered params whose crop keeps the box visible with sides >= min size; None after 12 tries."""
        size = self.mc.search_size
        for _ in range(self.cfg.jitter.max_attempts):
            params = jitter_params(rng, box, self.mc.search_area_factor, size, self.cfg.jitter)
            inside = bx.clip(params.apply(box), size, size)
            if bx.is_valid(inside) and (bx.size(inside) >= self.cfg.jitter.min_object_size).all():
                return params
        return None

    def __call__(self, rng: np.random.Generator, z_image: np.ndarray, z_box: np.ndarray, x_image: np.ndarray,
                 x_box: np.ndarray) -> Optional[Dict[str, torch.Tensor]]:
        mc, aug = self.mc, self.cfg.augment
        zt, xt = torch.from_numpy(z_image), torch.from_numpy(x_image)
        tz, sx = mc.template_size, mc.search_size
        x_params = self.search_params(rng, x_box)
        if x_params is None:
            return None
        z_crop, z_real = crop_one(zt, siamfc_params(z_box, mc.template_area_factor, (tz, tz)), tz, image_mean(zt))
        x_crop, x_real = crop_one(xt, x_params, sx, image_mean(xt))
        z_crop, x_crop = z_crop / 255.0, x_crop / 255.0
        zb, xb = z_real.apply(z_box), x_real.apply(x_box)
        if rng.random() < aug.flip_prob:
            z_crop, zb = hflip(z_crop, zb)
        if rng.random() < aug.flip_prob:
            x_crop, xb = hflip(x_crop, xb)
        z_crop = color_jitter(rng, z_crop, aug)
        x_crop = color_jitter(rng, x_crop, aug)
        if aug.deit3:
            kind, radius = deit3_choice(rng, aug)
            z_crop, x_crop = apply_deit3(z_crop, kind, radius), apply_deit3(x_crop, kind, radius)
        zb, xb = bx.clip(zb, tz, tz), bx.clip(xb, sx, sx)
        return {
            "z": normalize(z_crop, 1.0),
            "x": normalize(x_crop, 1.0),
            "z_feat_mask": torch.from_numpy(token_mask(zb, tz, mc.template_grid)),
            "positives": torch.from_numpy(token_mask(xb, sx, mc.search_grid).astype(bool)),
            "target_box": torch.from_numpy((xb / sx).astype(np.float32)),
        }
