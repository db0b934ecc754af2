"""``python -m training compare``: any trackers' raw result files scored against a benchmark's ground truth and
put side by side: one table sorted by the benchmark's main score, the scores of every sequence, one figure per
curve with every tracker in it, and for LaSOT the success AUC per attribute.

A tracker is a folder of result files in a layout trackers publish (:mod:`training.result_files`: ``<seq>.txt``
or ``<seq>/<seq>_001.txt``, commas, tabs or spaces), or one of our own runs: the ``--output`` of ``python -m
training evaluate`` (or the dataset's folder in it) and a training run's folder (its ``eval/<dataset>``).
Scores are :mod:`training.metrics`', as the benchmark's toolkit computes them: AO / SR for GOT-10k, success AUC /
OP50 / OP75 / precision / normalised precision for the others.

A result file that is missing or has fewer lines than the sequence has frames cannot be scored: it is named,
and the comparison goes on only over the sequences every tracker has (``common_sequences``). A file with more
lines is cut to the sequence's frames, as the LaSOT toolkit and pytracking cut it (published LaSOT results hold
more lines than monkey-17 has frames).
"""
from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from vot_lorat.tracking import box as bx

from .data.annotations import read_flags
from .data.folders import FolderDataset
from .data.lasot import present_frames
from .data.sequence import SequenceDataset
from .metrics import got10k_ious, got10k_summary, ope_curves, ope_summary
from .plots import METRICS_FILE, plot_attribute, plot_comparison, run_label
from .result_files import LAYOUTS, ResultFormat, find_result_file, result_format

# the LaSOT toolkit's attributes, in the order of the 14 flags of its annos/att/<seq>.txt files (its
# run_tracker_performance_evaluation.m), with the short names of its figures
ATTRIBUTES = (("IV", "Illumination Variation"), ("POC", "Partial Occlusion"), ("DEF", "Deformation"),
              ("MB", "Motion Blur"), ("CM", "Camera Motion"), ("ROT", "Rotation"), ("BC", "Background Clutter"),
              ("VC", "Viewpoint Change"), ("SV", "Scale Variation"), ("FOC", "Full Occlusion"),
              ("FM", "Fast Motion"), ("OV", "Out-of-View"), ("LR", "Low Resolution"),
              ("ARC", "Aspect Ratio Change"))
TABLE = "comparison"  # .csv and .md
PER_SEQUENCE = "per-sequence.csv"
ATTRIBUTE_TABLE = "attributes"  # .csv and .md
# (column title, metrics key) of the table, main score first
COLUMNS = {
    "ope": (("AUC", "auc"), ("OP50", "op50"), ("OP75", "op75"), ("P@20", "precision"),
            ("Pnorm@0.2", "norm_precision")),
    "got10k": (("AO", "ao"), ("SR0.5", "sr50"), ("SR0.75", "sr75")),
}
PER_SEQUENCE_KEYS = {"ope": ("auc", "op50", "op75", "precision", "norm_precision", "mean_iou"),
                     "got10k": ("ao", "sr50", "sr75")}
MAIN_SCORE = {"ope": "success AUC", "got10k": "AO"}
RUN_SUFFIX = "_tracking_result"  # the LaSOT toolkit's result folders: <Tracker>_tracking_result/


@dataclass(frozen=True)
class Tracker:
    """A tracker's result folder and its name in the tables and legends."""

    name: str
    folder: str


@dataclass
class AttributeScores:
    """Success of every tracker on the scored sequences that have one attribute."""

    short_name: str
    name: str
    sequences: List[str]
    summaries: Dict[str, Dict[str, Any]]  # tracker -> ope_summary, empty when no sequence has the attribute


@dataclass
class Comparison:
    """What ``compare`` found: ``summaries`` holds the trackers best first."""

    dataset: str
    benchmark: str  # "ope" or "got10k"
    sequences: List[str]  # the scored ones, in the dataset's order
    candidates: int  # sequences that could be scored (target visible in the first frame)
    summaries: Dict[str, Dict[str, Any]]
    per_sequence: Dict[str, Dict[str, Dict[str, float]]]  # tracker -> sequence -> scores
    notes: List[str] = field(default_factory=list)
    attributes: List[AttributeScores] = field(default_factory=list)

    @property
    def main_key(self) -> str:
        return COLUMNS[self.benchmark][0][1]


def tracker_folder(text: str, dataset_name: str) -> Tracker:
    """A ``[NAME=]PATH`` argument as a tracker. PATH may be a folder of result files, an evaluate ``--output``
    (its ``<dataset>/`` is used) or a training run (its ``eval/<dataset>/``). Without NAME the tracker is named
    after the folder given, our own evaluation folders after their run, and the LaSOT toolkit's
    ``<Tracker>_tracking_result`` folders after the tracker."""
    name, path = None, text
    if not os.path.exists(text) and "=" in text:
        name, path = text.split("=", 1)
        if not name.strip():
            raise ValueError(f"{text!r}: the name before = is empty; write NAME=PATH or give the path alone")
    if not os.path.isdir(path):
        hint = ": unpack it and give the folder" if path.endswith(".zip") else ""
        what = "is a file, not a folder" if os.path.isfile(path) else "does not exist"
        raise ValueError(f"result folder {path} {what}{hint}")
    folder = path
    for inner in (os.path.join(path, dataset_name), os.path.join(path, "eval", dataset_name)):
        if os.path.isdir(inner):
            folder = inner
            break
    if name is None:
        given = os.path.basename(os.path.normpath(os.path.abspath(path)))
        if folder == path and os.path.isfile(os.path.join(folder, METRICS_FILE)):
            name = run_label(folder)  # evals/NAME/lasot-test or runs/NAME/eval/lasot-test
        else:
            name = given[:-len(RUN_SUFFIX)] if given.endswith(RUN_SUFFIX) and given != RUN_SUFFIX else given
    return Tracker(name.strip(), folder)


def _say(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


def _ground_truth(dataset: SequenceDataset, index: int) -> Tuple[str, np.ndarray]:
    """A sequence's name and boxes, without the list of its frame paths where the reader keeps the boxes apart
    (LaSOT's test split has 690,000 frames)."""
    if isinstance(dataset, FolderDataset):
        return dataset.names[index], dataset.tracks[index]
    sequence = dataset[index]
    return sequence.name, sequence.boxes


def _score_file(tracker: Tracker, sequence: str, gt: np.ndarray, fmt: ResultFormat, visible: Optional[np.ndarray],
                frame_size: Optional[Tuple[int, int]], note: Callable[[str], None]) -> Optional[Dict[str, Any]]:
    """One tracker's scores on one sequence, or None (and a note) when its file is missing or short."""
    path = find_result_file(tracker.folder, sequence)
    if path is None:
        places = " or ".join(layout.format(sequence) for layout in LAYOUTS)
        note(f"{tracker.name}: no result for {sequence} ({places} in {tracker.folder})")
        return None
    boxes, problems = fmt.read_file(path, sequence)
    frames = len(gt)
    if len(boxes) < frames:
        note(f"{tracker.name}: {path} has {len(boxes)} lines for the {frames} frames of {sequence}")
        return None
    if len(boxes) > frames:
        note(f"{tracker.name}: {path} has {len(boxes)} lines for the {frames} frames of {sequence}; the "
             f"last {len(boxes) - frames} are left out, as the LaSOT toolkit and pytracking leave them out")
        boxes = boxes[:frames]
    if problems:
        outcome = "count as failures" if frame_size else "take the previous frame's box"
        note(f"{tracker.name}: {len(problems)} line(s) of {path} are not x,y,w,h (first: {problems[0].where}); "
             f"those frames {outcome}")
    if frame_size:
        ious = got10k_ious(boxes, gt, *frame_size)
        return {"ious": ious, "row": got10k_summary([ious])}
    curves = ope_curves(boxes, gt, visible)
    return {"curves": curves, "row": ope_summary([curves])}


def _summary(benchmark: str, scores: List[Dict[str, Any]]) -> Dict[str, Any]:
    if benchmark == "got10k":
        return got10k_summary([s["ious"] for s in scores])
    return ope_summary([s["curves"] for s in scores])


def read_attributes(folder: str, sequences: List[str], note: Callable[[str], None]) -> Dict[str, np.ndarray]:
    """The 14 attribute flags of each of ``sequences`` from ``folder/<seq>.txt`` (the LaSOT toolkit's
    ``annos/att``); a sequence without a file is noted and left out, a malformed file is an error."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"attribute folder {folder} does not exist: give the LaSOT toolkit's annos/att "
                                f"folder (one <seq>.txt of {len(ATTRIBUTES)} comma-separated 0/1 flags per sequence)")
    flags: Dict[str, np.ndarray] = {}
    missing = []
    for name in sequences:
        path = os.path.join(folder, f"{name}.txt")
        if not os.path.isfile(path):
            missing.append(name)
            continue
        values, problems = read_flags(path, name)
        if problems or len(values) != len(ATTRIBUTES):
            found = problems[0].detail if problems else f"{len(values)} flags"
            raise ValueError(f"{path}: expected {len(ATTRIBUTES)} comma-separated 0/1 flags "
                             f"({','.join(short for short, _ in ATTRIBUTES)}), found {found}")
        flags[name] = values
    if missing:
        note(f"no attribute file in {folder} for {len(missing)} scored sequence(s) ({', '.join(missing[:5])}"
             f"{', ...' if len(missing) > 5 else ''}); the attribute breakdown leaves them out")
    if not flags:
        raise ValueError(f"{folder} has no <seq>.txt attribute file for any scored sequence")
    return flags


def compare(dataset: SequenceDataset, trackers: List[Tracker], common_sequences: bool = False,
            attributes: Optional[str] = None, progress: bool = True,
            note: Callable[[str], None] = _say) -> Comparison:
    """Score every tracker's result files on ``dataset`` and rank them.

    Args:
        dataset: a benchmark split with ground truth (``build_dataset``).
        trackers: the result folders (:func:`tracker_folder`), with distinct names.
        common_sequences: score over the sequences every tracker has a usable file for; otherwise a missing or
            short file is an error (after every one has been named).
        attributes: a folder of LaSOT attribute files (:func:`read_attributes`) for the per-attribute success;
            None: no breakdown.
        progress: a bar over the files on stderr, when stderr is a terminal.
        note: receives one line per problem met (default: printed on stderr).

    Returns:
        The comparison, trackers sorted by the benchmark's main score, best first.
    """
    if not dataset.ground_truth:
        raise ValueError(f"{dataset.name} has the first frame's box only (a test split): its results are scored by "
                         f"the benchmark's server; compare needs a split with ground truth, e.g. "
                         f"lasot:ROOT,split=test or got10k:ROOT,split=val")
    if not dataset.video:
        raise ValueError(f"{dataset.name} holds single images, not sequences to track")
    if not trackers:
        raise ValueError("no result folder given")
    names = [t.name for t in trackers]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise ValueError(f"more than one tracker named {', '.join(doubles)}: name them with NAME=PATH")
    fmt = result_format(dataset)
    benchmark = "got10k" if fmt.name == "got10k" else "ope"
    if attributes and benchmark == "got10k":
        raise ValueError("--attributes gives LaSOT's attribute breakdown of the success AUC; GOT-10k is scored "
                         "by AO")
    notes: List[str] = []

    def record(line: str) -> None:
        notes.append(line)
        note(line)

    scores: Dict[str, Dict[str, Dict[str, Any]]] = {name: {} for name in names}
    candidates: List[str] = []
    with tqdm(total=len(dataset) * len(trackers), desc=f"scoring {dataset.name}", unit="file", file=sys.stderr,
              disable=None if progress else True, dynamic_ncols=True) as bar:
        for i in range(len(dataset)):
            name, boxes = _ground_truth(dataset, i)
            if not (np.isfinite(boxes[0]).all() and bx.is_valid(boxes[0])):
                record(f"{name}: the target is not visible in the first frame; one-pass evaluation skips it")
                bar.update(len(trackers))
                continue
            candidates.append(name)
            visible = present_frames(dataset, i)
            frame_size = dataset[i].frame(0).shape[1::-1] if benchmark == "got10k" else None  # (width, height)
            for tracker in trackers:
                scored = _score_file(tracker, name, boxes, fmt, visible, frame_size, record)
                if scored is not None:
                    scores[tracker.name][name] = scored
                bar.update()
    common = [s for s in candidates if all(s in scores[name] for name in names)]
    unusable = sum(len(candidates) - len(scores[name]) for name in names)
    if unusable and not common_sequences:
        raise ValueError(f"{unusable} result file(s) missing or short (named above): complete them, or add "
                         f"--common-sequences to score the {len(common)} sequence(s) every tracker has")
    if not common:
        raise ValueError(f"no sequence of {dataset.name} has a usable result file from every tracker")
    summaries = {name: _summary(benchmark, [scores[name][s] for s in common]) for name in names}
    main = COLUMNS[benchmark][0][1]
    ranked = sorted(names, key=lambda name: -summaries[name][main])
    comparison = Comparison(
        dataset=dataset.name, benchmark=benchmark, sequences=common, candidates=len(candidates),
        summaries={name: summaries[name] for name in ranked},
        per_sequence={name: {s: {key: scores[name][s]["row"][key] for key in PER_SEQUENCE_KEYS[benchmark]}
                             for s in common} for name in ranked},
        notes=notes)
    if attributes:
        flags = read_attributes(attributes, common, record)
        for j, (short, long_name) in enumerate(ATTRIBUTES):
            having = [s for s in common if s in flags and flags[s][j]]
            comparison.attributes.append(AttributeScores(
                short, long_name, having,
                {name: _summary(benchmark, [scores[name][s] for s in having]) for name in ranked} if having else {}))
    return comparison


def _percent(value: float) -> str:
    return f"{value:.1f}"


def table_rows(comparison: Comparison) -> Tuple[List[str], List[List[str]]]:
    """The ranking as (header, rows) of text cells: tracker, the benchmark's scores in percent, sequences."""
    header = ["Tracker", *(title for title, _ in COLUMNS[comparison.benchmark]), "Sequences"]
    rows = [[name, *(_percent(summary[key]) for _, key in COLUMNS[comparison.benchmark]), str(summary["sequences"])]
            for name, summary in comparison.summaries.items()]
    return header, rows


def attribute_rows(comparison: Comparison) -> Tuple[List[str], List[List[str]]]:
    """Success AUC per attribute (rows, the LaSOT toolkit's order) and tracker (columns, ranked)."""
    header = ["Attribute", "Sequences", *comparison.summaries]
    rows = [[a.name, str(len(a.sequences)),
             *(_percent(a.summaries[name]["auc"]) if a.summaries else "-" for name in comparison.summaries)]
            for a in comparison.attributes]
    return header, rows


def _caption(comparison: Comparison) -> str:
    return (f"{comparison.dataset}: {len(comparison.summaries)} trackers on {len(comparison.sequences)} of "
            f"{comparison.candidates} sequences, sorted by {MAIN_SCORE[comparison.benchmark]}; scores in %")


def _text_table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = [[cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
             for row in [header, *rows]]
    return "\n".join("  ".join(cells).rstrip() for cells in lines)


def _markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def format_tables(comparison: Comparison) -> str:
    """The printed report: the caption, the ranking and, with attributes, the success AUC per attribute."""
    parts = [_caption(comparison), _text_table(*table_rows(comparison))]
    if comparison.attributes:
        parts += ["", "success AUC (%) per attribute; Sequences: how many of the scored ones have it",
                  _text_table(*attribute_rows(comparison))]
    return "\n".join(parts)


def check_output(output_dir: str, overwrite: bool) -> None:
    """Refuse an output folder that already holds a comparison unless ``overwrite`` (before any scoring)."""
    existing = os.path.join(output_dir, f"{TABLE}.csv")
    if os.path.exists(existing) and not overwrite:
        raise ValueError(f"{output_dir} already holds a comparison ({existing}): add --overwrite to replace it, or "
                         f"choose another --output")


def _write_csv(path: str, header: List[str], rows: List[List[Any]]) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_comparison(comparison: Comparison, output_dir: str) -> List[str]:
    """The tables (``comparison.csv`` / ``.md``, ``per-sequence.csv``, with attributes ``attributes.csv`` /
    ``.md``) and the figures (:func:`training.plots.plot_comparison`, :func:`training.plots.plot_attribute`)
    in ``output_dir``; returns the files written."""
    os.makedirs(output_dir, exist_ok=True)
    keys = [key for _, key in COLUMNS[comparison.benchmark]]
    written = [_write_csv(os.path.join(output_dir, f"{TABLE}.csv"), ["tracker", *keys, "sequences"],
                          [[name, *(f"{s[key]:.4f}" for key in keys), s["sequences"]]
                           for name, s in comparison.summaries.items()])]
    markdown = [_caption(comparison) + ".", "", _markdown_table(*table_rows(comparison))]
    if comparison.notes:
        markdown += ["", "Notes:", "", *(f"- {line}" for line in comparison.notes)]
    path = os.path.join(output_dir, f"{TABLE}.md")
    with open(path, "w") as f:
        f.write("\n".join(markdown) + "\n")
    written.append(path)
    per_keys = PER_SEQUENCE_KEYS[comparison.benchmark]
    written.append(_write_csv(
        os.path.join(output_dir, PER_SEQUENCE), ["sequence", "tracker", *per_keys],
        [[s, name, *(f"{rows[s][key]:.4f}" for key in per_keys)]
         for s in comparison.sequences for name, rows in comparison.per_sequence.items()]))
    runs = list(comparison.summaries.items())
    written += plot_comparison(runs, comparison.dataset, output_dir)
    if comparison.attributes:
        header, rows = attribute_rows(comparison)
        written.append(_write_csv(
            os.path.join(output_dir, f"{ATTRIBUTE_TABLE}.csv"),
            ["attribute", "short_name", "sequences", *comparison.summaries],
            [[a.name, a.short_name, len(a.sequences),
              *(f"{a.summaries[name]['auc']:.4f}" if a.summaries else "-" for name in comparison.summaries)]
             for a in comparison.attributes]))
        path = os.path.join(output_dir, f"{ATTRIBUTE_TABLE}.md")
        with open(path, "w") as f:
            f.write(f"Success AUC (%) per attribute on {comparison.dataset}.\n\n{_markdown_table(header, rows)}\n")
        written.append(path)
        for a in comparison.attributes:
            if a.sequences:
                written += plot_attribute(list(a.summaries.items()), comparison.dataset, a.name, a.short_name,
                                          len(a.sequences), output_dir)
    return written
