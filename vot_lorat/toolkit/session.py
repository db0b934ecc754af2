"""One tracking session (one sequence) of many objects, as the VOT toolkit drives it over TraX.

The session turns the toolkit's requests into tracker calls and keeps the toolkit's promises: one
answer per object, in initialisation order, every frame. Objects with an empty initial region are
reported absent throughout; a frame that cannot be read is answered with the last answers; objects
whose initial frame cannot be read start at the next readable frame.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Protocol, Sequence

import numpy as np

from ..frames.reading import Frame
from ..masks.regions import FrameMask
from ..tracking import box as bx
from ..tracking.tracker import TrackResult

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """What a session drives: :class:`vot_lorat.tracker.LoRATTracker` or the static baseline."""

    def reset(self) -> None:
        """Forget every object."""

    def add_object(self, image: Frame, box_xyxy: np.ndarray) -> int:
        """Start tracking the object in ``box_xyxy``; returns its id. Raises ValueError on an empty box."""

    def track(self, image: Frame) -> List[TrackResult]:
        """One result per object, in the order the objects were added."""


class MaskGenerator(Protocol):
    """Box -> mask: :class:`vot_lorat.masks.BoxMaskGenerator` or :class:`vot_lorat.sam.SamMaskGenerator`."""

    def __call__(self, image: Frame, boxes: np.ndarray, confidences: np.ndarray) -> Sequence[FrameMask]:
        """N full-frame masks for ``boxes`` (N, 4) xyxy, disjoint unless asked otherwise; ``confidences`` (N,)
        settle overlaps."""


@dataclass
class ObjectState:
    """What is reported for one object in one frame; ``box`` None means absent."""

    box: Optional[np.ndarray]
    confidence: float = 1.0
    mask: Optional[FrameMask] = None


ABSENT = ObjectState(None, 0.0)


@dataclass
class _Slot:
    tracker_id: Optional[int]  # None while not tracked (absent object or deferred start)
    pending_box: Optional[np.ndarray]  # the initial box of an object waiting for a readable frame
    last: ObjectState


class TrackingSession:
    """``start`` a sequence with its objects, ``add`` objects later, ``step`` every frame."""

    def __init__(self, tracker: Tracker, mask_generator: Optional[MaskGenerator] = None,
                 absence_threshold: Optional[float] = None) -> None:
        self.tracker = tracker
        self.mask_generator = mask_generator
        self.absence_threshold = absence_threshold
        self.slots: List[_Slot] = []
        self._tracked: List[int] = []  # tracker ids in the order they were added: the order of track()'s results

    def start(self, image: Optional[Frame], boxes: Sequence[Optional[np.ndarray]],
              masks: Optional[Sequence[Optional[FrameMask]]] = None) -> List[ObjectState]:
        """New sequence. ``boxes``: xyxy per object, None for an empty initial region; ``masks``: the initial
        masks when the toolkit sent masks (the answer repeated if the next frame cannot be read)."""
        self.tracker.reset()
        self.slots = []
        self._tracked = []
        return self.add(image, boxes, masks)

    def add(self, image: Optional[Frame], boxes: Sequence[Optional[np.ndarray]],
            masks: Optional[Sequence[Optional[FrameMask]]] = None) -> List[ObjectState]:
        """Objects that start in this frame; returns their first answers (the given regions)."""
        out = []
        for i, box in enumerate(boxes):
            mask = masks[i] if masks is not None else None
            if box is None or not bx.is_valid(box):
                slot = _Slot(None, None, ABSENT)
            else:
                box = np.asarray(box, dtype=np.float64)
                slot = _Slot(None, box, ObjectState(box, 1.0, mask))
                if image is not None:
                    self._begin(slot, image)
            self.slots.append(slot)
            out.append(slot.last)
        return out

    def _begin(self, slot: _Slot, image: Frame) -> None:
        """Start tracking a slot's object; one that cannot start is reported absent from then on."""
        try:
            slot.tracker_id = self.tracker.add_object(image, slot.pending_box)
            self._tracked.append(slot.tracker_id)
        except Exception:  # noqa: BLE001 - one object must not end the session of the others
            log.exception("cannot start tracking the object in %s; reporting it absent", slot.pending_box)
            slot.last = ABSENT
        slot.pending_box = None

    def step(self, image: Optional[Frame]) -> List[ObjectState]:
        """Answers for every object; ``image`` None (unreadable frame) repeats the last answers."""
        if image is None:
            return [s.last for s in self.slots]
        for slot in self.slots:
            if slot.pending_box is not None:
                self._begin(slot, image)
        live = [s for s in self.slots if s.tracker_id is not None]
        if live:
            results: Dict[int, TrackResult] = dict(zip(self._tracked, self.tracker.track(image)))
            states = [ObjectState(results[s.tracker_id].box_xyxy, results[s.tracker_id].confidence) for s in live]
            if self.absence_threshold is not None:  # absent for this frame; the tracker keeps its state
                states = [st if st.confidence >= self.absence_threshold else ObjectState(None, st.confidence)
                          for st in states]
            shown = [st for st in states if st.box is not None]
            if self.mask_generator is not None and shown:
                masks = self.mask_generator(image, np.stack([st.box for st in shown]),
                                            np.array([st.confidence for st in shown]))
                for st, mask in zip(shown, masks):
                    st.mask = mask
            for slot, state in zip(live, states):
                slot.last = state
        return [s.last for s in self.slots]
