"""Box maths shared by the tracker and training. Boxes are xyxy in continuous coordinates, where pixel
``i`` covers ``[i, i+1)``, as in the official LoRAT code; arrays may carry any leading batch shape."""
from __future__ import annotations

import numpy as np

RASTER_EPS = 1e-4  # floor(x2 + 1 - 1e-4): a box ending exactly on a pixel edge does not cover the next pixel


def xywh_to_xyxy(box) -> np.ndarray:
    """``[x, y, w, h]`` -> ``[x, y, x+w, y+h]`` with no -1, as the official code reads initial boxes."""
    b = np.asarray(box, dtype=np.float64)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:4]], axis=-1)


def xyxy_to_xywh(box) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64)
    return np.concatenate([b[..., :2], b[..., 2:4] - b[..., :2]], axis=-1)


def rasterize(box) -> np.ndarray:
    """Pixel index bounds (end-exclusive) of every pixel a continuous box touches."""
    b = np.asarray(box, dtype=np.float64)
    lo = np.floor(b[..., :2])
    hi = np.floor(b[..., 2:4] + 1 - RASTER_EPS)
    return np.concatenate([lo, hi], axis=-1).astype(np.int64)


def clip(box, width: float, height: float) -> np.ndarray:
    # np.minimum / np.maximum give np.clip's values at a tenth of its cost per call (the tracker clips every frame)
    return np.minimum(np.maximum(np.asarray(box, dtype=np.float64), 0.0), [width, height, width, height])


def move_into(box, width: float, height: float) -> np.ndarray:
    """The box shifted (and, where it is larger, shrunk) so that it lies inside a ``width`` x ``height`` frame."""
    b = np.asarray(box, dtype=np.float64)
    s = np.minimum(size(b), [width, height])
    lo = np.clip(b[..., :2], 0, np.array([width, height]) - s)
    return np.concatenate([lo, lo + s], axis=-1)


def is_valid(box) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64)
    return (b[..., 0] < b[..., 2]) & (b[..., 1] < b[..., 3])


def centre(box) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64)
    return (b[..., :2] + b[..., 2:4]) / 2


def size(box) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64)
    return b[..., 2:4] - b[..., :2]


def from_centre_size(c, s) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    return np.concatenate([c - s / 2, c + s / 2], axis=-1)


def enlarge_to_min_size(box, min_size: float) -> np.ndarray:
    """Raise width and height to at least ``min_size`` around the centre."""
    return from_centre_size(centre(box), np.maximum(size(box), min_size))


def area(box) -> np.ndarray:
    s = np.clip(size(box), 0, None)
    return s[..., 0] * s[..., 1]


def iou(a, b) -> np.ndarray:
    """Elementwise IoU of xyxy boxes; two empty boxes give 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    lt = np.maximum(a[..., :2], b[..., :2])
    rb = np.minimum(a[..., 2:4], b[..., 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def discrete_xywh(box) -> np.ndarray:
    """The pixel-covering box the reference reports to VOT: rasterised xyxy, then xywh."""
    r = rasterize(box)
    return np.concatenate([r[..., :2], r[..., 2:4] - r[..., :2]], axis=-1).astype(np.float64)
