"""LaSOT and LaSOT extension.

Layout::

    ROOT/
      training_set.txt          sequence names of split=train, one per line (airplane-1, ...)
      testing_set.txt           the same for split=test
      airplane/
        airplane-1/
          img/00000001.jpg ...  frames, numbered from 1, eight digits
          groundtruth.txt       x,y,w,h per frame, comma separated, 1-based (the top-left pixel is 1,1)
          full_occlusion.txt    one line of comma-separated 0/1 flags, one per frame
          out_of_view.txt       the same; a frame flagged 1 in either file is absent
        ...

Boxes are read into our 0-based convention: 1 is subtracted from x and y, as the official LoRAT readers do
for LaSOT (and NFS, VastTrack). Result files go back to 1-based (``training.result_files``).

Splits: ``train`` and ``test`` read the two list files; ``all`` reads every ``<class>/<class>-<n>`` folder
that has a groundtruth.txt, which is how to read LaSOT extension (same layout, no list files).
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from vot_lorat.frames.reading import natural_key

from .annotations import MISSING_FILE, Problem, fit_track, read_boxes, read_optional_flags
from .folders import FolderDataset, read_list
from .sequence import SequenceDataset

SPLIT_FILES = {"train": "training_set.txt", "test": "testing_set.txt"}
FLAG_FILES = ("full_occlusion.txt", "out_of_view.txt")
ONE_BASED = 1.0  # LaSOT's pixel coordinates start at 1


class LaSOT(FolderDataset):
    kind = "lasot"

    def __init__(self, root: str, split: str = "train") -> None:
        super().__init__(root, split)
        for name in self._sequence_names():
            folder = os.path.join(root, name.rsplit("-", 1)[0], name)
            gt = os.path.join(folder, "groundtruth.txt")
            if not os.path.isfile(gt):
                self.problems.append(Problem(name, MISSING_FILE, gt, f"listed in the {split} split but missing; "
                                                                     f"sequence skipped"))
                continue
            rows, problems = read_boxes(gt, name)
            flags, flag_problems = read_optional_flags([os.path.join(folder, f) for f in FLAG_FILES], name)
            boxes, more = fit_track(rows, gt, name, flags=flags)
            self.problems += problems + flag_problems + more
            self.add(name, os.path.join(folder, "img"), boxes - ONE_BASED)
        self.finish()

    def _sequence_names(self) -> List[str]:
        if self.split == "all":
            classes = sorted(c for c in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, c)))
            return [seq for c in classes for seq in sorted(os.listdir(os.path.join(self.root, c)), key=natural_key)
                    if os.path.isfile(os.path.join(self.root, c, seq, "groundtruth.txt"))]
        if self.split not in SPLIT_FILES:
            raise ValueError(f"unknown LaSOT split {self.split!r}; choose train, test or all")
        path = os.path.join(self.root, SPLIT_FILES[self.split])
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"LaSOT split {self.split!r} needs {path}: the sequence names of the split, one per line "
                f"(e.g. airplane-1). Put the official list there (LaSOT's 1120 training / 280 test sequences; "
                f"pytracking ships the training list as ltr/data_specs/lasot_train_split.txt), or read every "
                f"sequence with split=all")
        return read_list(path)


def present_frames(dataset: SequenceDataset, index: int) -> Optional[np.ndarray]:
    """Where LaSOT's target is present (flagged neither fully occluded nor out of view), which tells a present
    target whose box has no area from an absent one; None for other datasets and when a flag file is
    missing."""
    if not isinstance(dataset, LaSOT):  # other readers cannot tell; their empty boxes are absences
        return None
    folder = os.path.dirname(dataset.folders[index])  # the frames are in <seq>/img
    flags, missing = read_optional_flags([os.path.join(folder, name) for name in FLAG_FILES], dataset.names[index])
    if missing:
        return None
    frames = len(dataset.tracks[index])
    absent = np.zeros(frames, dtype=bool)
    for _, flag in flags:
        absent[:min(len(flag), frames)] |= flag[:frames]
    return ~absent
