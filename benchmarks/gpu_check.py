"""The GPU checks no other benchmark makes, and the one table of ``benchmarks/gpu_check.sh``.

- CUDA fp32 against the CPU: one set of random weights (LoRA merged) and inputs on both, TF32 off; the
  largest difference of the score logits and of the normalised boxes.
- nvJPEG against libjpeg-turbo: ``read_frame(path, cuda)`` and ``read_frame(path, cpu)`` on the same 1080p
  JPEGs; the share of pixel values that differ, the largest difference, and the time of one decode.
- The demo tracker (fp32) on the GPU against the CPU, 3 objects on a 1080p JPEG sequence: the largest box
  difference over the sequence, with the CPU's decoded frames given to both trackers (the crops and the
  model on the device), and with each tracker reading its own frames (nvJPEG on the GPU).
- One row per setting of the ``model.json``, ``compiled.json``, ``tracker.json`` and ``train.json`` that
  ``gpu_check.sh`` wrote with the other benchmark scripts into ``--results``.

    .venv/bin/python benchmarks/gpu_check.py --device cuda --results benchmarks/results/gpu_check
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from vot_lorat import create_model, get_config, load_model, merge_lora
from vot_lorat.frames.reading import read_frame
from vot_lorat.tracking.tracker import LoRATTracker

from common import add_common_args, apply_threads, device_name, emit_tables, markdown_table, synchronize, write_json
from model_speed import accuracy, realistic_inputs
from tracker_speed import write_frames

DEMO_WEIGHTS = Path(__file__).resolve().parent.parent / "vot_lorat/checkpoints/lorat_tiny_synthetic.safetensors"
Row = List[str]


def cuda_against_cpu(variant: str, device: torch.device) -> Row:
    """Outputs of one model in fp32 on the CPU and on ``device``."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False  # the patch embedding is a convolution
    cfg = get_config(variant)
    torch.manual_seed(0)
    model = create_model(cfg, init_values=1.0).eval()
    merge_lora(model)
    inputs = realistic_inputs(cfg, 2, torch.device("cpu"), 0)
    with torch.inference_mode():
        reference = model(*inputs)
        out = model.to(device)(*(t.to(device) for t in inputs))
    acc = accuracy(reference, {k: v.cpu() for k, v in out.items()})
    return ["CUDA fp32 vs CPU fp32", f"{variant}, random weights, 2 inputs, TF32 off",
            f"max Δlogit {acc['max_abs_logit']:.1e}, max Δbox {acc['max_abs_box']:.1e}, "
            f"arg-max agree {acc['argmax_agreement']:.2f}"]


def decode_against_cpu(paths: List[str], device: torch.device) -> Row:
    """nvJPEG's pixels and time against libjpeg-turbo's on the same files."""
    differing = total = 0
    largest = 0
    cpu_ms, gpu_ms = [], []
    for path in paths:
        start = time.perf_counter()
        on_cpu = read_frame(path, torch.device("cpu"))
        cpu_ms.append((time.perf_counter() - start) * 1e3)
        synchronize(device)
        start = time.perf_counter()
        on_gpu = read_frame(path, device)
        synchronize(device)
        gpu_ms.append((time.perf_counter() - start) * 1e3)
        diff = (on_gpu.cpu().to(torch.int16) - on_cpu.to(torch.int16)).abs()
        differing += int((diff > 0).sum())
        total += diff.numel()
        largest = max(largest, int(diff.max()))
    size = "x".join(str(v) for v in reversed(on_cpu.shape[:2]))
    return ["nvJPEG vs libjpeg-turbo", f"{len(paths)} JPEGs of {size} (quality 95)",
            f"{100 * differing / total:.2f} % of values differ, max |Δ| {largest}; decode "
            f"{statistics.median(gpu_ms[1:]):.2f} ms (GPU) vs {statistics.median(cpu_ms[1:]):.2f} ms (CPU)"]


def track(model, frames: list, boxes: List[np.ndarray]) -> np.ndarray:
    """(frames - 1, objects, 4) boxes of one fp32 tracker started on the first frame."""
    tracker = LoRATTracker(model, "fp32")
    for box in boxes:
        tracker.add_object(frames[0], box)
    return np.stack([[r.box_xyxy for r in tracker.track(frame)] for frame in frames[1:]])


def tracker_against_cpu(paths: List[str], boxes: List[np.ndarray], device: torch.device) -> List[Row]:
    """The demo tracker's boxes on ``device`` against the CPU's."""
    cpu = torch.device("cpu")
    cpu_frames = [read_frame(p, cpu) for p in paths]
    reference = track(load_model("tiny", None, str(DEMO_WEIGHTS), device=cpu), cpu_frames, boxes)
    model = load_model("tiny", None, str(DEMO_WEIGHTS), device=device)
    setting = f"demo model, {len(boxes)} objects, {len(paths) - 1} frames"
    rows = []
    for frames, how in ((cpu_frames, "CPU-decoded frames on both"),
                        ([read_frame(p, device) for p in paths], "frames decoded on the GPU")):
        diff = np.abs(track(model, frames, boxes) - reference).max(axis=(1, 2))
        apart = np.flatnonzero(diff > 1e-3)
        first = f"first frame > 1e-3 px: {apart[0] + 1}" if len(apart) else "all frames within 1e-3 px"
        rows.append(["tracker CUDA fp32 vs CPU", f"{setting}, {how}", f"max |Δbox| {diff.max():.1e} px; {first}"])
    return rows


def load_rows(path: Path) -> Optional[List[Dict]]:
    return json.loads(path.read_text())["rows"] if path.is_file() else None


def rows_from_results(folder: Path, cuda: bool) -> List[Row]:
    """The lines of the table that summarise the other scripts' JSON files."""
    out: List[Row] = []
    model = load_rows(folder / "model.json") or []
    for r in model:
        acc = r.get("accuracy")
        agree = (f"; vs fp32: max Δlogit {acc['max_abs_logit']:.1e}, arg-max agree {acc['argmax_agreement']:.2f}"
                 if acc and r["precision"] != "fp32" else "")
        out.append(["model, batch 1", f"{r['variant']} {r['precision']} {r['mode']}",
                    f"{r['fps']:.0f} fps ({r['mean_ms']:.2f} ms){agree}"])
    compiled = load_rows(folder / "compiled.json")
    if compiled is None and cuda:
        out.append(["model, batch 1", "torch.compile / CUDA graphs", "not run or timed out (see compiled.md)"])
    for r in compiled or []:
        out.append(["model, batch 1", f"{r['variant']} {r['precision']} {r['mode']}",
                    f"{r['fps']:.0f} fps ({r['mean_ms']:.2f} ms)"])
    for r in load_rows(folder / "tracker.json") or []:
        out.append(["tracker", f"{r['variant']}, {r['objects']} objects",
                    f"{r['fps']:.0f} fps ({r['total_ms']:.2f} ms/frame; model {r['model_ms']:.2f} ms, outside the "
                    f"model {100 * r['outside_share']:.0f} % of it)"])
    for r in load_rows(folder / "train.json") or []:
        if r.get("table") == "train":
            out.append(["training step", f"{r['variant']} {r['training']} {r['precision']} batch {r['batch']}",
                        f"peak {r['peak_mib'] / 1024:.1f} GiB, {r['mean_ms']:.0f} ms/step"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="the folder gpu_check.sh wrote its JSON files to")
    parser.add_argument("--variant", default="B-224", help="the model of the CUDA-against-CPU check")
    parser.add_argument("--frames", type=int, default=40, help="frames of the decoder and tracker checks")
    add_common_args(parser)
    args = parser.parse_args()
    apply_threads(args)
    device = args.device
    rows: List[Row] = []
    if device.type != "cuda":
        rows.append(["CUDA checks", "-", f"not run: the device is {device}, not a GPU"])
    else:
        rows.append(cuda_against_cpu(args.variant, device))
        with tempfile.TemporaryDirectory(prefix="lorat-gpu-check-") as folder:
            paths, boxes = write_frames(Path(folder), args.frames, 3, 1920, 1080, 0)
            rows.append(decode_against_cpu(paths, device))
            rows += tracker_against_cpu(paths, boxes, device)
    rows += rows_from_results(args.results, device.type == "cuda")
    title = f"GPU check: {device_name(device)} ({device.type}), torch {torch.__version__}"
    emit_tables([(title, markdown_table(["check", "setting", "result"], rows))], args.markdown)
    write_json(args.json, device, {"variant": args.variant, "frames": args.frames},
               [dict(zip(("check", "setting", "result"), r)) for r in rows])


if __name__ == "__main__":
    main()
