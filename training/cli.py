"""``python -m training {train,evaluate,check-data} ...``: the command line over training/."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Dict, List, Optional

from vot_lorat.tracker import PRECISIONS

from .config import DataSource, TrainConfig, config_from_dict, load_yaml
from .flags import add_flags, given_values


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train or fine-tune a LoRAT", description=(
        "Train a LoRAT. Defaults are the paper's recipe (170 epochs x 131072 samples, batch 128, AdamW 1e-4, "
        "wd 0.1, 2 warmup epochs + cosine, fp16 AMP on GPU). Multi-GPU / multi-node: launch with torchrun."))
    p.add_argument("--config", help="YAML file of TrainConfig fields; flags given here override it")
    add_flags(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output")
    p.add_argument("--stop-after", type=int, help="stop after N optimiser steps of this invocation")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="one-pass evaluation of a checkpoint on sequence datasets")
    p.add_argument("--variant", required=True)
    p.add_argument("--backbone")
    p.add_argument("--weights", required=True, help="LoRAT checkpoint (model.bin / model.safetensors)")
    p.add_argument("--data", action="append", required=True, metavar="KIND[:PATH][,k=v]")
    p.add_argument("--output", required=True, help="folder for the pytracking result files and metrics")
    p.add_argument("--device", default="auto", help="auto: cuda when available (under torchrun: this rank's GPU)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="int8: dynamic quantisation of the merged model, CPU only")
    p.add_argument("--max-sequences", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: torch's default)")


def _add_check(sub) -> None:
    p = sub.add_parser("check-data", help="validate a dataset tree and report its problems", description=(
        "Validate a dataset tree: bad annotation lines, frame / annotation count mismatches, missing frames, "
        "empty boxes not marked absent, boxes outside the image, unreadable images (--images). Exit status: "
        "0 clean, 1 problems found, 2 usage error."))
    p.add_argument("kind", help="lasot, got10k, trackingnet, coco or custom")
    p.add_argument("path", help="the dataset folder")
    p.add_argument("--split", help="the reader's split (default: the reader's default)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option, repeatable: split_file=PATH (got10k), chunks=0-3 (trackingnet)")
    p.add_argument("--images", action="store_true",
                   help="decode every frame (slow); otherwise only each sequence's first frame size is read")
    p.add_argument("--max-lines", type=int, default=10, help="problems printed per sequence (default 10)")


def _add_vot_sequences(sub) -> None:
    p = sub.add_parser("make-vot-sequences", help="write synthetic multi-object sequences for a VOT workspace")
    p.add_argument("--output", required=True, help="the workspace's sequences/ folder")
    p.add_argument("--count", type=int, default=6)
    p.add_argument("--frames", type=int, default=80)
    p.add_argument("--objects", type=int, default=3, help="sequences cycle through 1..N objects")
    p.add_argument("--seed", type=int, default=0)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The YAML file's fields (``--config``), overridden by the flags given."""
    data: Dict[str, Any] = load_yaml(args.config) if args.config else {}
    for key, value in given_values(args, TrainConfig).items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(data)


def _run_evaluate(args) -> int:
    from vot_lorat import load_model

    from .data.registry import build_dataset
    from .distributed import setup
    from .evaluate import evaluate, format_report

    proc = setup(args.device, args.threads)  # under torchrun, sequences are split across the ranks
    model = load_model(args.variant, args.backbone, args.weights, device=proc.device)
    datasets = [build_dataset(DataSource.parse(d)) for d in args.data]
    report = evaluate(model, datasets, args.output, precision=args.precision, max_sequences=args.max_sequences,
                      rank=proc.rank, world=proc.world)
    if proc.main:
        print(format_report(report))
    return 0


def _run_check(args) -> int:
    from .data.check import run_check

    options = {}
    for option in args.option:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option {option!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    if args.split:
        options["split"] = args.split
    return run_check(DataSource(args.kind.lower(), args.path, 1.0, options), args.images, args.max_lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_check(sub)
    _add_vot_sequences(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "train":
            from .trainer import train

            cfg = train_config_from_args(args)
            train(cfg, resume=args.resume, stop_after=args.stop_after)
            return 0
        if args.command == "check-data":
            return _run_check(args)
        if args.command == "make-vot-sequences":
            from .vot_sequences import make_vot_sequences

            for row in make_vot_sequences(args.output, args.count, args.frames, args.objects, args.seed):
                print(f"{row['name']}: {row['objects']} object(s), {row['frames']} frames, "
                      f"{row['hidden_then_back']} hidden and back")
            return 0
        return _run_evaluate(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

