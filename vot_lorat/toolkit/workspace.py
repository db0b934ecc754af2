"""VOT workspace helpers for workspace_setup.sh: tracker registrations, stacks, offline sequences, score tables.

``python -m vot_lorat.toolkit.workspace trackers ...`` writes a workspace's trackers.ini with absolute paths,
``plan STACK`` says which toolkit runs a stack and what it needs, ``stack`` writes the offline VOTS-style stack
(or, with ``--from``, a workspace's copy of a catalogue stack), ``replica`` writes offline sequences for a stack,
``summary`` prints the headline numbers of an analysis.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

from ..model.config import get_config
from ..weights.checkpoint import infer_variant, needs_backbone, read_checkpoint
from .replica import write_replica
from .settings import ServerSettings
from .stacks import plan_stack

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


# The scalar measures of the analyses the catalogue's stacks hold, in the order of each analysis' results; plots and
# curves are left out. average_accuracy is named by the stack (VOTS: Quality; the short-term stacks: accuracy).
MEASURES = {
    "accuracy.AverageAccuracy": (None,),
    "failures.CumulativeFailureCount": ("total failures",),
    "longterm.AccuracyRobustness": ("accuracy", "robustness"),
    "longterm.AverageQualityAuxiliary": ("nre", "dre", "adq"),
    "longterm.PrecisionRecall": ("precision", "recall", "f-score"),
    "multistart.EAOScore": ("eao",),
    "multistart.AverageAccuracyRobustness": ("accuracy", "robustness"),
    "supervised.EAOScore": ("eao",),
    "supervised.AverageAccuracyRobustness": ("accuracy", "failures"),
}


def _measure_names(parameters: Dict) -> Tuple[str, ...]:
    kind = ".".join(parameters["type"].rsplit(".", 2)[-2:])
    return tuple(n or (parameters.get("name") or "average overlap").lower() for n in MEASURES.get(kind, ()))


def headline(analysis: Dict) -> List[Dict]:
    """One row per experiment and tracker of a ``vot analysis --format json`` output: ``tracker``,
    ``experiment`` and each scalar measure the experiment's analyses give (VOTS: quality, accuracy, robustness,
    nre, dre, adq; multistart: eao, accuracy, robustness; supervised: accuracy, failures, eao), None where N/A."""
    trackers = list(analysis["trackers"])
    rows = []
    for experiment, data in analysis["results"].items():
        for i, tracker in enumerate(trackers):
            row: Dict = {"tracker": tracker, "experiment": experiment}
            for parameters, result in zip(data["parameters"]["analyses"], data["results"]):
                row.update(zip(_measure_names(parameters), result[i]))
            rows.append(row)
    return rows


def format_headline(rows: List[Dict], labels: Optional[Dict[str, str]] = None) -> str:
    """A table per experiment (titled when there are several), trackers by label."""
    labels = labels or {}
    experiments = list(dict.fromkeys(r["experiment"] for r in rows))
    width = max([len(labels.get(r["tracker"], r["tracker"])) for r in rows] + [7])
    blocks = []
    for experiment in experiments:
        mine = [r for r in rows if r["experiment"] == experiment]
        cols = [c for c in dict.fromkeys(k for r in mine for k in r) if c not in ("tracker", "experiment")]
        if not cols:
            continue
        lines = [f"experiment {experiment}"] if len(experiments) > 1 else []
        lines.append(f"{'tracker':<{width}}  " + "  ".join(f"{c.upper() if len(c) == 3 else c.capitalize():>10}"
                                                         for c in cols))
        for r in mine:
            cells = "  ".join(f"{'N/A' if r.get(c) is None else format(r[c], '.3f'):>10}" for c in cols)
            lines.append(f"{labels.get(r['tracker'], r['tracker']):<{width}}  {cells}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no scores: the stack has no analyses (the challenge server scores it)"


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
    p = sub.add_parser("plan", help="print TOOLKIT MASKS LOCAL_COPY for a stack: the vot-toolkit release that runs "
                                    "it, 1 when its ground truth is masks, 1 when the workspace needs a copy of it")
    p.add_argument("stack", help="a catalogue name (vot2022/shorttermbox) or a stack file")
    s = sub.add_parser("stack", help="write the offline demo stack, or a workspace's copy of --from")
    s.add_argument("--output", required=True)
    s.add_argument("--from", dest="source", help="the catalogue stack (or stack file) to copy")
    r = sub.add_parser("replica", help="write offline sequences for a stack (the toolkit's dummy sequences)")
    r.add_argument("--stack", required=True)
    r.add_argument("--output", required=True, help="the workspace's sequences folder")
    r.add_argument("--count", type=int, default=2)
    r.add_argument("--frames", type=int, default=300)
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
        elif args.command == "plan":
            plan = plan_stack(args.stack)
            print(plan.toolkit, int(plan.masks), int(plan.local_copy))
        elif args.command == "stack":
            with open(args.output, "w") as f:
                f.write(plan_stack(args.source).stack_file_text() if args.source else DEMO_STACK)
        elif args.command == "replica":
            names = write_replica(plan_stack(args.stack), args.output, args.count, args.frames)
            print(f"wrote {len(names)} sequences to {args.output}")
        else:
            if not os.path.isfile(args.analysis):
                raise ValueError(f"no analysis {args.analysis}: run vot analysis --format json --name NAME first")
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
