"""The TraX server the VOT toolkit launches (``protocol = traxpython``, ``command = vot_lorat``).

Settings come from ``LORAT_*`` environment variables (set by ``env_*`` keys in trackers.ini) and optional
command-line flags; flags win. The model is loaded before the TraX handshake, because the toolkit's
timeout covers every request but not the start-up.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import signal
import sys
import threading
import traceback
from typing import Optional, Sequence

import torch
import trax

from ..device import resolve_device, resolve_precision
from ..frames.read_ahead import FramePrefetcher
from ..frames.reading import read_frame
from ..masks.box_masks import BoxMaskGenerator
from ..tracking.static import StaticTracker
from ..tracking.tracker import LoRATTracker
from ..weights.files import optional_path
from ..weights.loading import load_model
from .message_buffer import MessageBuffer
from .session import MaskGenerator, Tracker, TrackingSession
from .settings import ServerSettings, parse_args
from .trax_adapter import TraxAdapter

log = logging.getLogger("vot_lorat")

# Ctrl-C, the toolkit's SIGTERM to a tracker that has not quit within 3 s, a closed terminal
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A stop signal arrived. A BaseException, so that the frame loop, which answers any Exception with the last
    regions, lets it through."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _stop(signum: int, _frame) -> None:
    raise Stopped(signum)


def build_mask_generator(settings: ServerSettings, device: torch.device) -> Optional[MaskGenerator]:
    """What turns the tracker's boxes into masks for ``settings.mask``; None for rectangles."""
    if settings.mask == "none":
        return None
    if settings.mask == "box":
        return BoxMaskGenerator()
    from ..masks.sam import BF16_WEIGHTS, SamMaskGenerator, SamOptions, load_sam

    if settings.sam_checkpoint is None:
        raise ValueError("mask mode 'sam' needs a SAM checkpoint: set LORAT_SAM_CHECKPOINT (or --sam-checkpoint) "
                         "to a local sam_vit_{b,l,h}_*.pth")
    # not the tracker's fp16 autocast: the official LoRAT code converts SAM and its input to bfloat16
    precision = resolve_precision(settings.sam_precision, device, cuda_default=BF16_WEIGHTS)
    raw = settings.sam_masks == "raw"
    return SamMaskGenerator(load_sam(settings.sam_model, settings.sam_checkpoint, device),
                            SamOptions(mode=settings.sam_mode, precision=precision,
                                       multimask_output=settings.sam_multimask, guard="none" if raw else "box",
                                       disjoint=not raw))


def build_tracker(settings: ServerSettings, device: torch.device) -> Tracker:
    """The tracker ``settings`` ask for. Without LoRAT weights it refuses: a tracker with a random head still
    answers every frame, and the toolkit would score its boxes."""
    if settings.variant == "static":
        return StaticTracker()
    if optional_path(settings.weights) is None:
        variant = f" for {settings.variant}" if settings.variant else ""
        raise ValueError(f"no LoRAT weights{variant}: set LORAT_WEIGHTS (--weights) to a LoRAT checkpoint (the "
                         f"released model.bin, or one from python -m training); with random weights the tracker "
                         f"would answer every frame with meaningless boxes")
    model = load_model(settings.variant, settings.backbone, settings.weights, device=device)
    tracker = LoRATTracker(model, precision=resolve_precision(settings.precision, device))
    tracker.warm_up()  # before the handshake: the toolkit times every request, not the start-up
    return tracker


def serve(settings: ServerSettings) -> int:
    """Load the model, then answer TraX requests until the toolkit quits; returns the exit status, 0."""
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device)
    frame_device = torch.device("cpu") if settings.variant == "static" else device
    # The toolkit asks for color/00000042.jpg after color/00000041.jpg: 42 is read (on the tracker's device)
    # while 41 is tracked, whenever a read takes long enough to pay for handing it to a thread.
    min_read_s = 1e-3 if settings.read_ahead else math.inf
    with FramePrefetcher(functools.partial(read_frame, device=frame_device), min_read_s=min_read_s) as frames:
        tracker = build_tracker(settings, device)
        session = TrackingSession(tracker, build_mask_generator(settings, device), settings.absence_threshold)
        adapter = TraxAdapter(session, masks=settings.mask != "none", read=frames.read)
        name = tracker.config.name if isinstance(tracker, LoRATTracker) else "static"
        log.info("%s ready on %s (masks: %s)", name, device, settings.mask)
        # rectangles: a few hundred bytes per answer, which the buffer's pipe always holds; TRAX_SOCKET: no stdout
        out = MessageBuffer(settings.mask == "none" and os.name == "posix" and not os.environ.get("TRAX_SOCKET"))
        try:
            answer_requests(adapter, out)
        finally:
            out.close()  # after the server's quit message
    return 0


def _trax_server() -> trax.Server:
    """What we declare to the toolkit, the same whether we track or only report a start-up error."""
    # polygons too: without them the toolkit's client turns the polygons of VOT 2013-2019 into masks of its own
    # rasterisation (empty ones were seen); with them every stack's regions arrive as they are
    return trax.Server([trax.Region.RECTANGLE, trax.Region.POLYGON, trax.Region.MASK], [trax.Image.PATH], ["color"],
                       tracker_name="LoRAT", tracker_family="vot_lorat", multiobject=True)


def answer_requests(adapter: TraxAdapter, out: MessageBuffer) -> None:
    """Answer TraX requests until the toolkit quits; a frame that fails gets the last regions, not the end.
    A stop signal ends the session with a quit message and is raised again after it (trax.Server prints the
    traceback of any exception that leaves it)."""
    stopped = None
    with _trax_server() as server:
        out.flush()  # the hello
        try:
            _answer(server, adapter, out)
        except Stopped as stop:
            stopped = stop
    if stopped is not None:
        raise stopped


def _answer(server: trax.Server, adapter: TraxAdapter, out: MessageBuffer) -> None:
    while True:
        request = server.wait()
        if request.type in (trax.TraxStatus.QUIT, trax.TraxStatus.ERROR):
            return
        try:
            if request.type == trax.TraxStatus.INITIALIZE:
                reply = adapter.initialize(request)
            else:
                reply = adapter.frame(request)
        except Exception:  # one bad frame must not end the sequence: report and go on
            log.error("error while tracking, answering with the last regions:\n%s", traceback.format_exc())
            reply = adapter.recover(request)
        server.status(reply)
        out.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m vot_lorat``: the settings from the environment and ``argv``, then :func:`serve`; a bad setting
    or weight file is one line on stderr (and, under the toolkit, the TraX quit reason) and exit status 1.
    SIGINT, SIGTERM and SIGHUP end it at any moment with one line and the status a shell gives such a signal."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LoRAT %(levelname)s: %(message)s")
    # signals are handled by the main thread only; the handlers before are put back for callers in-process
    previous = {s: signal.signal(s, _stop) for s in STOP_SIGNALS} if threading.current_thread() is \
        threading.main_thread() else {}
    try:
        return serve(parse_args(argv, __doc__))
    except Stopped as stop:
        print(f"LoRAT: stopped by {stop}", file=sys.stderr, flush=True)
        return 128 + stop.signum
    except (ValueError, OSError) as exc:  # bad settings or weight files: one line, then exit
        message = f"LoRAT error: {exc}"
        print(message, file=sys.stderr, flush=True)
        if os.environ.get("TRAX"):
            tell_toolkit(message)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def tell_toolkit(message: str) -> None:
    """Under the toolkit, say why we stop over TraX too: it shows a quit reason, but not our stderr."""
    try:
        with _trax_server() as server:
            server.wait()
            server.quit(reason=message)
    except Exception:  # the toolkit already hung up: stderr has the message
        pass
