"""Resumable training checkpoints: the model in the official layout plus everything needed to go on.

A checkpoint is a folder ``checkpoints/step_NNNNNNNNN/`` with ``model.safetensors`` (what the official
code and ``vot_lorat.load_model`` read) and ``state.pt`` (optimizer, scaler, RNG states, position). It is
written under a temporary name and renamed into place, and ``checkpoints/latest.json`` is replaced
atomically afterwards, so a process killed at any moment leaves the previous checkpoint usable.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from typing import Any, Dict, Optional

import numpy as np
import torch

from vot_lorat.checkpoint import save_checkpoint

LATEST = "latest.json"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(data: Dict[str, Any], path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(root: str, model: torch.nn.Module, state: Dict[str, Any], keep: int) -> str:
    """Write checkpoint ``state['step']`` under ``root`` and keep the newest ``keep`` ones."""
    os.makedirs(root, exist_ok=True)
    name = f"step_{state['step']:09d}"
    final = os.path.join(root, name)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root)
    try:
        save_checkpoint(model, os.path.join(tmp, "model.safetensors"),
                        metadata={"step": str(state["step"]), "epoch": str(state["epoch"])})
        with open(os.path.join(tmp, "state.pt"), "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    atomic_write_json({"checkpoint": name, "step": state["step"], "epoch": state["epoch"]},
                      os.path.join(root, LATEST))
    _prune(root, keep, name)
    return final


def _prune(root: str, keep: int, newest: str) -> None:
    done = sorted(d for d in os.listdir(root) if d.startswith("step_") and os.path.isdir(os.path.join(root, d)))
    for old in done[:-keep] if keep > 0 else []:
        if old != newest:
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    for leftover in os.listdir(root):  # temporary folders of a run that was killed while writing
        if leftover.startswith(".tmp-"):
            path = os.path.join(root, leftover)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)


def latest(root: str) -> Optional[str]:
    """The folder of the newest complete checkpoint under ``root``, or None."""
    path = os.path.join(root, LATEST)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        name = json.load(f)["checkpoint"]
    folder = os.path.join(root, name)
    return folder if os.path.isfile(os.path.join(folder, "state.pt")) else None


def load_state(folder: str) -> Dict[str, Any]:
    return torch.load(os.path.join(folder, "state.pt"), map_location="cpu", weights_only=False)
