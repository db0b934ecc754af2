"""Reading frames as RGB arrays, finding the frames of a folder in order, and handing frames to torch."""
from __future__ import annotations

import os
import re
from typing import List

import cv2
import numpy as np
import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB; raises OSError naming the file when it is missing or cannot be decoded."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def natural_key(name: str) -> list:
    """Sort key that puts ``frame2`` before ``frame10`` and ``airplane-2`` before ``airplane-10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_frames(folder: str) -> List[str]:
    """Image file names of a folder (``.jpg .jpeg .png .bmp``, any case) in natural order."""
    return sorted((f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS)), key=natural_key)


def frame_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB numpy -> tensor on ``device`` (no copy on the CPU)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True)
