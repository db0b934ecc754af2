"""LoRAT (ECCV 2024, "Tracking Meets LoRA") for the VOT toolkit.

The public names below are importable from ``vot_lorat`` itself; each is loaded on first use, so that
``import vot_lorat.toolkit.settings`` (writing a trackers.ini) does not load torch.

- :mod:`vot_lorat.model`: the network (variants, DINOv2 backbone, LoRA, head).
- :mod:`vot_lorat.weights`: weight files (DINOv2, released LoRAT checkpoints, ours) and loading them.
- :mod:`vot_lorat.tracking`: the tracking procedure (boxes, crops, the multi-object tracker).
- :mod:`vot_lorat.masks`: masks from boxes (filled boxes, SAM) and the rules between objects' masks.
- :mod:`vot_lorat.frames`: reading frames, and reading them ahead.
- :mod:`vot_lorat.toolkit`: the VOT toolkit's side (settings, session, TraX server, workspaces).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List

__version__ = "0.1.0"

_PUBLIC = {
    "LoRAT": "model.network", "count_parameters": "model.network",
    "LoRATConfig": "model.config", "VARIANTS": "model.config", "get_config": "model.config",
    "list_variants": "model.config", "register_variant": "model.config",
    "merge_lora": "model.lora",
    "create_model": "weights.loading", "load_model": "weights.loading",
    "read_checkpoint": "weights.checkpoint", "save_checkpoint": "weights.checkpoint",
    "WeightFileError": "weights.files",
    "LoRATTracker": "tracking.tracker", "TrackResult": "tracking.tracker",
    "BoxMaskGenerator": "masks.box_masks",
    "SamMaskGenerator": "masks.sam", "SamOptions": "masks.sam", "load_sam": "masks.sam",
    "TrackingSession": "toolkit.session",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from .masks.box_masks import BoxMaskGenerator  # noqa: F401
    from .masks.sam import SamMaskGenerator, SamOptions, load_sam  # noqa: F401
    from .model.config import VARIANTS, LoRATConfig, get_config, list_variants, register_variant  # noqa: F401
    from .model.lora import merge_lora  # noqa: F401
    from .model.network import LoRAT, count_parameters  # noqa: F401
    from .toolkit.session import TrackingSession  # noqa: F401
    from .tracking.tracker import LoRATTracker, TrackResult  # noqa: F401
    from .weights.checkpoint import read_checkpoint, save_checkpoint  # noqa: F401
    from .weights.files import WeightFileError  # noqa: F401
    from .weights.loading import create_model, load_model  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vot_lorat' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_PUBLIC))
