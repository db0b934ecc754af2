"""``python -m training check-data`` on clean and broken fake trees."""
from __future__ import annotations

import os
import re

import pytest

from training.cli import main

from test_datasets import make_coco, make_got10k, make_lasot, write_frame, write_text


def test_clean_tree_exits_0(tmp_path, capsys):
    root = make_lasot(tmp_path)
    assert main(["check-data", "lasot", root, "--split", "all"]) == 0
    out = capsys.readouterr().out
    assert "lasot-all: no problems in 4 sequences" in out


def test_broken_tree_reports_exactly_its_problems(tmp_path, capsys):
    root = make_lasot(tmp_path)
    seq = os.path.join(root, "airplane", "airplane-1")
    gt = os.path.join(seq, "groundtruth.txt")
    # line 2: empty but flagged occluded (fine); line 3: bad; line 4: empty, not marked absent
    write_text(gt, ["0,1,4,5", "1,2,0,6", "12,abc,5,5", "3,3,0,5", "4,5,8,9"])
    os.remove(os.path.join(seq, "img", "00000005.jpg"))
    assert main(["check-data", "lasot", root, "--split", "all"]) == 1
    out = capsys.readouterr().out
    assert "airplane-1: 3 problem(s)" in out
    assert f"[bad annotation] {gt}:3: '12,abc,5,5' is not x,y,w,h" in out
    assert f"[empty box] {gt}:4: x,y,w,h = 3,3,0,5 has no area" in out
    assert f"[missing frame] {os.path.join(seq, 'img', '00000005.jpg')}: frame 4 (annotation line 5)" in out
    assert "lasot-all: 3 problem(s) in 1 sequence(s) of 4:" in out
    summary = out.strip().splitlines()[-1]
    assert all(f"1 {kind}" in summary for kind in ("bad annotation", "empty box", "missing frame"))
    for other in ("airplane-2", "airplane-10", "bear-1"):
        assert other not in out


def test_counts_outside_boxes_and_unreadable_images(tmp_path, capsys):
    seq = tmp_path / "seq"
    for i in range(3):
        write_frame(str(seq / f"{i}.jpg"), size=16)
    (seq / "2.jpg").write_bytes(b"not a jpeg")
    write_text(seq / "groundtruth.txt", ["1,1,4,4", "20,2,4,4", "1,1,4,4", "1,1,4,4"])  # box 1 right of x=16
    assert main(["check-data", "custom", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "[box outside image]" in out and "annotation line 2" in out and "16x16 image" in out
    assert "4 annotation lines for 3 frames" in out
    assert "unreadable" not in out  # without --images only the first frame is opened
    assert main(["check-data", "custom", str(tmp_path), "--images"]) == 1
    out = capsys.readouterr().out
    assert f"[unreadable image] {seq / '2.jpg'}" in out
    assert re.search(r"3 problem\(s\) in 1 sequence\(s\) of 1", out)


def test_coco_missing_image_and_object_outside(tmp_path, capsys):
    assert main(["check-data", "coco", make_coco(tmp_path / "clean")]) == 0
    outside = {"id": 14, "image_id": 2, "bbox": [40, 1, 5, 5], "iscrowd": 0}  # right of the 32x32 image
    root = make_coco(tmp_path / "broken", extra_objects=[outside])
    os.remove(os.path.join(root, "images", "train2017", "000000000001.jpg"))
    assert main(["check-data", "coco", root]) == 1
    out = capsys.readouterr().out
    assert f"[missing frame] {os.path.join(root, 'images', 'train2017', '000000000001.jpg')}: image" in out
    assert "14: 1 problem(s)" in out and "box x1,y1,x2,y2 = 40,1,45,6 lies entirely outside the 32x32" in out


def test_reader_options_pass_through(tmp_path, capsys):
    root = make_got10k(tmp_path)
    split_file = tmp_path / "indices.txt"
    write_text(split_file, ["1"])
    assert main(["check-data", "got10k", root, "--split", "vot_train", "--option", f"split_file={split_file}"]) == 0
    assert "got10k-vot_train: no problems in 1 sequences" in capsys.readouterr().out
    assert main(["check-data", "got10k", root, "--split", "vot_train"]) == 2
    assert "got10k_vot_train_split.txt" in capsys.readouterr().err


def test_report_caps_lines_per_sequence(tmp_path, capsys):
    for i in range(15):
        write_frame(str(tmp_path / "seq" / f"{i}.jpg"), size=8)
    write_text(tmp_path / "seq" / "groundtruth.txt", ["x"] * 15)
    assert main(["check-data", "custom", str(tmp_path), "--max-lines", "4"]) == 1
    out = capsys.readouterr().out
    assert out.count("[bad annotation]") == 4 and "... and 11 more" in out
    assert "15 bad annotation" in out


def test_usage_errors_exit_2(tmp_path, capsys):
    root = make_lasot(tmp_path)
    assert main(["check-data", "nosuch", root]) == 2
    assert "unknown dataset kind 'nosuch'" in capsys.readouterr().err
    assert main(["check-data", "lasot", root, "--option", "colour=red"]) == 2
    assert "known: split" in capsys.readouterr().err
    assert main(["check-data", "lasot", root, "--option", "novalue"]) == 2
    assert main(["check-data", "lasot", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["check-data", "lasot"])
    assert exc.value.code == 2
