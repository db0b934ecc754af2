"""Resumable training checkpoints: the model in the official layout plus everything needed to go on.

A checkpoint is a folder ``checkpoints/step_NNNNNNNNN/`` with ``model.safetensors`` (what the official
code and ``vot_lorat.load_model`` read) and ``state.pt`` (optimizer, scaler, RNG states, position, recipe). It is
written under a temporary name and renamed into place, and ``checkpoints/latest.json`` is replaced
atomically afterwards, so a process killed at any moment leaves the previous checkpoint usable.

``state.pt`` holds only tensors and plain data (the RNG states as tensors) and is read with
``torch.load(weights_only=True)``, which runs no code from the file: a checkpoint copied from elsewhere cannot
run anything when a run resumes from it.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import random
import re
import shutil
import tempfile
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np
import torch

try:
    from numpy._core.multiarray import _reconstruct  # numpy 2
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct

from vot_lorat.atomic_write import write_error, write_json
from vot_lorat.model.network import LoRAT
from vot_lorat.weights.checkpoint import read_checkpoint, save_checkpoint
from vot_lorat.weights.files import WeightFileError
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


class Restored(NamedTuple):
    """Where a resumed run continues: the optimiser step, the checkpoint's folder and the recipe (training
    config) it was written with."""

    step: int
    folder: Optional[str]
    recipe: Optional[Dict[str, Any]]


def restore(root: str, proc: Process, model: LoRAT, optimizer: torch.optim.Optimizer,
            scaler: Optional[torch.amp.GradScaler]) -> Restored:
    """Put the newest checkpoint under ``root`` that fits ``model`` back into the model, optimiser, scaler and
    this rank's RNGs; step 0 (no folder, no recipe) when there is no readable checkpoint yet. Raises ValueError
    when there are checkpoints but none fits the model (another variant, LoRA rank or layout)."""
    found = _newest_usable(root, model, proc.main)
    if found is None:
        log.warning("no readable checkpoint in %s: starting from the beginning", root)
        return Restored(0, None, None)
    folder, state = found
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"][proc.rank] if proc.rank < len(state["rng"]) else state["rng"][0])
    return Restored(int(state["step"]), folder, state.get("config"))


def _write(root: str, model: LoRAT, state: Dict[str, Any], keep: int) -> None:
    """Write checkpoint ``state['step']`` under ``root`` atomically and keep the newest ``keep`` ones."""
    os.makedirs(root, exist_ok=True)
    name = f"step_{state['step']:09d}"
    final = os.path.join(root, name)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root)
    writing = os.path.join(final, MODEL_FILE)
    try:
        save_checkpoint(model, os.path.join(tmp, MODEL_FILE),
                        metadata={"step": str(state["step"]), "epoch": str(state["epoch"])})
        writing = os.path.join(final, STATE_FILE)
        with open(os.path.join(tmp, STATE_FILE), "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    except Exception as err:  # a full disk: torch.save and safetensors say so with their own exceptions
        shutil.rmtree(tmp, ignore_errors=True)
        failure = write_error(writing, err)
        raise OSError(f"{failure}; the checkpoints written before are intact: free some space and continue with "
                      f"--resume") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    write_json(os.path.join(root, LATEST), {"checkpoint": name, "step": state["step"], "epoch": state["epoch"]})
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


def _newest_usable(root: str, model: LoRAT, report: bool) -> Optional[Tuple[str, Dict[str, Any]]]:
    """The newest checkpoint under ``root`` whose two files read back and whose weights fit ``model``, loaded
    into it: (folder, state), or None when there is no readable one.

    The writes are atomic, but a full disk, a copy or a file system can still leave a damaged file, and a
    folder can hold a checkpoint of another model; the folders are tried newest first and each one skipped is
    named with the reason (when ``report``). ``latest.json`` is only a pointer for people and scripts: an empty
    or stale one changes nothing."""
    names = sorted((d for d in os.listdir(root) if re.fullmatch(r"step_\d+", d)), reverse=True) \
        if os.path.isdir(root) else []
    _check_pointer(root, names[0] if names else None, report)
    misfits = []
    for name in names:
        folder = os.path.join(root, name)
        try:
            state = read_state(os.path.join(folder, STATE_FILE))
        except Exception as err:  # any failure to read means: not this one
            _skipped(folder, STATE_FILE, err, report)
            continue
        try:
            weights = read_checkpoint(os.path.join(folder, MODEL_FILE))
        except Exception as err:
            _skipped(folder, MODEL_FILE, err, report)
            continue
        try:
            load_checkpoint(model, weights)
        except WeightFileError as err:  # checked before anything is loaded: the model is unchanged
            misfits.append(f"{name}: {err}")
            if report:
                log.warning("skipping checkpoint %s: it does not fit this run's %s model (%s); trying an older one",
                            folder, model.config.name, err)
            continue
        return folder, state
    if misfits:
        raise ValueError(f"no checkpoint in {root} fits this run's {model.config.name} model ({misfits[0]}): "
                         f"resume with the --variant and LoRA settings the run was started with")
    return None


def read_state(path: str) -> Dict[str, Any]:
    """A checkpoint's ``state.pt``, read without running code from it: only tensors and plain data (and, in
    files written before the RNG states were stored as tensors, numpy arrays) are accepted."""
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{path} holds objects other than tensors and plain data, which could run code when "
                         f"loaded; it is not read") from None
    if not isinstance(state, dict) or not {"step", "optimizer", "rng"} <= set(state):
        raise ValueError(f"{path} is not a training checkpoint's state")
    return state


# numpy's random state in state.pt files of earlier versions: a uint32 array, which weights_only loading
# rebuilds from these names only
_LEGACY_NUMPY = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), _reconstruct]


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
    if newest is not None and not os.path.isdir(os.path.join(root, str(named))):
        log.warning("%s names %s, which is not there; the checkpoint folders are read instead", path, named)
    elif newest is not None and named != newest:
        log.info("%s names %s; %s is newer", path, named, newest)


def _rng_state() -> Dict[str, Any]:
    """This process's random states as tensors and numbers, which ``weights_only`` loading reads back."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                        "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy, python = state["numpy"], state["python"]
    if isinstance(numpy, dict):
        np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                             numpy["cached_gaussian"]))
        random.setstate((python["version"], tuple(python["internal"].tolist()), python["gauss_next"]))
    else:  # a state.pt of an earlier version: numpy's and Python's own tuples
        np.random.set_state(numpy)
        random.setstate(python)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
