"""One-pass evaluation (OPE) of a LoRAT with the runtime tracker, scored and written the way each benchmark
takes it.

Every sequence is tracked from its first box. Result files follow the benchmark's own convention
(:mod:`training.result_files`); datasets with ground truth are scored from those files as the benchmark's
toolkit scores them (:mod:`training.metrics`: GOT-10k's AO / SR, success AUC / precision / normalised
precision for the others), next to a static baseline that always answers the first box. Test splits that give
only the first box (GOT-10k test, TrackingNet TEST) are not scored: their files are packed into the zip the
benchmark's server takes, and the report says where it is and where to upload it.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from vot_lorat.frames.read_ahead import read_ahead
from vot_lorat.model.network import LoRAT
from vot_lorat.tracking import box as bx
from vot_lorat.tracking.tracker import LoRATTracker

from . import distributed
from .data.sequence import Sequence, SequenceDataset
from .metrics import got10k_ious, got10k_summary, ope_curves, ope_summary
from .result_files import ResultFormat, result_format

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.json"


def track_sequence(tracker: LoRATTracker, sequence: Sequence,
                   on_frame: Optional[Callable[[], Any]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """xyxy boxes for every frame (frame 0 is the given box) and the seconds each frame took (waiting for
    its frame included). The target must be visible in frame 0. ``on_frame`` is called after each frame
    (a progress bar's update)."""
    first = sequence.boxes[0]
    if not (np.isfinite(first).all() and bx.is_valid(first)):
        raise ValueError(f"{sequence.name}: no valid box in the first frame, cannot initialise")
    boxes = np.zeros((sequence.num_frames, 4))
    seconds = np.zeros(sequence.num_frames)
    start = time.perf_counter()
    tracker.reset()
    tracker.add_object(sequence.frame(0), first)
    boxes[0] = first
    seconds[0] = time.perf_counter() - start
    if on_frame is not None:
        on_frame()
    # the next frames are read by a background thread while this one is tracked
    later = read_ahead(sequence.frame(t) for t in range(1, sequence.num_frames))
    start = time.perf_counter()
    for t, frame in enumerate(later, start=1):
        boxes[t] = tracker.track(frame)[0].box_xyxy
        now = time.perf_counter()
        seconds[t], start = now - start, now
        if on_frame is not None:
            on_frame()
    return boxes, seconds


def _scores(fmt: ResultFormat, sequence: Sequence, reported: np.ndarray) -> Dict[str, Any]:
    """What the benchmark's toolkit measures on one sequence: GOT-10k's IoUs or the OPE curves."""
    if fmt.name == "got10k":
        height, width = sequence.frame(0).shape[:2]
        return {"ious": got10k_ious(reported, sequence.boxes, width, height)}
    return {"curves": ope_curves(reported, sequence.boxes)}


def _summary(fmt: ResultFormat, scores: List[Dict[str, Any]]) -> Dict[str, Any]:
    if fmt.name == "got10k":
        ious = [s["ious"] for s in scores]
        return {**got10k_summary(ious), "mean_iou": float(np.mean([i.mean() if len(i) else 0.0 for i in ious]))}
    return ope_summary([s["curves"] for s in scores])


def _per_sequence_iou(scores: Dict[str, Any]) -> float:
    if "ious" in scores:
        return float(scores["ious"].mean()) if len(scores["ious"]) else 0.0
    later = scores["curves"]["iou"][1:]
    return float(np.nanmean(later)) if np.isfinite(later).any() else 0.0


def evaluate(model: LoRAT, datasets: List[SequenceDataset], output_dir: str, precision: str = "fp32",
             max_sequences: int = 0, rank: int = 0, world: int = 1, progress: bool = True) -> Dict[str, Dict[str, Any]]:
    """Track every sequence (sequence ``i`` on rank ``i % world``), write its result files under
    ``<output>/<dataset>/`` and return per-dataset metrics (or, for a split without ground truth, where its
    submission zip is); rank 0 also writes them to ``<dataset>/metrics.json`` and to ``<output>/report.json``.
    ``progress``: rank 0 shows bars on stderr (sequences with ETA; frames of the current one with fps) when
    stderr is a terminal."""
    tracker = LoRATTracker(model.eval(), precision=precision)
    bars = {"disable": None if progress and rank == 0 else True, "dynamic_ncols": True}
    report: Dict[str, Dict[str, Any]] = {}
    for dataset in datasets:
        fmt = result_format(dataset)
        folder = os.path.join(output_dir, dataset.name)
        os.makedirs(folder, exist_ok=True)
        count = len(dataset) if max_sequences <= 0 else min(max_sequences, len(dataset))
        local = []
        for i in tqdm(range(rank, count, world), desc=dataset.name, unit="seq", **bars):
            sequence = dataset[i]
            if not (np.isfinite(sequence.boxes[0]).all() and bx.is_valid(sequence.boxes[0])):
                log.warning("%s: the target is not visible in the first frame; one-pass evaluation skips it",
                            sequence.name)
                continue
            with tqdm(total=sequence.num_frames, desc=sequence.name, unit="frame", leave=False, **bars) as frames:
                pred, seconds = track_sequence(tracker, sequence, frames.update)
            files = fmt.write(folder, sequence.name, pred, seconds)
            entry = {"index": i, "name": sequence.name, "files": files, "seconds": float(seconds.sum()),
                     "frames": sequence.num_frames}
            if dataset.ground_truth:
                static = np.repeat(sequence.boxes[:1], sequence.num_frames, axis=0)
                entry["scores"] = _scores(fmt, sequence, fmt.reported(pred))
                entry["static"] = _scores(fmt, sequence, fmt.reported(static))
            local.append(entry)
        results = sorted((r for part in distributed.gather(local) for r in part), key=lambda r: r["index"])
        summary: Dict[str, Any] = {"dataset": dataset.name, "benchmark": fmt.name, "sequences": len(results),
                                   "fps": sum(r["frames"] for r in results) / max(sum(r["seconds"] for r in results),
                                                                                   1e-9)}
        if dataset.ground_truth:
            baseline = _summary(fmt, [r["static"] for r in results])
            summary.update(_summary(fmt, [r["scores"] for r in results]))
            summary.update({"static_mean_iou": baseline["mean_iou"],
                            "static_" + ("ao" if fmt.name == "got10k" else "auc"):
                                baseline["ao" if fmt.name == "got10k" else "auc"],
                            "per_sequence_mean_iou": {r["name"]: _per_sequence_iou(r["scores"]) for r in results}})
        else:
            summary.update({"submission": os.path.join(folder, f"{dataset.name}.zip"), "upload": fmt.upload})
            if rank == 0:
                fmt.pack(folder, [f for r in results for f in r["files"]], summary["submission"])
        report[dataset.name] = summary
        if rank == 0:
            with open(os.path.join(folder, METRICS_FILE), "w") as f:
                json.dump(summary, f, indent=1)
    if rank == 0:
        with open(os.path.join(output_dir, REPORT_FILE), "w") as f:
            json.dump(report, f, indent=1)
    return report


def _cell(metrics: Dict[str, Any], key: str, fmt: str) -> str:
    return format(metrics[key], fmt) if key in metrics else "-"


def format_report(report: Dict[str, Dict[str, Any]]) -> str:
    """A table of every scored dataset (AO / SR for GOT-10k, AUC / P / Pnorm for the others, the mean IoU and
    the static baseline's), then one line per test split: where its submission is and where it goes."""
    columns = (("AO", "ao", ".1f"), ("SR0.5", "sr50", ".1f"), ("SR0.75", "sr75", ".1f"), ("AUC", "auc", ".1f"),
               ("P", "precision", ".1f"), ("Pnorm", "norm_precision", ".1f"), ("mIoU", "mean_iou", ".3f"),
               ("static", "static_mean_iou", ".3f"), ("fps", "fps", ".1f"))
    scored = {name: m for name, m in report.items() if "submission" not in m}
    lines = []
    if scored:
        lines.append(f"{'dataset':<22} {'seqs':>4} " + " ".join(f"{title:>6}" for title, _, _ in columns))
        for name, m in scored.items():
            lines.append(f"{name:<22} {m['sequences']:>4} " + " ".join(f"{_cell(m, key, fmt):>6}"
                                                                       for _, key, fmt in columns))
    for name, m in report.items():
        if name not in scored:
            lines.append(f"{name}: a test split without ground truth, no metrics: {m['sequences']} sequences "
                         f"packed in {m['submission']}; upload it to {m['upload']}")
    return "\n".join(lines)
