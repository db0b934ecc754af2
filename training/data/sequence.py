"""What every dataset reader produces: sequences of frames with one annotated box track each."""
from __future__ import annotations

import abc
from typing import List, Sequence as Seq

import numpy as np

from vot_lorat.frames.reading import read_rgb
from vot_lorat.tracking import box as bx


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """Frames whose box is annotated, finite and non-empty: where the target can be sampled."""
    finite = np.isfinite(boxes).all(axis=1)
    out = np.zeros(len(boxes), dtype=bool)
    out[finite] = bx.is_valid(boxes[finite])
    return out


class Sequence(abc.ABC):
    """A sequence: ``boxes`` (T, 4) xyxy float64 (NaN where absent or unannotated) and its frames."""

    name: str
    boxes: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.boxes)

    @property
    def visible(self) -> np.ndarray:
        return valid_boxes(self.boxes)

    @abc.abstractmethod
    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 RGB."""


class FileSequence(Sequence):
    """Frames stored as image files."""

    def __init__(self, name: str, frame_paths: Seq[str], boxes: np.ndarray) -> None:
        if len(frame_paths) != len(boxes):
            raise ValueError(f"{name}: {len(frame_paths)} frames but {len(boxes)} boxes")
        self.name = name
        self.frame_paths = list(frame_paths)
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

    def frame(self, index: int) -> np.ndarray:
        return read_rgb(self.frame_paths[index])


class SequenceDataset(abc.ABC):
    """A named collection of sequences; ``video=False`` marks single-image datasets such as COCO, and
    ``ground_truth=False`` test splits that give only the first frame's box (their results are scored by the
    benchmark's server)."""

    name: str = "dataset"
    video: bool = True
    ground_truth: bool = True

    @abc.abstractmethod
    def __len__(self) -> int:
        ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> Sequence:
        ...


class ListDataset(SequenceDataset):
    """Sequences already loaded in memory."""

    def __init__(self, name: str, sequences: List[Sequence], video: bool = True) -> None:
        self.name = name
        self.sequences = sequences
        self.video = video

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> Sequence:
        return self.sequences[index]


def xywh_lines_to_xyxy(rows: np.ndarray) -> np.ndarray:
    """Annotation rows ``x,y,w,h`` -> xyxy ``[x, y, x+w, y+h]`` (no half-pixel shift, as the official LoRAT
    code converts them); rows with a non-positive or non-finite size become NaN (absent)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    out = bx.xywh_to_xyxy(rows)
    bad = ~np.isfinite(rows).all(axis=1) | (rows[:, 2] <= 0) | (rows[:, 3] <= 0)
    out[bad] = np.nan
    return out
