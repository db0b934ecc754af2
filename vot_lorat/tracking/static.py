"""The static baseline: every object stays where it started. It shows what a tracker must beat."""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from . import box as bx
from .tracker import TrackResult


class StaticTracker:
    """A :class:`vot_lorat.session.Tracker` that reports each initial box forever."""

    def __init__(self) -> None:
        self.objects: Dict[int, np.ndarray] = {}
        self._next_id = 0

    def reset(self) -> None:
        self.objects.clear()

    def add_object(self, image: np.ndarray, box_xyxy: np.ndarray) -> int:
        obj_id = self._next_id
        self._next_id += 1
        self.objects[obj_id] = bx.clip(box_xyxy, image.shape[1], image.shape[0])
        return obj_id

    def track(self, image: np.ndarray) -> List[TrackResult]:
        return [TrackResult(box.copy(), 1.0) for box in self.objects.values()]
