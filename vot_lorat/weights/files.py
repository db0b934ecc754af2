"""Reading and writing weight files whatever their extension says (the 2024 LoRAT ``model.bin`` is safetensors)."""
from __future__ import annotations

import json
import os
import struct
from typing import Dict, Optional, Tuple

import torch
from safetensors.torch import load_file, save

from ..atomic_write import write_file


class WeightFileError(ValueError):
    """A weight file is missing, unreadable or does not fit the model; the message names the fix."""


class WeightFileNotFoundError(WeightFileError, FileNotFoundError):
    """A weight file that is not there: both a WeightFileError and a FileNotFoundError."""


def is_safetensors(path: str) -> bool:
    """True when the file starts with a safetensors header (8-byte length, then a JSON object)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < length < os.path.getsize(path)


def safetensors_metadata(path: str) -> Dict[str, str]:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return header.get("__metadata__", {}) or {}


def read_state_dict(path: str, what: str = "weight file", fix: str = "") -> Dict[str, torch.Tensor]:
    """Load a state dict from safetensors (any extension) or a torch pickle, on the CPU. A missing file is
    reported as ``{what} not found: {path}. {fix}``, an unreadable one with ``fix`` too, so callers name the
    file they wanted and where it comes from."""
    fix = f" {fix}" if fix else ""
    if not os.path.isfile(path):
        raise WeightFileNotFoundError(f"{what} not found: {path}.{fix}")
    safetensors = False
    try:
        safetensors = is_safetensors(path)
        state = load_file(path, device="cpu") if safetensors else torch.load(path, map_location="cpu",
                                                                              weights_only=True)
    except Exception as exc:  # corrupt file, truncated download, pickle with code...; the details stay chained
        kind = "a damaged safetensors file" if safetensors else "not a PyTorch state dict"
        raise WeightFileError(f"cannot read weight file {path}: {kind} ({type(exc).__name__}). Is it a complete "
                              f".pth/.bin/.safetensors download?{fix}") from exc
    if not isinstance(state, dict):
        raise WeightFileError(f"{path} holds a {type(state).__name__}, not a state dict.{fix}")
    return state


def read_with_metadata(path: str, what: str = "weight file",
                       fix: str = "") -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    state = read_state_dict(path, what, fix)
    meta = safetensors_metadata(path) if is_safetensors(path) else {}
    return state, meta


def atomic_save_safetensors(state: Dict[str, torch.Tensor], path: str,
                            metadata: Optional[Dict[str, str]] = None) -> None:
    """Write safetensors through a temporary file and a rename (:mod:`vot_lorat.atomic_write`), so a crash or a
    full disk never leaves half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    data = save(tensors, metadata={k: str(v) for k, v in (metadata or {}).items()})
    write_file(path, lambda f: f.write(data), binary=True)


def optional_path(path: Optional[str]) -> Optional[str]:
    """Expand ~ and $VARS in a user-given path; empty means none."""
    if path is None or str(path).strip() == "":
        return None
    return os.path.expanduser(os.path.expandvars(str(path)))
