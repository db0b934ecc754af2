"""Tracking results written the way each benchmark's toolkit or evaluation server reads them.

Inside training and evaluation every box is xyxy in 0-based continuous pixel coordinates. The files follow
each benchmark's own convention:

- ``lasot`` (LaSOT, LaSOT_ext, OTB-style toolkits): ``<seq>.txt``, one ``x,y,w,h`` line per frame, 1-based
  like LaSOT's ground truth (x and y + 1), so that the LaSOT toolkit compares like with like;
- ``got10k``: ``<seq>/<seq>_001.txt`` (``x,y,w,h``, rasterised to whole pixels as the reference writes its
  submissions) and ``<seq>/<seq>_time.txt`` (seconds per frame); a test split is packed as the zip the
  GOT-10k server takes: those folders at the zip's root;
- ``trackingnet``: ``<video>.txt`` (``x,y,w,h``, rasterised), packed flat into one zip for the server;
- ``plain`` (custom, synthetic and VOT-derived sequences): ``<seq>.txt``, ``x,y,w,h`` in our 0-based
  convention, the same as the custom dataset's ``groundtruth.txt``.

Metrics are computed on :meth:`ResultFormat.reported` boxes, exactly what the files hold, so that a
benchmark's toolkit run on the files gives the numbers we print.

Reading takes any tracker's published files (:func:`find_result_file`, :meth:`ResultFormat.read_file`): either
layout, ``<seq>.txt`` (LaSOT, OTB, TrackingNet, pytracking, OSTrack) or ``<seq>/<seq>_001.txt`` (GOT-10k), with
``x,y,w,h`` separated by commas, tabs or spaces, in the benchmark's own coordinates (1-based for LaSOT, as its
ground truth and toolkit are).
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from vot_lorat.atomic_write import write_file, write_text
from vot_lorat.tracking import box as bx

from .data.annotations import Problem, read_boxes
from .data.sequence import SequenceDataset

# where trackers put one sequence's boxes: <seq>.txt (LaSOT, OTB, TrackingNet, pytracking, OSTrack) or
# <seq>/<seq>_001.txt (GOT-10k: the first of its repeated runs)
LAYOUTS = ("{0}.txt", os.path.join("{0}", "{0}_001.txt"))


def find_result_file(folder: str, sequence: str) -> Optional[str]:
    """The result file of ``sequence`` under ``folder`` in either of the :data:`LAYOUTS`; None when there is
    none."""
    for layout in LAYOUTS:
        path = os.path.join(folder, layout.format(sequence))
        if os.path.isfile(path):
            return path
    return None


@dataclass(frozen=True)
class ResultFormat:
    """One benchmark's result-file convention; ``upload`` says where a test split's zip goes."""

    name: str
    one_based: bool = False  # x, y + 1 in the files
    rasterised: bool = False  # whole-pixel boxes covering every pixel the box touches
    per_sequence_folder: bool = False  # <seq>/<seq>_001.txt + <seq>_time.txt (GOT-10k) instead of <seq>.txt
    upload: str = ""

    def reported(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """The boxes as a reader of the written file gets them back, in our 0-based xyxy convention."""
        return self._from_file(np.array([[float(v) for v in line.split(",")] for line in self._lines(boxes_xyxy)]))

    def _lines(self, boxes_xyxy: np.ndarray) -> List[str]:
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        xywh = bx.discrete_xywh(boxes) if self.rasterised else bx.xyxy_to_xywh(boxes)
        if self.one_based:
            xywh[:, :2] += 1
        fmt = "{:.0f}" if self.rasterised else "{:.3f}"
        return [",".join(fmt.format(v) for v in row) for row in xywh]

    def _from_file(self, xywh: np.ndarray) -> np.ndarray:
        xywh = np.array(xywh, dtype=np.float64).reshape(-1, 4)
        if self.one_based:
            xywh[:, :2] -= 1
        return bx.xywh_to_xyxy(xywh)

    def path(self, folder: str, sequence: str) -> str:
        """Where the result file of ``sequence`` lives under ``folder``."""
        if self.per_sequence_folder:
            return os.path.join(folder, sequence, f"{sequence}_001.txt")
        return os.path.join(folder, f"{sequence}.txt")

    def write(self, folder: str, sequence: str, boxes_xyxy: np.ndarray, seconds: np.ndarray) -> List[str]:
        """Write one sequence's results (and, for GOT-10k, the tracking time of each frame in seconds), each
        file whole or not at all (:mod:`vot_lorat.atomic_write`); returns the files written."""
        path = self.path(folder, sequence)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        written = []
        if self.per_sequence_folder:
            times = os.path.join(folder, sequence, f"{sequence}_time.txt")
            write_text(times, "".join(f"{s:.8f}\n" for s in np.asarray(seconds, dtype=np.float64).reshape(-1)))
            written.append(times)
        write_text(path, "\n".join(self._lines(boxes_xyxy)) + "\n")  # last: its presence means the sequence is done
        return [path] + written

    def read_file(self, path: str, sequence: str) -> Tuple[np.ndarray, List[Problem]]:
        """The boxes of a result file (``x,y,w,h`` separated by commas, tabs or spaces) as xyxy in our
        convention, NaN for lines that are not four numbers, which are also returned as problems."""
        rows, problems = read_boxes(path, sequence)
        return self._from_file(rows), problems

    def read(self, folder: str, sequence: str) -> np.ndarray:
        """One sequence's results back as xyxy in our convention, from either layout."""
        path = find_result_file(folder, sequence)
        if path is None:
            raise FileNotFoundError(f"no result file for {sequence} in {folder} (looked for "
                                    f"{' and '.join(layout.format(sequence) for layout in LAYOUTS)})")
        boxes, problems = self.read_file(path, sequence)
        if problems:
            raise ValueError(f"{len(problems)} line(s) of {path} are not x,y,w,h (first: {problems[0].where})")
        return boxes

    def pack(self, folder: str, files: List[str], zip_path: str) -> str:
        """The submission zip: ``files`` (paths under ``folder``) stored relative to ``folder``."""
        def pack_into(f) -> None:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
                for path in sorted(files):
                    z.write(path, os.path.relpath(path, folder))

        write_file(zip_path, pack_into, binary=True)
        return zip_path


FORMATS: Dict[str, ResultFormat] = {
    "lasot": ResultFormat("lasot", one_based=True),
    "got10k": ResultFormat("got10k", rasterised=True, per_sequence_folder=True,
                           upload="http://got-10k.aitestunion.com/submit_instructions"),
    "trackingnet": ResultFormat("trackingnet", rasterised=True,
                                upload="the TrackingNet evaluation server linked from https://tracking-net.org"),
    "plain": ResultFormat("plain"),
}


def result_format(dataset: SequenceDataset) -> ResultFormat:
    """The convention of the benchmark a dataset comes from (``plain`` for our own kinds)."""
    return FORMATS.get(getattr(dataset, "kind", ""), FORMATS["plain"])
