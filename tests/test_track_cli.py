"""``python -m vot_lorat.track`` on a folder of frames and on a video file."""
from __future__ import annotations

import io
import logging
import os
import sys

import cv2
import numpy as np
import pytest
import torch

from training.data.synthetic import SyntheticScene
from vot_lorat.track import main
from vot_lorat.tracking import box as bx

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vot_lorat", "checkpoints",
                       "lorat_tiny_synthetic.safetensors")


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    scene = SyntheticScene(777, 12)
    for t in range(12):
        cv2.imwrite(str(folder / f"frame{t + 1}.jpg"), cv2.cvtColor(scene.render(t), cv2.COLOR_RGB2BGR))
    return folder, bx.xyxy_to_xywh(scene.boxes(0)[0])


def test_folder_of_frames_in_natural_order(frames_dir, tmp_path):
    folder, init = frames_dir
    (folder / "frame7.jpg").write_bytes(b"broken")  # an unreadable frame keeps the previous box
    out = tmp_path / "boxes.txt"
    init_text = ",".join(f"{v:g}" for v in init)
    assert main(["--variant", "tiny", "--weights", WEIGHTS, "--input", str(folder), "--init", init_text,
                 "--output", str(out), "--save-video", str(tmp_path / "out.mp4")]) == 0
    rows = np.loadtxt(out, delimiter=",")
    assert rows.shape == (12, 4)
    assert np.allclose(rows[0], init, atol=0.01)
    assert np.array_equal(rows[6], rows[5])  # frame7 is the 7th file in natural order (frame10 comes later)
    assert (tmp_path / "out.mp4").stat().st_size > 1000


def test_video_file_input(frames_dir, tmp_path):
    folder, init = frames_dir
    first = cv2.imread(str(folder / "frame1.jpg"))
    video = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (first.shape[1], first.shape[0]))
    for t in range(1, 13):
        frame = cv2.imread(str(folder / f"frame{t}.jpg"))
        writer.write(frame if frame is not None else first)
    writer.release()
    out = tmp_path / "boxes.txt"
    assert main(["--variant", "tiny", "--weights", WEIGHTS, "--input", str(video), "--init",
                 ",".join(map(str, init)), "--output", str(out)]) == 0
    assert np.loadtxt(out, delimiter=",").shape == (12, 4)


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    assert main(["--variant", "tiny", "--weights", WEIGHTS, "--input", str(tmp_path / "nope.mp4"), "--init",
                 "1,2,3,4", "--output", str(tmp_path / "b.txt")]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["--variant", "tiny", "--weights", WEIGHTS, "--input", str(tmp_path), "--init", "1,2,0,4",
                 "--output", str(tmp_path / "b.txt")]) == 2
    assert "positive w and h" in capsys.readouterr().err
    assert main(["--variant", "tiny", "--weights", WEIGHTS, "--input", str(tmp_path), "--init", "1,2,3,4",
                 "--output", str(tmp_path / "b.txt"), "--device", "gpu0"]) == 2
    assert "unknown device 'gpu0': use auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def _run(args, tmp_path, name="boxes.txt"):
    out = tmp_path / name
    return main(args + ["--output", str(out)]), out


def test_several_objects_space_separated_init_threads_and_the_variant_from_the_checkpoint(frames_dir, tmp_path,
                                                                                          caplog):
    folder, init = frames_dir
    other = np.array([5.0, 5.0, 30.0, 20.0])
    threads = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO):
            code, out = _run(["--weights", WEIGHTS, "--input", str(folder), "--init",
                              " ".join(f"{v:g}" for v in init), "--init", ",".join(f"{v:g}" for v in other),
                              "--threads", "1", "--quiet"], tmp_path)
        assert code == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    rows = np.loadtxt(out, delimiter=",")
    assert rows.shape == (12, 8)  # x,y,w,h of each object, in --init order
    assert np.allclose(rows[0, :4], init, atol=0.01) and np.allclose(rows[0, 4:], other)
    assert not np.allclose(rows[1:, :4], rows[1:, 4:])  # two objects, tracked apart
    assert "variant tiny (from the checkpoint)" in caplog.text


def test_a_given_variant_that_does_not_match_is_named(frames_dir, tmp_path, capsys):
    folder, init = frames_dir
    code, _ = _run(["--variant", "B-224", "--weights", WEIGHTS, "--input", str(folder),
                    "--init", ",".join(map(str, init))], tmp_path)
    assert code == 2 and "but B-224 uses ViT-B/14" in capsys.readouterr().err


def test_output_folder_is_made_or_refused_before_any_work(frames_dir, tmp_path, capsys):
    folder, init = frames_dir
    init_text = ",".join(map(str, init))
    code, out = _run(["--weights", WEIGHTS, "--input", str(folder), "--init", init_text, "--quiet"], tmp_path,
                     "new/dir/boxes.txt")
    assert code == 0 and len(out.read_text().splitlines()) == 12
    (tmp_path / "a_file").write_text("")
    # weights that do not exist: the output error must come first, before anything is loaded
    code, _ = _run(["--weights", str(tmp_path / "none.bin"), "--input", str(folder), "--init", init_text], tmp_path,
                   "a_file/boxes.txt")
    err = capsys.readouterr().err
    assert code == 2 and "a_file" in err and "none.bin" not in err


@pytest.mark.parametrize("text,expected", [("nan,1,2,3", "finite"), ("1,inf,2,3", "finite"),
                                           ("5000,10,20,20", "outside the first frame")])
def test_bad_init_boxes_are_refused_before_loading_the_model(frames_dir, tmp_path, capsys, text, expected):
    folder, _ = frames_dir
    code, _ = _run(["--weights", str(tmp_path / "none.bin"), "--input", str(folder), "--init", text], tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "none.bin" not in err
    assert text in err  # printed as given, x,y,w,h


def test_other_image_formats_are_read_and_skipped_files_named(frames_dir, tmp_path, caplog):
    folder, init = frames_dir
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    first = cv2.imread(str(folder / "frame1.jpg"))
    cv2.imwrite(str(mixed / "f1.jpg"), first)
    cv2.imwrite(str(mixed / "f2.tif"), cv2.imread(str(folder / "frame2.jpg")))
    cv2.imwrite(str(mixed / "f3.webp"), cv2.imread(str(folder / "frame3.jpg")))
    (mixed / "notes.txt").write_text("not a frame")
    (mixed / "clip.gif").write_bytes(b"GIF89a")
    with caplog.at_level(logging.WARNING):
        code, out = _run(["--weights", WEIGHTS, "--input", str(mixed), "--init", ",".join(map(str, init)), "--quiet"],
                         tmp_path)
    assert code == 0 and np.loadtxt(out, delimiter=",").shape == (3, 4)
    assert "skipping 2 files" in caplog.text and "clip.gif" in caplog.text and "notes.txt" in caplog.text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only(frames_dir, tmp_path, monkeypatch):
    folder, init = frames_dir
    args = ["--weights", WEIGHTS, "--input", str(folder), "--init", ",".join(map(str, init))]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert _run(args, tmp_path)[0] == 0
    assert "12/12" in terminal.getvalue() and "frame/s" in terminal.getvalue()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert _run(args + ["--quiet"], tmp_path)[0] == 0
    assert "frame/s" not in quiet.getvalue()
    piped = io.StringIO()  # not a terminal: no bar either
    monkeypatch.setattr(sys, "stderr", piped)
    assert _run(args, tmp_path)[0] == 0
    assert "12/12" not in piped.getvalue()
