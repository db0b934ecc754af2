"""LoRAT's Siamese tracking procedure (one template crop per object, a search crop around its last box
every frame), for many objects at once.

Every object keeps its own template, token mask, padding colour and box; each frame, all objects'
search crops go through the network in one batched forward pass.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import ContextManager, Dict, List, Optional, Union

import numpy as np
import torch

from . import box as bx
from .crop import CropParams, crop_image, image_mean, normalize, siamfc_params, token_mask
from .device import PRECISIONS as AUTOCAST_PRECISIONS, autocast
from .image_io import frame_tensor
from .lora import has_lora
from .model import LoRAT
from .postprocess import hann_window_2d, select_boxes

# the tracker's precisions: autocast, or int8 dynamic quantisation of the Linear layers (CPU only)
PRECISIONS = (*AUTOCAST_PRECISIONS, "int8")


@dataclass
class TrackResult:
    box: np.ndarray  # xyxy in image pixels, clipped to the image (may have zero area)
    confidence: float  # sigmoid score at the chosen cell, before the window blend


@dataclass
class _Object:
    template: torch.Tensor  # (3, Hz, Wz) normalised
    token_mask: torch.Tensor  # (gz, gz) int64
    fill: torch.Tensor  # (3,) padding colour: the mean of the frame the object started in
    box: np.ndarray  # search state: last valid output box, xyxy


def quantize_int8(model: LoRAT, inplace: bool = False) -> torch.nn.Module:
    """A merged model with int8 dynamic-quantised Linear layers (B-224 on a 2-core CPU: 3.8x faster, see
    benchmarks/README.md); a copy unless ``inplace``, which drops the fp32 weights instead of holding both."""
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 precision runs on the CPU only; use fp16 or bf16 on a GPU")
    if has_lora(model):
        raise ValueError("int8 needs merged weights: load the model with merge=True (load_model's default)")
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao, still works
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8, inplace=inplace)


def precision_context(precision: str, device: torch.device) -> ContextManager:
    """The autocast a tracker precision runs the model under; the int8-quantised model runs as is."""
    return autocast("fp32" if precision == "int8" else precision, device)


class LoRATTracker:
    """Tracks any number of objects; objects can be added at any frame.

    ``add_object(image, box)`` takes an xyxy box and returns an id; ``track(image)`` returns one
    :class:`TrackResult` per object in the order they were added.
    """

    def __init__(self, model: LoRAT, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.config = model.config
        self.device = next(model.parameters()).device
        self.model = quantize_int8(model) if precision == "int8" else model.eval()
        self.precision = precision
        grid = self.config.search_grid
        self.hann_window = hann_window_2d(grid, grid, self.device)
        self.objects: Dict[int, _Object] = {}
        self._next_id = 0
        self._batch: Optional[tuple] = None
        self.timing: Dict[str, float] = {}

    def reset(self) -> None:
        self.objects.clear()
        self._batch = None

    def add_object(self, image: Union[np.ndarray, torch.Tensor], box_xyxy) -> int:
        """Start tracking the object in ``box_xyxy`` (image pixels). Raises ValueError on an empty box."""
        frame = image if isinstance(image, torch.Tensor) else frame_tensor(image, self.device)
        box = np.asarray(box_xyxy, dtype=np.float64)
        if box.shape != (4,) or not np.isfinite(box).all() or not bx.is_valid(box):
            raise ValueError(f"initial box must be a finite xyxy box with positive size, got {box_xyxy}")
        size = self.config.template_size
        fill = image_mean(frame)
        params = siamfc_params(box, self.config.template_area_factor, (size, size))
        crop, real = crop_image(frame, params, (size, size), fill)
        mask = token_mask(real.apply(box), size, self.config.template_grid)
        obj_id = self._next_id
        self._next_id += 1
        self.objects[obj_id] = _Object(normalize(crop), torch.from_numpy(mask).to(self.device), fill, box)
        self._batch = None
        return obj_id

    def remove_object(self, obj_id: int) -> None:
        del self.objects[obj_id]
        self._batch = None

    def _templates(self):
        if self._batch is None:
            objs = list(self.objects.values())
            self._batch = (torch.stack([o.template for o in objs]), torch.stack([o.token_mask for o in objs]))
        return self._batch

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def track(self, image: Union[np.ndarray, torch.Tensor], profile: bool = False) -> List[TrackResult]:
        """One frame for every object. With ``profile`` the step times land in ``self.timing``."""
        if not self.objects:
            return []
        t0 = time.perf_counter()
        frame = image if isinstance(image, torch.Tensor) else frame_tensor(image, self.device)
        height, width = frame.shape[:2]
        size = self.config.search_size
        crops, params = [], []
        for obj in self.objects.values():
            crop_box = bx.enlarge_to_min_size(obj.box, self.config.min_object_size)
            p = siamfc_params(crop_box, self.config.search_area_factor, (size, size))
            crop, real = crop_image(frame, p, (size, size), obj.fill)
            crops.append(crop)
            params.append(real)
        x = normalize(torch.stack(crops))
        z, z_mask = self._templates()
        if profile:
            self._sync()
        t1 = time.perf_counter()
        with precision_context(self.precision, self.device):
            out = self.model(z, x, z_mask)
        if profile:
            self._sync()
        t2 = time.perf_counter()
        boxes, conf = select_boxes(out["score_map"], out["boxes"], self.hann_window, self.config.window_penalty)
        found = torch.cat([boxes * size, conf[:, None]], dim=1).cpu().numpy().astype(np.float64)
        results = []
        for obj, real, row in zip(self.objects.values(), params, found):
            results.append(self._update(obj, real, row[:4], float(row[4]), width, height))
        t3 = time.perf_counter()
        if profile:
            self.timing = {"preprocess": t1 - t0, "model": t2 - t1, "postprocess": t3 - t2}
        return results

    @staticmethod
    def _update(obj: _Object, real: CropParams, box_in_crop: np.ndarray, confidence: float, width: int,
                height: int) -> TrackResult:
        """Back-project, clip, and keep the box as the search state only if it is a proper box."""
        out = bx.clip(real.invert(box_in_crop), width, height)
        if bx.is_valid(out):
            obj.box = out
        return TrackResult(out, confidence)
