"""The TraX side of a tracking session: the toolkit's requests (initialise, frame, objects that start later) in,
regions out, with the toolkit's promises kept: one answer per object, every frame, whatever fails."""
from __future__ import annotations

import logging
from typing import Callable, List, Optional

import numpy as np
import trax

from ..frames.reading import Frame, read_frame
from ..masks.regions import FrameMask, box_rect, crop_to_content, pad_mask, tight_box
from ..tracking import box as bx
from .session import ObjectState, TrackingSession

log = logging.getLogger("vot_lorat")


class TraxAdapter:
    """Turns ``trax.Server`` requests into calls of a :class:`TrackingSession` and its answers into TraX regions.

    Args:
        session: the session that tracks.
        masks: answer masks (segmentation stacks) instead of rectangles.
        read: turns a frame path into a frame; raises OSError when it cannot (the frame is then answered with
            the last regions).
    """

    def __init__(self, session: TrackingSession, masks: bool, read: Callable[[str], Frame] = read_frame) -> None:
        self.session = session
        self.masks = masks
        self.read = read
        self.height = self.width = 0
        self.expected = 0  # objects the toolkit has given so far: every answer must have this many entries

    def _read(self, request) -> Optional[Frame]:
        try:
            path = request.image["color"].path()
        except (KeyError, AttributeError) as exc:
            log.error("frame without a colour image path (%s); answering with the last regions", exc)
            return None
        try:
            image = self.read(path)
        except OSError as exc:
            log.error("%s; answering with the last regions", exc)
            return None
        self.height, self.width = image.shape[:2]
        return image

    def _initial(self, objects, image: Optional[Frame]):
        boxes, masks = [], []
        for region, _ in objects:
            if region.type == trax.Region.SPECIAL:  # what libtrax makes of a region with NaN or no coordinates
                log.warning("initial region %s is no position; reporting the object absent", region)
                boxes.append(None)
                masks.append(None)
                continue
            try:
                box, mask = self._region_box(region, image)
            except Exception:  # noqa: BLE001 - an unreadable region makes that object absent, not the session
                log.exception("cannot read the initial region %s; reporting the object absent", region)
                box, mask = None, None
            boxes.append(self._usable(box, region, image))
            masks.append(mask)
        return boxes, masks

    def _usable(self, box: Optional[np.ndarray], region, image: Optional[Frame]) -> Optional[np.ndarray]:
        """The initial box, or None (absent) with one log line when it cannot be tracked: not finite, a negative
        or zero width or height, or (with the frame read) wholly outside the frame. An empty region (no pixel,
        no size) is absent without a word: VOTS sends those for objects that are not there yet."""
        if box is None:
            return None
        if not np.isfinite(box).all():
            log.warning("initial region %s is not finite; reporting the object absent", region)
            return None
        if not bx.is_valid(box):
            width, height = box[2:] - box[:2]
            if width or height:
                log.warning("initial region %s is %g x %g pixels: a box needs a positive width and height; "
                            "reporting the object absent", region, width, height)
            return None
        if image is not None and not bx.is_valid(bx.clip(box, self.width, self.height)):
            log.warning("initial region %s lies outside the %dx%d frame; reporting the object absent", region,
                        self.width, self.height)
            return None
        return box

    def _region_box(self, region, image: Optional[Frame]):
        """The xyxy box of an initial rectangle, polygon or mask (and the full-frame mask of a mask region)."""
        if region.type == trax.Region.MASK:
            crop, offset = region.array(), region.offset()
            box = tight_box(crop > 0, offset)
            if box is not None and image is not None:
                box = bx.clip(box, self.width, self.height)
            full = FrameMask(pad_mask(crop, offset, self.height, self.width), None) if image is not None else None
            return box, full
        if region.type == trax.Region.RECTANGLE:
            return bx.xywh_to_xyxy(region.bounds()), None
        # a polygon (the rotated boxes of VOT 2013-2019): the rectangle around it, as VOT trackers take it
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
