"""Synthetic frames on disk, as the toolkit and the track CLI read them."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import cv2

from training.data.synthetic import SyntheticScene


def write_scene_frames(folder: Path, seed: int, count: int, targets: int) -> Tuple[SyntheticScene, List[str]]:
    """``count`` JPEG frames of one synthetic scene named like VOT's ``color/00000001.jpg``, and the scene."""
    scene = SyntheticScene(seed, count, num_targets=targets)
    paths = []
    for t in range(count):
        paths.append(str(folder / f"{t:08d}.jpg"))
        cv2.imwrite(paths[-1], cv2.cvtColor(scene.render(t), cv2.COLOR_RGB2BGR))
    return scene, paths
