"""Per-frame SAM mask time in both modes for 1, 4 and 16 objects, and how far the modes' masks agree.

The crop mode (the reference) encodes one crop per object, the frame mode one image per frame, so
their costs part ways as objects are added; this measures by how much on a given machine.

    .venv/bin/python benchmarks/sam_speed.py --model-type vit_b --device cuda --precision bf16-weights \\
        --checkpoint sam_vit_b_01ec64.pth --json vit_b.json

Without ``--checkpoint`` the model has random weights: right for timing, meaningless for agreement.
The frame is synthetic: coloured ellipses on a smooth background, one box per ellipse.
"""
from __future__ import annotations

import argparse
from importlib.metadata import version
from typing import Dict, List, Tuple

import numpy as np
import torch
from segment_anything.modeling import Sam

from vot_lorat.masks.sam import (GUARDS, MODES, SAM_MODEL_TYPES, SAM_PRECISIONS, SamMaskGenerator, SamOptions,
                                 load_sam)

from common import (add_common_args, apply_threads, csv_choices, csv_ints, emit_tables, markdown_table, summarize,
                    time_calls, write_json)


def synthetic_frame(width: int, height: int, objects: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """A frame with ``objects`` ellipses and their xyxy boxes, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xs / width * 120 + 40, ys / height * 120 + 40, np.full_like(xs, 90)], axis=-1)
    boxes = []
    for _ in range(objects):
        size = rng.uniform(0.05, 0.2, 2) * [width, height]
        centre = rng.uniform(size / 2, [width, height] - size / 2)
        inside = ((xs - centre[0]) / (size[0] / 2)) ** 2 + ((ys - centre[1]) / (size[1] / 2)) ** 2 <= 1
        image[inside] = rng.uniform(0, 255, 3)
        boxes.append(np.concatenate([centre - size / 2, centre + size / 2]))
    return image.astype(np.uint8), np.array(boxes).reshape(-1, 4)


def load_model(args: argparse.Namespace) -> Sam:
    if args.checkpoint:
        return load_sam(args.model_type, args.checkpoint, args.device)
    torch.manual_seed(0)
    return SAM_MODEL_TYPES[args.model_type].build().to(args.device).eval()


def mean_iou(a: List[np.ndarray], b: List[np.ndarray]) -> float:
    """Mean over objects; two empty masks agree fully."""
    scores = []
    for x, y in zip(a, b):
        union = np.logical_or(x, y).sum()
        scores.append(1.0 if union == 0 else np.logical_and(x, y).sum() / union)
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-type", choices=SAM_MODEL_TYPES, default="vit_b")
    parser.add_argument("--checkpoint", help="Meta's sam_vit_*.pth; random weights without it")
    parser.add_argument("--precision", choices=SAM_PRECISIONS, default="fp32")
    parser.add_argument("--modes", type=csv_choices(MODES), default=list(MODES),
                        help=f"comma-separated, any of {','.join(MODES)} (default: both)")
    parser.add_argument("--objects", type=csv_ints, default=[1, 4, 16], help="objects per frame (default: 1,4,16)")
    parser.add_argument("--guard", choices=GUARDS, default="box")
    parser.add_argument("--frame-size", default="1280x720", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=3, help="timed frames per setting")
    parser.add_argument("--warmup", type=int, default=1, help="untimed frames per setting")
    add_common_args(parser)
    args = parser.parse_args()
    apply_threads(args)
    width, height = (int(v) for v in args.frame_size.lower().split("x"))

    sam = load_model(args)
    rows: List[Dict] = []
    for count in args.objects:
        frames = [synthetic_frame(width, height, count, seed=i) for i in range(args.warmup + args.frames)]
        masks = {}
        for mode in args.modes:
            generator = SamMaskGenerator(sam, SamOptions(mode=mode, precision=args.precision, guard=args.guard))
            timed_results = []

            def step(i: int) -> None:
                results = generator(*frames[i])  # numpy masks: the device has finished
                if i >= args.warmup:
                    timed_results.extend(results)

            times = time_calls(step, args.warmup, args.frames, args.device)
            masks[mode] = [r.mask for r in timed_results]
            stats = summarize(times)
            rows.append({"mode": mode, "objects": count, "median_ms": stats["median_ms"], "min_ms": stats["min_ms"],
                         "times_ms": times, "guard_fallbacks": sum(r.fallback for r in timed_results)})
        if len(masks) == 2:
            for row in rows[-2:]:
                row["crop_frame_mean_iou"] = mean_iou(masks["crop"], masks["frame"])

    model = args.model_type + ("" if args.checkpoint else " (random weights)")
    title = (f"SAM {model}, {args.device}, {args.precision}, frame {width}x{height}, "
             f"{args.frames} timed frames after {args.warmup} warm-up")
    headers = ["mode", "objects", "median ms/frame", "min ms/frame", "guard fallbacks", "crop/frame mean IoU"]
    cells = [[row["mode"], str(row["objects"]), f"{row['median_ms']:.1f}", f"{row['min_ms']:.1f}",
              f"{row['guard_fallbacks']}/{row['objects'] * args.frames}",
              f"{row['crop_frame_mean_iou']:.3f}" if "crop_frame_mean_iou" in row else "-"] for row in rows]
    emit_tables([(title, markdown_table(headers, cells))], args.markdown)
    settings = {"model": model, "precision": args.precision, "guard": args.guard, "frame_size": [width, height],
                "frames": args.frames, "warmup": args.warmup, "sam_input_size": int(sam.image_encoder.img_size)}
    write_json(args.json, args.device, settings, rows, segment_anything=version("segment-anything"))


if __name__ == "__main__":
    main()
