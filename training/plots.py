"""Figures, as PNG and PDF: success and precision plots of evaluated runs and of compared trackers (one curve
per run, its score in the legend, as the LaSOT / OTB / GOT-10k toolkits draw them; one success plot per LaSOT
attribute), and the loss / learning-rate / throughput curves of a training run from its ``log.jsonl``.

Plots read the ``metrics.json`` that evaluation writes into each dataset's result folder, so they need
neither the dataset nor the model.
"""
from __future__ import annotations

import collections
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

from matplotlib.figure import Figure

from .metrics import GOT10K_IOU_THRESHOLDS, IOU_THRESHOLDS, NORM_THRESHOLDS, PIXEL_THRESHOLDS

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
LOG_FILE = "log.jsonl"
# (curve key, score key, thresholds, x label, title, file suffix)
OPE_PLOTS = (
    ("success_curve", "auc", IOU_THRESHOLDS, "Overlap threshold", "Success plot", "success"),
    ("precision_curve", "precision", PIXEL_THRESHOLDS, "Location error threshold (px)", "Precision plot",
     "precision"),
    ("norm_precision_curve", "norm_precision", NORM_THRESHOLDS, "Normalised location error threshold",
     "Normalised precision plot", "norm-precision"),
)
GOT10K_PLOT = ("success_curve", "ao", GOT10K_IOU_THRESHOLDS, "Overlap threshold", "Success plot (AO)",
               "success")


def _save(fig: Figure, stem: str) -> List[str]:
    paths = [f"{stem}.png", f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths


def run_label(folder: str) -> str:
    """The run a result folder belongs to: ``runs/B-224/eval/lasot-test`` -> ``B-224`` (a training run's
    evaluation), ``evals/L-378/lasot-test`` -> ``L-378`` (the ``--output`` of evaluate)."""
    parent = os.path.dirname(os.path.abspath(folder))
    if os.path.basename(parent) == "eval":
        parent = os.path.dirname(parent)
    return os.path.basename(parent)


def read_metrics(folder: str) -> Dict:
    """A result folder's metrics.json; a file that is not one (truncated, or another program's) is named."""
    path = os.path.join(folder, METRICS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: give result folders written by `python -m training evaluate` "
                                f"or by a training run's evaluation (e.g. runs/NAME/eval/lasot-test)")
    try:
        with open(path) as f:
            metrics = json.load(f)
    except ValueError as err:
        raise ValueError(f"{path} is not JSON ({err}): a truncated copy? Evaluate again to rewrite it") from None
    if not isinstance(metrics, dict) or not (_has_curves(metrics) or "submission" in metrics
                                             or metrics.get("sequences") == 0):
        damaged = isinstance(metrics, dict) and any(spec[0] in metrics for spec in OPE_PLOTS)
        raise ValueError(f"{path} " + ("has damaged curves or scores: evaluate again to rewrite it" if damaged else
                                       "is not a metrics file of `python -m training evaluate` (no curves, no "
                                       "submission)"))
    return metrics


def _scored(metrics: Dict) -> bool:
    """Whether a dataset has curves to plot: not a test split (a submission) nor one whose every sequence was
    skipped."""
    return _has_curves(metrics) and "submission" not in metrics


def _has_curves(metrics: Dict) -> bool:
    """Whether ``metrics`` has the curves and scores its plots draw, with the lengths they are drawn at."""
    specs = (GOT10K_PLOT,) if "ao" in metrics else OPE_PLOTS
    try:
        return all(len(metrics[curve]) == len(thresholds) and float(metrics[score]) >= 0
                   for curve, score, thresholds, *_ in specs)
    except (KeyError, TypeError, ValueError):
        return False


def result_folders(folders: Sequence[str]) -> List[str]:
    """``folders`` with every evaluation root (an ``--output`` of evaluate, or a run's ``eval/``) replaced by
    its dataset folders."""
    found = []
    for folder in folders:
        if not os.path.isfile(os.path.join(folder, METRICS_FILE)) and os.path.isdir(folder):
            inside = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                            if os.path.isfile(os.path.join(folder, name, METRICS_FILE)))
            if inside:
                found += inside
                continue
        found.append(folder)
    return found


def _curve_plot(runs: List[Tuple[str, Dict]], spec: tuple, dataset: str, stem: str) -> List[str]:
    curve_key, score_key, thresholds, xlabel, title, _ = spec
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    for label, metrics in sorted(runs, key=lambda r: -r[1][score_key]):
        ax.plot(thresholds, metrics[curve_key], label=f"{label} [{metrics[score_key]:.1f}]", linewidth=1.8)
    ax.set(xlabel=xlabel, ylabel="Success rate" if "success" in curve_key else "Precision",
           xlim=(thresholds[0], thresholds[-1]), ylim=(0, 1), title=f"{title} on {dataset}")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower left" if "success" in curve_key else "lower right", fontsize=8,
              title={"auc": "AUC", "ao": "AO", "precision": "P@20", "norm_precision": "Pnorm@0.2"}[score_key])
    return _save(fig, stem)


def plot_results(folders: Sequence[str], output_dir: str, labels: Optional[Sequence[str]] = None) -> List[str]:
    """Success and precision plots (success only, with AO, for GOT-10k) of every dataset among ``folders``,
    one curve per folder, labelled by ``labels`` or by the run each folder belongs to. Returns the files."""
    if labels is not None and len(labels) != len(folders):
        raise ValueError(f"{len(labels)} labels for {len(folders)} result folders")
    by_dataset: Dict[str, List[Tuple[str, Dict]]] = collections.defaultdict(list)
    for i, given in enumerate(folders):
        for folder in result_folders([given]):
            metrics = read_metrics(folder)
            if not _scored(metrics):
                continue  # a test split without ground truth: its results are scored by the server
            label = labels[i] if labels is not None else run_label(folder)
            by_dataset[metrics.get("dataset", os.path.basename(os.path.normpath(folder)))].append((label, metrics))
    if not by_dataset:
        raise ValueError("none of the result folders has metrics to plot (test splits are scored by the "
                         "benchmark's server)")
    written = []
    for dataset, runs in by_dataset.items():
        written += plot_comparison(runs, dataset, output_dir)
    return written


def plot_comparison(runs: Sequence[Tuple[str, Dict]], dataset: str, output_dir: str) -> List[str]:
    """Every run's curves in one figure per curve: success, precision and normalised precision (success with
    AO for GOT-10k), named ``<dataset>-<curve>.{png,pdf}``; the legend lists the runs by score, best first, as
    the LaSOT toolkit orders it.

    Args:
        runs: (label, metrics) pairs; metrics as :func:`training.metrics.ope_summary` or
            :func:`training.metrics.got10k_summary` return them, all of one kind.
        dataset: the dataset's name, in the titles and the file names.
        output_dir: made when missing.

    Returns:
        The files written.
    """
    os.makedirs(output_dir, exist_ok=True)
    specs = (GOT10K_PLOT,) if "ao" in runs[0][1] else OPE_PLOTS
    return [path for spec in specs
            for path in _curve_plot(list(runs), spec, dataset, os.path.join(output_dir, f"{dataset}-{spec[-1]}"))]


def plot_attribute(runs: Sequence[Tuple[str, Dict]], dataset: str, attribute: str, short_name: str,
                   sequences: int, output_dir: str) -> List[str]:
    """The success plot of the sequences that have one attribute, every run's curve in it, the sequence
    count in the title as the LaSOT toolkit writes it; named ``<dataset>-<short_name>-success.{png,pdf}``.
    Returns the files written."""
    os.makedirs(output_dir, exist_ok=True)
    return _curve_plot(list(runs), OPE_PLOTS[0], f"{dataset} - {attribute} ({sequences})",
                       os.path.join(output_dir, f"{dataset}-{short_name}-success"))


def read_log(run_dir: str) -> List[Dict]:
    """The rows of a run's log that can be drawn: training steps (step, loss, lr, samples/s and the loss parts
    the other steps have) and validations (step, epoch, scores). A torn last line (a run killed while writing
    it) is left out silently; any other odd line (not JSON, not a row of ours, a field missing) is left out
    with one warning that names the lines."""
    path = os.path.join(run_dir, LOG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: give a training run's folder (the --output of train)")
    with open(path) as f:
        lines = [(number, line) for number, line in enumerate(f, 1) if line.strip()]
    rows, odd = [], []
    for i, (number, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except ValueError:
            if i < len(lines) - 1:  # the last line of a run killed while it wrote is no news
                odd.append(number)
            continue
        if _is_step(row, ()) or _is_validation(row):
            rows.append((number, row))
        else:
            odd.append(number)
    parts = [p for p in LOSS_PARTS if any(p in row for _, row in rows if "loss" in row)]
    odd += [number for number, row in rows if "loss" in row and not _is_step(row, parts)]
    if odd:
        log.warning("%s: left out line(s) %s, which are no training step or validation row of a run", path,
                    ", ".join(map(str, sorted(odd)[:10])) + (" ..." if len(odd) > 10 else ""))
    return [row for number, row in rows if number not in odd]


LOSS_PARTS = ("cls", "giou")  # drawn next to the loss


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_step(row, parts: Sequence[str]) -> bool:
    return isinstance(row, dict) and all(_is_number(row.get(k)) for k in ("step", "loss", "lr", "samples_per_s",
                                                                           *parts))


def _is_validation(row) -> bool:
    return (isinstance(row, dict) and "loss" not in row and _is_number(row.get("step"))
            and _is_number(row.get("epoch")) and isinstance(row.get("validation"), dict)
            and all(isinstance(m, dict) for m in row["validation"].values()))


def plot_training_log(run_dir: str, output_dir: Optional[str] = None) -> List[str]:
    """Loss (and its parts), learning rate and samples per second against the step, plus the periodic
    validation scores when the log has them, from ``run_dir/log.jsonl``; written as
    ``training-curves.{png,pdf}`` in ``output_dir`` (default: the run folder). Returns the files."""
    rows = read_log(run_dir)
    steps = [r for r in rows if "loss" in r]
    validation = [r for r in rows if "validation" in r]
    if not steps:
        raise ValueError(f"{os.path.join(run_dir, LOG_FILE)} has no training steps yet")
    panels = 4 if validation else 3
    fig = Figure(figsize=(5.0 * panels, 3.8))
    axes = fig.subplots(1, panels)
    x = [r["step"] for r in steps]
    style = {"linewidth": 1.2, "marker": "o" if len(x) < 30 else None, "markersize": 3}  # short runs: see each row
    for key in ("loss", *LOSS_PARTS):
        if key in steps[0]:
            axes[0].plot(x, [r[key] for r in steps], label=key, **style)
    axes[0].set(xlabel="step", title="loss")
    axes[0].legend(fontsize=8)
    axes[1].plot(x, [r["lr"] for r in steps], **style)
    axes[1].set(xlabel="step", title="learning rate")
    axes[1].ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    axes[2].plot(x, [r["samples_per_s"] for r in steps], **style)
    axes[2].set(xlabel="step", title="samples / s")
    if validation:
        series: Dict[str, List[Tuple[float, float]]] = collections.defaultdict(list)
        for r in validation:
            for dataset, metrics in r["validation"].items():
                score = "ao" if "ao" in metrics else "auc"
                if _is_number(metrics.get(score)):  # a dataset whose every sequence was skipped has none
                    series[f"{dataset} {score.upper()}"].append((r["epoch"], metrics[score]))
        for name, points in series.items():
            axes[3].plot(*zip(*points), marker="o", label=name, linewidth=1.2)
        axes[3].set(xlabel="epoch", title="validation")
        axes[3].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, alpha=0.4)
    fig.tight_layout()
    os.makedirs(output_dir or run_dir, exist_ok=True)
    return _save(fig, os.path.join(output_dir or run_dir, "training-curves"))
