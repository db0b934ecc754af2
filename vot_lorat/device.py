"""Where and at which precision the networks run: the one place that resolves ``auto`` and maps a
precision name to autocast, for the tracker, SAM, the benchmarks and training."""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

# autocast precisions; the tracker's int8 is quantisation of the weights instead, see tracker.quantize_int8
PRECISIONS = ("fp32", "fp16", "bf16")
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class DeviceError(ValueError):
    """The device asked for does not exist here; the message names it, what exists and the fix."""


def _cuda_devices() -> str:
    """What torch sees, in words: the CUDA devices by name, or why there are none."""
    if torch.version.cuda is None:
        return "this torch is a CPU-only build"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return "torch sees no CUDA GPU"
    names = ", ".join(f"cuda:{i}" for i in range(count))
    return f"torch sees {count} CUDA GPU{'s' if count > 1 else ''} ({names})"


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when there is one, else the CPU; anything else is checked to exist,
    so a wrong device fails here with one line instead of at the first tensor moved to it."""
    spec = spec.strip()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N (N counts from 0); "
                          f"{_cuda_devices()}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {spec!r} asked, but {_cuda_devices()}; use device cpu (or auto)")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {spec!r} asked, but {_cuda_devices()}; use one of those (or auto)")
    return device


def resolve_precision(precision: str, device: torch.device, cuda_default: str = "fp16") -> str:
    """``auto``: ``cuda_default`` on CUDA (fp16 autocast, as the official LoRAT code runs the tracker) and
    fp32 elsewhere; other names are returned as given (checked where they are used)."""
    if precision != "auto":
        return precision
    return cuda_default if device.type == "cuda" else "fp32"


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The autocast context of ``precision`` (one of :data:`PRECISIONS`) on ``device``; fp32 runs as is."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _AUTOCAST_DTYPES:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return torch.autocast(device.type, dtype=_AUTOCAST_DTYPES[precision])
