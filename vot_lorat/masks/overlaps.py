"""Making the masks of several objects disjoint, as VOTS scores them, without erasing any object."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .regions import PixelRect, intersection


def resolve_overlaps(masks: Sequence[np.ndarray], priority: Sequence[float],
                     logits: Optional[Sequence[Optional[np.ndarray]]] = None,
                     rects: Optional[Sequence[Optional[PixelRect]]] = None, inplace: bool = False) -> List[np.ndarray]:
    """Make masks disjoint: each pixel claimed by several masks goes to one claimant.

    The claimant with the highest logit there wins when ``logits`` are given (per-object (H, W) arrays;
    ``None`` is allowed for an object that claims no contested pixel), else, and on ties, the one with
    the highest ``priority``; equal priorities go to the lower index. Pixels claimed once are untouched.
    With ``rects`` (where each mask's pixels lie, None for an empty mask) only the rectangles where two
    of them meet are examined. Masks are copied before they change unless ``inplace``.
    """
    n = len(masks)
    if len(priority) != n or (logits is not None and len(logits) != n):
        raise ValueError(f"need one priority (and logits entry) per mask: {n} masks, {len(priority)} priorities")
    if n < 2:
        return list(masks)
    shape = masks[0].shape
    if any(m.shape != shape for m in masks):
        raise ValueError(f"masks differ in shape: {sorted({m.shape for m in masks})}")
    out = list(masks)
    if rects is None:
        areas = [((0, 0, shape[1], shape[0]), list(range(n)))]
    else:
        shared = {r for i, a in enumerate(rects) for b in rects[i + 1:] if a is not None and b is not None
                  for r in [intersection(a, b)] if r is not None}
        # every mask that can claim a pixel of the rectangle takes part, so each pixel's winner is decided
        # among all its claimants, whichever rectangle examines it first
        areas = [(r, [k for k, own in enumerate(rects) if own is not None and intersection(r, own)])
                 for r in sorted(shared)]
    copied = [inplace] * n
    prio_all = np.asarray(priority, dtype=np.float64)
    for (x1, y1, x2, y2), members in areas:
        claims_per_pixel = sum(out[k][y1:y2, x1:x2].astype(np.int32) for k in members)
        rows, cols = np.nonzero(claims_per_pixel > 1)
        if rows.size == 0:
            continue
        rows, cols = rows + y1, cols + x1
        claims = np.stack([out[k][rows, cols] for k in members]).astype(bool)  # (members, contested pixels)
        prio = np.broadcast_to(prio_all[members][:, None], claims.shape)
        score = prio
        if logits is not None:
            score = np.full(claims.shape, -np.inf)
            for j in np.flatnonzero(claims.any(axis=1)):
                if logits[members[j]] is None:
                    raise ValueError(f"mask {members[j]} claims contested pixels but has no logits")
                score[j] = logits[members[j]][rows, cols]
        score = np.where(claims, score, -np.inf)
        best = claims & (score == score.max(axis=0))
        winner = np.argmax(np.where(best, prio, -np.inf), axis=0)
        for j, k in enumerate(members):
            if claims[j].any():
                if not copied[k]:
                    out[k], copied[k] = out[k].copy(), True
                out[k][rows, cols] = winner == j
    return out


def keep_every_object(resolved: Sequence[np.ndarray], rects: Sequence[Optional[PixelRect]],
                      claimed: Optional[Sequence[np.ndarray]] = None) -> List[np.ndarray]:
    """Ties must not erase an object: one that claimed pixels but was left none (every pixel of it went to
    objects that won it, as when two objects have the same box) takes an equal share of its region back.

    The rule: the object's region (its ``rects`` entry) is cut across its longer side into as many equal strips
    as objects claim pixels of it, and the object takes the strip at its place among those objects in object
    order; the others keep the rest. Two objects with one box thus split it in halves, the first object
    taking the left (or top) half. ``resolved``: the disjoint masks; ``claimed``: each object's mask before
    overlaps were resolved (None: each object claimed its whole rectangle, as box masks do); ``rects``: where
    each claimed mask lies (None or an empty rectangle for an object with no pixels). Masks that change are
    copied first.
    """
    out = list(resolved)

    def claim(k: int, r: PixelRect) -> np.ndarray:
        """Object k's claimed pixels inside rectangle r, as an array of r's shape."""
        if claimed is not None:
            return claimed[k][r[1]:r[3], r[0]:r[2]]
        window = np.zeros((r[3] - r[1], r[2] - r[0]), dtype=bool)
        cut = intersection(rects[k], r) if rects[k] is not None else None
        if cut is not None:
            window[cut[1] - r[1]:cut[3] - r[1], cut[0] - r[0]:cut[2] - r[0]] = True
        return window

    for i, rect in enumerate(rects):
        if rect is None or rect[0] >= rect[2] or rect[1] >= rect[3] or out[i][rect[1]:rect[3], rect[0]:rect[2]].any():
            continue
        own = claim(i, rect)
        if not own.any():
            continue
        sharers = [k for k, r in enumerate(rects)
                   if k == i or (r is not None and intersection(r, rect) is not None and (claim(k, rect) & own).any())]
        place, n = sharers.index(i), len(sharers)
        x1, y1, x2, y2 = rect
        strip = np.zeros_like(own)
        if x2 - x1 >= y2 - y1:
            lo, hi = (x2 - x1) * place // n, (x2 - x1) * (place + 1) // n
            strip[:, lo:hi] = own[:, lo:hi]
        else:
            lo, hi = (y2 - y1) * place // n, (y2 - y1) * (place + 1) // n
            strip[lo:hi] = own[lo:hi]
        for k in sharers:
            out[k] = out[k].copy()
            out[k][y1:y2, x1:x2][strip] = k == i
    return out
