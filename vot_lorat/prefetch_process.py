"""Reading the next frame in a child process, into shared memory: the TraX server's reader on the CPU.

A reading thread (:class:`vot_lorat.prefetch.FramePrefetcher`) shares the interpreter lock with the tracker.
Each time it enters Python again (after reading the file, after decoding, for every small tensor step) the
tracker's thread waits for it, and for the wake-ups between cores: on the 2-core test machine that cost
the tracker 0.5 to 0.7 ms per 400x300 frame, more than reading the frame takes (benchmarks/README.md, the
frame pipeline). A child process that decodes into shared memory never touches the tracker's interpreter:
the tracker sends a path and gets a slot number back.
"""
from __future__ import annotations

import logging
import mmap
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from .image_io import Frame, decode_jpeg_into, frame_array, read_frame
from .prefetch import next_frame_path

log = logging.getLogger(__name__)

SLOT_BYTES = 3840 * 2160 * 3  # a 4K frame; larger frames are read directly


def can_fork() -> bool:
    """The child is forked (it starts at once, with the modules already imported): Linux only."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


class ProcessPrefetcher:
    """``read(path)`` returns the frame at ``path`` as an (H, W, 3) uint8 CPU tensor and has a child process
    read the next path (default: the predicted one, as :class:`vot_lorat.prefetch.FramePrefetcher`).

    The child is forked when this is made: make it before loading a model or starting threads. Frames come
    from ``slots`` shared buffers of ``slot_bytes`` each, used in turn, so a frame that ``read`` returned
    stays valid until ``slots - 1`` more frames have been read (copy it to keep it longer). Wrong guesses,
    frames larger than a slot, files the child cannot read and a child that died are read here by
    ``reader``, which raises what it raises. ``hits`` and ``misses`` count the guesses; ``ahead_s`` is how
    long the child took to read the frame ``read`` last returned from a slot. With the default ``reader`` the
    child decodes plain JPEGs straight into the slot (:func:`vot_lorat.image_io.decode_jpeg_into`); other
    files, and every file with another ``reader``, are read by ``reader`` in the child and copied in.
    """

    def __init__(self, reader: Callable[[str], Frame] = read_frame,
                 predict: Callable[[str], Optional[str]] = next_frame_path, slots: int = 3,
                 slot_bytes: int = SLOT_BYTES) -> None:
        if slots < 3:
            raise ValueError(f"a frame reader needs 3 slots at least (the frame in use, the one before it, the "
                             f"one being read), got {slots}")
        self.reader = reader
        self.predict = predict
        self.hits = 0
        self.misses = 0
        self.ahead_s = 0.0
        self._slots = slots
        self._slot_bytes = slot_bytes
        self._memory = mmap.mmap(-1, slots * slot_bytes)  # anonymous and shared: the child writes these pages
        self._next_slot = 0
        self._prepared = False  # whether the slots have their pages
        self._pending: Optional[Tuple[str, int]] = None
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe()
        self._process: Optional[multiprocessing.process.BaseProcess] = context.Process(
            target=_serve, args=(child_end, self._memory, slots, slot_bytes, reader), name="vot_lorat-reader",
            daemon=True)
        self._process.start()
        child_end.close()

    def read(self, path: str, next_path: Optional[str] = None) -> Frame:
        """The frame at ``path``; then the child reads ``next_path`` (default: the predicted one)."""
        frame = None
        try:
            if self._pending is not None:
                wanted, slot = self._pending
                self._pending = None
                answer = self._receive()  # the child must be done with the slot before it is used again
                if answer is not None and wanted == path:
                    self.hits += 1
                    shape, _, self.ahead_s = answer
                    if shape is not None:
                        frame = self._view(slot, shape)
                elif answer is not None:
                    self.misses += 1
            if frame is None:
                frame = self.reader(path)  # its errors are the caller's
                if not self._prepared:  # the first frame: no slot holds a frame yet
                    self._prepare(frame.shape[0] * frame.shape[1] * frame.shape[2])
            return frame
        finally:
            self._request(next_path if next_path is not None else self.predict(path))

    def _prepare(self, nbytes: int) -> None:
        """Have the kernel give every slot pages for frames of ``nbytes`` now, while nothing waits for them,
        rather than while the first frames are read ahead (at 1080p: a few ms on each of them)."""
        ring = np.frombuffer(self._memory, dtype=np.uint8).reshape(self._slots, self._slot_bytes)
        ring[:, :min(nbytes, self._slot_bytes)] = 0
        self._prepared = True

    def _view(self, slot: int, shape: Tuple[int, int, int]) -> torch.Tensor:
        count = shape[0] * shape[1] * shape[2]
        pixels = np.frombuffer(self._memory, dtype=np.uint8, count=count, offset=slot * self._slot_bytes)
        return torch.from_numpy(pixels.reshape(shape))

    def _receive(self) -> Optional[Tuple[Optional[Tuple[int, int, int]], Optional[str], float]]:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            self._child_gone()
            return None

    def _request(self, path: Optional[str]) -> None:
        if self._process is None or path is None or not os.path.isfile(path):
            return
        slot, self._next_slot = self._next_slot, (self._next_slot + 1) % self._slots
        try:
            self._conn.send((slot, path))
        except OSError:
            self._child_gone()
            return
        self._pending = (path, slot)

    def _child_gone(self) -> None:
        log.warning("the frame reading process stopped (exit code %s); frames are read directly from now on",
                    self._process.exitcode if self._process is not None else None)
        self._process = None
        self._pending = None

    def close(self) -> None:
        """Stop the child. Frames still in use keep the shared memory until they are dropped."""
        if self._process is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join()
            self._process = None
        self._pending = None
        self._conn.close()
        try:
            self._memory.close()
        except BufferError:  # a frame still points into it: the mapping goes when the last frame does
            pass

    def __enter__(self) -> "ProcessPrefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(conn: Connection, memory: mmap.mmap, slots: int, slot_bytes: int,
           reader: Callable[[str], Frame]) -> None:
    """The child: read each requested path into its slot; answer ``(shape, None, seconds)``, or
    ``(None, error, seconds)`` when the parent must read the file itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops the child
    quiet = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):  # the parent's streams carry TraX messages and the toolkit's log, and the toolkit
        os.dup2(quiet, stream)  # waits for them to close: this process neither writes them nor holds them open
    torch.set_num_threads(1)  # the malloc settings of vot_lorat.host_memory come with the fork
    ring = np.frombuffer(memory, dtype=np.uint8).reshape(slots, slot_bytes)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if request is None:
            return
        slot, path = request
        start = time.perf_counter()
        try:
            shape = decode_jpeg_into(path, ring[slot]) if reader is read_frame else None
            if shape is None:  # what only the reader reads: decoded, then copied into the slot
                frame = frame_array(reader(path))
                if frame.nbytes > slot_bytes:
                    conn.send((None, f"{path}: {frame.nbytes} bytes, more than a slot holds",
                               time.perf_counter() - start))
                    continue
                ring[slot, :frame.nbytes] = frame.reshape(-1)
                shape = frame.shape
            conn.send((shape, None, time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001 - the parent reads the file itself and reports the error
            conn.send((None, str(exc), time.perf_counter() - start))
