"""Our own sequences, in the LaSOT / GOT-10k style.

Layout::

    ROOT/
      list.txt                  optional: the sequence folder names to read, one per line;
                                without it every subfolder that has a groundtruth.txt is a sequence
      <sequence>/
        groundtruth.txt         one line per frame: x,y,w,h
        0001.jpg 0002.jpg ...   the frames, directly in the folder ...
        img/0001.jpg ...        ... or in img/ (used when it exists)

Frames are the ``.jpg``, ``.jpeg``, ``.png`` and ``.bmp`` files (any case), in natural order of their
names (``frame2.png`` before ``frame10.png``); the Nth line of groundtruth.txt annotates the Nth frame.

A line is ``x,y,w,h`` in pixels: x, y the top-left corner, w, h the size, so the box covers
``[x, x+w) x [y, y+h)`` with pixel i covering ``[i, i+1)``. Values may be separated by commas, tabs or
spaces and may have decimals. The target is absent in that frame when the line is ``0,0,0,0``, ``NaN``
(or four NaNs) or empty. Blank lines at the end of the file are ignored: write ``0,0,0,0`` for absent
final frames. A malformed line, or a box of zero or negative size other than ``0,0,0,0``, makes the
frame unannotated and is reported (a warning when training; ``python -m training check-data custom ROOT``
lists them all). With fewer lines than frames the last frames are unannotated, with more the extra lines
are ignored; both are reported. There is one split, ``all``.
"""
from __future__ import annotations

import os
from typing import List

from vot_lorat.frames.reading import list_frames, natural_key

from .annotations import MISSING_FILE, MISSING_FRAME, Problem, fit_track, read_boxes
from .folders import FolderDataset, read_list


class CustomDataset(FolderDataset):
    kind = "custom"

    def __init__(self, root: str, split: str = "all") -> None:
        if split != "all":
            raise ValueError(f"custom datasets have one split, 'all' (got {split!r}); keep training and test "
                             f"sequences in separate dataset folders")
        super().__init__(root, split)
        for name in self._sequence_names():
            folder = os.path.join(root, name)
            gt = os.path.join(folder, "groundtruth.txt")
            if not os.path.isfile(gt):
                self.problems.append(Problem(name, MISSING_FILE, gt, "listed in list.txt but missing; sequence "
                                                                     "skipped"))
                continue
            frame_dir = os.path.join(folder, "img") if os.path.isdir(os.path.join(folder, "img")) else folder
            files = list_frames(frame_dir)
            if not files:
                self.problems.append(Problem(name, MISSING_FRAME, frame_dir, "no frames; sequence skipped"))
                continue
            rows, problems = read_boxes(gt, name)
            boxes, more = fit_track(rows, gt, name, frames=len(files))
            self.problems += problems + more
            self.add(name, frame_dir, boxes, files)
        self.finish()

    def _sequence_names(self) -> List[str]:
        listing = os.path.join(self.root, "list.txt")
        if os.path.isfile(listing):
            return read_list(listing)
        return sorted((d for d in os.listdir(self.root)
                       if os.path.isfile(os.path.join(self.root, d, "groundtruth.txt"))), key=natural_key)
