"""Datasets whose sequences are folders of frame files: what the LaSOT, GOT-10k, TrackingNet and custom
readers share."""
from __future__ import annotations

import collections
import logging
import os
from typing import List, Optional

import numpy as np

from .annotations import Problem, read_lines
from .sequence import FileSequence, SequenceDataset

log = logging.getLogger(__name__)


def read_list(path: str) -> List[str]:
    """Non-empty lines of a list file (sequence names or indices)."""
    return [line.strip() for line in read_lines(path) if line.strip()]


def count_numbered(folder: str, first: int) -> int:
    """Frames in a folder of ``<number>.jpg`` files: the highest number - ``first`` + 1, so that a missing
    frame stays missing (check-data reports it) instead of shifting every later frame."""
    if not os.path.isdir(folder):
        return 0
    numbers = [int(f[:-4]) for f in os.listdir(folder) if f.lower().endswith(".jpg") and f[:-4].isdigit()]
    return max(numbers) - first + 1 if numbers else 0


class FolderDataset(SequenceDataset):
    """Sequences kept as (name, frame folder, boxes). Frame paths are built when a sequence is asked for:
    LaSOT has 3.5M frames and TrackingNet 14M, too many Python strings to hold in every DataLoader worker.
    ``problems`` lists what the reader had to skip or treat as unannotated."""

    kind = ""  # the registry's name for the reader, for the check-data hint
    frame_pattern = "{:08d}.jpg"  # file name of frame i is frame_pattern.format(i + first_frame)
    first_frame = 1

    def __init__(self, root: str, split: str) -> None:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{self.kind} dataset folder {root} does not exist")
        self.name = f"{self.kind}-{split}"
        self.root = root
        self.split = split
        self.names: List[str] = []
        self.folders: List[str] = []
        self.tracks: List[np.ndarray] = []
        self.files: List[Optional[List[str]]] = []
        self.problems: List[Problem] = []

    def add(self, name: str, folder: str, boxes: np.ndarray, files: Optional[List[str]] = None) -> None:
        """A sequence; ``files`` names its frames when they are not numbered with ``frame_pattern``."""
        self.names.append(name)
        self.folders.append(folder)
        self.tracks.append(boxes)
        self.files.append(files)

    def finish(self) -> None:
        """Fail when nothing was found; otherwise warn once about the problems met on the way."""
        if not self.names:
            first = f" ({self.problems[0].where}: {self.problems[0].detail})" if self.problems else ""
            raise ValueError(f"{self.kind}: no sequences for split {self.split!r} under {self.root}{first}; "
                             f"the expected layout is described in {type(self).__module__}")
        if self.problems:
            kinds = collections.Counter(p.kind for p in self.problems)
            first = self.problems[0]
            log.warning("%s: %d problem(s) in %d sequence(s) (%s), the frames concerned are treated as "
                        "unannotated; first: %s: %s. List them all with: python -m training check-data %s %s "
                        "--split %s", self.name, len(self.problems), len({p.sequence for p in self.problems}),
                        ", ".join(f"{n} {k}" for k, n in kinds.items()), first.where, first.detail, self.kind,
                        self.root, self.split)

    def frame_paths(self, index: int) -> List[str]:
        files = self.files[index]
        if files is None:
            files = [self.frame_pattern.format(i + self.first_frame) for i in range(len(self.tracks[index]))]
        return [os.path.join(self.folders[index], f) for f in files]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> FileSequence:
        return FileSequence(self.names[index], self.frame_paths(index), self.tracks[index])
