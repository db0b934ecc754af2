"""The TraX server the VOT toolkit launches (``protocol = traxpython``, ``command = vot_lorat``).

Configuration comes from environment variables (set by ``env_*`` keys in trackers.ini) and optional
command-line flags; flags win. The model is loaded before the TraX handshake, because the toolkit's
timeout covers every request but not the start-up.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
import traceback
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import trax

from . import box as bx
from .builder import load_model
from .device import resolve_device, resolve_precision
from .image_io import read_rgb
from .masks import BoxMaskGenerator, FrameMask, box_rect, crop_to_content, pad_mask, tight_box
from .session import MaskGenerator, ObjectState, TrackingSession
from .static_tracker import StaticTracker
from .tracker import LoRATTracker

log = logging.getLogger("vot_lorat")

MASK_MODES = ("none", "box", "sam")


@dataclass
class ServerConfig:
    """Every setting of the tracker process. Environment: ``LORAT_<FIELD>`` (upper case)."""

    variant: str = "B-224"  # or "static": the static baseline (no model, every object stays put)
    backbone: Optional[str] = None
    weights: Optional[str] = None
    device: str = "auto"  # auto: cuda when available
    precision: str = "auto"  # auto: fp16 autocast on CUDA (the reference's inference), fp32 on CPU
    mask: str = "none"  # none: report rectangles; box: masks filled from the boxes; sam: SAM masks
    absence_threshold: Optional[float] = None  # report "absent" when the confidence is below it
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    sam_model: str = "vit_h"
    sam_checkpoint: Optional[str] = None
    sam_mode: str = "crop"  # crop: the reference, one 1024 px crop per object; frame: one encoding per frame
    sam_precision: str = "auto"  # auto: bf16 autocast on CUDA (as the official LoRAT code runs SAM), fp32 on CPU
    sam_multimask: bool = False

    @classmethod
    def from_env(cls, environ: Optional[Dict[str, str]] = None) -> "ServerConfig":
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get("LORAT_" + f.name.upper())
            if raw is None or raw.strip() == "":
                continue
            unexpanded = re.fullmatch(r"\$\{?(\w+)\}?", raw.strip())
            if unexpanded:  # trackers.ini said env_X = ${NAME} and NAME was not set where vot ran
                raise ValueError(f"LORAT_{f.name.upper()} is {raw.strip()!r}: export {unexpanded.group(1)} in the "
                                 f"shell that runs vot (see trackers.ini)")
            values[f.name] = _parse(f.name, raw.strip())
        return cls(**values)

    def to_env(self) -> Dict[str, str]:
        """Every setting that is not None as the environment :meth:`from_env` reads back to this config."""
        return {"LORAT_" + f.name.upper(): _format(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}


_TYPES = {"absence_threshold": float, "threads": int, "sam_multimask": bool}


def _format(value: object) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def _parse(name: str, raw: str):
    kind = _TYPES.get(name, str)
    if kind is bool:
        if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"LORAT_{name.upper()}={raw!r} is not a boolean (use 1 or 0)")
        return raw.lower() in ("1", "true", "yes")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"LORAT_{name.upper()}={raw!r} is not a valid {kind.__name__}") from None


def build_mask_generator(cfg: ServerConfig, device: torch.device) -> Optional[MaskGenerator]:
    if cfg.mask == "none":
        return None
    if cfg.mask == "box":
        return BoxMaskGenerator()
    if cfg.mask == "sam":
        from .sam import SamMaskGenerator, SamOptions, load_sam

        if cfg.sam_checkpoint is None:
            raise ValueError("mask mode 'sam' needs a SAM checkpoint: set LORAT_SAM_CHECKPOINT (or --sam-checkpoint) "
                             "to a local sam_vit_{b,l,h}_*.pth")
        # bf16, not the tracker's fp16: the official LoRAT code runs SAM in bfloat16
        precision = resolve_precision(cfg.sam_precision, device, cuda_default="bf16")
        return SamMaskGenerator(load_sam(cfg.sam_model, cfg.sam_checkpoint, device),
                                SamOptions(mode=cfg.sam_mode, precision=precision, multimask_output=cfg.sam_multimask))
    raise ValueError(f"mask mode must be one of {', '.join(MASK_MODES)}, got {cfg.mask!r}")


class TraxTracker:
    """Glue between ``trax.Server`` requests and a :class:`TrackingSession`."""

    def __init__(self, session: TrackingSession, masks: bool) -> None:
        self.session = session
        self.masks = masks
        self.height = self.width = 0
        self.expected = 0  # objects the toolkit has given so far: every answer must have this many entries

    def _read(self, request) -> Optional[np.ndarray]:
        try:
            path = request.image["color"].path()
        except (KeyError, AttributeError) as exc:
            log.error("frame without a colour image path (%s); answering with the last regions", exc)
            return None
        try:
            image = read_rgb(path)
        except OSError as exc:
            log.error("%s; answering with the last regions", exc)
            return None
        self.height, self.width = image.shape[:2]
        return image

    def _initial(self, objects, image: Optional[np.ndarray]):
        boxes, masks = [], []
        for region, _ in objects:
            try:
                box, mask = self._region_box(region, image)
            except Exception:  # noqa: BLE001 - an unreadable region makes that object absent, not the session
                log.exception("cannot read the initial region %s; reporting the object absent", region)
                box, mask = None, None
            boxes.append(box if box is not None and bx.is_valid(box) else None)
            masks.append(mask)
        return boxes, masks

    def _region_box(self, region, image: Optional[np.ndarray]):
        """The xyxy box of an initial region (and the full-frame mask of a mask region)."""
        if region.type == trax.Region.MASK:
            crop, offset = region.array(), region.offset()
            box = tight_box(crop > 0, offset)
            if box is not None and image is not None:
                box = bx.clip(box, self.width, self.height)
            full = FrameMask(pad_mask(crop, offset, self.height, self.width), None) if image is not None else None
            return box, full
        if region.type == trax.Region.RECTANGLE:
            return bx.xywh_to_xyxy(region.bounds()), None
        # polygons arrive only if the toolkit ignores our declared formats: use their bounds
        points = np.array(list(region), dtype=np.float64).reshape(-1, 2)
        return (np.concatenate([points.min(0), points.max(0)]) if len(points) else None), None

    def initialize(self, request) -> List:
        self.expected = len(request.objects)
        image = self._read(request)
        boxes, masks = self._initial(request.objects, image)
        self.session.start(image, boxes, masks)
        return [(region, {}) for region, _ in request.objects]  # the toolkit ignores the first answer

    def frame(self, request) -> List:
        self.expected += len(request.objects or [])
        image = self._read(request)
        if request.objects:  # objects that start in this frame (TraX 4)
            boxes, masks = self._initial(request.objects, image)
            self.session.add(image, boxes, masks)
        return [self.encode(state) for state in self.session.step(image)]

    def recover(self, request) -> List:
        """An answer with the right object count after an unexpected error: the last regions (plus absent
        newcomers) for a frame; the given regions for an initialisation, whose objects are then absent."""
        if request.type == trax.TraxStatus.INITIALIZE:
            self.session.start(None, [None] * len(request.objects))
            return [(region, {}) for region, _ in request.objects]
        missing = self.expected - len(self.session.slots)
        if missing > 0:
            self.session.add(None, [None] * missing)
        return [self.encode(slot.last) for slot in self.session.slots]

    def encode(self, state: ObjectState):
        props = {"confidence": float(state.confidence)}
        if not self.masks:
            if state.box is None:
                return trax.Rectangle.create(0, 0, 0, 0), props
            x, y, w, h = bx.discrete_xywh(state.box)
            return trax.Rectangle.create(float(x), float(y), float(w), float(h)), props
        if state.mask is not None:
            return trax.Mask.create(*crop_to_content(state.mask.mask, state.mask.rect)), props
        if state.box is not None and self.height:  # no mask made for this answer: the box filled
            x0, y0, x1, y1 = box_rect(state.box, self.height, self.width)
            if x0 < x1 and y0 < y1:
                return trax.Mask.create(np.ones((y1 - y0, x1 - x0), dtype=np.uint8), x0, y0), props
        return trax.Mask.create(np.zeros((1, 1), dtype=np.uint8)), props  # absent


def _trax_server() -> trax.Server:
    """What we declare to the toolkit, the same whether we track or only report a start-up error."""
    return trax.Server([trax.Region.RECTANGLE, trax.Region.MASK], [trax.Image.PATH], ["color"],
                       tracker_name="LoRAT", tracker_family="vot_lorat", multiobject=True)


def serve(cfg: ServerConfig) -> int:
    """Load the model, then answer TraX requests until the toolkit quits."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if cfg.variant == "static":
        tracker = StaticTracker()
    else:
        model = load_model(cfg.variant, cfg.backbone, cfg.weights, device=device)
        tracker = LoRATTracker(model, precision=resolve_precision(cfg.precision, device))
    session = TrackingSession(tracker, build_mask_generator(cfg, device), cfg.absence_threshold)
    glue = TraxTracker(session, masks=cfg.mask != "none")
    log.info("%s ready on %s (masks: %s)", cfg.variant, device, cfg.mask)
    with _trax_server() as server:
        while True:
            request = server.wait()
            if request.type in (trax.TraxStatus.QUIT, trax.TraxStatus.ERROR):
                break
            try:
                if request.type == trax.TraxStatus.INITIALIZE:
                    reply = glue.initialize(request)
                else:
                    reply = glue.frame(request)
            except Exception:  # one bad frame must not end the sequence: report and go on
                log.error("error while tracking, answering with the last regions:\n%s", traceback.format_exc())
                reply = glue.recover(request)
            server.status(reply)
    return 0


def parse_args(argv: Optional[Sequence[str]] = None) -> ServerConfig:
    cfg = ServerConfig.from_env()
    parser = argparse.ArgumentParser(prog="python -m vot_lorat", description=__doc__)
    for f in dataclasses.fields(ServerConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                            help=f"(env LORAT_{f.name.upper()}; now {getattr(cfg, f.name)!r})")
    args = parser.parse_args(argv)
    changes = {k: _parse(k, v) for k, v in vars(args).items() if v is not None}
    return dataclasses.replace(cfg, **changes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LoRAT %(levelname)s: %(message)s")
    try:
        cfg = parse_args(argv)
        return serve(cfg)
    except (ValueError, OSError) as exc:  # bad settings or weight files: one line, then exit
        message = f"LoRAT error: {exc}"
        print(message, file=sys.stderr, flush=True)
        if os.environ.get("TRAX"):
            tell_toolkit(message)
        return 1


def tell_toolkit(message: str) -> None:
    """Under the toolkit, say why we stop over TraX too: it shows a quit reason, but not our stderr."""
    try:
        with _trax_server() as server:
            server.wait()
            server.quit(reason=message)
    except Exception:  # the toolkit already hung up: stderr has the message
        pass
