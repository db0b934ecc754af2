"""Full-frame masks: from the toolkit's cropped masks, from boxes, and back to boxes."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from . import box as bx


def pad_mask(crop: np.ndarray, offset: Tuple[int, int], height: int, width: int) -> np.ndarray:
    """A toolkit mask (its bounding crop at ``offset``) as a (height, width) bool mask; parts outside the
    frame are dropped. The toolkit's own ``array(True)`` pads only top-left (vot-toolkit issue 98)."""
    full = np.zeros((height, width), dtype=bool)
    x0, y0 = int(offset[0]), int(offset[1])
    h, w = crop.shape[:2]
    fx1, fy1, fx2, fy2 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if fx1 < fx2 and fy1 < fy2:
        full[fy1:fy2, fx1:fx2] = crop[fy1 - y0:fy2 - y0, fx1 - x0:fx2 - x0] > 0
    return full


def tight_box(mask: np.ndarray, offset: Tuple[int, int] = (0, 0)) -> Optional[np.ndarray]:
    """xyxy of the non-zero pixels, ``[min_col, min_row, max_col + 1, max_row + 1]`` (+ offset); None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    x0, y0 = offset
    return np.array([cols[0] + x0, rows[0] + y0, cols[-1] + 1 + x0, rows[-1] + 1 + y0], dtype=np.float64)


def box_mask(box, height: int, width: int) -> np.ndarray:
    """The pixels a box covers (the same rasterisation the reported rectangles use)."""
    mask = np.zeros((height, width), dtype=bool)
    x1, y1, x2, y2 = bx.rasterize(bx.clip(box, width, height))
    mask[max(y1, 0):y2, max(x1, 0):x2] = True
    return mask


def crop_to_content(mask: np.ndarray) -> Tuple[np.ndarray, int, int]:
    """The bounding crop of a mask as C-contiguous uint8 and its offset (what ``trax.Mask.create`` takes);
    an empty mask gives a 1x1 zero mask at (0, 0), which the toolkit reads as "absent"."""
    box = tight_box(mask)
    if box is None:
        return np.zeros((1, 1), dtype=np.uint8), 0, 0
    x1, y1, x2, y2 = (int(v) for v in box)
    return np.ascontiguousarray(mask[y1:y2, x1:x2], dtype=np.uint8), x1, y1


def resolve_overlaps(masks: Sequence[np.ndarray], priority: Sequence[float],
                     logits: Optional[Sequence[Optional[np.ndarray]]] = None) -> List[np.ndarray]:
    """Make masks disjoint: each pixel claimed by several masks goes to one claimant.

    The claimant with the highest logit there wins when ``logits`` are given (per-object (H, W) arrays;
    ``None`` is allowed for an object that claims no contested pixel), else, and on ties, the one with
    the highest ``priority``; equal priorities go to the lower index. Pixels claimed once are untouched,
    and masks without contested pixels are returned as given.
    """
    n = len(masks)
    if len(priority) != n or (logits is not None and len(logits) != n):
        raise ValueError(f"need one priority (and logits entry) per mask: {n} masks, {len(priority)} priorities")
    if n < 2:
        return list(masks)
    shape = masks[0].shape
    if any(m.shape != shape for m in masks):
        raise ValueError(f"masks differ in shape: {sorted({m.shape for m in masks})}")
    claims_per_pixel = np.zeros(shape, dtype=np.int32)
    for m in masks:
        claims_per_pixel += m
    rows, cols = np.nonzero(claims_per_pixel > 1)
    if rows.size == 0:
        return list(masks)
    claims = np.stack([m[rows, cols] for m in masks]).astype(bool)  # (n, contested pixels)
    prio = np.broadcast_to(np.asarray(priority, dtype=np.float64)[:, None], claims.shape)
    score = prio
    if logits is not None:
        score = np.full(claims.shape, -np.inf)
        for i in np.flatnonzero(claims.any(axis=1)):
            if logits[i] is None:
                raise ValueError(f"mask {i} claims contested pixels but has no logits")
            score[i] = logits[i][rows, cols]
    score = np.where(claims, score, -np.inf)
    best = claims & (score == score.max(axis=0))
    winner = np.argmax(np.where(best, prio, -np.inf), axis=0)
    out = []
    for i, m in enumerate(masks):
        if claims[i].any():
            m = m.copy()
            m[rows, cols] = winner == i
        out.append(m)
    return out


class BoxMaskGenerator:
    """Masks without a segmentation model: each box filled, overlaps given to the more confident object."""

    def __call__(self, image: np.ndarray, boxes: np.ndarray, confidences: np.ndarray) -> List[np.ndarray]:
        h, w = image.shape[:2]
        return resolve_overlaps([box_mask(b, h, w) for b in boxes], confidences)
