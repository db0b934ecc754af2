"""Per-frame time of the whole LoRAT tracker step for 1 to 16 objects: JPEG decode, crops, model, post-processing.

Each frame is read from a JPEG file with ``vot_lorat.image_io.read_rgb`` (timed here) and tracked with
``LoRATTracker.track(image, profile=True)``, which reports its preprocess (crops + normalisation), model
(one batched forward pass for all objects) and postprocess (window, arg-max, back-projection) times,
synchronising the GPU around the model. The share of time outside the model is given against the model
time, once with the decode and once without it (the tracker's own overhead).

    .venv/bin/python benchmarks/tracker_speed.py --variants B-224 --device cpu --precision fp32 --json cpu.json
    .venv/bin/python benchmarks/tracker_speed.py --variants B-224,L-224 --device cuda --precision fp16 --json gpu.json

The frames (``--frame-size``, 1280x720 by default) are rendered once by the training code's synthetic
scene generator with one moving target per object and written to a temporary folder; the trackers start
from the targets' boxes in the first frame. Weights are random unless ``--weights`` (and ``--backbone``
for adapter-only checkpoints) name a real checkpoint; either way LoRA is merged, as in deployment.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import torch

from common import (add_common_args, apply_threads, csv_ints, csv_list, device_name, emit_tables, markdown_table,
                    time_calls, write_json)
from training.data.synthetic import SceneStyle, SyntheticScene
from vot_lorat import box as bx
from vot_lorat import load_model
from vot_lorat.config import VARIANTS
from vot_lorat.image_io import read_rgb
from vot_lorat.masks import BoxMaskGenerator, crop_to_content
from vot_lorat.model import LoRAT
from vot_lorat.tracker import PRECISIONS, LoRATTracker

PARTS = ("decode", "preprocess", "model", "postprocess", "masks")


def write_frames(folder: Path, count: int, targets: int, width: int, height: int, seed: int):
    """Render ``count`` frames of a scene with ``targets`` moving targets as JPEGs; return the paths and
    one start box (xyxy) per target in the first frame."""
    scene = SyntheticScene(seed, count, targets, SceneStyle(frame_sizes=((width, height),)))
    paths = []
    for t in range(count):
        path = folder / f"{t:08d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(scene.render(t), cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    rng = np.random.default_rng(seed)
    boxes = []
    for target in scene.targets:
        box = bx.clip(target.boxes[0].astype(np.float64), width, height)
        if not bx.is_valid(box):  # the target starts outside the frame: any box will do for timing
            x, y = rng.uniform(0, [width - 160, height - 160])
            box = np.array([x, y, x + rng.uniform(40, 160), y + rng.uniform(40, 160)])
        boxes.append(box)
    return paths, boxes


def measure(model: LoRAT, precision: str, paths: List[str], boxes: List[np.ndarray], warmup: int, frames: int,
            device: torch.device, masks: bool, sequential: bool) -> Dict[str, float]:
    """Mean ms per frame of each part and of the whole step, for ``len(boxes)`` objects: one tracker with a
    batched forward pass, or with ``sequential`` one tracker per object (what a per-object wrapper does).
    With ``masks`` the step also makes box-filled masks and their TraX crops."""
    trackers = [LoRATTracker(model, precision) for _ in (boxes if sequential else [None])]
    first = read_rgb(paths[0])
    for i, box in enumerate(boxes):
        trackers[i if sequential else 0].add_object(first, box)
    parts: Dict[str, List[float]] = {name: [] for name in PARTS}
    make_masks = BoxMaskGenerator()

    def step(i: int) -> None:
        start = time.perf_counter()
        image = read_rgb(paths[1 + i])
        decode = time.perf_counter() - start
        spent = dict.fromkeys(PARTS[1:], 0.0)
        results = []
        for tracker in trackers:
            results += tracker.track(image, profile=True)
            for name in ("preprocess", "model", "postprocess"):
                spent[name] += tracker.timing[name]
        if masks:
            start = time.perf_counter()
            made = make_masks(image, np.stack([r.box for r in results]), np.array([r.confidence for r in results]))
            for m in made:
                crop_to_content(m.mask, m.rect)
            spent["masks"] = time.perf_counter() - start
        if i >= warmup:
            parts["decode"].append(decode * 1e3)
            for name in PARTS[1:]:
                parts[name].append(spent[name] * 1e3)

    totals = time_calls(step, warmup, frames, device)
    means = {f"{name}_ms": statistics.fmean(values) for name, values in parts.items()}
    means["total_ms"] = statistics.fmean(totals)
    return means


def table(rows: List[Dict]) -> str:
    headers = ["variant", "objects", "forward", "decode ms", "preprocess ms", "model ms", "postprocess ms", "masks ms",
               "total ms", "fps", "outside model / model", "pre+post / model"]
    cells = [[r["variant"], str(r["objects"]), r["forward"], *(f"{r[f'{name}_ms']:.2f}" for name in PARTS),
              f"{r['total_ms']:.2f}",
              f"{r['fps']:.1f}", f"{100 * r['outside_share']:.1f} %", f"{100 * r['tracker_overhead_share']:.1f} %"]
             for r in rows]
    return markdown_table(headers, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=csv_list, default=["B-224"], help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--objects", type=csv_ints, default=[1, 2, 4, 8, 16], help="objects tracked at once")
    parser.add_argument("--precision", choices=list(PRECISIONS),
                        help="autocast precision (default: fp16 on CUDA, as the paper; fp32 on the CPU)")
    parser.add_argument("--frames", type=int, default=50, help="timed frames per setting")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames per setting")
    parser.add_argument("--frame-size", default="1280x720", help="WIDTHxHEIGHT")
    parser.add_argument("--weights", help="a LoRAT checkpoint (random weights without it)")
    parser.add_argument("--backbone", help="DINOv2 weights, for checkpoints that hold only the adapters and head")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--masks", action="store_true", help="also time box-filled masks and their TraX crops")
    parser.add_argument("--sequential", action="store_true",
                        help="also time one tracker per object (no batching), for comparison")
    add_common_args(parser)
    args = parser.parse_args()
    apply_threads(args)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.weights and len(args.variants) > 1:
        raise SystemExit("--weights belongs to one variant: give exactly one with --variants")
    device = torch.device(args.device)
    precision = args.precision or ("fp16" if device.type == "cuda" else "fp32")
    width, height = (int(v) for v in args.frame_size.lower().split("x"))

    rows = []
    with tempfile.TemporaryDirectory(prefix="lorat-frames-") as folder:
        paths, boxes = write_frames(Path(folder), 1 + args.warmup + args.frames, max(args.objects), width, height,
                                    args.seed)
        for variant in args.variants:
            torch.manual_seed(args.seed)
            model = load_model(variant, args.backbone, args.weights, device, merge=True)
            for count in args.objects:
                for sequential in (False, True) if args.sequential and count > 1 else (False,):
                    row = {"variant": variant, "objects": count, "forward": "per object" if sequential else "batched",
                           **measure(model, precision, paths, boxes[:count], args.warmup, args.frames, device,
                                     args.masks, sequential)}
                    outside = row["decode_ms"] + row["preprocess_ms"] + row["postprocess_ms"] + row["masks_ms"]
                    row.update(fps=1e3 / row["total_ms"], outside_share=outside / row["model_ms"],
                               tracker_overhead_share=(row["preprocess_ms"] + row["postprocess_ms"]) / row["model_ms"])
                    rows.append(row)
                    print(f"{variant} {count} objects {row['forward']}: {row['total_ms']:.2f} ms/frame",
                          file=sys.stderr)
            del model

    weights = args.weights or "random"
    title = (f"LoRAT tracker step per frame, {device_name(device)} ({device.type}, {torch.get_num_threads()} threads), "
             f"{precision}, {width}x{height} JPEG frames, {args.frames} timed frames after {args.warmup} warm-up, "
             f"weights: {weights}; shares are of the model time")
    emit_tables([(title, table(rows))], args.markdown)
    settings = {"variants": args.variants, "objects": args.objects, "precision": precision, "masks": args.masks,
                "frame_size": [width, height], "frames": args.frames, "warmup": args.warmup, "weights": weights,
                "backbone": args.backbone, "seed": args.seed}
    write_json(args.json, device, settings, rows)


if __name__ == "__main__":
    main()
