"""Annotation text files of tracking datasets, read leniently.

A malformed line becomes an unannotated frame plus a :class:`Problem`: the readers log a warning and
training goes on, while ``python -m training check-data`` prints every problem. Both use these functions,
so what the checker reports is exactly what the readers did.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence as Seq, Tuple

import numpy as np

from .sequence import xywh_lines_to_xyxy

# problem kinds, as the check-data summary counts them
BAD_LINE = "bad annotation"
EMPTY_BOX = "empty box"
COUNT = "count mismatch"
MISSING_FRAME = "missing frame"
MISSING_FILE = "missing file"
BAD_FLAGS = "bad flags"
OUTSIDE = "box outside image"
UNREADABLE = "unreadable image"

_SEPARATORS = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class Problem:
    """Something wrong in a dataset tree; ``where`` is a path, or ``path:line`` for an annotation line."""

    sequence: str
    kind: str
    where: str
    detail: str


def read_lines(path: str) -> List[str]:
    """Lines of a text file; trailing blank lines are not frames (most files end with a newline or two)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().rstrip().splitlines()


def _fast_rows(lines: List[str]) -> Optional[np.ndarray]:
    """Rows of a well-formed file through numpy's C parser (TrackingNet has 14M lines: the Python line loop is slow);
    None when any line is not four numbers, so that the line loop can say which."""
    first = lines[0]
    delimiter = "," if "," in first else ("\t" if "\t" in first else None)
    try:
        rows = np.loadtxt(lines, delimiter=delimiter, comments=None, ndmin=2, dtype=np.float64)
    except ValueError:
        return None
    # loadtxt skips blank lines, which mean "absent" here: a shape mismatch sends the file to the line loop
    if rows.shape != (len(lines), 4) or np.isinf(rows).any():
        return None
    return rows


def _parse_line(line: str) -> Optional[List[float]]:
    """x, y, w, h of one line; NaN for a line marked absent (empty or a lone NaN); None when malformed."""
    tokens = _SEPARATORS.split(line.strip())
    if tokens == [""] or (len(tokens) == 1 and tokens[0].lower() == "nan"):
        return [math.nan] * 4
    if len(tokens) != 4:
        return None
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        return None
    return None if any(math.isinf(v) for v in values) else values


def read_boxes(path: str, sequence: str) -> Tuple[np.ndarray, List[Problem]]:
    """``x,y,w,h`` lines (comma, tab or space separated) as (N, 4) float64 rows, NaN for lines marked absent
    and for malformed lines; the malformed ones are also returned as problems."""
    lines = read_lines(path)
    if not lines:
        return np.zeros((0, 4)), []
    rows = _fast_rows(lines)
    if rows is not None:
        return rows, []
    rows = np.full((len(lines), 4), np.nan)
    problems = []
    for i, line in enumerate(lines):
        values = _parse_line(line)
        if values is None:
            problems.append(Problem(sequence, BAD_LINE, f"{path}:{i + 1}",
                                    f"{line.strip()!r} is not x,y,w,h; frame {i} treated as unannotated"))
        else:
            rows[i] = values
    return rows, problems


def read_flags(path: str, sequence: str) -> Tuple[np.ndarray, List[Problem]]:
    """0/1 per frame, separated by commas or newlines (LaSOT occlusion files, GOT-10k ``absence.label``);
    any other token counts as 0 (present) and is reported."""
    flags: List[bool] = []
    problems = []
    for i, line in enumerate(read_lines(path)):
        for token in _SEPARATORS.split(line.strip()):
            if token not in ("0", "1"):
                problems.append(Problem(sequence, BAD_FLAGS, f"{path}:{i + 1}",
                                        f"flag {len(flags)} is {token!r}, not 0 or 1; read as 0"))
            flags.append(token == "1")
    return np.array(flags, dtype=bool), problems


def read_optional_flags(paths: Seq[str], sequence: str) -> Tuple[List[Tuple[str, np.ndarray]], List[Problem]]:
    """The absence-flag files that exist among ``paths`` as ``(path, flags)``; a missing one is reported
    (every frame then counts as annotated)."""
    flags, problems = [], []
    for path in paths:
        if os.path.isfile(path):
            flag, more = read_flags(path, sequence)
            flags.append((path, flag))
            problems += more
        else:
            problems.append(Problem(sequence, MISSING_FILE, path, "no absence flags: every frame counts as "
                                                                  "annotated"))
    return flags, problems


def fit_track(rows: np.ndarray, path: str, sequence: str, frames: Optional[int] = None,
              flags: Seq[Tuple[str, np.ndarray]] = (), complete: bool = True) -> Tuple[np.ndarray, List[Problem]]:
    """xyxy boxes for ``frames`` frames (default: one per row). Frames flagged 1 in any ``(path, flags)``
    are absent (NaN). Boxes without area are absent too, and reported unless their line is ``0,0,0,0`` or
    flagged, the two ways a file marks absence on purpose. Rows beyond the frames are dropped and missing
    rows padded with NaN, reported unless ``complete=False`` says the file annotates only the first frames
    (GOT-10k and TrackingNet test)."""
    n = len(rows)
    frames = n if frames is None else frames
    problems = []
    absent = np.zeros(n, dtype=bool)
    for flag_path, flag in flags:
        if len(flag) != n:
            problems.append(Problem(sequence, BAD_FLAGS, flag_path, f"{len(flag)} flags for {n} lines in {path}"))
        m = min(len(flag), n)
        absent[:m] |= flag[:m]
    with np.errstate(invalid="ignore"):
        empty = np.isfinite(rows).all(axis=1) & ((rows[:, 2] <= 0) | (rows[:, 3] <= 0)) & rows.any(axis=1)
    for i in np.flatnonzero(empty & ~absent):
        problems.append(Problem(sequence, EMPTY_BOX, f"{path}:{i + 1}",
                                f"x,y,w,h = {','.join(f'{v:g}' for v in rows[i])} has no area but the frame is "
                                f"not marked absent (write 0,0,0,0 or flag it)"))
    if n > frames:
        problems.append(Problem(sequence, COUNT, path, f"{n} annotation lines for {frames} frames: "
                                                       f"lines {frames + 1}-{n} have no frame and are ignored"))
    elif n < frames and complete:
        problems.append(Problem(sequence, COUNT, path, f"{n} annotation lines for {frames} frames: "
                                                       f"the last {frames - n} frames are unannotated"))
    boxes = np.full((frames, 4), np.nan)
    m = min(n, frames)
    boxes[:m] = xywh_lines_to_xyxy(np.where(absent[:, None], np.nan, rows))[:m]
    return boxes, problems
