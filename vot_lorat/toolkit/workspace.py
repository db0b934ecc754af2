"""VOT workspace helpers for workspace_setup.sh: tracker registrations, the offline stack, score tables.

``python -m vot_lorat.toolkit.workspace trackers ...`` writes a workspace's trackers.ini with absolute paths,
``stack`` writes the offline VOTS-style stack, ``summary`` prints the headline numbers of an analysis.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import replace
from typing import Dict, List, Optional, Sequence

from ..model.config import get_config
from ..weights.checkpoint import infer_variant, needs_backbone, read_checkpoint
from .settings import ServerSettings

# the analyses of the toolkit's tests/multiobject stack: VOTS quality, accuracy/robustness, NRE/DRE/ADQ
DEMO_STACK = """\
title: LoRAT offline demo (synthetic multi-object sequences, VOTS-style analyses)
experiments:
  baseline:
    type: unsupervised
    repetitions: 1
    multiobject: True
    analyses:
      - {type: average_accuracy, name: Quality, burnin: 0, ignore_unknown: False, weighted: False}
      - {type: average_success_plot, name: Quality plot, burnin: 0, ignore_unknown: False}
      - {type: longterm_ar, name: AR}
      - {type: average_quality_auxiliary, name: Auxiliary}
"""


def _entry(name: str, label: str, repo: str, python: str, cfg: ServerSettings, timeout: int) -> str:
    # the toolkit reads trackers.ini with configparser's interpolation, to which % is special: %% is one %
    lines = [f"[{name}]", f"label = {_ini(label)}", "protocol = traxpython", "command = vot_lorat",
             f"paths = {_ini(repo)}", f"python = {_ini(python)}",
             # the toolkit replaces LD_LIBRARY_PATH for TraX trackers, which hides CUDA libraries
             "env_LD_LIBRARY_PATH = ${LD_LIBRARY_PATH}"]
    lines += [f"env_{k} = {_ini(v)}" for k, v in cfg.to_env().items()]
    lines.append(f"timeout = {timeout}")
    return "\n".join(lines) + "\n"


def _ini(value: str) -> str:
    return value.replace("%", "%%")


def trackers_ini(repo: str, python: str, variant: str, backbone: Optional[str], weights: Optional[str],
                 device: str = "auto", precision: str = "auto", threads: int = 0, timeout: int = 600,
                 sam: Optional[str] = None, sam_model: Optional[str] = None, sam_mode: str = "crop",
                 absence_threshold: Optional[float] = None, static: bool = False) -> str:
    """trackers.ini text: ``LoRAT`` (rectangles), ``LoRAT-mask`` (box-filled masks), ``LoRAT-SAM`` (SAM masks,
    when ``sam`` is given) and, with ``static``, the static baseline. Paths are made absolute."""
    absolute = lambda p: os.path.abspath(os.path.expanduser(p)) if p else None  # noqa: E731
    common = ServerSettings(variant=variant, backbone=absolute(backbone), weights=absolute(weights), device=device,
                          precision=precision, threads=threads, absence_threshold=absence_threshold)
    repo, python = absolute(repo), absolute(python)
    parts = [
        "; written by workspace_setup.sh: LoRAT for the VOT toolkit (vot_lorat)\n",
        _entry("LoRAT", f"LoRAT-{variant}", repo, python, replace(common, mask="none"), timeout),
        _entry("LoRAT-mask", f"LoRAT-{variant} (box masks)", repo, python, replace(common, mask="box"), timeout),
    ]
    if sam:
        sam_model = sam_model or sam_model_from_path(sam)
        parts.append(_entry("LoRAT-SAM", f"LoRAT-{variant} + SAM {sam_model}", repo, python,
                            replace(common, mask="sam", sam_checkpoint=absolute(sam), sam_model=sam_model,
                                    sam_mode=sam_mode), timeout))
    if static:
        parts.append(_entry("static", "Static baseline", repo, python, ServerSettings(variant="static", mask="box"),
                            timeout))
    return "\n".join(parts)


def sam_model_from_path(path: str) -> str:
    """``sam_vit_h_4b8939.pth`` -> ``vit_h``."""
    found = re.search(r"vit_([blh])", os.path.basename(path))
    if not found:
        raise ValueError(f"cannot tell the SAM size from {path}: name it sam_vit_{{b,l,h}}_*.pth or pass --sam-model")
    return f"vit_{found.group(1)}"


def _results_by_type(analysis: Dict) -> Dict[str, Dict[str, List]]:
    """{experiment: {analysis type: [per-tracker result]}} from ``vot analysis --format json``."""
    out = {}
    for experiment, data in analysis["results"].items():
        kinds = [a["type"].rsplit(".", 1)[-1] for a in data["parameters"]["analyses"]]
        out[experiment] = dict(zip(kinds, data["results"]))
    return out


def headline(analysis: Dict) -> List[Dict[str, Optional[float]]]:
    """Per tracker: Quality, Accuracy, Robustness, NRE, DRE, ADQ (None where an analysis is missing / N/A)."""
    trackers = list(analysis["trackers"])
    rows = []
    for experiment, by_type in _results_by_type(analysis).items():
        for i, tracker in enumerate(trackers):
            row: Dict[str, Optional[float]] = {"tracker": tracker, "experiment": experiment}
            quality = by_type.get("AverageAccuracy")
            row["quality"] = quality[i][0] if quality else None
            ar = by_type.get("AccuracyRobustness")
            row["accuracy"], row["robustness"] = (ar[i][0], ar[i][1]) if ar else (None, None)
            aux = by_type.get("AverageQualityAuxiliary")
            row["nre"], row["dre"], row["adq"] = tuple(aux[i][:3]) if aux else (None, None, None)
            rows.append(row)
    return rows


def format_headline(rows: List[Dict[str, Optional[float]]], labels: Optional[Dict[str, str]] = None) -> str:
    cols = ("quality", "accuracy", "robustness", "nre", "dre", "adq")
    labels = labels or {}
    width = max([len(labels.get(r["tracker"], r["tracker"])) for r in rows] + [7])
    lines = [f"{'tracker':<{width}}  " + "  ".join(f"{c.upper() if len(c) == 3 else c.capitalize():>10}"
                                                  for c in cols)]
    for r in rows:
        cells = "  ".join(f"{'N/A' if r[c] is None else format(r[c], '.3f'):>10}" for c in cols)
        lines.append(f"{labels.get(r['tracker'], r['tracker']):<{width}}  {cells}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vot_lorat.toolkit.workspace", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("trackers", help="write trackers.ini")
    t.add_argument("--output", required=True)
    t.add_argument("--repo", required=True)
    t.add_argument("--python", required=True)
    t.add_argument("--variant")
    t.add_argument("--backbone")
    t.add_argument("--weights")
    t.add_argument("--device", default="auto")
    t.add_argument("--precision", default="auto")
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--timeout", type=int, default=600)
    t.add_argument("--sam")
    t.add_argument("--sam-model")
    t.add_argument("--sam-mode", default="crop", choices=["crop", "frame"])
    t.add_argument("--absence-threshold", type=float)
    t.add_argument("--static", action="store_true", help="also register the static baseline")
    s = sub.add_parser("stack", help="write the offline demo stack")
    s.add_argument("--output", required=True)
    m = sub.add_parser("summary", help="headline numbers of a `vot analysis --format json` file")
    m.add_argument("analysis")
    args = parser.parse_args(argv)
    try:
        if args.command == "trackers":
            for label, path in (("backbone", args.backbone), ("weights", args.weights), ("SAM", args.sam)):
                if path and not os.path.isfile(os.path.expanduser(path)):
                    raise ValueError(f"{label} file not found: {path}")
            if not args.weights:
                raise ValueError("--weights is required: the LoRAT checkpoint to track with")
            ckpt = read_checkpoint(os.path.expanduser(args.weights))
            variant = args.variant or infer_variant(ckpt)
            if not args.backbone and needs_backbone(ckpt):
                spec = get_config(variant).backbone
                raise ValueError(f"{args.weights} holds only the LoRAT adapters and head: pass --backbone, the "
                                 f"DINOv2 {spec.name} weights it was trained on "
                                 f"({spec.meta_file or 'a DINOv2 checkpoint'})")
            text = trackers_ini(args.repo, args.python, variant, args.backbone, args.weights, args.device,
                                args.precision, args.threads, args.timeout, args.sam, args.sam_model,
                                args.sam_mode, args.absence_threshold, args.static)
            with open(args.output, "w") as f:
                f.write(text)
            print(f"wrote {args.output} (variant {variant})")
        elif args.command == "stack":
            with open(args.output, "w") as f:
                f.write(DEMO_STACK)
        else:
            with open(args.analysis) as f:
                analysis = json.load(f)
            labels = {k: v.get("label", k) for k, v in analysis["trackers"].items()}
            print(format_headline(headline(analysis), labels))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
