"""Full-frame masks and the pixel rectangles they lie in: from the toolkit's cropped masks, from boxes, back to
boxes and back to the toolkit's cropped form."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..tracking import box as bx

PixelRect = Tuple[int, int, int, int]  # x1, y1, x2, y2 in whole pixels, end-exclusive


@dataclass(frozen=True)
class FrameMask:
    """A full-frame bool mask and the rectangle its pixels lie in (so nobody scans the whole frame for them)."""

    mask: np.ndarray
    rect: Optional[PixelRect]


def intersection(a: PixelRect, b: PixelRect) -> Optional[PixelRect]:
    """The rectangle two rectangles share; None when they do not overlap."""
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x1, y1, x2, y2) if x1 < x2 and y1 < y2 else None


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


def box_rect(box, height: int, width: int) -> PixelRect:
    """The pixels a box covers (the same rasterisation the reported rectangles use), inside the frame."""
    x1, y1, x2, y2 = (int(v) for v in bx.rasterize(bx.clip(box, width, height)))
    return x1, y1, x2, y2


def box_mask(box, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    x1, y1, x2, y2 = box_rect(box, height, width)
    mask[y1:y2, x1:x2] = True
    return mask


def crop_to_content(mask: np.ndarray, rect: Optional[PixelRect] = None) -> Tuple[np.ndarray, int, int]:
    """The bounding crop of a mask as C-contiguous uint8 and its offset (what ``trax.Mask.create`` takes),
    searched inside ``rect`` when given; an empty mask gives a 1x1 zero mask at (0, 0), which the
    toolkit reads as "absent"."""
    x0, y0, x1, y1 = rect if rect is not None else (0, 0, mask.shape[1], mask.shape[0])
    box = tight_box(mask[y0:y1, x0:x1], (x0, y0))
    if box is None:
        return np.zeros((1, 1), dtype=np.uint8), 0, 0
    x1, y1, x2, y2 = (int(v) for v in box)
    return np.ascontiguousarray(mask[y1:y2, x1:x2], dtype=np.uint8), x1, y1
