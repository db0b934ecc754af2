"""One-pass evaluation (OPE) of a LoRAT with the runtime tracker, results in the pytracking text format."""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Dict, List

import numpy as np

from vot_lorat import box as bx
from vot_lorat.model import LoRAT
from vot_lorat.tracker import LoRATTracker

from . import distributed
from .data.sequence import Sequence, SequenceDataset
from .metrics import sequence_curves, summarize

log = logging.getLogger(__name__)


def track_sequence(tracker: LoRATTracker, sequence: Sequence) -> np.ndarray:
    """xyxy boxes for every frame; frame 0 is the given box. The target must be visible in frame 0."""
    first = sequence.boxes[0]
    if not (np.isfinite(first).all() and bx.is_valid(first)):
        raise ValueError(f"{sequence.name}: no valid box in the first frame, cannot initialise")
    tracker.reset()
    tracker.add_object(sequence.frame(0), first)
    out = np.zeros((sequence.num_frames, 4))
    out[0] = first
    for t in range(1, sequence.num_frames):
        out[t] = tracker.track(sequence.frame(t))[0].box
    return out


def write_pytracking(path: str, boxes_xyxy: np.ndarray) -> None:
    """One ``x<TAB>y<TAB>w<TAB>h`` line per frame, as pytracking writes and reads results."""
    np.savetxt(path, bx.xyxy_to_xywh(boxes_xyxy), delimiter="\t", fmt="%.3f")


def evaluate(model: LoRAT, datasets: List[SequenceDataset], output_dir: str, precision: str = "fp32",
             max_sequences: int = 0, rank: int = 0, world: int = 1) -> Dict[str, Dict[str, float]]:
    """Track every sequence (sequence ``i`` on rank ``i % world``), write ``<output>/<dataset>/<seq>.txt``
    and return per-dataset metrics for the tracker and for the static baseline (always the first box); rank 0
    also writes them to ``<dataset>/metrics.json`` and all datasets' to ``<output>/report.json``."""
    tracker = LoRATTracker(model.eval(), precision=precision)
    report: Dict[str, Dict[str, float]] = {}
    for dataset in datasets:
        folder = os.path.join(output_dir, dataset.name)
        os.makedirs(folder, exist_ok=True)
        count = len(dataset) if max_sequences <= 0 else min(max_sequences, len(dataset))
        local = []
        for i in range(rank, count, world):
            sequence = dataset[i]
            if not (np.isfinite(sequence.boxes[0]).all() and bx.is_valid(sequence.boxes[0])):
                log.warning("%s: the target is not visible in the first frame; one-pass evaluation skips it",
                            sequence.name)
                continue
            start = time.perf_counter()
            pred = track_sequence(tracker, sequence)
            seconds = time.perf_counter() - start
            write_pytracking(os.path.join(folder, f"{sequence.name}.txt"), pred)
            gt = bx.xyxy_to_xywh(sequence.boxes)
            static = np.repeat(gt[:1], len(gt), axis=0)
            local.append((i, sequence.name, sequence_curves(bx.xyxy_to_xywh(pred), gt), sequence_curves(static, gt),
                          seconds, sequence.num_frames))
        results = sorted((r for part in distributed.gather(local) for r in part), key=lambda r: r[0])
        summary = summarize([r[2] for r in results])
        baseline = summarize([r[3] for r in results])
        frames = sum(r[5] for r in results)
        summary.update({
            "static_mean_iou": baseline["mean_iou"], "static_auc": baseline["auc"],
            "fps": frames / max(sum(r[4] for r in results), 1e-9),
            "per_sequence_mean_iou": {r[1]: float(np.nanmean(r[2]["iou"][1:])) if np.isfinite(r[2]["iou"][1:]).any()
                                      else 0.0 for r in results},
        })
        report[dataset.name] = summary
        if rank == 0:
            with open(os.path.join(folder, "metrics.json"), "w") as f:
                json.dump(summary, f, indent=1)
    if rank == 0:
        with open(os.path.join(output_dir, "report.json"), "w") as f:
            json.dump(report, f, indent=1)
    return report


def format_report(report: Dict[str, Dict[str, float]]) -> str:
    lines = [f"{'dataset':<22} {'seqs':>4} {'AUC':>6} {'P@20':>6} {'Pnorm':>6} {'mIoU':>6} {'static':>6} {'fps':>7}"]
    for name, m in report.items():
        lines.append(f"{name:<22} {m['sequences']:>4} {m['auc']:>6.1f} {m['precision']:>6.1f} "
                     f"{m['norm_precision']:>6.1f} {m['mean_iou']:>6.3f} {m['static_mean_iou']:>6.3f} {m['fps']:>7.1f}")
    return "\n".join(lines)

