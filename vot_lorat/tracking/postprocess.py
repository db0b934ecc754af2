"""From the head's maps to one box per object: Hann-window blend, argmax, un-windowed confidence."""
from __future__ import annotations

from typing import Tuple

import torch


def hann_window_2d(height: int, width: int, device=None) -> torch.Tensor:
    """Outer product of symmetric Hann windows (zero at both ends), float32."""
    wy = torch.hann_window(height, periodic=False, dtype=torch.float32, device=device)
    wx = torch.hann_window(width, periodic=False, dtype=torch.float32, device=device)
    return wy[:, None] * wx[None, :]


def select_boxes(score_map: torch.Tensor, boxes: torch.Tensor, window: torch.Tensor,
                 window_penalty: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pick each batch item's cell by ``p*(1-penalty) + window*penalty``; return its box and ``p``.

    ``score_map`` (B, H, W) logits, ``boxes`` (B, H, W, 4) -> boxes (B, 4) normalised xyxy, confidence (B,).
    """
    b = score_map.shape[0]
    p = score_map.float().sigmoid().flatten(1)
    q = p * (1 - window_penalty) + window.flatten() * window_penalty
    best = q.argmax(dim=1)
    rows = torch.arange(b, device=score_map.device)
    return boxes.float().flatten(1, 2)[rows, best], p[rows, best]
