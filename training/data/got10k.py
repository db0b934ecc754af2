"""GOT-10k.

Layout::

    ROOT/
      train/
        list.txt                   sequence folder names, one per line (else: the sorted folder listing)
        GOT-10k_Train_000001/
          00000001.jpg ...         frames, numbered from 1, eight digits
          groundtruth.txt          x,y,w,h per frame, comma separated
          absence.label            0/1 per line, one per frame; 1 = target absent
          cover.label              0-8 per line: how much of the target is visible, in eighths; 0 = not at all
          cut_by_image.label       0/1 per line: the target is cut by the image border (not used)
          meta_info.ini            class, motion, resolution, ... (not used)
        ...
      val/                         the same, GOT-10k_Val_000001 ...
      test/                        frames and a groundtruth.txt holding the first frame's box only

A frame is absent when ``absence.label`` says 1 or ``cover.label`` says 0: those are the frames the GOT-10k
toolkit leaves out of its scores (it scores frames whose cover is > 0). Boxes are 0-based, used as they are.

Splits: ``train``, ``val``, ``test`` (frames after the first are unannotated), and ``vot_train`` /
``vot_val``: the train sequences kept after excluding those that overlap VOT, as the reference trains on.
They are defined by files of 0-based indices into the sorted train list that are not part of GOT-10k;
give one with ``split_file=PATH``.
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

import numpy as np

from .annotations import BAD_FLAGS, MISSING_FILE, Problem, fit_track, read_boxes, read_lines, read_optional_flags
from .folders import FolderDataset, count_numbered, read_list

SPLITS = ("train", "val", "test", "vot_train", "vot_val")


def _index_file_help(split: str) -> str:
    name = f"got10k_{split}_split.txt"
    return (f"get {name} from pytracking (https://github.com/visionml/pytracking, ltr/data_specs/{name}) or the "
            f"LoRAT repository (https://github.com/LitingLin/LoRAT, "
            f"trackit/datasets/SOT/datasets/Impl/data_specs/{name})")


def select_indices(names: List[str], split_file: str) -> List[str]:
    """The sequences of ``names`` (sorted) at the 0-based indices listed in ``split_file``."""
    names = sorted(names)
    selected = []
    for i, line in enumerate(read_list(split_file)):
        if not line.isdigit():
            raise ValueError(f"{split_file}: entry {i + 1} is {line!r}, not a 0-based sequence index")
        if int(line) >= len(names):
            raise ValueError(f"{split_file}: index {line} but the train folder has {len(names)} sequences; the "
                             f"index files expect the complete GOT-10k train set (9335 sequences)")
        selected.append(names[int(line)])
    return selected


def _read_uncovered(path: str, sequence: str) -> Tuple[List[Tuple[str, np.ndarray]], List[Problem]]:
    """``[(path, cover == 0)]`` from a ``cover.label`` file (one 0-8 value per line); a value that is not one
    of those counts as covered (visible) and is reported, a missing file means every frame is covered."""
    if not os.path.isfile(path):
        return [], [Problem(sequence, MISSING_FILE, path, "no cover labels: every frame counts as visible")]
    uncovered, problems = [], []
    for i, line in enumerate(read_lines(path)):
        token = line.strip()
        if token not in tuple("012345678"):
            problems.append(Problem(sequence, BAD_FLAGS, f"{path}:{i + 1}", f"cover {token!r} is not 0-8; read as "
                                                                            f"visible"))
        uncovered.append(token == "0")
    return [(path, np.array(uncovered, dtype=bool))], problems


class GOT10k(FolderDataset):
    kind = "got10k"

    def __init__(self, root: str, split: str = "train", split_file: Optional[str] = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown GOT-10k split {split!r}; choose one of {', '.join(SPLITS)}")
        super().__init__(root, split)
        self.ground_truth = split != "test"
        base = os.path.join(root, "val" if split == "val" else "test" if split == "test" else "train")
        if not os.path.isdir(base):
            raise FileNotFoundError(f"GOT-10k split {split!r} needs the folder {base}")
        listing = os.path.join(base, "list.txt")
        names = read_list(listing) if os.path.isfile(listing) else sorted(
            d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
        if split.startswith("vot_"):
            if split_file is None:
                raise ValueError(f"GOT-10k split {split!r} needs split_file=PATH, a list of 0-based indices into "
                                 f"the sorted train sequences (e.g. --data got10k:{root},split={split},"
                                 f"split_file=/path/got10k_{split}_split.txt); {_index_file_help(split)}")
            names = select_indices(names, split_file)
        elif split_file is not None:
            raise ValueError(f"split_file only applies to the GOT-10k splits vot_train and vot_val, not {split!r}")
        for name in names:
            self._read_sequence(name, os.path.join(base, name))
        self.finish()

    def _read_sequence(self, name: str, folder: str) -> None:
        gt = os.path.join(folder, "groundtruth.txt")
        if not os.path.isfile(gt):
            self.problems.append(Problem(name, MISSING_FILE, gt, "sequence skipped"))
            return
        rows, problems = read_boxes(gt, name)
        if self.split == "test":
            boxes, more = fit_track(rows, gt, name, frames=count_numbered(folder, 1), complete=False)
        else:
            flags, flag_problems = read_optional_flags([os.path.join(folder, "absence.label")], name)
            cover, cover_problems = _read_uncovered(os.path.join(folder, "cover.label"), name)
            flags += cover
            problems += flag_problems + cover_problems
            boxes, more = fit_track(rows, gt, name, flags=flags)
        self.problems += problems + more
        self.add(name, folder, boxes)
