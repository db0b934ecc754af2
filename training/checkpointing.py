"""Resumable training checkpoints: the model in the official layout plus everything needed to go on.

A checkpoint is a folder ``checkpoints/step_NNNNNNNNN/`` with ``model.safetensors`` (what the official
code and ``vot_lorat.load_model`` read) and ``state.pt`` (optimizer, scaler, RNG states, position). It is
written under a temporary name and renamed into place, and ``checkpoints/latest.json`` is replaced
atomically afterwards, so a process killed at any moment leaves the previous checkpoint usable.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import tempfile
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from vot_lorat.model.network import LoRAT
from vot_lorat.weights.checkpoint import LoRATCheckpoint, read_checkpoint, save_checkpoint
from vot_lorat.weights.loading import load_checkpoint

from . import distributed
from .distributed import Process

log = logging.getLogger(__name__)

LATEST = "latest.json"
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"


def save(root: str, proc: Process, model: LoRAT, optimizer: torch.optim.Optimizer,
         scaler: Optional[torch.amp.GradScaler], step: int, epoch: int, config: Dict[str, Any], keep: int) -> None:
    """Checkpoint the run at optimiser step ``step`` under ``root``, keeping the newest ``keep``. Every rank
    calls it: each gives its RNG state, rank 0 writes, and all wait until the checkpoint is complete."""
    rng_states = distributed.gather(_rng_state())
    if proc.main:
        state = {"step": step, "epoch": epoch, "optimizer": optimizer.state_dict(),
                 "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_states, "config": config}
        _write(root, model, state, keep)
    distributed.barrier()


def restore(root: str, proc: Process, model: LoRAT, optimizer: torch.optim.Optimizer,
            scaler: Optional[torch.amp.GradScaler]) -> int:
    """Put the newest checkpoint under ``root`` back into the model, optimiser, scaler and this rank's RNGs;
    returns the optimiser step to continue from (0 when there is no checkpoint yet)."""
    found = _newest_readable(root, proc.main)
    if found is None:
        log.warning("no readable checkpoint in %s: starting from the beginning", root)
        return 0
    folder, weights, state = found
    load_checkpoint(model, weights)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"][proc.rank] if proc.rank < len(state["rng"]) else state["rng"][0])
    if proc.main:
        log.info("resumed from %s at step %d", folder, state["step"])
    return int(state["step"])


def _write(root: str, model: LoRAT, state: Dict[str, Any], keep: int) -> None:
    """Write checkpoint ``state['step']`` under ``root`` atomically and keep the newest ``keep`` ones."""
    os.makedirs(root, exist_ok=True)
    name = f"step_{state['step']:09d}"
    final = os.path.join(root, name)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root)
    try:
        save_checkpoint(model, os.path.join(tmp, MODEL_FILE),
                        metadata={"step": str(state["step"]), "epoch": str(state["epoch"])})
        with open(os.path.join(tmp, STATE_FILE), "wb") as f:
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
    _atomic_write_json({"checkpoint": name, "step": state["step"], "epoch": state["epoch"]},
                       os.path.join(root, LATEST))
    _prune(root, keep, name)


def _prune(root: str, keep: int, newest: str) -> None:
    done = sorted(d for d in os.listdir(root) if d.startswith("step_") and os.path.isdir(os.path.join(root, d)))
    for old in done[:-keep] if keep > 0 else []:
        if old != newest:
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    for leftover in os.listdir(root):  # temporary folders of a run that was killed while writing
        if leftover.startswith(".tmp-"):
            path = os.path.join(root, leftover)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)


def _newest_readable(root: str, report: bool) -> Optional[Tuple[str, LoRATCheckpoint, Dict[str, Any]]]:
    """The newest checkpoint under ``root`` whose two files read back: (folder, weights, state), or None.

    The writes are atomic, but a full disk, a copy or a file system can still leave a damaged file; the
    folders are tried newest first and each one skipped is named with the reason (when ``report``).
    ``latest.json`` is only a pointer for people and scripts: an empty or stale one changes nothing."""
    names = sorted((d for d in os.listdir(root) if re.fullmatch(r"step_\d+", d)), reverse=True) \
        if os.path.isdir(root) else []
    _check_pointer(root, names[0] if names else None, report)
    for name in names:
        folder = os.path.join(root, name)
        try:
            state = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=False)
        except Exception as err:  # any failure to read means: not this one
            _skipped(folder, STATE_FILE, err, report)
            continue
        try:
            weights = read_checkpoint(os.path.join(folder, MODEL_FILE))
        except Exception as err:
            _skipped(folder, MODEL_FILE, err, report)
            continue
        return folder, weights, state
    return None


def _skipped(folder: str, file: str, err: Exception, report: bool) -> None:
    if report:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        log.warning("skipping checkpoint %s: its %s cannot be read (%s); trying an older one", folder, file, reason)


def _check_pointer(root: str, newest: Optional[str], report: bool) -> None:
    """Say when ``latest.json`` is damaged or names another folder than the newest one."""
    path = os.path.join(root, LATEST)
    if not report or not os.path.exists(path):
        return
    try:
        with open(path) as f:
            named = json.load(f)["checkpoint"]
    except (ValueError, KeyError, TypeError, OSError):
        log.warning("%s is empty or damaged; the checkpoint folders are read instead (the next checkpoint "
                    "rewrites it)", path)
        return
    if newest is not None and named != newest:
        log.info("%s names %s; %s is newer", path, named, newest)


def _rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_write_json(data: Dict[str, Any], path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
