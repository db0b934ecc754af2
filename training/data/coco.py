"""COCO 2017 detection boxes as one-frame sequences (``video = False``): each object is a training target.

Layout (either image folder works)::

    ROOT/
      annotations/instances_train2017.json   instances_val2017.json
      images/train2017/<file_name>           the LoRAT layout
      train2017/<file_name>                  the standard COCO layout
      (and val2017 likewise)

One sequence per annotation with ``iscrowd == 0`` and a box of positive width and height (COCO boxes are
x,y,w,h in 0-based pixels); ``dropped`` counts the crowd and degenerate annotations left out. Splits:
``train``, ``val``.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .annotations import BAD_LINE, Problem
from .sequence import FileSequence, SequenceDataset, xywh_lines_to_xyxy


class COCO(SequenceDataset):
    """The 860k train2017 objects are kept as numpy arrays (id, image index, box), not Python objects."""

    kind = "coco"
    video = False

    def __init__(self, root: str, split: str = "train") -> None:
        if split not in ("train", "val"):
            raise ValueError(f"unknown COCO split {split!r}; choose train or val")
        self.name = f"coco-{split}"
        self.root = root
        self.split = split
        ann_file = os.path.join(root, "annotations", f"instances_{split}2017.json")
        if not os.path.isfile(ann_file):
            raise FileNotFoundError(f"COCO annotations {ann_file} not found: unzip annotations_trainval2017.zip "
                                    f"(cocodataset.org) in {root}")
        candidates = [os.path.join(root, "images", f"{split}2017"), os.path.join(root, f"{split}2017")]
        self.image_dir = next((d for d in candidates if os.path.isdir(d)), None)
        if self.image_dir is None:
            raise FileNotFoundError(f"COCO images not found: expected {candidates[0]} or {candidates[1]}")
        with open(ann_file) as f:
            data = json.load(f)
        self.files = [image["file_name"] for image in data["images"]]
        image_index = {image["id"]: i for i, image in enumerate(data["images"])}
        objects = [(a["id"], image_index.get(a["image_id"], -1), *a["bbox"])
                   for a in data["annotations"] if not a.get("iscrowd", 0)]
        crowd = len(data["annotations"]) - len(objects)
        del data
        table = np.array(objects, dtype=np.float64).reshape(-1, 6)
        self.problems = [Problem(f"annotation {int(row[0])}", BAD_LINE, ann_file, "image_id not among the images")
                         for row in table[table[:, 1] < 0]]
        degenerate = (table[:, 4] <= 0) | (table[:, 5] <= 0)
        keep = (table[:, 1] >= 0) & ~degenerate
        self.dropped = {"crowd": crowd, "degenerate": int(degenerate.sum())}  # for check-data
        self.ids = table[keep, 0].astype(np.int64)
        self.image_of = table[keep, 1].astype(np.int32)
        self.boxes = xywh_lines_to_xyxy(table[keep, 2:])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> FileSequence:
        path = os.path.join(self.image_dir, self.files[self.image_of[index]])
        return FileSequence(f"{self.ids[index]}", [path], self.boxes[index:index + 1])
