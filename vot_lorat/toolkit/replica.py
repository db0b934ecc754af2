"""Offline sequences for any stack: the VOT toolkit's own dummy sequences (a cow sprite circling over noise),
written the way the stack's experiments and analyses read them, so that a workspace runs without its dataset.

Every sequence gets ``color/%08d.jpg``, a ground truth per object (rectangles; the sprite's exact masks on a mask
stack), an ``anchor.value`` for multistart experiments (a forward anchor on the first frame, a backward one on the
last), one ``<tag>.tag`` per tag the analyses filter on (every frame tagged, and empty ignore masks, which those
analyses read), a ``sequence`` file, and the folder's ``list.txt`` names them, so the toolkit never tries to
download the stack's dataset.
"""
from __future__ import annotations

import os
import shutil
from typing import List

import numpy as np

from .stacks import StackPlan

OBJECTS_PER_SEQUENCE = 3  # on multi-object stacks, as `vot test` makes them


def _sprite_mask() -> np.ndarray:
    """The dummy generator's sprite, as the mask its alpha channel pastes."""
    import vot.dataset
    from PIL import Image

    with Image.open(os.path.join(os.path.dirname(vot.dataset.__file__), "cow.png")) as sprite:
        return (np.asarray(sprite.convert("RGBA"))[:, :, 3] > 0).astype(np.uint8)


def _write_lines(path: str, lines: List[str]) -> None:
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_replica(plan: StackPlan, root: str, count: int, frames: int) -> List[str]:
    """Write ``count`` sequences of ``frames`` frames and up (each one frame longer than the one before, so each
    is a sequence of its own) under ``root``, a workspace's ``sequences`` folder; returns their names.

    Refuses a ``root`` that already holds a ``list.txt``: its sequences are someone's data.
    """
    from vot.dataset.dummy import generate_dummy
    from vot.region import Mask, Rectangle
    from vot.region.io import write_trajectory

    if count < 1 or frames < 2:
        raise ValueError(f"a replica needs at least one sequence of two frames, not {count} of {frames}")
    if os.path.exists(os.path.join(root, "list.txt")):
        raise ValueError(f"{root} already holds sequences (list.txt); give an empty sequences folder")
    sprite = _sprite_mask()
    names = []
    for i in range(count):
        dummy = generate_dummy(frames + i, objects=OBJECTS_PER_SEQUENCE if plan.multiobject else 1)
        name = f"dummy{i:02d}"
        folder = os.path.join(root, name)
        os.makedirs(os.path.join(folder, "color"))
        length = len(dummy)
        for t in range(length):
            shutil.copyfile(dummy.frame(t).filename(), os.path.join(folder, "color", f"{t + 1:08d}.jpg"))
        objects = list(dummy.objects())
        for k, obj in enumerate(objects):
            boxes = [Rectangle.convert(dummy.frame(t).object(obj)) for t in range(length)]
            regions = [Mask(sprite, offset=(int(b.x), int(b.y)), optimize=True) for b in boxes] if plan.masks \
                else boxes
            gt = f"groundtruth_{k}.txt" if len(objects) > 1 else "groundtruth.txt"
            write_trajectory(os.path.join(folder, gt), regions)
        if plan.anchors:
            _write_lines(os.path.join(folder, "anchor.value"), ["1"] + ["0"] * (length - 2) + ["-1"])
        for tag in plan.tags:
            _write_lines(os.path.join(folder, f"{tag}.tag"), ["1"] * length)
        if plan.tags:  # the toolkit's tag-filtered analyses read the ignore masks, and fail without them
            write_trajectory(os.path.join(folder, "groundtruth__ignore.txt"),
                             [Mask(np.zeros((1, 1), np.uint8), optimize=True)] * length)
        width, height = dummy.size
        _write_lines(os.path.join(folder, "sequence"), ["channels.color=color/%08d.jpg", "fps=30", f"width={width}",
                                                        f"height={height}", f"length={length}", "format=default"])
        names.append(name)
    _write_lines(os.path.join(root, "list.txt"), names)
    return names
