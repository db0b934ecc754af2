"""python -m training COMMAND: train LoRAT, evaluate checkpoints, compare trackers' result files, plot results and
training curves, check dataset trees, write synthetic and miniature datasets. Every command explains its options
with --help."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any, Dict, List, Optional

from vot_lorat.options import add_flags, given_values
from vot_lorat.tracking.tracker import PRECISIONS

from .config import DataSource, TrainConfig, config_from_dict, load_yaml
from .interrupt import Interrupted


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train or fine-tune a LoRAT", description=(
        "Train a LoRAT. Defaults are the paper's recipe (170 epochs x 131072 samples, batch 128, AdamW 1e-4, "
        "wd 0.1, 2 warmup epochs + cosine, fp16 AMP on GPU). Multi-GPU / multi-node: launch with torchrun."))
    p.add_argument("--config", help="YAML file of TrainConfig fields; flags given here override it")
    add_flags(p, TrainConfig)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its newest readable checkpoint of this variant, with "
                        "the recipe it was started with (default: off)")
    p.add_argument("--allow-changes", action="store_true",
                   help="with --resume: continue with a recipe (batch size, learning rate, epochs, data, ...) that "
                        "differs from the checkpoint's; without it such a resume is refused and the changes are "
                        "named (default: off)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in --output and start again (default: off; without it or "
                        "--resume such a folder is refused)")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="stop after N optimiser steps of this invocation, with a checkpoint (default: none, "
                        "run to the end)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (default: off; the bar is shown only when stderr is a terminal)")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="one-pass evaluation of a checkpoint on sequence datasets", description=(
        "Track every sequence of the datasets from its first box (one-pass evaluation), write the result files "
        "in each benchmark's format and print the scores next to a static baseline (always the first box): "
        "AO / SR for GOT-10k, success AUC / precision / normalised precision for the others; splits without "
        "ground truth get submission files instead. Under torchrun the sequences are split across the ranks."))
    p.add_argument("--variant", required=True, help="the checkpoint's variant, e.g. B-224 or tiny")
    p.add_argument("--backbone", help="DINOv2 weights, for checkpoints that hold only the LoRA adapters and head "
                                      "(default: none, the checkpoint holds every weight)")
    p.add_argument("--weights", required=True, help="LoRAT checkpoint (model.bin / model.safetensors)")
    p.add_argument("--data", action="append", required=True, metavar="KIND[:PATH][,k=v]",
                   help="dataset to evaluate on, repeatable, e.g. lasot:/d/LaSOT,split=test")
    p.add_argument("--output", required=True,
                   help="folder for the result files (in each benchmark's format), metrics and submission zips; a "
                        "folder that already holds an evaluation needs --resume or --overwrite")
    p.add_argument("--resume", action="store_true",
                   help="keep the sequences already finished in --output, as the VOT toolkit does, and track the "
                        "rest (after an interrupt, or with more --data or --max-sequences); refused when --output "
                        "holds an evaluation of other weights, variant or precision (default: off)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the evaluation already in --output (its result files, metrics and report; other "
                        "files stay) and start again (default: off)")
    p.add_argument("--device", default="auto", help="auto (the default): cuda when available (under torchrun: this "
                                                    "rank's GPU), else cpu; or cpu, cuda, cuda:N")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="autocast precision (default: fp32); int8: dynamic quantisation of the merged model, CPU only")
    p.add_argument("--max-sequences", type=int, default=0, metavar="N",
                   help="at most N sequences per dataset (default: 0, all)")
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (default: 0, torch's default)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (default: off; bars are shown only when stderr is a terminal)")


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
    p = sub.add_parser("make-vot-sequences", help="write synthetic multi-object sequences for a VOT workspace",
                       description="Write synthetic multi-object sequences with full ground truth (boxes and masks; "
                                   "objects that leave the frame and come back) in the VOT toolkit's layout, with "
                                   "their list.txt, as ./workspace_setup.sh --demo does.")
    p.add_argument("--output", required=True,
                   help="the workspace's sequences/ folder; its list.txt keeps every sequence it names, and "
                        "sequences of an earlier make-vot-sequences with the same names (synth00, ...) are "
                        "replaced whole")
    p.add_argument("--count", type=int, default=6, metavar="N", help="sequences (default: 6)")
    p.add_argument("--frames", type=int, default=80, metavar="N", help="frames per sequence (default: 80)")
    p.add_argument("--objects", type=int, default=3, metavar="N",
                   help="sequences cycle through 1..N objects (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes (default: 0)")


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="success and precision plots of evaluated runs (PNG and PDF)", description=(
        "Success, precision and normalised precision plots (GOT-10k: success plot with AO), one curve per result "
        "folder with its score in the legend, from the metrics.json that evaluation writes in each folder. "
        "Folders of several datasets give one set of plots per dataset; test splits (no metrics) are skipped."))
    p.add_argument("folders", nargs="+", metavar="FOLDER",
                   help="result folders: RUN/eval/DATASET of a training run or OUTPUT/DATASET of evaluate; RUN/eval "
                        "or OUTPUT itself stands for each of its datasets")
    p.add_argument("--output", default="plots", help="folder for the figures (default: plots)")
    p.add_argument("--labels", help="comma-separated legend labels, one per folder (default: each folder's run)")


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="score trackers' raw result files side by side: tables and plots",
                       description=(
        "Score any trackers' result files against a benchmark's ground truth as its toolkit does (success AUC, "
        "OP50, OP75, precision, normalised precision; AO and SR for GOT-10k): one table sorted by the main score "
        "(printed, CSV and Markdown), every sequence's scores (CSV), one figure per curve with every tracker (PNG "
        "and PDF) and, with --attributes, LaSOT's success AUC per attribute. A result folder holds <seq>.txt or "
        "<seq>/<seq>_001.txt files of x,y,w,h lines (commas, tabs or spaces) in the benchmark's coordinates; the "
        "output of evaluate and a training run folder are taken as they are."))
    p.add_argument("results", nargs="+", metavar="[NAME=]PATH",
                   help="a tracker's result folder; NAME= names it in the tables and legends (default: the "
                        "folder's name, or the run's for our own evaluations)")
    p.add_argument("--data", required=True, metavar="KIND:PATH[,k=v]",
                   help="the benchmark and its ground truth, e.g. lasot:/d/LaSOT,split=test or "
                        "got10k:/d/GOT-10k,split=val")
    p.add_argument("--output", default="comparison", metavar="DIR",
                   help="folder for the tables and figures (default: comparison)")
    p.add_argument("--common-sequences", action="store_true",
                   help="score over the sequences every tracker has a complete result file for (default: off, a "
                        "missing or short result file is an error)")
    p.add_argument("--attributes", metavar="DIR",
                   help="LaSOT attribute files, <seq>.txt with 14 comma-separated 0/1 flags as the LaSOT toolkit's "
                        "annos/att holds them: adds the success AUC per attribute (default: none)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a comparison already in --output (default: off, such a folder is refused)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (default: off; the bar is shown only when stderr is a terminal)")


def _add_plot_training(sub) -> None:
    p = sub.add_parser("plot-training", help="loss, learning rate and samples/s of a run (PNG and PDF)",
                       description="Loss (and its parts), learning rate, samples per second and, when the run "
                                   "validates, the validation scores, from the run's log.jsonl.")
    p.add_argument("run", help="the run folder (train --output)")
    p.add_argument("--output", help="folder for the figures (default: the run folder)")


def _add_miniature(sub) -> None:
    p = sub.add_parser("make-miniature", help="small LaSOT, GOT-10k, TrackingNet and COCO in their published "
                                              "layouts, with procedural frames", description=(
        "Write miniature copies of LaSOT, GOT-10k, TrackingNet and COCO 2017 in the layouts their documentation "
        "describes (LaSOT 1-based, GOT-10k labels and test split with the first box only, TrackingNet chunks, COCO "
        "with a crowd and a degenerate annotation), with procedural frames: to try train, evaluate, check-data and "
        "plot without the real datasets."))
    p.add_argument("--output", required=True, help="folder that receives LaSOT/, GOT-10k/, TrackingNet/, COCO/ "
                                                       "(refused where one of them is there already)")
    p.add_argument("--sequences", type=int, default=2, help="sequences per split, and COCO images (default 2)")
    p.add_argument("--frames", type=int, default=40, help="frames per sequence (default 40)")
    p.add_argument("--seed", type=int, default=0, help="another seed gives other scenes (default 0)")


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The YAML file's fields (``--config``), overridden by the flags given."""
    data: Dict[str, Any] = load_yaml(args.config) if args.config else {}
    for key, value in given_values(args, TrainConfig).items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(data)


def _run_evaluate(args) -> int:
    from vot_lorat import load_model

    from . import distributed
    from .data.registry import build_dataset
    from .evaluate import evaluate, evaluation_settings, format_report, prepare_output

    proc = distributed.setup(args.device, args.threads)  # under torchrun, sequences are split across the ranks
    if not os.path.isfile(args.weights):
        raise ValueError(f"LoRAT weights not found: {args.weights}")
    if proc.main:  # before any work: a folder with another evaluation is never mixed into or replaced silently
        prepare_output(args.output, evaluation_settings(args.variant, args.weights, args.backbone, args.precision),
                       args.resume, args.overwrite)
    distributed.barrier()
    datasets = [build_dataset(DataSource.parse(d)) for d in args.data]
    model = load_model(args.variant, args.backbone, args.weights, device=proc.device)
    report = evaluate(model, datasets, args.output, precision=args.precision, max_sequences=args.max_sequences,
                      rank=proc.rank, world=proc.world, progress=not args.quiet, resume=args.resume)
    if proc.main:
        print(format_report(report))
    return 0


def _run_compare(args) -> int:
    from .compare import check_output, compare, format_tables, tracker_folder, write_comparison
    from .data.registry import build_dataset

    check_output(args.output, args.overwrite)
    dataset = build_dataset(DataSource.parse(args.data))
    trackers = [tracker_folder(text, dataset.name) for text in args.results]
    comparison = compare(dataset, trackers, args.common_sequences, args.attributes, progress=not args.quiet)
    print(format_tables(comparison))
    written = write_comparison(comparison, args.output)
    figures = sum(path.endswith(".png") for path in written)
    print(f"tables and {figures} figures (PNG and PDF) written to {args.output}")
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
    _add_miniature(sub)
    _add_compare(sub)
    _add_plot(sub)
    _add_plot_training(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM (kill, a cluster's pre-emption) stops every command as Ctrl-C does; train's steps handle both
    # themselves, to end with a checkpoint
    in_main_thread = threading.current_thread() is threading.main_thread()  # where signals can be handled
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        if args.command == "train":
            from .trainer import train

            cfg = train_config_from_args(args)
            if args.allow_changes and not args.resume:
                raise ValueError("--allow-changes goes with --resume: it lets a resumed run change its recipe")
            train(cfg, resume=args.resume, stop_after=args.stop_after, overwrite=args.overwrite,
                  progress=not args.quiet, allow_changes=args.allow_changes)
            return 0
        if args.command == "check-data":
            return _run_check(args)
        if args.command == "make-vot-sequences":
            from .vot_sequences import make_vot_sequences

            for row in make_vot_sequences(args.output, args.count, args.frames, args.objects, args.seed):
                print(f"{row['name']}: {row['objects']} object(s), {row['frames']} frames, "
                      f"{row['hidden_then_back']} hidden and back")
            return 0
        if args.command == "make-miniature":
            from .miniature import make_miniature

            for name, folder in make_miniature(args.output, args.sequences, args.frames, args.seed).items():
                print(f"{name}: {folder}")
            return 0
        if args.command == "compare":
            return _run_compare(args)
        if args.command == "plot":
            from .plots import plot_results

            labels = args.labels.split(",") if args.labels else None
            print("\n".join(plot_results(args.folders, args.output, labels)))
            return 0
        if args.command == "plot-training":
            from .plots import plot_training_log

            print("\n".join(plot_training_log(args.run, args.output)))
            return 0
        return _run_evaluate(args)
    except Interrupted as exc:
        print(exc, file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
        hints = {"train": "; --resume continues from the run's newest checkpoint",
                 "evaluate": f"; the finished sequences are kept in {getattr(args, 'output', '')}: add --resume to "
                             f"track the rest"}
        print(f"{signal.Signals(signum).name}: interrupted{hints.get(args.command, '')}", file=sys.stderr)
        return 128 + signum
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that both stop a command the same way."""

    signum = signal.SIGTERM


def _terminate(_signum: int, _frame) -> None:
    raise Terminated()

