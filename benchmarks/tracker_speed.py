"""Per-frame time of the whole LoRAT tracker step for 1 to 16 objects: JPEG decode, crops, model, post-processing,
and with ``--trax`` the per-frame time of the TraX server as the VOT toolkit measures it.

Each frame is read from a JPEG file as the TraX server reads it: a ``FramePrefetcher`` thread decodes the next
file on the tracker's device (nvJPEG on a GPU) while the current one is tracked; ``decode`` is the time the
step waits for its frame and ``decode (ahead)`` the reading itself, in the thread (``--no-prefetch`` decodes in
the step with ``read_frame``). Then
``LoRATTracker.track(image, profile=True)`` reports its preprocess (crops and normalisation of all objects),
model (one batched forward pass) and postprocess (window, arg-max, back-projection) times, synchronising the
GPU around the model. Every time is the median over the timed frames. The share outside the model is
(decode + preprocess + postprocess + masks) / model, and without the decode (the tracker's own overhead).

With ``--trax``, ``python -m vot_lorat`` runs as a TraX server on the same frames, objects and settings, driven
by the TraX client the toolkit uses (through ``trax_server_timed.py``, which also times the server's forward
passes); its per-frame time is the toolkit's (request sent to answer received), so everything outside the
model (reading, crops, post-processing, the TraX messages) is that time minus the forward pass of the same
frame in the server. For comparison the model alone is timed in this process afterwards. ``--trax-checkout
LABEL=PATH`` (repeatable) runs the servers of other checkouts too, e.g. an older commit in a git worktree: the
servers take turns frame by frame, so that a busy machine slows them alike.

    .venv/bin/python benchmarks/tracker_speed.py --variants B-224 --device cpu --precision fp32 --json cpu.json
    .venv/bin/python benchmarks/tracker_speed.py --variants B-224,L-224 --device cuda --precision fp16 --json gpu.json
    .venv/bin/python benchmarks/tracker_speed.py --variants tiny \\
        --weights vot_lorat/checkpoints/lorat_tiny_synthetic.safetensors --objects 1,3,8 --frame-size 1920x1080 \\
        --threads 1 --trax

The frames (``--frame-size``, 1280x720 by default) are rendered once by the training code's synthetic
scene generator with one moving target per object and written to a temporary folder; the trackers start
from the targets' boxes in the first frame. Weights are random unless ``--weights`` (and ``--backbone``
for adapter-only checkpoints) name a real checkpoint; either way LoRA is merged, as in deployment.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import torch

from training.data.synthetic import SceneStyle, SyntheticScene
from vot_lorat import load_model
from vot_lorat.device import resolve_precision
from vot_lorat.frames.read_ahead import FramePrefetcher
from vot_lorat.frames.reading import read_frame
from vot_lorat.masks.box_masks import BoxMaskGenerator
from vot_lorat.masks.regions import crop_to_content
from vot_lorat.model.config import VARIANTS
from vot_lorat.model.network import LoRAT
from vot_lorat.tracking import box as bx
from vot_lorat.tracking.tracker import PRECISIONS, LoRATTracker, precision_context

from common import (add_common_args, apply_threads, csv_ints, csv_list, device_name, emit_tables, markdown_table,
                    time_calls, write_json)
from trax_server_timed import read_forward_times

REPO = Path(__file__).resolve().parent.parent
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


class TimedReader:
    """``read_frame`` onto a device, recording how long each decode took (in whichever thread ran it)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.ms: Dict[str, float] = {}

    def __call__(self, path: str) -> torch.Tensor:
        start = time.perf_counter()
        image = read_frame(path, self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.ms[path] = (time.perf_counter() - start) * 1e3
        return image


def measure(model: LoRAT, precision: str, paths: List[str], boxes: List[np.ndarray], warmup: int, frames: int,
            device: torch.device, masks: bool, sequential: bool, prefetch: bool) -> Dict[str, float]:
    """Median ms per frame of each part and of the whole step, for ``len(boxes)`` objects: one tracker with a
    batched forward pass, or with ``sequential`` one tracker per object (what a per-object wrapper does).
    With ``masks`` the step also makes box-filled masks and their TraX crops."""
    trackers = [LoRATTracker(model, precision) for _ in (boxes if sequential else [None])]
    reader = TimedReader(device)
    first = reader(paths[0])
    for i, box in enumerate(boxes):
        trackers[i if sequential else 0].add_object(first, box)
    parts: Dict[str, List[float]] = {name: [] for name in (*PARTS, "decode_ahead")}
    make_masks = BoxMaskGenerator()
    prefetcher = FramePrefetcher(reader, min_read_s=1e-3) if prefetch else None  # as the TraX server reads

    def step(i: int) -> None:
        start = time.perf_counter()
        path = paths[1 + i]
        image = prefetcher.read(path) if prefetcher is not None else reader(path)
        decode = time.perf_counter() - start
        spent = dict.fromkeys(PARTS[1:], 0.0)
        results = []
        for tracker in trackers:
            results += tracker.track(image, profile=True)
            for name in ("preprocess", "model", "postprocess"):
                spent[name] += tracker.timing[name]
        if masks:
            start = time.perf_counter()
            made = make_masks(image, np.stack([r.box_xyxy for r in results]), np.array([r.confidence for r in results]))
            for m in made:
                crop_to_content(m.mask, m.rect)
            spent["masks"] = time.perf_counter() - start
        if i >= warmup:
            parts["decode"].append(decode * 1e3)
            parts["decode_ahead"].append(reader.ms[path])
            for name in PARTS[1:]:
                parts[name].append(spent[name] * 1e3)

    with prefetcher if prefetcher is not None else contextlib.nullcontext():
        totals = time_calls(step, warmup, frames, device)
    medians = {f"{name}_ms": statistics.median(values) for name, values in parts.items()}
    medians["total_ms"] = statistics.median(totals)
    return medians


def table(rows: List[Dict]) -> str:
    headers = ["variant", "objects", "forward", "decode ms", "decode (ahead) ms", "preprocess ms", "model ms",
               "postprocess ms", "masks ms", "total ms", "fps", "outside model / model", "pre+post / model"]
    cells = [[r["variant"], str(r["objects"]), r["forward"], f"{r['decode_ms']:.2f}", f"{r['decode_ahead_ms']:.2f}",
              *(f"{r[f'{name}_ms']:.2f}" for name in PARTS[1:]), f"{r['total_ms']:.2f}", f"{r['fps']:.1f}",
              f"{100 * r['outside_share']:.1f} %", f"{100 * r['tracker_overhead_share']:.1f} %"]
             for r in rows]
    return markdown_table(headers, cells)


class TraxServer:
    """``python -m vot_lorat`` of one checkout as a TraX server, driven by the TraX client the toolkit uses."""

    def __init__(self, checkout: Path, variant: str, args: argparse.Namespace, precision: str) -> None:
        from trax.client import Client

        command = [sys.executable, str(REPO / "benchmarks" / "trax_server_timed.py"), "--variant", variant,
                   "--device", str(args.device), "--precision", precision, "--threads", str(torch.get_num_threads())]
        for flag, value in (("--weights", args.weights), ("--backbone", args.backbone)):
            if value:
                command += [flag, os.path.abspath(value)]
        self.checkout = checkout
        self.log = tempfile.TemporaryFile()
        self.cwd = tempfile.TemporaryDirectory()
        self.forward_file = Path(self.cwd.name) / "forward_s.json"
        self.forward_ms: List[float] = []  # every forward pass, warm-up included; filled by close()
        env = dict(os.environ, PYTHONPATH=str(checkout), TRAX="1", PYTHONUNBUFFERED="1",
                   LORAT_BENCH_FORWARD_TIMES=str(self.forward_file))
        self.process = subprocess.Popen(command, cwd=self.cwd.name, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, bufsize=0)
        self.client = self._call(lambda: Client(stream=(self.process.stdin.fileno(), self.process.stdout.fileno()),
                                                log=lambda line: None))

    def _call(self, request):
        from trax import TraxException

        try:
            return request()
        except TraxException as exc:
            self.close()
            self.log.seek(0)
            raise SystemExit(f"the TraX server of {self.checkout} failed: {exc}\n"
                             f"{self.log.read().decode(errors='replace')}")

    def initialize(self, path: str, boxes: List[np.ndarray]) -> None:
        from trax.image import FileImage
        from trax.region import Rectangle

        objects = [(Rectangle.create(*(float(v) for v in bx.xyxy_to_xywh(b))), {}) for b in boxes]
        self._call(lambda: self.client.initialize({"color": FileImage.create(path)}, objects, {}))

    def frame(self, path: str) -> float:
        """The toolkit's time for one frame (request sent to answer received), in ms."""
        from trax.image import FileImage

        return self._call(lambda: self.client.frame({"color": FileImage.create(path)}, {}, []))[1] * 1e3

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.client.quit()
                self.process.wait(timeout=60)
            except Exception:  # noqa: BLE001 - a server that hangs at the end is stopped
                self.process.kill()
        if self.forward_file.is_file():
            self.forward_ms = [s * 1e3 for s in read_forward_times(self.forward_file)[-1]]
        self.log.seek(0)
        errors = [line for line in self.log.read().decode(errors="replace").splitlines() if "ERROR" in line]
        if errors:  # a frame answered without tracking has no forward pass: the times of this server are off
            print(f"the TraX server of {self.checkout} reported errors:\n" + "\n".join(errors), file=sys.stderr)
        self.cwd.cleanup()
        self.log.close()


def trax_times(checkouts: Dict[str, Path], variant: str, args: argparse.Namespace, precision: str, model: LoRAT,
               paths: List[str], boxes: List[np.ndarray]
               ) -> Tuple[Dict[str, List[float]], Dict[str, List[float]], List[float]]:
    """Per-frame TraX times (ms) of every checkout's server, the forward passes in each server on the same
    frames, and the times of the model alone.

    The servers get the frames in turn (frame 1 to each, then frame 2, ...), so that another job on the machine
    slows all of them alike; with one checkout the frames follow each other as under ``vot evaluate``. The
    model alone (one forward pass of ``model`` on inputs of the same shape) is timed afterwards, as many times:
    timed between frames, it left each server's caches cold and its core idle, which the toolkit does not (a
    few hundred microseconds pass between its frames). The warm-up frames are left out."""
    cfg = model.config
    count = len(boxes)
    inputs = (torch.zeros(count, 3, cfg.template_size, cfg.template_size, device=args.device),
              torch.zeros(count, 3, cfg.search_size, cfg.search_size, device=args.device),
              torch.ones(count, cfg.template_grid, cfg.template_grid, dtype=torch.int64, device=args.device))
    servers = {label: TraxServer(path, variant, args, precision) for label, path in checkouts.items()}
    times: Dict[str, List[float]] = {label: [] for label in servers}
    try:
        for server in servers.values():
            server.initialize(paths[0], boxes)
        for path in paths[1:]:
            for label, server in servers.items():
                times[label].append(server.frame(path))
    finally:
        for server in servers.values():
            server.close()
    frames = len(paths) - 1
    with torch.inference_mode(), precision_context(precision, args.device):
        model_ms = time_calls(lambda _: model(*inputs), 0, frames, args.device)
    # each server's last forward passes: the warm-up before the handshake comes first
    forward = {label: server.forward_ms[-frames:][args.warmup:] for label, server in servers.items()}
    return {label: t[args.warmup:] for label, t in times.items()}, forward, model_ms[args.warmup:]


def trax_table(rows: List[Dict]) -> str:
    headers = ["checkout", "variant", "objects", "TraX ms/frame", "forward in the server ms", "outside / forward",
               "model alone ms", "TraX / model alone - 1"]
    cells = [[r["checkout"], r["variant"], str(r["objects"]), f"{r['trax_ms']:.2f}", f"{r['forward_ms']:.2f}",
              f"{100 * r['outside_share']:.1f} %", f"{r['model_ms']:.2f}", f"{100 * r['alone_share']:.1f} %"]
             for r in rows]
    return markdown_table(headers, cells)


def parse_checkout(text: str) -> Tuple[str, Path]:
    label, _, path = text.partition("=")
    if not label or not path:
        raise argparse.ArgumentTypeError(f"--trax-checkout takes LABEL=PATH, got {text!r}")
    if not (Path(path) / "vot_lorat" / "__main__.py").is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a vot_lorat checkout (no vot_lorat/__main__.py)")
    return label, Path(path).resolve()


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
    parser.add_argument("--no-prefetch", dest="prefetch", action="store_false",
                        help="decode every frame in the step instead of ahead of it")
    parser.add_argument("--trax", action="store_true", help="also time the TraX server (needs --weights)")
    parser.add_argument("--trax-checkout", type=parse_checkout, action="append",
                        help="LABEL=PATH of a vot_lorat checkout whose TraX server to time (repeatable; default: "
                             "this one)")
    add_common_args(parser)
    args = parser.parse_args()
    apply_threads(args)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.weights and len(args.variants) > 1:
        raise SystemExit("--weights belongs to one variant: give exactly one with --variants")
    if args.trax and not args.weights:
        raise SystemExit("--trax needs --weights: the TraX server loads its model from files")
    device = args.device
    precision = resolve_precision(args.precision or "auto", device)
    width, height = (int(v) for v in args.frame_size.lower().split("x"))
    checkouts = dict(args.trax_checkout or [("this", REPO)])

    rows, trax_rows = [], []
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
                                     args.masks, sequential, args.prefetch)}
                    outside = row["decode_ms"] + row["preprocess_ms"] + row["postprocess_ms"] + row["masks_ms"]
                    row.update(fps=1e3 / row["total_ms"], outside_share=outside / row["model_ms"],
                               tracker_overhead_share=(row["preprocess_ms"] + row["postprocess_ms"]) / row["model_ms"])
                    rows.append(row)
                    print(f"{variant} {count} objects {row['forward']}: {row['total_ms']:.2f} ms/frame",
                          file=sys.stderr)
                if args.trax:
                    trax_ms, forward_ms, model_ms = trax_times(checkouts, variant, args, precision, model, paths,
                                                               boxes[:count])
                    model_median = statistics.median(model_ms)
                    for label, ms in trax_ms.items():
                        median = statistics.median(ms)
                        # per frame: the TraX time less that frame's forward pass, over the forward pass
                        outside = statistics.median(t - f for t, f in zip(ms, forward_ms[label]))
                        forward_median = statistics.median(forward_ms[label])
                        trax_rows.append({"checkout": label, "path": str(checkouts[label]), "variant": variant,
                                          "objects": count, "trax_ms": median, "forward_ms": forward_median,
                                          "outside_ms": outside, "outside_share": outside / forward_median,
                                          "model_ms": model_median,
                                          "alone_share": (median - model_median) / model_median,
                                          "trax_times_ms": ms, "forward_times_ms": forward_ms[label],
                                          "model_times_ms": model_ms})
                        print(f"{variant} {count} objects, TraX server of {label}: {median:.2f} ms/frame",
                              file=sys.stderr)
            del model

    weights = args.weights or "random"
    where = f"{device_name(device)} ({device.type}, {torch.get_num_threads()} threads)"
    title = (f"LoRAT tracker step per frame, {where}, {precision}, {width}x{height} JPEG frames, medians of "
             f"{args.frames} timed frames after {args.warmup} warm-up, frames {'' if args.prefetch else 'not '}"
             f"read ahead, weights: {weights}; shares are of the model time")
    sections = [(title, table(rows))]
    if trax_rows:
        sections.append(("TraX servers per frame as the toolkit times them (medians), same frames and settings, the "
                         "servers taking turns frame by frame; outside = TraX time - the forward pass of the same "
                         "frame in the server (median over frames); the last column compares with the model alone, "
                         "timed afterwards", trax_table(trax_rows)))
    emit_tables(sections, args.markdown)
    settings = {"variants": args.variants, "objects": args.objects, "precision": precision, "masks": args.masks,
                "frame_size": [width, height], "frames": args.frames, "warmup": args.warmup, "weights": weights,
                "backbone": args.backbone, "seed": args.seed, "prefetch": args.prefetch,
                "trax_checkouts": {k: str(v) for k, v in checkouts.items()} if args.trax else None}
    write_json(args.json, device, settings, rows, trax_rows=trax_rows)


if __name__ == "__main__":
    main()
