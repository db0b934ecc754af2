"""Synthetic multi-object sequences in the VOT toolkit's format, for offline workspaces and tests.

Each sequence folder holds ``color/%08d.jpg``, one ``groundtruth_<id>.txt`` per object with the visible
mask of every frame (``m0,0,0,0,0`` when the object is hidden or out of view), a ``sequence`` file, and
the folder's ``list.txt`` names them all, so the toolkit never tries to download anything.

Written into a workspace's ``sequences/``, they join what is there: ``list.txt`` keeps every sequence it
names, and a sequence of an earlier set with the same name (``synth00``, ...) is replaced whole, never
mixed with the new files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import List

import cv2
import numpy as np

from vot_lorat.atomic_write import write_text

from .data.folders import read_list
from .data.synthetic import HELD_OUT_SEED_OFFSET, SyntheticScene

VOT_SEED_OFFSET = HELD_OUT_SEED_OFFSET + 500_000  # held out from training and from the OPE evaluation set


def _usable(scene: SyntheticScene, masks0: List[np.ndarray]) -> bool:
    """All objects clearly visible in the first frame (VOTS initialises every object there)."""
    for target, mask in zip(scene.targets, masks0):
        x1, y1, x2, y2 = target.boxes[0]
        if mask.sum() < 0.5 * max((x2 - x1) * (y2 - y1), 1) or mask.sum() < 64:
            return False
    return True


def write_sequence(folder: str, scene: SyntheticScene) -> dict:
    """Render ``scene`` into a VOT sequence folder; returns a short description."""
    from vot.region import Mask
    from vot.region.io import write_trajectory

    os.makedirs(os.path.join(folder, "color"), exist_ok=True)
    tracks: List[list] = [[] for _ in scene.targets]
    left_and_came_back = 0
    for t in range(scene.num_frames):
        image, masks = scene.render(t, with_masks=True)
        cv2.imwrite(os.path.join(folder, "color", f"{t + 1:08d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        for track, mask in zip(tracks, masks):
            track.append(Mask(mask, optimize=True))
    for i, track in enumerate(tracks):
        write_trajectory(os.path.join(folder, f"groundtruth_{i}.txt"), track)
        visible = np.array([not r.is_empty() for r in track])
        gone = np.flatnonzero(~visible)
        if len(gone) and visible[gone[-1]:].any():
            left_and_came_back += 1
    with open(os.path.join(folder, "sequence"), "w") as f:
        f.write(f"channels.color=color/%08d.jpg\nfps=30\nwidth={scene.width}\nheight={scene.height}\n"
                f"length={scene.num_frames}\nformat=default\n")
    return {"objects": len(tracks), "frames": scene.num_frames, "hidden_then_back": left_and_came_back}


def make_vot_sequences(root: str, count: int, frames: int = 80, objects: int = 3, seed: int = 0) -> List[dict]:
    """``count`` sequences with 1..``objects`` objects each under ``root`` (a workspace's ``sequences``),
    chosen so that every object is visible at the start and at least one object in the set disappears and
    comes back. ``root``'s list.txt keeps the sequences it already names; a folder of the same name as a new
    sequence is replaced when it is a VOT sequence and refused otherwise."""
    os.makedirs(root, exist_ok=True)
    for i in range(count):
        folder = os.path.join(root, f"synth{i:02d}")
        if os.path.lexists(folder) and not os.path.isfile(os.path.join(folder, "sequence")):
            raise ValueError(f"{folder} is there and is no VOT sequence (it has no 'sequence' file): move it, or "
                             f"write the sequences into another --output")
    names, info = [], []
    candidate = VOT_SEED_OFFSET + seed * 10_000
    while len(names) < count:
        n_objects = 1 + (len(names) + seed) % objects
        scene = SyntheticScene(candidate, frames, num_targets=n_objects)
        candidate += 1
        _, masks0 = scene.render(0, with_masks=True)
        if not _usable(scene, masks0):
            continue
        last = len(names) == count - 1 and not any(i["hidden_then_back"] for i in info)
        if last and not any(np.isnan(scene.boxes(i)[:, 0]).any() for i in range(n_objects)):
            continue  # the last slot goes to a sequence with an object that leaves the frame and returns
        name = f"synth{len(names):02d}"
        tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes the folder private; a sequence is meant to be shared
        d = write_sequence(tmp, scene)
        if last and not d["hidden_then_back"]:
            shutil.rmtree(tmp)
            continue
        _replace(tmp, os.path.join(root, name))
        d["name"], d["seed"] = name, scene.seed
        names.append(name)
        info.append(d)
    listed = os.path.join(root, "list.txt")
    kept = read_list(listed) if os.path.isfile(listed) else []
    write_text(listed, "\n".join(kept + [n for n in names if n not in kept]) + "\n")
    return info


def _replace(new: str, folder: str) -> None:
    """Put the folder ``new`` in the place of ``folder`` (an earlier sequence of that name is removed whole)."""
    if os.path.lexists(folder):
        old = tempfile.mkdtemp(prefix=f".old-{os.path.basename(folder)}-", dir=os.path.dirname(folder))
        os.replace(folder, os.path.join(old, "sequence"))
        os.replace(new, folder)
        shutil.rmtree(old)
    else:
        os.replace(new, folder)
