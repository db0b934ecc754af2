"""``python -m vot_lorat.track``: track one object in a video file or a folder of frames, no toolkit needed.

Writes one ``x,y,w,h`` line per frame (the first is the given box) and, optionally, a video with the
boxes drawn. Unreadable frames are logged and keep the last box.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np

from . import box as bx
from .builder import load_model
from .config import list_variants
from .device import resolve_device
from .image_io import list_frames, read_rgb
from .tracker import PRECISIONS, LoRATTracker

log = logging.getLogger("vot_lorat.track")


def frames(path: str) -> Iterator[Tuple[int, Optional[np.ndarray]]]:
    """(index, RGB frame or None when it cannot be decoded) from a folder of images or a video file."""
    if os.path.isdir(path):
        names = list_frames(path)
        if not names:
            raise ValueError(f"no .jpg/.png/.bmp frames in folder {path}")
        for i, name in enumerate(names):
            try:
                yield i, read_rgb(os.path.join(path, name))
            except OSError as exc:
                log.error("%s; keeping the last box", exc)
                yield i, None
        return
    check_input(path)
    video = cv2.VideoCapture(path)
    if not video.isOpened():
        raise ValueError(f"cannot open video {path}; convert it to frames or to a format OpenCV reads (mp4, avi)")
    i = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        yield i, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        i += 1
    video.release()


def check_input(path: str) -> None:
    """Fails before the model is loaded, so a typo costs no loading time."""
    if not os.path.isdir(path) and not os.path.isfile(path):
        raise ValueError(f"input not found: {path} (give a video file or a folder of frames)")


def parse_box(text: str) -> np.ndarray:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
        raise ValueError(f"--init must be x,y,w,h with positive w and h, got {text!r}")
    return bx.xywh_to_xyxy(values)


def draw(image: np.ndarray, box: np.ndarray, confidence: float) -> np.ndarray:
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), 2)
    cv2.putText(out, f"{confidence:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
    return out


def track(tracker: LoRATTracker, path: str, init_xyxy: np.ndarray, output: str,
          save_video: Optional[str] = None) -> dict:
    """Run the tracker over every frame; returns counts and speed."""
    writer = None
    lines, model_seconds, start = [], 0.0, time.perf_counter()
    box, confidence = init_xyxy, 1.0
    for index, image in frames(path):
        if index == 0:
            if image is None:
                raise ValueError(f"the first frame of {path} cannot be read: there is nothing to initialise on")
            tracker.add_object(image, init_xyxy)
        elif image is not None:
            t = time.perf_counter()
            result = tracker.track(image)[0]
            model_seconds += time.perf_counter() - t
            box, confidence = result.box, result.confidence
        lines.append(",".join(f"{v:.2f}" for v in bx.xyxy_to_xywh(box)))
        if save_video and image is not None:
            if writer is None:
                writer = cv2.VideoWriter(save_video, cv2.VideoWriter_fourcc(*"mp4v"), 30,
                                         (image.shape[1], image.shape[0]))
            writer.write(draw(image, box, confidence))
    if writer is not None:
        writer.release()
    with open(output, "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"frames": len(lines), "seconds": time.perf_counter() - start,
            "tracking_fps": (len(lines) - 1) / model_seconds if model_seconds else float("nan")}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vot_lorat.track", description=__doc__)
    p.add_argument("--variant", required=True, help=", ".join(list_variants()))
    p.add_argument("--backbone", help="DINOv2 weights (not needed for whole-model checkpoints such as the demo's)")
    p.add_argument("--weights", required=True, help="LoRAT checkpoint")
    p.add_argument("--input", required=True, help="video file or folder of frames")
    p.add_argument("--init", required=True, help="x,y,w,h of the target in the first frame")
    p.add_argument("--output", required=True, help="boxes.txt: one x,y,w,h line per frame")
    p.add_argument("--device", default="auto", help="auto (cuda when available, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--save-video", help="also write an mp4 with the boxes drawn")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        init = parse_box(args.init)
        check_input(args.input)
        model = load_model(args.variant, args.backbone, args.weights, device=resolve_device(args.device))
        stats = track(LoRATTracker(model, args.precision), args.input, init, args.output, args.save_video)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{stats['frames']} frames -> {args.output} ({stats['tracking_fps']:.1f} fps tracking, "
          f"{stats['seconds']:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
