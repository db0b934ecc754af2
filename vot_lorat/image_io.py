"""Reading frames as RGB arrays."""
from __future__ import annotations

import cv2
import numpy as np


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB; raises OSError naming the file when it is missing or cannot be decoded."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
