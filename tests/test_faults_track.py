"""``python -m vot_lorat.track`` never destroys what it is given: an output that is an input (however the path
is spelt) is refused before anything is opened, and a result file is written under a partial name until it is
complete, so a failed or interrupted run never empties an earlier result."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

import vot_lorat.track as track_cli
from vot_lorat.track import main, partial_path

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vot_lorat", "checkpoints",
                       "lorat_tiny_synthetic.safetensors")
INIT = "20,40,40,40"


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "in.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (160, 120))
    for i in range(12):
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[40:80, 20 + i:60 + i] = 255
        writer.write(frame)
    writer.release()
    return path


def _track(video, *args):
    return main(["--weights", WEIGHTS, "--input", str(video), "--init", INIT, "--threads", "1", "--quiet", *args])


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink", "hardlink"])
@pytest.mark.parametrize("flag", ["--output", "--save-video"])
def test_an_output_that_is_the_input_is_refused_before_anything_is_opened(video, tmp_path, capsys, monkeypatch,
                                                                          spelling, flag):
    before = video.read_bytes()
    if spelling == "same":
        target = str(video)
    elif spelling == "relative":
        monkeypatch.chdir(tmp_path)
        os.mkdir("sub")
        target = os.path.join("sub", "..", "in.mp4")
    elif spelling == "symlink":
        target = str(tmp_path / "link.mp4")
        os.symlink(video, target)
    else:
        target = str(tmp_path / "hard.mp4")
        os.link(video, target)
    args = ["--output", target] if flag == "--output" else ["--output", str(tmp_path / "boxes.txt"), flag, target]
    assert _track(video, *args) == 2
    err = capsys.readouterr().err
    assert f"{flag} {target} is the same file as --input" in err and err.count("\n") == 1
    assert video.read_bytes() == before
    assert not (tmp_path / "boxes.txt").exists() and not os.path.exists(partial_path(target))


def test_outputs_that_are_a_frame_the_weights_or_each_other_are_refused(video, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "1.png"), np.zeros((60, 80, 3), np.uint8))
    assert main(["--weights", WEIGHTS, "--input", str(frames), "--init", INIT, "--output",
                 str(frames / "2.png")]) == 2
    assert "would be a frame of --input" in capsys.readouterr().err
    assert _track(video, "--output", WEIGHTS) == 2
    assert "is the same file as --weights" in capsys.readouterr().err
    assert _track(video, "--output", str(tmp_path / "a.mp4"), "--save-video", str(tmp_path / "a.mp4")) == 2
    assert "two outputs" in capsys.readouterr().err
    assert _track(video, "--output", str(tmp_path)) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_failed_run_keeps_the_earlier_result(video, tmp_path, capsys):
    old = tmp_path / "old.txt"
    old.write_text("the earlier run's boxes\n")
    assert _track(video, "--output", str(old), "--weights", str(tmp_path / "none.bin")) == 2
    assert "none.bin" in capsys.readouterr().err
    assert old.read_text() == "the earlier run's boxes\n" and not os.path.exists(partial_path(str(old)))
    # a run that completes replaces it, and leaves no partial file behind
    assert _track(video, "--output", str(old), "--save-video", str(tmp_path / "v.mp4")) == 0
    assert len(old.read_text().splitlines()) == 12 and (tmp_path / "v.mp4").stat().st_size > 1000
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "old.txt", "v.mp4"]


def test_an_interrupted_run_keeps_what_it_tracked_under_the_partial_name(video, tmp_path, capsys, monkeypatch):
    old = tmp_path / "old.txt"
    old.write_text("the earlier run's boxes\n")
    real_track = track_cli.LoRATTracker.track
    calls = []

    def interrupted(self, image):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_track(self, image)

    monkeypatch.setattr(track_cli.LoRATTracker, "track", interrupted)
    assert _track(video, "--output", str(old), "--save-video", str(tmp_path / "v.mp4")) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and partial_path(str(old)) in err and partial_path(str(tmp_path / "v.mp4")) in err
    assert old.read_text() == "the earlier run's boxes\n"
    assert len(open(partial_path(str(old))).read().splitlines()) == 5  # the given boxes, then 4 tracked frames
    assert not (tmp_path / "v.mp4").exists()
