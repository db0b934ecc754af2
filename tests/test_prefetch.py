"""Reading frames ahead: the guessed next file, wrong guesses, errors, and reading in a known order."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from vot_lorat.frames.read_ahead import FramePrefetcher, next_frame_path, read_ahead


@pytest.mark.parametrize("path, expected", [
    ("seq/color/00000041.jpg", "seq/color/00000042.jpg"),
    ("seq/color/00000099.jpg", "seq/color/00000100.jpg"),
    ("frame9.png", "frame10.png"),
    ("cam2/img_0999.jpeg", "cam2/img_1000.jpeg"),
    ("cam2_frame0007.jpg", "cam2_frame0008.jpg"),  # the last number of the file name counts
    ("seq12/frame.jpg", None),  # a number in the folder only: nothing to guess
])
def test_next_frame_path(path, expected):
    assert next_frame_path(path) == expected


class Reader:
    """Reads the number stored in a file and records which thread read which file."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, path: str) -> int:
        self.calls.append((os.path.basename(path), threading.current_thread().name))
        with open(path) as f:
            text = f.read()
        if not text.isdigit():
            raise OSError(f"cannot read image {path}")
        return int(text)


@pytest.fixture
def frames(tmp_path):
    paths = []
    for i in range(1, 8):
        path = tmp_path / f"{i:08d}.jpg"
        path.write_text(str(i))
        paths.append(str(path))
    return paths


def test_in_order_every_frame_after_the_first_was_read_ahead(frames):
    reader = Reader()
    with FramePrefetcher(reader) as prefetcher:
        assert [prefetcher.read(p) for p in frames] == list(range(1, 8))
    assert (prefetcher.hits, prefetcher.misses) == (6, 0)
    threads = {name: thread for name, thread in reader.calls}
    assert threads["00000001.jpg"] == threading.current_thread().name
    assert all(threads[os.path.basename(p)].startswith("vot_lorat-prefetch") for p in frames[1:])
    # the guess past the last frame names no file, so nothing is read for it
    assert len(reader.calls) == len(frames)


def test_reads_quicker_than_the_threshold_are_not_read_ahead(frames):
    reader = Reader()
    with FramePrefetcher(reader, min_read_s=60.0) as prefetcher:
        assert [prefetcher.read(p) for p in frames] == list(range(1, 8))
    assert (prefetcher.hits, prefetcher.misses) == (0, 0)
    assert all(name == threading.current_thread().name for _, name in reader.calls)
    assert len(reader.calls) == len(frames)


def test_wrong_guesses_fall_back_to_reading_the_requested_file(frames):
    reader = Reader()
    with FramePrefetcher(reader) as prefetcher:
        order = [0, 3, 4, 4, 1, 2, 6]  # a skip, a repeat, a jump back, a jump forward
        assert [prefetcher.read(frames[i]) for i in order] == [i + 1 for i in order]
        assert prefetcher.hits == 2 and prefetcher.misses == 4  # 3->4 and 1->2 were the guesses asked for


def test_a_given_next_path_replaces_the_guess(tmp_path):
    reader = Reader()
    paths = []
    for name, value in (("b.jpg", 1), ("a.jpg", 2), ("c.jpg", 3)):  # no numbers in the names
        (tmp_path / name).write_text(str(value))
        paths.append(str(tmp_path / name))
    with FramePrefetcher(reader) as prefetcher:
        got = [prefetcher.read(p, paths[i + 1] if i + 1 < len(paths) else None) for i, p in enumerate(paths)]
    assert got == [1, 2, 3] and prefetcher.hits == 2


def test_an_unreadable_frame_raises_at_its_request_and_the_next_frames_still_come(frames):
    with open(frames[2], "w") as f:
        f.write("not a frame")
    reader = Reader()
    with FramePrefetcher(reader) as prefetcher:
        assert prefetcher.read(frames[1]) == 2
        with pytest.raises(OSError, match="cannot read image .*00000003.jpg"):
            prefetcher.read(frames[2])  # read ahead, the error is raised here as a direct read raises it
        assert prefetcher.read(frames[3]) == 4
    assert prefetcher.hits == 2


def test_read_ahead_keeps_order_raises_in_place_and_stops_with_the_consumer():
    assert list(read_ahead(range(10), depth=3)) == list(range(10))

    def failing():
        yield 1
        yield 2
        raise OSError("broken video")

    got = []
    with pytest.raises(OSError, match="broken video"):
        for item in read_ahead(failing()):
            got.append(item)
    assert got == [1, 2]

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield np.full(3, i)
            i += 1

    stream = read_ahead(endless(), depth=2)
    assert int(next(stream)[0]) == 0
    stream.close()  # the consumer stops: the producer thread ends instead of filling memory
    assert not any(t.name == "vot_lorat-read-ahead" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 4
    with pytest.raises(ValueError, match="at least 1"):
        list(read_ahead([1], depth=0))
