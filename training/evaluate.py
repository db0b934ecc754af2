"""One-pass evaluation (OPE) of a LoRAT with the runtime tracker, scored and written the way each benchmark
takes it.

Every sequence is tracked from its first box. Result files follow the benchmark's own convention
(:mod:`training.result_files`); datasets with ground truth are scored from those files as the benchmark's
toolkit scores them (:mod:`training.metrics`: GOT-10k's AO / SR, success AUC / precision / normalised
precision for the others), next to a static baseline that always answers the first box. Test splits that give
only the first box (GOT-10k test, TrackingNet TEST) are not scored: their files are packed into the zip the
benchmark's server takes, and the report says where it is and where to upload it.

A frame that cannot be read is a frame the tracker could not see: it answers its last box there, and the
sequence's line in the log says how many such frames it had. A sequence with no readable first frame (or no
box in it) cannot be initialised: it is named and skipped, and the rest is scored. Every file is written
whole or not at all; each finished sequence is listed in ``<dataset>/sequences.jsonl``, so that an
evaluation that stopped keeps its finished sequences (``resume``), as the VOT toolkit does.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from vot_lorat.atomic_write import write_error, write_json
from vot_lorat.frames.read_ahead import read_ahead
from vot_lorat.model.network import LoRAT
from vot_lorat.tracking import box as bx
from vot_lorat.tracking.tracker import LoRATTracker

from . import distributed, run_folder
from .data.lasot import present_frames
from .data.sequence import Sequence, SequenceDataset
from .metrics import got10k_ious, got10k_summary, ope_curves, ope_summary
from .result_files import ResultFormat, result_format

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.json"
SETTINGS_FILE = "evaluation.json"  # what was evaluated into the folder: a resumed evaluation must be the same
DONE_FILE = "sequences.jsonl"  # in each dataset's folder: one row per finished sequence
# what an evaluation is of: --resume refuses to add results of something else to a folder
SETTINGS_KEYS = ("variant", "weights", "weights_size", "weights_mtime", "backbone", "precision")


class SequenceSkipped(ValueError):
    """A sequence that cannot be tracked at all: no frames, a first frame that cannot be read, no first box."""


def track_sequence(tracker: LoRATTracker, sequence: Sequence, on_frame: Optional[Callable[[], Any]] = None
                   ) -> Tuple[np.ndarray, np.ndarray, List[Tuple[int, str]]]:
    """xyxy boxes for every frame (frame 0 is the given box), the seconds each frame took (waiting for its
    frame included) and the frames that could not be read, as (index, reason): the tracker answers its last
    box there. ``on_frame`` is called after each frame (a progress bar's update). Raises
    :class:`SequenceSkipped` when the sequence cannot be initialised."""
    if sequence.num_frames == 0:
        raise SequenceSkipped(f"{sequence.name}: no frames")
    first = sequence.boxes[0]
    if not (np.isfinite(first).all() and bx.is_valid(first)):
        raise SequenceSkipped(f"{sequence.name}: the target is not visible in the first frame, which one-pass "
                              f"evaluation starts from")
    start = time.perf_counter()
    try:
        image = sequence.frame(0)
    except OSError as err:
        raise SequenceSkipped(f"{sequence.name}: its first frame cannot be read ({err})") from None
    boxes = np.zeros((sequence.num_frames, 4))
    seconds = np.zeros(sequence.num_frames)
    unread: List[Tuple[int, str]] = []
    tracker.reset()
    tracker.add_object(image, first)
    boxes[0] = first
    seconds[0] = time.perf_counter() - start
    if on_frame is not None:
        on_frame()
    # the next frames are read by a background thread while this one is tracked
    later = read_ahead(_read(sequence, t) for t in range(1, sequence.num_frames))
    start = time.perf_counter()
    for t, (image, error) in enumerate(later, start=1):
        if image is None:
            boxes[t] = boxes[t - 1]
            unread.append((t, error))
        else:
            boxes[t] = tracker.track(image)[0].box_xyxy
        now = time.perf_counter()
        seconds[t], start = now - start, now
        if on_frame is not None:
            on_frame()
    return boxes, seconds, unread


def _read(sequence: Sequence, index: int) -> Tuple[Optional[np.ndarray], str]:
    try:
        return sequence.frame(index), ""
    except OSError as err:
        return None, str(err)


def _scores(fmt: ResultFormat, sequence: Sequence, reported: np.ndarray,
            present: Optional[np.ndarray]) -> Dict[str, Any]:
    """What the benchmark's toolkit measures on one sequence: GOT-10k's IoUs or the OPE curves (``present``: the
    frames where the dataset flags the target present, see :func:`training.data.lasot.present_frames`)."""
    if fmt.name == "got10k":
        height, width = sequence.frame(0).shape[:2]
        return {"ious": got10k_ious(reported, sequence.boxes, width, height)}
    return {"curves": ope_curves(reported, sequence.boxes, present)}


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


def evaluation_settings(variant: str, weights: str, backbone: Optional[str], precision: str) -> Dict[str, Any]:
    """What an evaluation is of (:data:`SETTINGS_KEYS`): the weight file by path, size and modification time,
    so that results of other weights are never mixed into a resumed evaluation."""
    stat = os.stat(weights)
    return {"variant": variant, "weights": os.path.abspath(weights), "weights_size": stat.st_size,
            "weights_mtime": stat.st_mtime, "backbone": os.path.abspath(backbone) if backbone else None,
            "precision": precision}


def prepare_output(folder: str, settings: Dict[str, Any], resume: bool, overwrite: bool) -> None:
    """Make ``folder`` and decide what happens to an evaluation already in it, before any work: refused unless
    ``resume`` (keep its finished sequences; refused too when it was of other weights or settings) or
    ``overwrite`` (delete its files; other files stay). Records ``settings`` for a later resume."""
    if resume and overwrite:
        raise ValueError("--resume keeps the evaluation in --output and --overwrite deletes it: give one")
    run_folder.make(folder)
    found = evaluation_files(folder)
    if found and not (resume or overwrite):
        raise ValueError(f"{folder} already holds an evaluation ({', '.join(found)}): add --resume to keep its "
                         f"finished sequences and track the rest, --overwrite to delete it and start again, or "
                         f"choose another --output")
    if found and overwrite:
        delete_evaluation(folder)
    elif found and resume:
        before = _read_json(os.path.join(folder, SETTINGS_FILE))
        if not isinstance(before, dict):
            raise ValueError(f"--resume: {folder} holds an evaluation without {SETTINGS_FILE}, which says what was "
                             f"evaluated, so these results could be mixed with another model's: use --overwrite or "
                             f"another --output")
        changed = [f"{key} {before.get(key)!r} -> {settings.get(key)!r}" for key in SETTINGS_KEYS
                   if before.get(key) != settings.get(key)]
        if changed:
            raise ValueError(f"--resume: {folder} holds an evaluation of something else ({'; '.join(changed)}); "
                             f"its results and these would be mixed: use --overwrite or another --output")
    write_json(os.path.join(folder, SETTINGS_FILE), settings)


def evaluation_files(folder: str) -> List[str]:
    """What an evaluation wrote into ``folder`` (its settings, report and dataset folders), by name."""
    names = [name for name in (SETTINGS_FILE, REPORT_FILE) if os.path.isfile(os.path.join(folder, name))]
    return names + [f"{name}/" for name in _dataset_folders(folder)]


def _dataset_folders(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(name for name in os.listdir(folder) if any(
        os.path.isfile(os.path.join(folder, name, f)) for f in (DONE_FILE, METRICS_FILE)))


def delete_evaluation(folder: str) -> None:
    """Delete what an evaluation wrote into ``folder``: the files its dataset folders list as finished, their
    metrics and submission zips, its report and settings; files it did not write stay."""
    for name in _dataset_folders(folder):
        dataset = os.path.join(folder, name)
        files = [f for row in _done_rows(dataset) for f in row.get("files", [])]
        for relative in files + [METRICS_FILE, DONE_FILE, f"{name}.zip"]:
            path = os.path.join(dataset, relative)
            if os.path.isfile(path):
                os.unlink(path)
        for relative in sorted({os.path.dirname(f) for f in files if os.path.dirname(f)}, reverse=True):
            _remove_if_empty(os.path.join(dataset, relative))
        _remove_if_empty(dataset)
    for name in (REPORT_FILE, SETTINGS_FILE):
        if os.path.isfile(os.path.join(folder, name)):
            os.unlink(os.path.join(folder, name))


def _remove_if_empty(folder: str) -> None:
    if os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)


def _read_json(path: str) -> Optional[Any]:
    """A JSON file's data; None when it is missing or damaged (a note is logged for a damaged one)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        log.warning("%s cannot be read (%s); it is written again", path, err)
        return None


def _done_rows(folder: str) -> List[Dict[str, Any]]:
    """The finished sequences a dataset folder lists; a torn last row (a process killed while it wrote) and
    rows whose files are gone are left out, so those sequences are tracked again."""
    path = os.path.join(folder, DONE_FILE)
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and all(os.path.isfile(os.path.join(folder, p)) for p in row.get("files", [])):
                rows.append(row)
    return rows


def _append_done(folder: str, row: Dict[str, Any]) -> None:
    """List a finished sequence: one write of one line, whole on every file system POSIX appends are atomic on
    (ranks share the file)."""
    path = os.path.join(folder, DONE_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode())
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        os.close(fd)


def evaluate(model: LoRAT, datasets: List[SequenceDataset], output_dir: str, precision: str = "fp32",
             max_sequences: int = 0, rank: int = 0, world: int = 1, progress: bool = True,
             resume: bool = False) -> Dict[str, Dict[str, Any]]:
    """Track every sequence (sequence ``i`` on rank ``i % world``), write its result files under
    ``<output>/<dataset>/`` and return per-dataset metrics (or, for a split without ground truth, where its
    submission zip is); rank 0 also writes them to ``<dataset>/metrics.json`` and, after each dataset, to
    ``<output>/report.json``. ``resume``: keep the sequences already finished in ``output_dir`` and the report's
    other datasets (:func:`prepare_output` checks that they are of the same model); otherwise every sequence
    is tracked again. ``progress``: rank 0 shows bars on stderr (sequences with ETA; frames of the current one
    with fps) when stderr is a terminal."""
    names = [d.name for d in datasets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"several --data are the dataset {', '.join(repeated)}: their results would share one "
                         f"folder; evaluate them into different --output folders")
    tracker = LoRATTracker(model.eval(), precision=precision)
    bars = {"disable": None if progress and rank == 0 else True, "dynamic_ncols": True}
    report: Dict[str, Dict[str, Any]] = {}
    if resume and rank == 0:
        report = _read_json(os.path.join(output_dir, REPORT_FILE)) or {}
    for dataset in datasets:
        fmt = result_format(dataset)
        folder = os.path.join(output_dir, dataset.name)
        os.makedirs(folder, exist_ok=True)
        done = {row["name"]: row for row in _done_rows(folder)} if resume else {}
        if not resume and rank == 0 and os.path.exists(os.path.join(folder, DONE_FILE)):
            os.unlink(os.path.join(folder, DONE_FILE))
        distributed.barrier()
        count = len(dataset) if max_sequences <= 0 else min(max_sequences, len(dataset))
        local, skipped = [], []
        for i in tqdm(range(rank, count, world), desc=dataset.name, unit="seq", **bars):
            sequence = dataset[i]
            try:
                entry = _sequence_entry(tracker, fmt, folder, sequence, done.get(sequence.name), bars)
            except SequenceSkipped as err:
                log.warning("%s; skipping it, the other sequences are scored", err)
                skipped.append({"index": i, "name": sequence.name, "reason": str(err)})
                continue
            entry["index"] = i
            if dataset.ground_truth:
                static = np.repeat(sequence.boxes[:1], sequence.num_frames, axis=0)
                present = present_frames(dataset, i)
                entry["scores"] = _scores(fmt, sequence, entry.pop("reported"), present)
                entry["static"] = _scores(fmt, sequence, fmt.reported(static), present)
            local.append(entry)
        parts = distributed.gather((local, skipped))
        results = sorted((r for part, _ in parts for r in part), key=lambda r: r["index"])
        gone = sorted((r for _, part in parts for r in part), key=lambda r: r["index"])
        report[dataset.name] = summary = _dataset_summary(dataset, fmt, folder, results, gone, rank)
        if rank == 0:
            write_json(os.path.join(folder, METRICS_FILE), summary)
            write_json(os.path.join(output_dir, REPORT_FILE), report)
    return report


def _sequence_entry(tracker: LoRATTracker, fmt: ResultFormat, folder: str, sequence: Sequence,
                    done: Optional[Dict[str, Any]], bars: Dict[str, Any]) -> Dict[str, Any]:
    """One sequence's files, time and reported boxes: read back when ``done`` lists it, else tracked and
    written (and listed as done)."""
    if done is not None:
        reported = fmt.read(folder, sequence.name)
        if len(reported) == sequence.num_frames:
            return {**done, "files": [os.path.join(folder, f) for f in done["files"]], "reported": reported}
    with tqdm(total=sequence.num_frames, desc=sequence.name, unit="frame", leave=False, **bars) as frames:
        pred, seconds, unread = track_sequence(tracker, sequence, frames.update)
    if unread:
        log.warning("%s: %d of %d frames could not be read (%s%s); the tracker could not see them and answered "
                    "its last box there", sequence.name, len(unread), sequence.num_frames, unread[0][1],
                    ", ..." if len(unread) > 1 else "")
    files = fmt.write(folder, sequence.name, pred, seconds)
    row = {"name": sequence.name, "files": [os.path.relpath(f, folder) for f in files],
           "seconds": float(seconds.sum()), "frames": sequence.num_frames, "unread_frames": len(unread)}
    _append_done(folder, row)
    return {**row, "files": files, "reported": fmt.reported(pred)}


def _dataset_summary(dataset: SequenceDataset, fmt: ResultFormat, folder: str, results: List[Dict[str, Any]],
                     skipped: List[Dict[str, Any]], rank: int) -> Dict[str, Any]:
    """The dataset's metrics (or its submission zip), with the sequences skipped and the frames not read."""
    summary: Dict[str, Any] = {"dataset": dataset.name, "benchmark": fmt.name, "sequences": len(results),
                               "fps": sum(r["frames"] for r in results) / max(sum(r["seconds"] for r in results),
                                                                               1e-9)}
    if skipped:
        summary["skipped"] = {r["name"]: r["reason"] for r in skipped}
    unread = {r["name"]: r["unread_frames"] for r in results if r.get("unread_frames")}
    if unread:
        summary["unread_frames"] = unread
    if dataset.ground_truth and results:  # with every sequence skipped there is nothing to score
        baseline = _summary(fmt, [r["static"] for r in results])
        key = "ao" if fmt.name == "got10k" else "auc"
        summary.update(_summary(fmt, [r["scores"] for r in results]))
        summary.update({"static_mean_iou": baseline["mean_iou"], f"static_{key}": baseline[key],
                        "per_sequence_mean_iou": {r["name"]: _per_sequence_iou(r["scores"]) for r in results}})
    elif not dataset.ground_truth:
        summary.update({"submission": os.path.join(folder, f"{dataset.name}.zip"), "upload": fmt.upload})
        if rank == 0:
            fmt.pack(folder, [f for r in results for f in r["files"]], summary["submission"])
    return summary


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
    for name, m in report.items():
        skipped = m.get("skipped", {})
        if skipped:
            reason = next(iter(skipped.values()))
            lines.append(f"{name}: {len(skipped)} sequence(s) skipped, not in the scores ({reason}"
                         f"{'; ...' if len(skipped) > 1 else ''})")
        unread = m.get("unread_frames", {})
        if unread:
            lines.append(f"{name}: {sum(unread.values())} frame(s) could not be read, in "
                         f"{', '.join(unread)}; the tracker answered its last box there")
    return "\n".join(lines)
