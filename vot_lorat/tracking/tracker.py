"""LoRAT's Siamese tracking procedure (one template crop per object, a search crop around its last box
every frame), for many objects at once.

Every object keeps its own template, token mask, padding colour and box; each frame, all objects'
search crops go through the network in one batched forward pass. What a frame needs is computed once per
frame, for all objects together: the frame on the device, the crop geometry, the crops themselves
(written in place into a preallocated batch, see :class:`vot_lorat.tracking.crop.CropBatch`) and the boxes.
"""
from __future__ import annotations

import logging
import time
import warnings
import weakref
from dataclasses import dataclass
from typing import ContextManager, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..device import PRECISIONS as AUTOCAST_PRECISIONS, autocast
from ..frames.reading import Frame, frame_tensor
from ..model.lora import has_lora
from ..model.network import LoRAT
from . import box as bx
from .crop import CropBatch, image_mean, normalize, siamfc_params, token_mask
from .postprocess import hann_window_2d, select_boxes

log = logging.getLogger(__name__)

# the tracker's precisions: autocast, or int8 dynamic quantisation of the Linear layers (CPU only)
PRECISIONS = (*AUTOCAST_PRECISIONS, "int8")


@dataclass
class TrackResult:
    """One object's answer for one frame; the box convention is in the field's name.

    Attributes:
        box_xyxy: x1, y1, x2, y2 in image pixels, clipped to the image (may have zero area).
        confidence: the head's sigmoid score at the chosen cell, before the window blend (0 to 1).
    """

    box_xyxy: np.ndarray
    confidence: float

    @property
    def box_xywh(self) -> np.ndarray:
        """x, y, w, h: the convention of VOT, of ``vot_lorat.track --init`` and of its output."""
        return bx.xyxy_to_xywh(self.box_xyxy)


@dataclass
class _Object:
    template: torch.Tensor  # (3, Hz, Wz) normalised
    token_mask: torch.Tensor  # (gz, gz) int64
    padding: torch.Tensor  # (3,) padding colour, normalised: the mean of the frame the object started in
    box: np.ndarray  # search state: last valid output box, xyxy


@dataclass
class _Batch:
    """What the objects' batched forward pass reuses from frame to frame, until objects come or go."""

    objects: List[_Object]
    templates: torch.Tensor  # (N, 3, Hz, Wz)
    token_masks: torch.Tensor  # (N, gz, gz)
    paddings: torch.Tensor  # (N, 3) normalised
    search: CropBatch  # the search crops, rewritten in place every frame


def quantize_int8(model: LoRAT, inplace: bool = False) -> torch.nn.Module:
    """A merged model with int8 dynamic-quantised Linear layers, for CPUs without fast bf16 (docs/speed.md has the
    speed and the boxes' agreement); a copy unless ``inplace``, which drops the fp32 weights instead of holding
    both."""
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
    :class:`TrackResult` per object in the order they were added. Images are (H, W, 3) uint8 RGB numpy
    arrays or tensors on any device (a frame decoded on the GPU stays there).

    Args:
        model: an eval-mode LoRAT (:func:`vot_lorat.load_model`), on the device to track on.
        precision: ``fp32``, ``fp16`` / ``bf16`` (autocast; fp16 is what the official code runs on a GPU) or
            ``int8`` (dynamic quantisation of a merged model, CPU only).
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
        self._batch: Optional[_Batch] = None
        self._start_frame: Optional[Tuple[weakref.ref, torch.Tensor, torch.Tensor]] = None
        self._frame_size: Optional[Tuple[int, int]] = None  # (height, width) of the last frame seen
        self.timing: Dict[str, float] = {}

    def warm_up(self, frames: int = 5, slow_s: float = 0.05) -> None:
        """Track a box on a blank frame a few times, then forget it, so that the first real frames do not pay
        one-time costs (the kernels' set-up, the allocator's first requests). After two frames it stops once a
        frame takes ``slow_s`` or more: next to such a step those costs do not show. Servers call it before they
        take requests, whose time the toolkit measures; a tracker that holds objects is left alone."""
        if self.objects:
            return
        side = 2 * self.config.search_size
        blank = torch.zeros(side, side, 3, dtype=torch.uint8, device=self.device)
        self.add_object(blank, np.array([side / 3, side / 3, side / 2, side / 2]))
        for done in range(frames):
            start = time.perf_counter()
            self.track(blank)
            self._sync()
            if done >= 1 and time.perf_counter() - start >= slow_s:
                break
        self.reset()
        self._next_id = 0

    def reset(self) -> None:
        """Forget every object (a new sequence)."""
        self.objects.clear()
        self._batch = None
        self._start_frame = None
        self._frame_size = None

    def add_object(self, image: Frame, box_xyxy) -> int:
        """Start tracking an object from its box in this frame.

        Args:
            image: the frame the object starts in, (H, W, 3) uint8 RGB.
            box_xyxy: x1, y1, x2, y2 in image pixels.

        Returns:
            The object's id.

        Raises:
            ValueError: the box is not finite or has no area.
        """
        box = np.asarray(box_xyxy, dtype=np.float64)
        if box.shape != (4,) or not np.isfinite(box).all() or not bx.is_valid(box):
            raise ValueError(f"initial box must be a finite xyxy box with positive size, got {box_xyxy}")
        frame, padding = self._frame_and_padding(image)
        height, width = frame.shape[:2]
        if min(height, width) < self.config.min_object_size:
            log.warning("starting an object in a %dx%d frame, smaller than the %g px the tracker searches at least: "
                        "its boxes mean little", width, height, self.config.min_object_size)
        self._follow_frame_size(height, width)
        size = self.config.template_size
        crop = CropBatch(1, size, self.device)
        real = crop.crop(frame, siamfc_params(box[None], self.config.template_area_factor, (size, size)),
                         padding[None])
        mask = token_mask(real.apply(box)[0], size, self.config.template_grid)
        obj_id = self._next_id
        self._next_id += 1
        self.objects[obj_id] = _Object(crop.batch[0], torch.from_numpy(mask).to(self.device), padding, box)
        self._batch = None
        return obj_id

    def _frame_and_padding(self, image: Frame) -> Tuple[torch.Tensor, torch.Tensor]:
        """The frame on the device and its normalised mean colour, computed once for all objects that start
        in the same frame (the session adds them one by one with the same image)."""
        if self._start_frame is not None and self._start_frame[0]() is image:
            return self._start_frame[1], self._start_frame[2]
        frame = frame_tensor(image, self.device)
        padding = normalize(image_mean(frame).view(3, 1, 1)).view(3)
        self._start_frame = (weakref.ref(image), frame, padding)
        return frame, padding

    def _follow_frame_size(self, height: int, width: int) -> None:
        """Frames of one sequence share a size; when they do not, a search state outside the new frame would
        give clipped, empty boxes forever, so every state is moved (and shrunk if needed) into the frame."""
        if self._frame_size is not None and self._frame_size != (height, width):
            old_h, old_w = self._frame_size
            log.warning("frame size changed from %dx%d to %dx%d: moving the %d object state(s) into the new frame",
                        old_w, old_h, width, height, len(self.objects))
            for obj in self.objects.values():
                obj.box = bx.move_into(obj.box, width, height)
        self._frame_size = (height, width)

    def remove_object(self, obj_id: int) -> None:
        """Stop tracking an object; the others keep their ids."""
        del self.objects[obj_id]
        self._batch = None

    def _objects_batch(self) -> _Batch:
        if self._batch is None:
            objs = list(self.objects.values())
            self._batch = _Batch(objs, torch.stack([o.template for o in objs]),
                                 torch.stack([o.token_mask for o in objs]), torch.stack([o.padding for o in objs]),
                                 CropBatch(len(objs), self.config.search_size, self.device))
        return self._batch

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def track(self, image: Frame, profile: bool = False) -> List[TrackResult]:
        """Track every object into the next frame.

        Args:
            image: the frame, (H, W, 3) uint8 RGB, a numpy array or a tensor on any device.
            profile: time the step's parts (crops, model, post-processing) into ``self.timing``, synchronising
                the GPU between them.

        Returns:
            One result per object, in the order the objects were added.
        """
        if not self.objects:
            return []
        t0 = time.perf_counter()
        self._start_frame = None  # objects added later start in another frame
        frame = frame_tensor(image, self.device)
        height, width = frame.shape[:2]
        self._follow_frame_size(height, width)
        batch = self._objects_batch()
        size = self.config.search_size
        crop_boxes = bx.enlarge_to_min_size(np.stack([o.box for o in batch.objects]), self.config.min_object_size)
        real = batch.search.crop(frame, siamfc_params(crop_boxes, self.config.search_area_factor, (size, size)),
                                 batch.paddings)
        if profile:
            self._sync()
        t1 = time.perf_counter()
        with precision_context(self.precision, self.device):
            out = self.model(batch.templates, batch.search.batch, batch.token_masks)
        if profile:
            self._sync()
        t2 = time.perf_counter()
        boxes, conf = select_boxes(out["score_map"], out["boxes"], self.hann_window, self.config.window_penalty)
        found = torch.cat([boxes * size, conf[:, None]], dim=1).cpu().numpy().astype(np.float64)
        # back-project and clip; a box becomes the search state only if it is a proper box
        boxes_out = bx.clip(real.invert(found[:, :4]), width, height)
        for obj, box, proper in zip(batch.objects, boxes_out, bx.is_valid(boxes_out)):
            if proper:
                obj.box = box
        results = [TrackResult(box, float(c)) for box, c in zip(boxes_out, found[:, 4])]
        t3 = time.perf_counter()
        if profile:
            self.timing = {"preprocess": t1 - t0, "model": t2 - t1, "postprocess": t3 - t2}
        return results
