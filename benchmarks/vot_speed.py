"""Per-frame time of the TraX tracker under ``vot evaluate``, as the toolkit records it, against the model time.

The workspace is a copy of the offline demo's (the sequences ``./workspace_setup.sh --demo`` writes: 6
synthetic sequences of 80 frames with 1 to 3 objects) with every frame and ground-truth mask scaled to
``--frame-size`` (1920x1080 by default; ``native`` keeps the demo's sizes). Each checkout given with
``--checkout LABEL=PATH`` (default: this one) is registered as ``LoRAT_<LABEL>`` (the demo model) and
``static_<LABEL>`` (the static baseline: TraX, frame reading and the session without a model), and
``vot evaluate`` runs them ``--repeats`` times, interleaved. The per-frame time is the toolkit's own
``*_time.value`` (the TraX round trip of every frame after the first). The LoRAT servers run through
``trax_server_timed.py``, which times their forward passes: the ratio of the per-frame time to the forward
pass of the same frames in the tracker is what the tracker costs beyond its model. For comparison, the model
alone: one batched forward pass of the same weights for that sequence's object count, timed in this process
right after each round, with the same thread count.

    .venv/bin/python benchmarks/vot_speed.py --checkout before=/tmp/base --checkout after=. --repeats 3
"""
from __future__ import annotations

import argparse
import os
import shutil
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

from vot_lorat import load_model
from vot_lorat.toolkit.workspace import DEMO_STACK

from common import add_common_args, apply_threads, device_name, emit_tables, markdown_table, write_json
from trax_server_timed import read_forward_times

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = Path("vot_lorat/checkpoints/lorat_tiny_synthetic.safetensors")


def scale_sequences(source: Path, target: Path, size: Tuple[int, int]) -> None:
    """Copy a VOT sequence folder with every frame (bilinear, JPEG quality 95) and every ground-truth mask
    (nearest neighbour) scaled to ``size`` (w, h)."""
    from vot.region import Mask
    from vot.region.io import read_trajectory, write_trajectory

    width, height = size
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        out = target / folder.name
        (out / "color").mkdir(parents=True)
        old_w = old_h = 0
        for frame in sorted((folder / "color").iterdir()):
            image = cv2.imread(str(frame), cv2.IMREAD_COLOR)
            old_h, old_w = image.shape[:2]
            cv2.imwrite(str(out / "color" / frame.name), cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
        for truth in sorted(folder.glob("groundtruth_*.txt")):
            regions = []
            for region in read_trajectory(str(truth)):
                full = region.rasterize((0, 0, old_w - 1, old_h - 1)).astype(np.uint8)
                regions.append(Mask(cv2.resize(full, size, interpolation=cv2.INTER_NEAREST), optimize=True))
            write_trajectory(str(out / truth.name), regions)
        text = (folder / "sequence").read_text()
        text = text.replace(f"width={old_w}", f"width={width}").replace(f"height={old_h}", f"height={height}")
        (out / "sequence").write_text(text)
    shutil.copy(source / "list.txt", target / "list.txt")


def tracker_entries(label: str, checkout: Path, threads: int, device: str, forward_file: Path) -> str:
    """trackers.ini entries ``LoRAT_<label>`` (the demo model, its forward passes timed into ``forward_file``)
    and ``static_<label>``, run from ``checkout``."""
    common = ["protocol = traxpython", f"python = {sys.executable}", "env_LD_LIBRARY_PATH = ${LD_LIBRARY_PATH}",
              f"env_LORAT_THREADS = {threads}", f"env_LORAT_DEVICE = {device}", "timeout = 600"]
    # the toolkit puts the paths on PYTHONPATH in reverse order: the checkout's vot_lorat comes first
    lorat = [f"[LoRAT_{label}]", f"label = LoRAT-tiny ({label})", "command = trax_server_timed",
             f"paths = {REPO / 'benchmarks'}{os.pathsep}{checkout}", *common, "env_LORAT_VARIANT = tiny",
             f"env_LORAT_WEIGHTS = {checkout / WEIGHTS}", f"env_LORAT_BENCH_FORWARD_TIMES = {forward_file}"]
    static = [f"[static_{label}]", f"label = static ({label})", "command = vot_lorat", f"paths = {checkout}",
              *common, "env_LORAT_VARIANT = static"]
    return "\n".join(lorat) + "\n\n" + "\n".join(static) + "\n"


def forward_file(folder: Path, tracker: str) -> Path:
    return folder / f"forward_{tracker}.jsonl"


def build_workspace(folder: Path, checkouts: Dict[str, Path], size, threads: int, device: str,
                    sequences: int) -> None:
    from training.vot_sequences import make_vot_sequences

    demo = folder / "demo_sequences"
    make_vot_sequences(str(demo), count=sequences, frames=80, objects=3)  # as workspace_setup.sh --demo writes
    if size is None:
        shutil.copytree(demo, folder / "sequences")
    else:
        scale_sequences(demo, folder / "sequences", size)
    (folder / "stack.yaml").write_text(DEMO_STACK)
    (folder / "config.yaml").write_text("registry:\n- ./trackers.ini\nstack: stack.yaml\n")
    (folder / "trackers.ini").write_text("\n".join(
        tracker_entries(label, path, threads, device, forward_file(folder, f"LoRAT_{label}"))
        for label, path in checkouts.items()))


def evaluate(folder: Path, tracker: str) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """Run ``vot evaluate`` for one tracker from scratch; per sequence, the toolkit's per-frame seconds and the
    seconds of the tracker's forward passes on the same frames (none for the static tracker)."""
    shutil.rmtree(folder / "results" / tracker, ignore_errors=True)
    timed = forward_file(folder, tracker)
    timed.unlink(missing_ok=True)
    vot = Path(sys.executable).parent / "vot"
    proc = subprocess.run([str(vot), "evaluate", tracker], cwd=folder, capture_output=True, text=True,
                          env=dict(os.environ, VOT_WORKER_POOL_SIZE="1"))
    if proc.returncode != 0:
        raise SystemExit(f"vot evaluate {tracker} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    times = {}
    sequences = (folder / "sequences" / "list.txt").read_text().split()
    for sequence in sequences:
        # <seq>_001 for one object, <seq>_<object>_001 for several; every object's file holds the same
        # per-frame totals; frame 0 is the initialisation
        path = sorted((folder / "results" / tracker / "baseline" / sequence).glob("*_001_time.value"))[0]
        times[sequence] = [float(v) for v in path.read_text().split()[1:]]
    forward = {}
    if timed.is_file():  # one line per server, in the order the toolkit ran the sequences (one worker)
        servers = read_forward_times(timed)
        if len(servers) != len(sequences):
            raise SystemExit(f"{tracker}: {len(servers)} timed servers for {len(sequences)} sequences")
        for sequence, seconds in zip(sequences, servers):
            forward[sequence] = seconds[-len(times[sequence]):]  # the warm-up passes come first
    return times, forward


def model_ms(model, counts: List[int], iters: int) -> Dict[int, float]:
    """Median ms of one batched forward pass for each object count, on the demo crop sizes."""
    cfg = model.config
    out = {}
    for n in counts:
        z = torch.zeros(n, 3, cfg.template_size, cfg.template_size)
        x = torch.zeros(n, 3, cfg.search_size, cfg.search_size)
        mask = torch.ones(n, cfg.template_grid, cfg.template_grid, dtype=torch.int64)
        with torch.inference_mode():
            for _ in range(5):
                model(z, x, mask)
            times = []
            for _ in range(iters):
                start = time.perf_counter()
                model(z, x, mask)
                times.append(time.perf_counter() - start)
        out[n] = statistics.median(times) * 1e3
    return out


def parse_checkout(text: str) -> Tuple[str, Path]:
    label, _, path = text.partition("=")
    if not label.isidentifier() or not path:
        raise argparse.ArgumentTypeError(f"--checkout takes LABEL=PATH with LABEL a plain word, got {text!r}")
    if not (Path(path) / WEIGHTS).is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a vot_lorat checkout ({WEIGHTS} is missing)")
    return label, Path(path).resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=parse_checkout, action="append",
                        help="LABEL=PATH of a vot_lorat checkout to run the TraX server from (repeatable)")
    parser.add_argument("--frame-size", default="1920x1080", help="WIDTHxHEIGHT, or native (the demo's sizes)")
    parser.add_argument("--repeats", type=int, default=3, help="vot evaluate rounds, every tracker in each")
    parser.add_argument("--sequences", type=int, default=6,
                        help="the first N of the demo's sequences (default: all 6, with 1, 2, 3, 1, 2, 3 objects)")
    parser.add_argument("--model-iters", type=int, default=100, help="timed forward passes per object count")
    parser.add_argument("--workspace", type=Path, help="build the workspace here (default: a temporary folder)")
    add_common_args(parser)
    parser.set_defaults(threads=1, device=torch.device("cpu"))
    args = parser.parse_args()
    apply_threads(args)
    checkouts = dict(args.checkout or [("this", REPO)])
    size = None if args.frame_size == "native" else tuple(int(v) for v in args.frame_size.lower().split("x"))
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory(prefix="lorat-vot-speed-") as scratch:
        folder = args.workspace or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        build_workspace(folder, checkouts, size, args.threads, device.type if device.index is None else str(device),
                        args.sequences)
        objects = {p.name: len(list(p.glob("groundtruth_*.txt"))) for p in (folder / "sequences").iterdir()
                   if p.is_dir()}
        model = load_model("tiny", None, str(REPO / WEIGHTS), device=device)
        frame_times: Dict[str, Dict[str, List[float]]] = {}
        forward_times: Dict[str, Dict[str, List[float]]] = {}
        model_times: Dict[int, List[float]] = {n: [] for n in sorted(set(objects.values()))}
        for round_ in range(args.repeats):
            for label in checkouts:
                for kind in ("LoRAT", "static"):
                    tracker = f"{kind}_{label}"
                    times, forward = evaluate(folder, tracker)
                    for sequence, values in times.items():
                        frame_times.setdefault(tracker, {}).setdefault(sequence, []).extend(values)
                    for sequence, values in forward.items():
                        forward_times.setdefault(tracker, {}).setdefault(sequence, []).extend(values)
                    print(f"round {round_ + 1}: {tracker} done", file=sys.stderr)
            for n, ms in model_ms(model, list(model_times), args.model_iters).items():
                model_times[n].append(ms)

    model_at = {n: statistics.median(v) for n, v in model_times.items()}
    rows = []
    for tracker, per_sequence in frame_times.items():
        frames = sum(len(v) for v in per_sequence.values())
        total_ms = sum(sum(v) for v in per_sequence.values()) * 1e3
        median_ms = statistics.median([t for v in per_sequence.values() for t in v]) * 1e3
        model_total = sum(len(v) * model_at[objects[s]] for s, v in per_sequence.items())
        forward_total = sum(sum(v) for v in forward_times.get(tracker, {}).values()) * 1e3
        rows.append({"tracker": tracker, "frames": frames, "mean_ms": total_ms / frames, "median_ms": median_ms,
                     "forward_ms": forward_total / frames if forward_total else None,
                     "per_frame_over_forward": total_ms / forward_total if forward_total else None,
                     "model_ms": model_total / frames, "per_frame_over_model": total_ms / model_total})
    title = (f"`vot evaluate` per-frame time (the toolkit's *_time.value) on the demo sequences at "
             f"{args.frame_size}, {args.repeats} rounds, {device_name(device)} ({device.type}, {args.threads} "
             f"threads); forward ms = the tracker's own forward passes on the same frames (mean); model alone ms = "
             f"one batched forward pass for each sequence's object count in this process, frame-weighted")
    cells = [[r["tracker"], str(r["frames"]), f"{r['mean_ms']:.2f}", f"{r['median_ms']:.2f}",
              "–" if r["forward_ms"] is None else f"{r['forward_ms']:.2f}",
              "–" if r["forward_ms"] is None else f"{r['per_frame_over_forward']:.2f}x", f"{r['model_ms']:.2f}",
              f"{r['per_frame_over_model']:.2f}x"] for r in rows]
    table = markdown_table(["tracker", "frames", "mean ms/frame", "median ms/frame", "forward ms",
                            "per frame / forward", "model alone ms", "per frame / model alone"], cells)
    emit_tables([(title, table)], args.markdown)
    settings = {"checkouts": {k: str(v) for k, v in checkouts.items()}, "frame_size": args.frame_size,
                "repeats": args.repeats, "threads": args.threads, "objects": objects,
                "model_ms_by_objects": model_at}
    write_json(args.json, device, settings, rows)


if __name__ == "__main__":
    main()
