"""The run folder (``--output``): made before any work starts, and never shared by two runs by accident.

A folder that already holds a run is refused unless the user says what to do with it: ``--resume`` continues
that run, ``--overwrite`` deletes its files and starts again. A run is recognised by what only a run writes
(its log, its checkpoints, a config.json of training settings); a folder whose files merely share a run's
names (a config.json or an eval/ of something else) is no run, and is refused rather than written over or
deleted. Files that a run does not write are left alone.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from typing import List

# what a run writes into its folder
RUN_FILES = ("config.json", "log.jsonl", "log.superseded.jsonl", "checkpoints", "model.safetensors", "val", "eval",
             "training-curves.png", "training-curves.pdf")
# fields every training config.json has (training.config.TrainConfig)
CONFIG_FIELDS = {"variant", "data", "epochs", "samples_per_epoch", "batch_size", "output_dir"}


def run_files(folder: str) -> List[str]:
    """The names of a run's files that ``folder`` holds."""
    return [name for name in RUN_FILES if os.path.lexists(os.path.join(folder, name))]


def holds_run(folder: str) -> bool:
    """Whether ``folder`` holds a training run: its log, a checkpoint, or its config.json."""
    if os.path.isfile(os.path.join(folder, "log.jsonl")):
        return True
    checkpoints = os.path.join(folder, "checkpoints")
    if os.path.isdir(checkpoints) and any(name == "latest.json" or re.fullmatch(r"step_\d+", name)
                                          for name in os.listdir(checkpoints)):
        return True
    try:
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and CONFIG_FIELDS <= set(config)


def make(folder: str) -> None:
    """Make ``folder`` and its parents, or say in one line why it cannot be written (before any work starts,
    so that hours of work are not lost at the first file written)."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot make the output folder {folder}: {err.strerror}; choose another --output") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to the output folder {folder}; choose another --output")


def prepare(folder: str, resume: bool, overwrite: bool) -> None:
    """Make ``folder`` (and its parents) and decide what happens to a run already in it; raises ValueError
    with the choices when the folder holds a run and neither ``resume`` nor ``overwrite`` is given."""
    if resume and overwrite:
        raise ValueError("--resume continues the run in the output folder and --overwrite deletes it: give one")
    make(folder)
    found = run_files(folder)
    if not found:
        return
    if not holds_run(folder):
        raise ValueError(f"{folder} holds {', '.join(found)}, which no training run wrote (no log.jsonl, checkpoints "
                         f"or training config.json): a run would write over them; choose another --output")
    if resume:
        return
    if not overwrite:
        raise ValueError(f"{folder} already holds a training run ({', '.join(found)}): add --resume to continue "
                         f"it, --overwrite to delete it and start again, or choose another --output")
    for name in found:
        path = os.path.join(folder, name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
