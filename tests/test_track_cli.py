"""``python -m vot_lorat.track`` on a folder of frames and on a video file."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from training.data.synthetic import SyntheticScene
from vot_lorat import box as bx
from vot_lorat.track import main

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vot_lorat", "weights",
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
