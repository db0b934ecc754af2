"""Progress bar and a JSONL log a script can read (training/plots.py draws its curves)."""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Dict, List

from tqdm import tqdm

from vot_lorat.atomic_write import write_text

LOG_FILE = "log.jsonl"
SUPERSEDED_FILE = "log.superseded.jsonl"

log = logging.getLogger(__name__)


def continue_log(path: str, step: int) -> None:
    """Make the log at ``path`` end at optimiser step ``step``, from which a resumed run continues. Nothing is
    deleted: rows of later steps (written after the last checkpoint by the run that stopped) move to
    log.superseded.jsonl, since the resumed run does those steps again; only a line that is not JSON, the row
    being written when the process died, is dropped. The log is replaced atomically."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        text = f.read()
    keep: List[str] = []
    later: List[str] = []
    torn: List[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            torn.append(number)
            continue
        step_of_row = row.get("step", 0) if isinstance(row, dict) else 0  # an odd row of another writer stays
        (keep if not isinstance(step_of_row, (int, float)) or step_of_row <= step else later).append(line)
    if torn:
        log.warning("%s: dropped the incomplete line %s (a row being written when the run stopped)", path,
                    ", ".join(map(str, torn)))
    if later:
        superseded = os.path.join(os.path.dirname(path), SUPERSEDED_FILE)
        with open(superseded, "a") as f:
            f.writelines(line + "\n" for line in later)
        log.info("%s: %d row(s) after step %d, from before the resume, moved to %s", path, len(later), step,
                 superseded)
    if torn or later or not text.endswith("\n"):
        write_text(path, "".join(line + "\n" for line in keep))


class RunLogger:
    def __init__(self, output_dir: str, total_steps: int, start_step: int, enabled: bool = True,
                 progress: bool = True) -> None:
        """``progress``: a bar on stderr (steps, samples/s, ETA) when stderr is a terminal."""
        self.enabled = enabled
        if not enabled:
            return
        os.makedirs(output_dir, exist_ok=True)
        self.path = os.path.join(output_dir, LOG_FILE)
        continue_log(self.path, start_step)
        self.file = open(self.path, "a")
        self.bar = tqdm(total=total_steps, initial=start_step, dynamic_ncols=True, desc="train", unit="step",
                        disable=None if progress else True)

    def info(self, message: str) -> None:
        if self.enabled:
            self.bar.write(message)

    def log(self, step: int, epoch: float, losses: Dict[str, float], lr: float, samples_per_s: float,
            grad_norm: float) -> None:
        if not self.enabled:
            return
        row = {"step": step, "epoch": round(epoch, 4), "lr": lr, "samples_per_s": round(samples_per_s, 2),
               "grad_norm": round(grad_norm, 4), "time": time.time()}
        row.update({k: round(v, 5) for k, v in losses.items()})
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        self.bar.n = step
        self.bar.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{lr:.2e}", sps=f"{samples_per_s:.1f}")
        self.bar.refresh()

    def validation(self, step: int, epoch: float, scores: Dict[str, Dict[str, float]]) -> None:
        """A row ``{"step", "epoch", "validation": {dataset: {metric: value}}}`` (no ``loss``: not a training
        step) and a line on the console."""
        if not self.enabled:
            return
        row = {"step": step, "epoch": round(epoch, 4), "validation": scores, "time": time.time()}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        self.bar.write(f"validation after epoch {epoch:g}: " + "; ".join(
            f"{name} " + " ".join(f"{k} {v:.3g}" for k, v in metrics.items()) for name, metrics in scores.items()))

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.file.close()
