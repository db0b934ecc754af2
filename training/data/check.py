"""``python -m training check-data``: what is wrong in a dataset tree, grouped by sequence.

The reader's own problems (bad annotation lines, empty boxes, line counts, bad flag files) come from the
same parsing code that training uses; this module adds what needs the frame files: missing frames, frame
files without annotation lines, unreadable images and boxes entirely outside the image. A first line says
what the reader keeps: frames with a box, absent frames, and the annotations it drops (COCO's crowd and
degenerate boxes, boxes without area).
"""
from __future__ import annotations

import collections
import logging
import os
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from vot_lorat.frames.reading import IMAGE_EXTENSIONS, natural_key, read_rgb

from ..config import DataSource
from .annotations import COUNT, EMPTY_BOX, MISSING_FRAME, OUTSIDE, UNREADABLE, Problem
from .folders import log as reader_log
from .registry import build_dataset
from .sequence import FileSequence, SequenceDataset, valid_boxes


def _image_size(path: str) -> Tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    with Image.open(path) as image:
        return image.size


class _Checker:
    """Checks sequences one by one; single-image datasets share image folders, whose listings and image
    sizes are cached (per-sequence folders of video datasets are not, to keep memory flat)."""

    def __init__(self, video: bool, images: bool) -> None:
        self.video = video
        self.images = images
        self.listings: Dict[str, Optional[Set[str]]] = {}
        self.sizes: Dict[str, Optional[Tuple[int, int]]] = {}

    def _listing(self, folder: str) -> Optional[Set[str]]:
        if folder in self.listings:
            return self.listings[folder]
        listing = set(os.listdir(folder)) if os.path.isdir(folder) else None
        if not self.video:
            self.listings[folder] = listing
        return listing

    def _present(self, seq: FileSequence, problems: List[Problem]) -> np.ndarray:
        """Which frame files exist; reports missing ones and, for videos, image files beyond the annotation."""
        present = np.zeros(seq.num_frames, dtype=bool)
        by_folder: Dict[str, List[int]] = collections.defaultdict(list)
        for t, path in enumerate(seq.frame_paths):
            by_folder[os.path.dirname(path)].append(t)
        for folder, frames in by_folder.items():
            listing = self._listing(folder)
            if listing is None:
                problems.append(Problem(seq.name, MISSING_FRAME, folder, f"frame folder missing ({len(frames)} "
                                                                         f"frames)"))
                continue
            names = set()
            for t in frames:
                name = os.path.basename(seq.frame_paths[t])
                names.add(name)
                present[t] = name in listing
                if not present[t]:
                    what = f"frame {t} (annotation line {t + 1})" if self.video else "image"
                    problems.append(Problem(seq.name, MISSING_FRAME, seq.frame_paths[t], f"{what} does not exist"))
            if not self.video:  # a shared image folder: other images belong to other sequences
                continue
            extra = sorted((f for f in listing - names if f.lower().endswith(IMAGE_EXTENSIONS)), key=natural_key)
            if extra:
                problems.append(Problem(seq.name, COUNT, folder, f"{len(extra)} image file(s) have no annotation "
                                                                 f"line ({extra[0]} ...): the annotation is shorter "
                                                                 f"than the frame folder"))
        return present

    def _size(self, path: str, problems: List[Problem], name: str) -> Optional[Tuple[int, int]]:
        if path in self.sizes:
            return self.sizes[path]
        try:
            if self.images:
                height, width = read_rgb(path).shape[:2]
                size: Optional[Tuple[int, int]] = (width, height)
            else:
                size = _image_size(path)
        except OSError as exc:
            problems.append(Problem(name, UNREADABLE, path, str(exc) or "cannot be decoded"))
            size = None
        if not self.video:
            self.sizes[path] = size
        return size

    def sequence(self, seq: FileSequence) -> List[Problem]:
        problems: List[Problem] = []
        present = self._present(seq, problems)
        sizes = np.full((seq.num_frames, 2), np.nan)
        frames = np.flatnonzero(present)
        if self.images:
            for t in frames:
                size = self._size(seq.frame_paths[t], problems, seq.name)
                if size is not None:
                    sizes[t] = size
        elif len(frames):  # the first frame's size stands for the sequence
            size = self._size(seq.frame_paths[frames[0]], problems, seq.name)
            if size is not None:
                sizes[:] = size
        b = seq.boxes
        known = valid_boxes(b) & np.isfinite(sizes).all(axis=1)
        outside = known & ((b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= sizes[:, 0]) | (b[:, 1] >= sizes[:, 1]))
        for t in np.flatnonzero(outside):
            line = f" (annotation line {t + 1})" if self.video else ""
            problems.append(Problem(seq.name, OUTSIDE, seq.frame_paths[t],
                                    f"box x1,y1,x2,y2 = {','.join(f'{v:g}' for v in b[t])}{line} lies entirely "
                                    f"outside the {sizes[t, 0]:.0f}x{sizes[t, 1]:.0f} image"))
        return problems


def check_dataset(dataset: SequenceDataset, images: bool = False) -> List[Problem]:
    """Every problem of a dataset of image files. ``images`` decodes every frame (slow); otherwise only the
    first frame's header is read, and its size stands for the whole sequence."""
    problems = list(getattr(dataset, "problems", []))
    checker = _Checker(dataset.video, images)
    for index in tqdm(range(len(dataset)), desc=f"checking {dataset.name}", unit="seq", disable=None):
        seq = dataset[index]
        if not isinstance(seq, FileSequence):
            raise ValueError(f"check-data reads datasets of image files; {dataset.name} is not one")
        problems += checker.sequence(seq)
    return problems


def format_report(dataset: SequenceDataset, problems: List[Problem], max_per_sequence: int = 10) -> str:
    """Problems grouped by sequence (at most ``max_per_sequence`` lines each), then a count per kind."""
    by_sequence: Dict[str, List[Problem]] = collections.defaultdict(list)
    for p in problems:
        by_sequence[p.sequence].append(p)
    lines = []
    for name, items in by_sequence.items():
        lines.append(f"{name}: {len(items)} problem(s)")
        items = sorted(items, key=lambda p: natural_key(p.where))  # by file, then line
        lines += [f"  [{p.kind}] {p.where}: {p.detail}" for p in items[:max_per_sequence]]
        if len(items) > max_per_sequence:
            lines.append(f"  ... and {len(items) - max_per_sequence} more")
    if not problems:
        lines.append(f"{dataset.name}: no problems in {len(dataset)} sequences")
    else:
        counts = collections.Counter(p.kind for p in problems)
        lines.append(f"{dataset.name}: {len(problems)} problem(s) in {len(by_sequence)} sequence(s) of "
                     f"{len(dataset)}: " + ", ".join(f"{n} {kind}" for kind, n in counts.most_common()))
    return "\n".join(lines)


def describe(dataset: SequenceDataset, problems: List[Problem]) -> str:
    """What the reader keeps and drops: frames with a box and absent (or unannotated) frames of a video
    dataset, degenerate boxes dropped (no area, not marked absent); objects of a single-image dataset and its
    crowd and degenerate annotations left out."""
    if not dataset.video:
        images = len({path for i in range(len(dataset)) for path in dataset[i].frame_paths})
        dropped = getattr(dataset, "dropped", {})
        return (f"{dataset.name}: {len(dataset)} objects in {images} images; dropped: "
                f"{dropped.get('crowd', 0)} crowd, {dropped.get('degenerate', 0)} degenerate (no width or height)")
    tracks = [dataset[i].boxes for i in range(len(dataset))]
    frames = sum(len(t) for t in tracks)
    if not dataset.ground_truth:
        return (f"{dataset.name}: {len(tracks)} sequences, {frames} frames; a test split: only each sequence's "
                f"first frame has a box")
    with_box = sum(int(valid_boxes(t).sum()) for t in tracks)
    degenerate = sum(p.kind == EMPTY_BOX for p in problems)
    return (f"{dataset.name}: {len(tracks)} sequences, {frames} frames: {with_box} with a box, "
            f"{frames - with_box} absent or unannotated; dropped: {degenerate} degenerate boxes (no area, not "
            f"marked absent)")


def run_check(source: DataSource, images: bool = False, max_per_sequence: int = 10) -> int:
    """Prints the report; the exit status is 0 for a clean dataset and 1 when problems were found."""
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)  # the reader's warning summarises what the report lists in full
    try:
        dataset = build_dataset(source)
    finally:
        reader_log.setLevel(level)
    problems = check_dataset(dataset, images)
    print(describe(dataset, problems))
    print(format_report(dataset, problems, max_per_sequence))
    return 1 if problems else 0
