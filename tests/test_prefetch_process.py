"""Reading ahead in a child process into shared memory: guesses, slots, errors, a child that dies."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from vot_lorat.image_io import read_frame
from vot_lorat.prefetch_process import ProcessPrefetcher, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="the reading process is forked: Linux only")


@pytest.fixture
def frames(tmp_path):
    """Seven 64x48 JPEG frames, each a different flat grey, and a PNG frame."""
    paths = []
    for i in range(1, 8):
        path = tmp_path / f"{i:08d}.jpg"
        cv2.imwrite(str(path), np.full((48, 64, 3), 30 * i, dtype=np.uint8))
        paths.append(str(path))
    return paths


def test_in_order_every_frame_after_the_first_comes_from_the_child(frames):
    with ProcessPrefetcher() as reader:
        got = [reader.read(p) for p in frames]
        assert (reader.hits, reader.misses) == (6, 0)
        for frame, path in zip(got[-2:], frames[-2:]):  # the frame before the last is still valid too
            assert np.array_equal(frame.numpy(), read_frame(path).numpy())
        assert reader.ahead_s > 0


def test_a_slot_is_reused_only_after_two_more_frames(frames):
    with ProcessPrefetcher() as reader:
        reader.read(frames[0])
        second = reader.read(frames[1])
        kept = second.clone()
        reader.read(frames[2])
        assert np.array_equal(second.numpy(), kept.numpy())  # its slot is the one being read into now


def test_wrong_guesses_and_given_next_paths(frames):
    with ProcessPrefetcher() as reader:
        reader.read(frames[0])
        assert int(reader.read(frames[4])[0, 0, 0]) == int(read_frame(frames[4])[0, 0, 0])  # guessed frames[1]
        assert reader.misses == 1
        reader.read(frames[5], next_path=frames[2])  # the guess after the miss (frames[5]) was right
        assert np.array_equal(reader.read(frames[2]).numpy(), read_frame(frames[2]).numpy())
        assert (reader.hits, reader.misses) == (2, 1)


def test_unreadable_files_raise_the_readers_error_here(frames):
    with open(frames[1], "wb") as f:
        f.write(b"not a jpeg")
    with ProcessPrefetcher() as reader:
        reader.read(frames[0])
        with pytest.raises(OSError, match="cannot read image"):
            reader.read(frames[1])
        assert np.array_equal(reader.read(frames[2]).numpy(), read_frame(frames[2]).numpy())


def test_frames_larger_than_a_slot_and_other_formats(tmp_path, frames):
    png = tmp_path / "00000001.png"
    cv2.imwrite(str(png), np.full((48, 64, 3), 99, dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "00000002.png"), np.full((48, 64, 3), 11, dtype=np.uint8))
    with ProcessPrefetcher() as reader:  # a PNG: read by read_frame in the child, copied into the slot
        reader.read(str(png))
        assert int(reader.read(str(tmp_path / "00000002.png"))[0, 0, 0]) == 11 and reader.hits == 1
    with ProcessPrefetcher(slot_bytes=100) as reader:  # a 64x48 frame does not fit: read here
        reader.read(frames[0])
        assert np.array_equal(reader.read(frames[1]).numpy(), read_frame(frames[1]).numpy())


def test_a_child_that_died_leaves_direct_reads(frames, caplog):
    with ProcessPrefetcher() as reader:
        reader.read(frames[0])
        os.kill(reader._process.pid, 9)
        reader._process.join()
        got = [reader.read(p) for p in frames[1:4]]
        assert all(np.array_equal(g.numpy(), read_frame(p).numpy()) for g, p in zip(got, frames[1:4]))
    assert "frames are read directly from now on" in caplog.text


def test_needs_three_slots():
    with pytest.raises(ValueError, match="3 slots at least"):
        ProcessPrefetcher(slots=2)
