"""``python -m vot_lorat.track``: track objects in a video file or a folder of frames, no toolkit needed.

Writes one line per frame with ``x,y,w,h`` of every object, in ``--init`` order (the first line holds the
given boxes), and optionally a video with the boxes drawn. Unreadable frames are logged and keep the last
boxes. Frames are read by a background thread while the tracker works on the previous one; a progress bar
(frames, speed, time left) goes to stderr when it is a terminal.

No output may be an input (the video, a frame, the weights), however the path is spelt. Outputs are written
under ``.partial`` names (``boxes.partial.txt``) once every check has passed and the model is loaded, and take
their given names when the last frame is tracked: a run that fails or is interrupted leaves the partial files,
never a truncated file under the given name nor an emptied earlier result.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, TextIO, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .device import resolve_device, resolve_precision
from .frames.read_ahead import read_ahead
from .frames.reading import IMAGE_EXTENSIONS, Frame, frame_array, list_frames, read_frame
from .model.config import list_variants
from .options import add_flags, given_values, option
from .tracking import box as bx
from .tracking.tracker import PRECISIONS, LoRATTracker
from .weights.loading import load_model

log = logging.getLogger("vot_lorat.track")


def frames(path: str, device: torch.device = torch.device("cpu")) -> Iterator[Tuple[int, Optional[Frame]]]:
    """(index, RGB frame or None when it cannot be decoded) from a folder of images (decoded onto ``device``)
    or a video file."""
    if os.path.isdir(path):
        names = list_frames(path)
        kept = set(names)
        skipped = sorted(n for n in os.listdir(path)
                         if n not in kept and not n.startswith(".") and os.path.isfile(os.path.join(path, n)))
        if skipped:
            log.warning("skipping %d file%s in %s that %s not %s frames: %s%s", len(skipped),
                        "s" if len(skipped) > 1 else "", path, "are" if len(skipped) > 1 else "is",
                        "/".join(e[1:] for e in IMAGE_EXTENSIONS), ", ".join(skipped[:5]),
                        " ..." if len(skipped) > 5 else "")
        if not names:
            raise ValueError(f"no frames ({' '.join(IMAGE_EXTENSIONS)}) in folder {path}")
        for i, name in enumerate(names):
            try:
                yield i, read_frame(os.path.join(path, name), device)
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


def frame_count(path: str) -> Optional[int]:
    """How many frames the input has, for the progress bar (None where a video does not say)."""
    if os.path.isdir(path):
        return len(list_frames(path))
    video = cv2.VideoCapture(path)
    count = int(video.get(cv2.CAP_PROP_FRAME_COUNT)) if video.isOpened() else 0
    video.release()
    return count if count > 0 else None


def parse_box(text: str) -> np.ndarray:
    """``--init`` text, ``x,y,w,h`` or ``"x y w h"``, as an xyxy box."""
    try:
        values = [float(v) for v in re.split(r"[,\s]+", text.strip())]
    except ValueError:
        values = []
    if len(values) != 4 or not np.isfinite(values).all() or values[2] <= 0 or values[3] <= 0:
        raise ValueError(f"--init must be x,y,w,h (commas or spaces): four finite numbers with positive w and h; "
                         f"got {text!r}")
    return bx.xywh_to_xyxy(values)


def partial_path(path: str) -> str:
    """Where an output is written until it is complete: ``boxes.txt`` -> ``boxes.partial.txt`` (the extension
    kept, since OpenCV picks a video's container by it)."""
    stem, ext = os.path.splitext(path)
    return f"{stem}.partial{ext}"


def _same_path(a: str, b: str) -> bool:
    """Whether two paths name one file: the same after resolving symlinks, ``..`` and relative spellings, or
    one file under two names (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def _writable_folder(path: str, flag: str) -> None:
    """Fail unless ``path``'s folder exists and can be written, or can be made (nothing is made here)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write {flag} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {flag} {path}: {folder} is not writable")


def check_outputs(settings: TrackSettings) -> None:
    """Refuse outputs that would destroy an input or each other, before anything is opened or loaded."""
    inputs = [("--input", settings.input), ("--weights", settings.weights)]
    if settings.backbone:
        inputs.append(("--backbone", settings.backbone))
    outputs = [("--output", settings.output)]
    if settings.save_video:
        outputs.append(("--save-video", settings.save_video))
    written = outputs + [(f"{flag} (while it is written)", partial_path(path)) for flag, path in outputs]
    for i, (flag, path) in enumerate(written):
        if os.path.isdir(path):
            raise ValueError(f"{flag} {path} is a folder: give a file name")
        for other_flag, other in inputs:
            if _same_path(path, other):
                raise ValueError(f"{flag} {path} is the same file as {other_flag} {other}: writing it would "
                                 f"destroy it; give another {flag.split()[0]}")
        for other_flag, other in written[i + 1:]:
            if _same_path(path, other):
                raise ValueError(f"{flag} {path} is the same file as {other_flag} {other}: two outputs cannot "
                                 f"share a file")
        if os.path.isdir(settings.input) and path.lower().endswith(IMAGE_EXTENSIONS) and _same_path(
                os.path.dirname(os.path.abspath(path)), settings.input):
            raise ValueError(f"{flag} {path} would be a frame of --input {settings.input}; write it elsewhere")
    for flag, path in outputs:
        _writable_folder(path, flag)


def open_partial(path: str) -> TextIO:
    """The boxes file under its partial name (its folder made); lines are written as frames are tracked, so
    an interrupted run keeps what it tracked."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return open(partial_path(path), "w")
    except OSError as exc:
        raise ValueError(f"cannot write {partial_path(path)}: {exc.strerror}") from None


def draw(image: Frame, boxes: Sequence[np.ndarray], confidences: Sequence[float]) -> np.ndarray:
    out = cv2.cvtColor(frame_array(image), cv2.COLOR_RGB2BGR)
    for k, (box, confidence) in enumerate(zip(boxes, confidences)):
        colour = _COLOURS[k % len(_COLOURS)]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        cv2.putText(out, f"{k}: {confidence:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    return out


_COLOURS = ((0, 255, 0), (0, 128, 255), (255, 0, 255), (255, 255, 0), (0, 0, 255), (255, 0, 0))  # BGR


def track(tracker: LoRATTracker, stream: Iterator[Tuple[int, Optional[Frame]]], inits: List[np.ndarray],
          output: TextIO, save_video: Optional[str] = None, total: Optional[int] = None,
          progress: bool = False) -> dict:
    """Run the tracker over every frame of ``stream`` (the first one starts the objects ``inits``, xyxy) and
    write a line of x,y,w,h per object per frame to ``output``; returns counts and speed."""
    writer = None
    count, model_seconds, start = 0, 0.0, time.perf_counter()
    boxes, confidences = list(inits), [1.0] * len(inits)
    with tqdm(total=total, unit="frame", desc="tracking", file=sys.stderr, disable=not progress) as bar, \
            contextlib.ExitStack() as cleanup:
        for index, image in stream:
            if index == 0:
                if image is None:
                    raise ValueError("the first frame cannot be read: there is nothing to initialise on")
                for box in inits:
                    tracker.add_object(image, box)
            elif image is not None:
                t = time.perf_counter()
                results = tracker.track(image)
                model_seconds += time.perf_counter() - t
                boxes = [r.box_xyxy for r in results]
                confidences = [r.confidence for r in results]
            output.write(",".join(f"{v:.2f}" for box in boxes for v in bx.xyxy_to_xywh(box)) + "\n")
            if save_video and image is not None:
                if writer is None:
                    writer = cv2.VideoWriter(save_video, cv2.VideoWriter_fourcc(*"mp4v"), 30,
                                             (image.shape[1], image.shape[0]))
                    cleanup.callback(writer.release)  # also when tracking stops early: a playable video
                    if not writer.isOpened():
                        raise ValueError(f"cannot write the video {save_video} (OpenCV has no mp4v writer here?)")
                writer.write(draw(image, boxes, confidences))
            count += 1
            bar.update()
    return {"frames": count, "seconds": time.perf_counter() - start,
            "tracking_fps": (count - 1) / model_seconds if model_seconds else float("nan")}


def check_inside(inits: List[np.ndarray], texts: Sequence[str], image: Optional[Frame]) -> None:
    """Every ``--init`` box must overlap the first frame: one wholly outside would track nothing."""
    if image is None:
        raise ValueError("the first frame cannot be read: there is nothing to initialise on")
    height, width = image.shape[:2]
    for box, text in zip(inits, texts):
        if not bx.is_valid(bx.clip(box, width, height)):
            raise ValueError(f"--init {text!r} lies outside the first frame ({width}x{height}); give x,y,w,h "
                             f"inside it")


@dataclass(frozen=True)
class TrackSettings:
    """The flags of ``python -m vot_lorat.track``."""

    weights: str = option(help="LoRAT weights: a released model.bin, a model.safetensors from python -m training, "
                               "or a whole model such as the demo's")
    input: str = option(help="a video file or a folder of frames (natural order: frame2 before frame10; "
                             f"{' '.join(IMAGE_EXTENSIONS)})")
    init: List[str] = option(help="x,y,w,h (or \"x y w h\") of an object in the first frame; repeat it to track "
                                  "several objects", metavar="BOX")
    output: str = option(help="the boxes file: one line per frame with x,y,w,h of every object in --init order "
                              "(its folder is made if needed)")
    variant: Optional[str] = option(None, f"{', '.join(list_variants())}; none: the one the weights were made for, "
                                          "from their saved variant, their shapes or a LoRAT-L-378 folder name")
    backbone: Optional[str] = option(None, "the DINOv2 weights the LoRAT weights need; none: right for whole-model "
                                           "weights such as the demo's")
    device: str = option("auto", "auto (cuda when available, else cpu), cpu, cuda, cuda:N")
    precision: str = option("auto", "auto: fp16 on a GPU, fp32 on a CPU; int8: CPU only",
                            choices=("auto", *PRECISIONS))
    threads: int = option(0, "CPU threads for torch; 0: torch's default, one per core (on a busy machine 1 or 2 is "
                             "often much faster)")
    save_video: Optional[str] = option(None, "also write an mp4 with the boxes drawn (its folder is made if "
                                                 "needed); none: no video")
    quiet: bool = option(False, "no progress bar (there is none anyway when stderr is not a terminal)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vot_lorat.track", description=__doc__)
    add_flags(parser, TrackSettings)
    args = TrackSettings(**given_values(parser.parse_args(argv), TrackSettings))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    outputs = [path for path in (args.output, args.save_video) if path]
    opened = False
    try:
        inits = [parse_box(text) for text in args.init]
        check_input(args.input)
        check_outputs(args)
        if args.threads < 0:
            raise ValueError(f"--threads {args.threads}: give a number of CPU threads, or 0 for torch's default")
        if args.threads:
            torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        stream = read_ahead(frames(args.input, device))
        first = next(stream, (0, None))
        check_inside(inits, args.init, first[1])  # before the model is loaded
        model = load_model(args.variant, args.backbone, args.weights, device=device)
        if args.variant is None:
            log.info("variant %s (from the checkpoint)", model.config.name)
        tracker = LoRATTracker(model, resolve_precision(args.precision, device))
        if args.save_video:
            os.makedirs(os.path.dirname(os.path.abspath(args.save_video)), exist_ok=True)
        opened = True
        with open_partial(args.output) as output:
            stats = track(tracker, _chain(first, stream), inits, output,
                          partial_path(args.save_video) if args.save_video else None, frame_count(args.input),
                          progress=not args.quiet and sys.stderr.isatty())
        for path in outputs:
            os.replace(partial_path(path), path)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}{_partial_note(outputs) if opened else ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted{_partial_note(outputs) if opened else ''}", file=sys.stderr)
        return 130
    print(f"{stats['frames']} frames, {len(inits)} object(s) -> {args.output} ({stats['tracking_fps']:.1f} fps "
          f"tracking, {stats['seconds']:.1f} s in all)")
    return 0


def _partial_note(outputs: Sequence[str]) -> str:
    kept = [partial_path(path) for path in outputs if os.path.exists(partial_path(path))]
    return f"; what was tracked is in {' and '.join(kept)}" if kept else ""


def _chain(first: Tuple[int, Optional[Frame]], rest: Iterator) -> Iterator[Tuple[int, Optional[Frame]]]:
    yield first
    yield from rest


if __name__ == "__main__":
    sys.exit(main())
