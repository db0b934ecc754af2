"""``python -m training make-miniature``: small copies of LaSOT, GOT-10k, TrackingNet and COCO in their
published layouts, with procedural frames, to try every command end to end without the real datasets (and
for the tests).

The files follow each dataset's own documentation, not our readers:

- LaSOT: ``<class>/<class>-<n>/img/%08d.jpg`` (from 1), ``groundtruth.txt`` with integer ``x,y,w,h`` lines
  in 1-based pixel coordinates (``0,0,0,0`` where the target is absent), ``full_occlusion.txt`` and
  ``out_of_view.txt`` (one line of comma-separated 0/1 flags), ``nlp.txt``; the split lists
  ``training_set.txt`` / ``testing_set.txt`` at the root.
- GOT-10k: ``train/``, ``val/``, ``test/`` with ``list.txt`` and ``GOT-10k_<Split>_%06d/`` folders of
  ``%08d.jpg`` frames (from 1), ``groundtruth.txt`` (``x,y,w,h`` with four decimals, 0-based),
  ``absence.label`` (0/1), ``cover.label`` (visible eighths, 0-8), ``cut_by_image.label`` (0/1) and
  ``meta_info.ini``; a test sequence has its frames and the first frame's box only.
- TrackingNet: ``TRAIN_0/`` and ``TEST/``, each with ``anno/<video>.txt`` (``x,y,w,h`` per frame; the first
  frame's only in TEST) and ``frames/<video>/<i>.jpg`` numbered from 0, not zero-padded. Its targets never
  leave the frame (TrackingNet annotates every frame).
- COCO 2017: ``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/%012d.jpg``; each split
  has one crowd annotation and one without width, as the real files do, which readers must leave out.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Dict, Iterator, List

import cv2
import numpy as np

from .data.synthetic import HELD_OUT_SEED_OFFSET, SceneStyle, SyntheticScene

MINIATURE_SEED_OFFSET = HELD_OUT_SEED_OFFSET + 700_000  # away from training and the other held-out sets
STYLE = SceneStyle(frame_sizes=((320, 240), (400, 300)))
ALWAYS_VISIBLE = SceneStyle(frame_sizes=((320, 240), (400, 300)), p_leave=0.0, max_occluders=0)
LASOT_CLASSES = ("blob", "sprite")
MIN_VISIBLE = 0.75  # share of frames where the target is visible: absences, but a sequence worth tracking


def _scenes(count: int, frames: int, seed: int, style: SceneStyle, always_visible: bool = False
            ) -> Iterator[SyntheticScene]:
    """``count`` scenes whose target is visible in the first frame and in most others (in every frame with
    ``always_visible``)."""
    candidate, found = MINIATURE_SEED_OFFSET + seed * 100_000, 0
    while found < count:
        scene = SyntheticScene(candidate, frames, 1, style)
        candidate += 1
        visible = np.isfinite(scene.boxes(0)).all(axis=1)
        if visible[0] and visible.mean() >= MIN_VISIBLE and (visible.all() or not always_visible):
            found += 1
            yield scene


def _write_frames(scene: SyntheticScene, frame_path: Callable[[int], str]) -> None:
    for t in range(scene.num_frames):
        path = frame_path(t)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cv2.imwrite(path, cv2.cvtColor(scene.render(t), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


def _write_lines(path: str, lines: List[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _xywh(scene: SyntheticScene) -> np.ndarray:
    """0-based x, y, w, h of the visible target per frame; zeros where it is absent."""
    b = scene.boxes(0)
    out = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    return np.nan_to_num(out, nan=0.0)


def _in_view(scene: SyntheticScene) -> np.ndarray:
    """Share of the target's full box inside the frame, per frame."""
    raw = scene.targets[0].boxes.astype(np.float64)
    inside = np.clip(np.minimum(raw[:, 2:], (scene.width, scene.height)) - np.maximum(raw[:, :2], 0), 0, None)
    return inside.prod(axis=1) / np.maximum((raw[:, 2:] - raw[:, :2]).prod(axis=1), 1e-9)


def write_lasot(root: str, sequences: int, frames: int, seed: int = 0) -> None:
    names = {"train": [], "test": []}
    scenes = _scenes(2 * sequences, frames, seed, STYLE)
    for i, scene in enumerate(scenes):
        split = "train" if i < sequences else "test"
        cls = LASOT_CLASSES[i % len(LASOT_CLASSES)]
        name = f"{cls}-{i // len(LASOT_CLASSES) + 1}"
        names[split].append(name)
        folder = os.path.join(root, cls, name)
        _write_frames(scene, lambda t: os.path.join(folder, "img", f"{t + 1:08d}.jpg"))
        xywh = _xywh(scene)
        absent = ~xywh[:, 2:].all(axis=1)
        xywh[~absent, :2] += 1  # LaSOT counts pixels from 1
        _write_lines(os.path.join(folder, "groundtruth.txt"), [",".join(f"{v:.0f}" for v in row) for row in xywh])
        out_of_view = absent & (_in_view(scene) < 0.2)
        occluded = absent & ~out_of_view
        _write_lines(os.path.join(folder, "full_occlusion.txt"), [",".join(str(int(v)) for v in occluded)])
        _write_lines(os.path.join(folder, "out_of_view.txt"), [",".join(str(int(v)) for v in out_of_view)])
        _write_lines(os.path.join(folder, "nlp.txt"), [f"the textured {cls} moving over the background"])
    _write_lines(os.path.join(root, "training_set.txt"), names["train"])
    _write_lines(os.path.join(root, "testing_set.txt"), names["test"])


def write_got10k(root: str, sequences: int, frames: int, seed: int = 0) -> None:
    scenes = _scenes(3 * sequences, frames, seed + 1, STYLE)
    for split, prefix in (("train", "GOT-10k_Train"), ("val", "GOT-10k_Val"), ("test", "GOT-10k_Test")):
        names = [f"{prefix}_{i + 1:06d}" for i in range(sequences)]
        for name in names:
            scene = next(scenes)
            folder = os.path.join(root, split, name)
            _write_frames(scene, lambda t: os.path.join(folder, f"{t + 1:08d}.jpg"))
            xywh = _xywh(scene)
            lines = [",".join(f"{v:.4f}" for v in row) for row in xywh]
            _write_lines(os.path.join(folder, "groundtruth.txt"), lines[:1] if split == "test" else lines)
            if split == "test":
                continue
            absent = ~xywh[:, 2:].all(axis=1)
            in_view = _in_view(scene)
            cover = np.where(absent, 0, np.clip(np.round(8 * in_view), 1, 8)).astype(int)
            _write_lines(os.path.join(folder, "absence.label"), [str(int(v)) for v in absent])
            _write_lines(os.path.join(folder, "cover.label"), [str(v) for v in cover])
            _write_lines(os.path.join(folder, "cut_by_image.label"), [str(int(v < 1)) for v in in_view])
            _write_lines(os.path.join(folder, "meta_info.ini"), [
                "[METAINFO]", "url: none (procedural frames)", "begin: 00:00:00", "end: 00:00:10",
                "anno_fps: 10Hz", "object_class: blob", "motion_class: moving", "major_class: blob",
                "root_class: object", "motion_adverb: smoothly", f"resolution: ({scene.width}, {scene.height})"])
        _write_lines(os.path.join(root, split, "list.txt"), names)


def write_trackingnet(root: str, sequences: int, frames: int, seed: int = 0) -> None:
    scenes = _scenes(2 * sequences, frames, seed + 2, ALWAYS_VISIBLE, always_visible=True)
    for i, scene in enumerate(scenes):
        chunk = "TRAIN_0" if i < sequences else "TEST"
        name = f"synth{scene.seed:010d}_{i % 2}"
        _write_frames(scene, lambda t: os.path.join(root, chunk, "frames", name, f"{t}.jpg"))
        lines = [",".join(f"{v:.2f}" for v in row) for row in _xywh(scene)]
        _write_lines(os.path.join(root, chunk, "anno", f"{name}.txt"), lines[:1] if chunk == "TEST" else lines)


def write_coco(root: str, images: int, seed: int = 0) -> None:
    scenes = _scenes(2 * images, 1, seed + 3, STYLE)
    for split in ("train", "val"):
        data: Dict[str, list] = {"images": [], "annotations": [],
                                 "categories": [{"id": 1, "name": "blob", "supercategory": "object"}]}
        for i in range(images):
            scene = next(scenes)
            image_id = len(data["images"]) + 1 + (0 if split == "train" else 1000)
            file_name = f"{image_id:012d}.jpg"
            _write_frames(scene, lambda t: os.path.join(root, f"{split}2017", file_name))
            data["images"].append({"id": image_id, "file_name": file_name, "width": scene.width,
                                   "height": scene.height})
            x, y, w, h = (float(v) for v in _xywh(scene)[0])
            data["annotations"].append({"id": image_id * 10, "image_id": image_id, "category_id": 1,
                                        "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
                                        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
        first = data["images"][0]["id"]
        data["annotations"] += [
            {"id": first * 10 + 1, "image_id": first, "category_id": 1, "bbox": [0.0, 0.0, 40.0, 30.0],
             "area": 1200.0, "iscrowd": 1, "segmentation": {"counts": [0, 1200], "size": [30, 40]}},
            {"id": first * 10 + 2, "image_id": first, "category_id": 1, "bbox": [5.0, 5.0, 0.0, 12.0],
             "area": 0.0, "iscrowd": 0, "segmentation": [[5.0, 5.0, 5.0, 17.0]]},
        ]
        path = os.path.join(root, "annotations", f"instances_{split}2017.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(data, f)


def make_miniature(root: str, sequences: int = 2, frames: int = 40, seed: int = 0) -> Dict[str, str]:
    """Write ``root/{LaSOT,GOT-10k,TrackingNet,COCO}`` with ``sequences`` sequences of ``frames`` frames per
    split (and as many COCO images); returns each dataset's folder. Dataset folders already there are refused:
    old and new files would mix into a dataset that neither call wrote."""
    if sequences < 1 or frames < 2:
        raise ValueError(f"a miniature needs at least 1 sequence of 2 frames per split (got {sequences} of "
                         f"{frames})")
    folders = {name: os.path.join(root, name) for name in ("LaSOT", "GOT-10k", "TrackingNet", "COCO")}
    there = [name for name, folder in folders.items() if os.path.lexists(folder)]
    if there:
        raise ValueError(f"{root} already holds {', '.join(there)}: choose another --output (or delete them "
                         f"first), so that old and new files are not mixed")
    write_lasot(folders["LaSOT"], sequences, frames, seed)
    write_got10k(folders["GOT-10k"], sequences, frames, seed)
    write_trackingnet(folders["TrackingNet"], sequences, frames, seed)
    write_coco(folders["COCO"], sequences, seed)
    return folders
