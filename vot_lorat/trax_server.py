"""The TraX server the VOT toolkit launches (``protocol = traxpython``, ``command = vot_lorat``).

Configuration comes from environment variables (set by ``env_*`` keys in trackers.ini) and optional
command-line flags; flags win. The model is loaded before the TraX handshake, because the toolkit's
timeout covers every request but not the start-up.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import trax

from . import box as bx
from .builder import load_model
from .device import resolve_device, resolve_precision
from .host_memory import reuse_freed_memory
from .image_io import Frame, read_frame
from .masks import BoxMaskGenerator, FrameMask, box_rect, crop_to_content, pad_mask, tight_box
from .prefetch import FramePrefetcher
from .prefetch_process import ProcessPrefetcher, can_fork
from .session import MaskGenerator, ObjectState, Tracker, TrackingSession
from .static_tracker import StaticTracker
from .tracker import LoRATTracker
from .weights_io import optional_path

log = logging.getLogger("vot_lorat")

MASK_MODES = ("none", "box", "sam")


@dataclass
class ServerConfig:
    """Every setting of the tracker process. Environment: ``LORAT_<FIELD>`` (upper case)."""

    variant: Optional[str] = field(default=None, metadata={"help": (
        "S-224, S-378, B-224, B-378, L-224, L-378, g-224, g-378 (the paper's), tiny (the demo model), tiny-g (a small "
        "SwiGLU model for tests) or static (the static baseline, no model); none: read from the weights (their "
        "saved variant, their shapes, or a LoRAT-L-378 folder name)")})
    backbone: Optional[str] = field(default=None, metadata={"help": (
        "the DINOv2 weights the LoRAT weights were trained on: Meta's dinov2_vit{s,b,l,g}14_pretrain.pth or a timm "
        ".safetensors; none: not needed when the weights are a whole model (merged or fully fine-tuned, as the "
        "demo's)")})
    weights: Optional[str] = field(default=None, metadata={"help": (
        "the LoRAT weights: a released model.bin (2024), a model.safetensors (newer releases, python -m training) "
        "or a whole merged / fully fine-tuned model; none: refuse to start (see random-weights)")})
    random_weights: bool = field(default=False, metadata={"help": (
        "1: start without LoRAT weights, from random ones (speed benchmarks only: the boxes mean nothing); "
        "0: refuse to start without weights")})
    device: str = field(default="auto", metadata={"help": (
        "auto (cuda when torch sees a GPU, else cpu), cpu, cuda, cuda:N")})
    precision: str = field(default="auto", metadata={"help": (
        "auto (fp16 autocast on a GPU, as the paper runs LoRAT; fp32 on a CPU), fp32, fp16, bf16, or int8 (CPU "
        "only: int8 dynamic quantisation)")})
    mask: str = field(default="none", metadata={"help": (
        "none (report rectangles), box (masks filled from the boxes) or sam (SAM masks; needs sam-checkpoint)")})
    absence_threshold: Optional[float] = field(default=None, metadata={"help": (
        "report an object absent in a frame when its confidence (0 to 1) is below this; the tracker keeps its "
        "state; none: never (as the paper)")})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch; 0: torch's default (one per core)"})
    sam_model: str = field(default="vit_h", metadata={"help": "vit_b, vit_l or vit_h: the SAM sam-checkpoint holds"})
    sam_checkpoint: Optional[str] = field(default=None, metadata={"help": (
        "Meta's sam_vit_{b,l,h}_*.pth, for mask sam; none: no SAM")})
    sam_mode: str = field(default="crop", metadata={"help": (
        "crop (the reference: one 1024 px crop per object) or frame (one SAM encoding per frame for all objects; "
        "much faster on a CPU)")})
    sam_precision: str = field(default="auto", metadata={"help": (
        "auto (bf16 autocast on a GPU, as the official LoRAT code runs SAM; fp32 on a CPU), fp32, fp16, bf16")})
    sam_multimask: bool = field(default=False, metadata={"help": (
        "1: SAM proposes 3 masks and the best-scored one is kept; 0: one mask (the reference)")})

    def __post_init__(self) -> None:
        """Numbers that cannot be meant are refused here, whether they come from the environment, flags or code."""
        if self.absence_threshold is not None and not 0 <= self.absence_threshold <= 1:  # NaN fails too
            raise ValueError(f"LORAT_ABSENCE_THRESHOLD={str(self.absence_threshold)!r}: give a confidence from 0 "
                             f"to 1, or leave it unset to never report absence")
        if self.threads < 0:
            raise ValueError(f"LORAT_THREADS={str(self.threads)!r}: give a number of CPU threads, or 0 for torch's "
                             f"default")

    @classmethod
    def from_env(cls, environ: Optional[Dict[str, str]] = None) -> "ServerConfig":
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get("LORAT_" + f.name.upper())
            if raw is None or raw.strip() == "":
                continue
            unexpanded = re.fullmatch(r"\$\{?(\w+)\}?", raw.strip())
            if unexpanded:  # trackers.ini said env_X = ${NAME} and NAME was not set where vot ran
                raise ValueError(f"LORAT_{f.name.upper()} is {raw.strip()!r}: export {unexpanded.group(1)} in the "
                                 f"shell that runs vot (see trackers.ini)")
            values[f.name] = _parse(f.name, raw.strip())
        return cls(**values)

    def to_env(self) -> Dict[str, str]:
        """Every setting that is not None as the environment :meth:`from_env` reads back to this config. Switches
        that are off are written too (``LORAT_RANDOM_WEIGHTS=0``): the toolkit passes its own environment to the
        tracker, and a variable left exported in that shell must not turn them on."""
        return {"LORAT_" + f.name.upper(): _format(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}


_TYPES = {"absence_threshold": float, "threads": int, "random_weights": bool, "sam_multimask": bool}


def _format(value: object) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def _parse(name: str, raw: str):
    kind = _TYPES.get(name, str)
    if kind is bool:
        if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"LORAT_{name.upper()}={raw!r} is not a boolean (use 1 or 0)")
        return raw.lower() in ("1", "true", "yes")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"LORAT_{name.upper()}={raw!r} is not a valid {kind.__name__}") from None


def build_mask_generator(cfg: ServerConfig, device: torch.device) -> Optional[MaskGenerator]:
    if cfg.mask == "none":
        return None
    if cfg.mask == "box":
        return BoxMaskGenerator()
    if cfg.mask == "sam":
        from .sam import SamMaskGenerator, SamOptions, load_sam

        if cfg.sam_checkpoint is None:
            raise ValueError("mask mode 'sam' needs a SAM checkpoint: set LORAT_SAM_CHECKPOINT (or --sam-checkpoint) "
                             "to a local sam_vit_{b,l,h}_*.pth")
        # bf16, not the tracker's fp16: the official LoRAT code runs SAM in bfloat16
        precision = resolve_precision(cfg.sam_precision, device, cuda_default="bf16")
        return SamMaskGenerator(load_sam(cfg.sam_model, cfg.sam_checkpoint, device),
                                SamOptions(mode=cfg.sam_mode, precision=precision, multimask_output=cfg.sam_multimask))
    raise ValueError(f"mask mode must be one of {', '.join(MASK_MODES)}, got {cfg.mask!r}")


class TraxTracker:
    """Glue between ``trax.Server`` requests and a :class:`TrackingSession`; ``read`` turns a frame path into
    a frame (:func:`vot_lorat.image_io.read_frame` on the CPU by default) and raises OSError when it cannot."""

    def __init__(self, session: TrackingSession, masks: bool, read: Callable[[str], Frame] = read_frame) -> None:
        self.session = session
        self.masks = masks
        self.read = read
        self.height = self.width = 0
        self.expected = 0  # objects the toolkit has given so far: every answer must have this many entries

    def _read(self, request) -> Optional[Frame]:
        try:
            path = request.image["color"].path()
        except (KeyError, AttributeError) as exc:
            log.error("frame without a colour image path (%s); answering with the last regions", exc)
            return None
        try:
            image = self.read(path)
        except OSError as exc:
            log.error("%s; answering with the last regions", exc)
            return None
        self.height, self.width = image.shape[:2]
        return image

    def _initial(self, objects, image: Optional[Frame]):
        boxes, masks = [], []
        for region, _ in objects:
            try:
                box, mask = self._region_box(region, image)
            except Exception:  # noqa: BLE001 - an unreadable region makes that object absent, not the session
                log.exception("cannot read the initial region %s; reporting the object absent", region)
                box, mask = None, None
            boxes.append(self._usable(box, region, image))
            masks.append(mask)
        return boxes, masks

    def _usable(self, box: Optional[np.ndarray], region, image: Optional[Frame]) -> Optional[np.ndarray]:
        """The initial box, or None (absent) with one log line when it cannot be tracked: not finite, or (with
        the frame read) wholly outside the frame. An empty region is absent without a word: VOTS sends those."""
        if box is None:
            return None
        if not np.isfinite(box).all():
            log.warning("initial region %s is not finite; reporting the object absent", region)
            return None
        if image is not None and not bx.is_valid(bx.clip(box, self.width, self.height)) and bx.is_valid(box):
            log.warning("initial region %s lies outside the %dx%d frame; reporting the object absent", region,
                        self.width, self.height)
            return None
        return box if bx.is_valid(box) else None

    def _region_box(self, region, image: Optional[Frame]):
        """The xyxy box of an initial region (and the full-frame mask of a mask region)."""
        if region.type == trax.Region.MASK:
            crop, offset = region.array(), region.offset()
            box = tight_box(crop > 0, offset)
            if box is not None and image is not None:
                box = bx.clip(box, self.width, self.height)
            full = FrameMask(pad_mask(crop, offset, self.height, self.width), None) if image is not None else None
            return box, full
        if region.type == trax.Region.RECTANGLE:
            return bx.xywh_to_xyxy(region.bounds()), None
        # polygons arrive only if the toolkit ignores our declared formats: use their bounds
        points = np.array(list(region), dtype=np.float64).reshape(-1, 2)
        return (np.concatenate([points.min(0), points.max(0)]) if len(points) else None), None

    def initialize(self, request) -> List:
        self.expected = len(request.objects)
        image = self._read(request)
        boxes, masks = self._initial(request.objects, image)
        self.session.start(image, boxes, masks)
        return [(region, {}) for region, _ in request.objects]  # the toolkit ignores the first answer

    def frame(self, request) -> List:
        self.expected += len(request.objects or [])
        image = self._read(request)
        if request.objects:  # objects that start in this frame (TraX 4)
            boxes, masks = self._initial(request.objects, image)
            self.session.add(image, boxes, masks)
        return [self.encode(state) for state in self.session.step(image)]

    def recover(self, request) -> List:
        """An answer with the right object count after an unexpected error: the last regions (plus absent
        newcomers) for a frame; the given regions for an initialisation, whose objects are then absent."""
        if request.type == trax.TraxStatus.INITIALIZE:
            self.session.start(None, [None] * len(request.objects))
            return [(region, {}) for region, _ in request.objects]
        missing = self.expected - len(self.session.slots)
        if missing > 0:
            self.session.add(None, [None] * missing)
        return [self.encode(slot.last) for slot in self.session.slots]

    def encode(self, state: ObjectState):
        props = {"confidence": float(state.confidence)}
        if not self.masks:
            if state.box is None:
                return trax.Rectangle.create(0, 0, 0, 0), props
            x, y, w, h = bx.discrete_xywh(state.box)
            return trax.Rectangle.create(float(x), float(y), float(w), float(h)), props
        if state.mask is not None:
            return trax.Mask.create(*crop_to_content(state.mask.mask, state.mask.rect)), props
        if state.box is not None and self.height:  # no mask made for this answer: the box filled
            x0, y0, x1, y1 = box_rect(state.box, self.height, self.width)
            if x0 < x1 and y0 < y1:
                return trax.Mask.create(np.ones((y1 - y0, x1 - x0), dtype=np.uint8), x0, y0), props
        return trax.Mask.create(np.zeros((1, 1), dtype=np.uint8)), props  # absent


def _trax_server() -> trax.Server:
    """What we declare to the toolkit, the same whether we track or only report a start-up error."""
    return trax.Server([trax.Region.RECTANGLE, trax.Region.MASK], [trax.Image.PATH], ["color"],
                       tracker_name="LoRAT", tracker_family="vot_lorat", multiobject=True)


def build_tracker(cfg: ServerConfig, device: torch.device) -> Tracker:
    """The tracker ``cfg`` asks for. Without LoRAT weights it refuses, unless random weights are asked for by
    name: a tracker with a random head still answers every frame, and the toolkit would score its boxes."""
    if cfg.variant == "static":
        return StaticTracker()
    if optional_path(cfg.weights) is None:
        if not cfg.random_weights:
            raise ValueError(f"no LoRAT weights for {cfg.variant or 'B-224'}: set LORAT_WEIGHTS (--weights) to a "
                             f"LoRAT checkpoint (the released model.bin, or one from python -m training); "
                             f"LORAT_RANDOM_WEIGHTS=1 runs random weights, for speed benchmarks only")
        log.warning("LORAT_RANDOM_WEIGHTS=1: tracking with random weights; the boxes mean nothing")
    model = load_model(cfg.variant or ("B-224" if cfg.weights is None else None), cfg.backbone, cfg.weights,
                       device=device)
    tracker = LoRATTracker(model, precision=resolve_precision(cfg.precision, device))
    tracker.warm_up()  # before the handshake: the toolkit times every request, not the start-up
    return tracker


def frame_reader(cfg: ServerConfig, device: torch.device) -> Union[ProcessPrefetcher, FramePrefetcher]:
    """What reads the frames. The toolkit asks for color/00000042.jpg after color/00000041.jpg, so 42 is read
    while 41 is tracked: on the CPU by a child process, forked here, before the model is loaded; on a GPU
    by a thread that decodes there, when reading takes 1 ms or more (a thread costs the tracker about that
    much; benchmarks/README.md, the frame pipeline)."""
    frame_device = torch.device("cpu") if cfg.variant == "static" else device
    if frame_device.type == "cpu" and can_fork():
        return ProcessPrefetcher()
    return FramePrefetcher(functools.partial(read_frame, device=frame_device), min_read_s=1e-3)


def serve(cfg: ServerConfig) -> int:
    """Load the model, then answer TraX requests until the toolkit quits."""
    reuse_freed_memory()  # a frame buffer per request, reused instead of faulted in afresh
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    with frame_reader(cfg, device) as frames:
        tracker = build_tracker(cfg, device)
        session = TrackingSession(tracker, build_mask_generator(cfg, device), cfg.absence_threshold)
        glue = TraxTracker(session, masks=cfg.mask != "none", read=frames.read)
        name = tracker.config.name if isinstance(tracker, LoRATTracker) else "static"
        log.info("%s ready on %s (masks: %s)", name, device, cfg.mask)
        # rectangles: a few hundred bytes per answer, which the buffer's pipe always holds; TRAX_SOCKET: no stdout
        out = MessageBuffer(cfg.mask == "none" and os.name == "posix" and not os.environ.get("TRAX_SOCKET"))
        try:
            answer_requests(glue, out)
        finally:
            out.close()  # after the server's quit message
            if isinstance(frames, ProcessPrefetcher):
                log.info("reading process: %d frames read ahead, %d guesses wrong", frames.hits, frames.misses)
    return 0


def answer_requests(glue: TraxTracker, out: "MessageBuffer") -> None:
    """Answer TraX requests until the toolkit quits; a frame that fails gets the last regions, not the end."""
    with _trax_server() as server:
        out.flush()  # the hello
        while True:
            request = server.wait()
            if request.type in (trax.TraxStatus.QUIT, trax.TraxStatus.ERROR):
                return
            try:
                if request.type == trax.TraxStatus.INITIALIZE:
                    reply = glue.initialize(request)
                else:
                    reply = glue.frame(request)
            except Exception:  # one bad frame must not end the sequence: report and go on
                log.error("error while tracking, answering with the last regions:\n%s", traceback.format_exc())
                reply = glue.recover(request)
            server.status(reply)
            out.flush()


class MessageBuffer:
    """Collects what is written to stdout (file descriptor 1) in a pipe and passes it on in one write.

    libtrax writes each message in pieces (a dozen per object), and every piece wakes the toolkit, which
    reads it and waits for the next: on a busy machine those wake-ups cost more than the message. Only for
    messages that fit the pipe (1 MiB on Linux; 64 KiB where it cannot be enlarged), since nothing reads it
    while the server writes; an inactive buffer leaves stdout alone.
    """

    def __init__(self, active: bool) -> None:
        self.active = active
        if not active:
            return
        import fcntl  # POSIX only

        sys.stdout.flush()
        self.stdout = os.dup(1)
        self.pending, write_end = os.pipe()
        try:
            fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except OSError:
            pass
        os.dup2(write_end, 1)
        os.close(write_end)
        os.set_blocking(self.pending, False)

    def flush(self) -> None:
        """Pass on everything written since the last flush."""
        if not self.active:
            return
        chunks = []
        while True:
            try:
                chunk = os.read(self.pending, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        data = memoryview(b"".join(chunks))
        while data:
            data = data[os.write(self.stdout, data):]

    def close(self) -> None:
        if not self.active:
            return
        sys.stdout.flush()
        self.flush()
        os.dup2(self.stdout, 1)
        os.close(self.stdout)
        os.close(self.pending)
        self.active = False


def parse_args(argv: Optional[Sequence[str]] = None) -> ServerConfig:
    cfg = ServerConfig.from_env()
    parser = argparse.ArgumentParser(prog="python -m vot_lorat", description=__doc__,
                                     epilog="Each flag has an environment variable (trackers.ini: env_LORAT_X = ...); "
                                            "flags win. Booleans are 1 or 0.")
    for f in dataclasses.fields(ServerConfig):
        now = getattr(cfg, f.name)
        default = "none" if f.default is None else _format(f.default)
        set_here = "" if now == f.default else f"; now {_format(now)} from the environment"
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                            metavar="0|1" if isinstance(f.default, bool) else f.name.split("_")[-1].upper(),
                            help=f"{f.metadata['help']} (env LORAT_{f.name.upper()}; default: {default}{set_here})")
    args = parser.parse_args(argv)
    changes = {k: _parse(k, v) for k, v in vars(args).items() if v is not None}
    return dataclasses.replace(cfg, **changes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LoRAT %(levelname)s: %(message)s")
    try:
        cfg = parse_args(argv)
        return serve(cfg)
    except (ValueError, OSError) as exc:  # bad settings or weight files: one line, then exit
        message = f"LoRAT error: {exc}"
        print(message, file=sys.stderr, flush=True)
        if os.environ.get("TRAX"):
            tell_toolkit(message)
        return 1


def tell_toolkit(message: str) -> None:
    """Under the toolkit, say why we stop over TraX too: it shows a quit reason, but not our stderr."""
    try:
        with _trax_server() as server:
            server.wait()
            server.quit(reason=message)
    except Exception:  # the toolkit already hung up: stderr has the message
        pass
