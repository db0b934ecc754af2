"""Progress bar, a JSONL log a script can read, and TensorBoard events when tensorboard is installed."""
from __future__ import annotations

import json
import os
import time
from typing import Dict

from tqdm import tqdm

LOG_FILE = "log.jsonl"


class RunLogger:
    def __init__(self, output_dir: str, total_steps: int, start_step: int, enabled: bool = True) -> None:
        self.enabled = enabled
        if not enabled:
            return
        os.makedirs(output_dir, exist_ok=True)
        self.path = os.path.join(output_dir, LOG_FILE)
        self._truncate_after(start_step)  # rows a killed run wrote after its last checkpoint
        self.file = open(self.path, "a")
        self.bar = tqdm(total=total_steps, initial=start_step, dynamic_ncols=True, desc="train", unit="step")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(os.path.join(output_dir, "tensorboard"), purge_step=start_step)
        except ImportError:
            pass

    def _truncate_after(self, step: int) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            rows = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
        with open(self.path, "w") as f:
            f.writelines(rows)

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
        if self.tb is not None:
            for k, v in losses.items():
                self.tb.add_scalar(f"train/{k}", v, step)
            self.tb.add_scalar("train/lr", lr, step)
            self.tb.add_scalar("train/samples_per_s", samples_per_s, step)

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.file.close()
            if self.tb is not None:
                self.tb.close()
