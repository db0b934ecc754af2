"""Test helpers: the tiny SAM (vot_lorat.sam.build_tiny_sam) with a fixed seed, and saved to a file."""
from __future__ import annotations

from pathlib import Path

import torch
from segment_anything.modeling import Sam

from vot_lorat.sam import build_tiny_sam as _build


def build_tiny_sam(seed: int = 0) -> Sam:
    """The tiny SAM, randomly initialised from ``seed`` (eval mode, CPU)."""
    torch.manual_seed(seed)
    return _build()


def save_tiny_sam(path: Path, seed: int = 0) -> Sam:
    """Write the tiny SAM's state dict with ``torch.save``, the layout of Meta's ``sam_vit_*.pth`` files."""
    sam = build_tiny_sam(seed)
    torch.save(sam.state_dict(), path)
    return sam
