"""Sequences of a VOT toolkit workspace (``<workspace>/sequences``), one OPE sequence per object.

Layout: what ``vot initialize`` downloads, or what ``python -m training make-vot-sequences`` writes:
``ROOT/list.txt`` and ``ROOT/<sequence>/`` with a ``sequence`` file, the frames (``color/%08d.jpg``)
and ``groundtruth.txt`` (one object) or ``groundtruth_<id>.txt`` (several); regions are rectangles,
polygons or masks (``m...``). The toolkit's own loader reads them. Each object becomes a sequence named
``<sequence>_<id>`` whose box per frame is the region's bounding box; empty regions (object hidden or
out of view) and unknown frames are unannotated. Objects not visible in the first frame are skipped,
since one-pass evaluation starts from the first frame.
"""
from __future__ import annotations

import os
from typing import List

import numpy as np

from vot_lorat.masks.regions import tight_box

from .sequence import FileSequence, ListDataset, Sequence


def _box(region) -> np.ndarray:
    from vot.region import Mask, Rectangle, Special

    if isinstance(region, Special) or region.is_empty():
        return np.full(4, np.nan)
    if isinstance(region, Rectangle):
        return np.array([region.x, region.y, region.x + region.width, region.y + region.height], dtype=np.float64)
    if isinstance(region, Mask):
        found = tight_box(region.mask > 0, region.offset)
        return np.full(4, np.nan) if found is None else found
    points = np.array(region.points(), dtype=np.float64).reshape(-1, 2)  # polygon
    return np.concatenate([points.min(0), points.max(0)])


class VOTSequences(ListDataset):
    kind = "vot"

    def __init__(self, root: str, split: str = "all") -> None:
        from vot.dataset import load_sequence

        if split != "all":
            raise ValueError(f"VOT sequence folders have one split, 'all' (got {split!r})")
        listing = os.path.join(root, "list.txt")
        if not os.path.isfile(listing):
            raise FileNotFoundError(f"{listing} not found: expected the sequences folder of a VOT workspace")
        with open(listing) as f:
            names = [line.strip() for line in f if line.strip()]
        sequences: List[Sequence] = []
        for name in names:
            seq = load_sequence(os.path.join(root, name))
            paths = [seq.frame(i).filename() for i in range(len(seq))]
            for obj in sorted(seq.objects(), key=str):
                boxes = np.stack([_box(r) for r in seq.object(obj)])
                if np.isfinite(boxes[0]).all():
                    sequences.append(FileSequence(f"{name}_{obj}", paths, boxes))
        folder = os.path.abspath(root)
        if os.path.basename(folder) == "sequences":  # name it after the workspace
            folder = os.path.dirname(folder)
        super().__init__(f"vot-{os.path.basename(folder)}", sequences)
