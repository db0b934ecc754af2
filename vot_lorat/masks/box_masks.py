"""Masks without a segmentation model: each object's box, filled."""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from .overlaps import keep_every_object
from .regions import FrameMask, box_rect, intersection


class BoxMaskGenerator:
    """Masks without a segmentation model: each box filled, overlaps given to the more confident object
    (rectangle arithmetic: every mask is its box minus the boxes of the more confident objects), and no object
    erased by a tie (:func:`keep_every_object`)."""

    def __call__(self, image: np.ndarray, boxes: np.ndarray, confidences: np.ndarray) -> List[FrameMask]:
        h, w = image.shape[:2]
        rects = [box_rect(b, h, w) for b in boxes]
        order = np.argsort(-np.asarray(confidences, dtype=np.float64), kind="stable")
        masks: List[Optional[np.ndarray]] = [None] * len(rects)
        for rank, i in enumerate(order):
            x1, y1, x2, y2 = rects[i]
            mask = np.zeros((h, w), dtype=bool)
            mask[y1:y2, x1:x2] = True
            for j in order[:rank]:
                cut = intersection(rects[i], rects[j])
                if cut is not None:
                    mask[cut[1]:cut[3], cut[0]:cut[2]] = False
            masks[i] = mask
        masks = keep_every_object(masks, rects)
        return [FrameMask(m, rect) for m, rect in zip(masks, rects)]
