"""TrackingNet.

Layout::

    ROOT/
      TRAIN_0/ ... TRAIN_11/       training chunks (any subset may be present)
        anno/<seq>.txt             x,y,w,h per frame, comma separated
        frames/<seq>/0.jpg ...     frames numbered from 0, not zero-padded (0.jpg, 1.jpg, ..., 10.jpg)
      TEST/                        the same; anno holds the first frame's box only

Splits: ``train`` reads every TRAIN_* chunk present, or those named by ``chunks``: ``0-3`` or ``0,1,5``
(inside a ``--data`` string, where commas separate options, write ``0+1+5``); ``test`` reads TEST, whose
frames after the first are unannotated.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional

from .annotations import fit_track, read_boxes
from .folders import FolderDataset, count_numbered


def parse_chunks(spec: str) -> List[int]:
    """``0-3`` -> [0, 1, 2, 3]; ``0,1,5`` or ``0+1+5`` -> [0, 1, 5]."""
    chunks = []
    for part in re.split(r"[,+;\s]+", spec.strip()):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise ValueError(f"TrackingNet chunks={spec!r}: expected chunk numbers such as 0-3 or 0+1+5")
        first, last = int(match[1]), int(match[2] or match[1])
        chunks += range(first, last + 1)
    return sorted(set(chunks))


class TrackingNet(FolderDataset):
    kind = "trackingnet"
    frame_pattern = "{}.jpg"
    first_frame = 0

    def __init__(self, root: str, split: str = "train", chunks: Optional[str] = None) -> None:
        super().__init__(root, split)
        self.ground_truth = split != "test"
        for chunk in self._chunk_folders(chunks):
            anno = os.path.join(chunk, "anno")
            if not os.path.isdir(anno):
                raise FileNotFoundError(f"TrackingNet chunk {chunk} has no anno/ folder")
            for name in sorted(f[:-4] for f in os.listdir(anno) if f.endswith(".txt")):
                gt = os.path.join(anno, name + ".txt")
                frames = os.path.join(chunk, "frames", name)
                rows, problems = read_boxes(gt, name)
                if split == "test":
                    boxes, more = fit_track(rows, gt, name, frames=count_numbered(frames, 0), complete=False)
                else:
                    boxes, more = fit_track(rows, gt, name)
                self.problems += problems + more
                self.add(name, frames, boxes)
        self.finish()

    def _chunk_folders(self, chunks: Optional[str]) -> List[str]:
        if self.split == "test":
            if chunks is not None:
                raise ValueError("TrackingNet chunks= selects TRAIN_* chunks; split=test reads TEST")
            folders = [os.path.join(self.root, "TEST")]
        elif self.split != "train":
            raise ValueError(f"unknown TrackingNet split {self.split!r}; choose train or test")
        elif chunks is None:
            present = [int(d[6:]) for d in os.listdir(self.root) if re.fullmatch(r"TRAIN_\d+", d)]
            folders = [os.path.join(self.root, f"TRAIN_{i}") for i in sorted(present)]
            if not folders:
                raise FileNotFoundError(f"no TRAIN_<n> chunk folders in {self.root}")
        else:
            folders = [os.path.join(self.root, f"TRAIN_{i}") for i in parse_chunks(chunks)]
        for folder in folders:
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"TrackingNet folder {folder} does not exist")
        return folders
