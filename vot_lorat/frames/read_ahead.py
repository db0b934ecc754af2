"""Reading frames ahead of the tracker, in a background thread, so that decoding overlaps tracking.

Two cases: the order is known (a folder of frames, a video, an evaluation sequence: :func:`read_ahead`),
or only guessed (the VOT toolkit sends one frame path per request: :class:`FramePrefetcher` reads the
predicted next file, ``color/00000042.jpg`` after ``color/00000041.jpg``, and reads the requested file
itself when the guess was wrong). JPEG decoding and torch release the GIL, so the reading thread runs on
another core (or decodes on the GPU) while the model runs. Frames are files that do not change while a
sequence is tracked.
"""
from __future__ import annotations

import os
import queue
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Iterable, Iterator, Optional, Tuple, TypeVar

T = TypeVar("T")

_LAST_NUMBER = re.compile(r"(\d+)(?=\D*$)")


def next_frame_path(path: str) -> Optional[str]:
    """The file the next frame most likely is: the last number in the file name plus one, with the same
    zero padding (``color/00000009.jpg`` -> ``color/00000010.jpg``); None when the name has no number."""
    folder, name = os.path.split(path)
    found = _LAST_NUMBER.search(name)
    if found is None:
        return None
    digits = found.group(1)
    following = str(int(digits) + 1).zfill(len(digits))
    return os.path.join(folder, name[:found.start()] + following + name[found.end():])


class FramePrefetcher(Generic[T]):
    """``read(path)`` returns ``reader(path)`` and starts reading the next path in a background thread.

    A request for the path read ahead waits for that read (its error, if any, is raised as the direct
    read would raise it); any other path is read directly and the guess is dropped. ``hits`` and
    ``misses`` count the two cases.

    Handing a read to the thread costs something too (waking it, sharing the GIL with the tracker): with
    ``min_read_s`` the next path is read ahead only when the last read took at least that long, so that
    small frames, whose decoding costs less than the hand-off, are read directly.
    """

    def __init__(self, reader: Callable[[str], T],
                 predict: Callable[[str], Optional[str]] = next_frame_path, min_read_s: float = 0.0) -> None:
        self.reader = reader
        self.predict = predict
        self.min_read_s = min_read_s
        self.hits = 0
        self.misses = 0
        self._last_read_s = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vot_lorat-prefetch")
        self._pending: Optional[Tuple[str, Future]] = None

    def read(self, path: str, next_path: Optional[str] = None) -> T:
        """The frame at ``path``; then reads ``next_path`` (default: the predicted one) in the background."""
        pending, self._pending = self._pending, None
        try:
            if pending is not None and pending[0] == path:
                self.hits += 1
                return pending[1].result()
            if pending is not None:
                self.misses += 1
                pending[1].cancel()
            return self._timed_read(path)
        finally:
            if self._last_read_s >= self.min_read_s:
                self._start(next_path if next_path is not None else self.predict(path))

    def _timed_read(self, path: str) -> T:
        start = time.perf_counter()
        frame = self.reader(path)
        self._last_read_s = time.perf_counter() - start
        return frame

    def _start(self, path: Optional[str]) -> None:
        if path is not None and os.path.isfile(path):
            self._pending = (path, self._pool.submit(self._timed_read, path))

    def close(self) -> None:
        """Drop the frame read ahead and stop the thread."""
        if self._pending is not None:
            self._pending[1].cancel()
            self._pending = None
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "FramePrefetcher[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_END = object()


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items``, produced by a background thread up to ``depth`` items ahead of the consumer.

    An exception in ``items`` is raised by the consumer's ``next`` at the same position; a consumer that
    stops early stops the thread too.
    """
    if depth < 1:
        raise ValueError(f"read-ahead depth must be at least 1, got {depth}")
    ready: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            ready.put((_END, exc))

    thread = threading.Thread(target=produce, name="vot_lorat-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
