"""Dataset readers on tiny fake trees laid out like the real datasets."""
from __future__ import annotations

import json
import logging
import os

import cv2
import numpy as np
import pytest

from training.config import DataSource
from training.data.coco import COCO
from training.data.custom import CustomDataset
from training.data.got10k import GOT10k
from training.data.lasot import LaSOT
from training.data.registry import build_dataset
from training.data.trackingnet import TrackingNet, parse_chunks

RED_BGR = (0, 0, 255)


def write_frame(path, colour=(90, 60, 30), size=16) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.zeros((size, size, 3), np.uint8)
    image[:] = colour
    assert cv2.imwrite(str(path), image)


def write_text(path, lines) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def xywh(i):
    """Distinct box of frame i (x, y, w, h)."""
    return (i, i + 1, 4 + i, 5 + i)


def make_lasot(root, sequences=(("airplane-1", 5), ("airplane-10", 3), ("airplane-2", 4), ("bear-1", 3))):
    """LaSOT's ground truth is 1-based: the lines say xywh(i) + (1, 1, 0, 0)."""
    for name, n in sequences:
        folder = os.path.join(root, name.rsplit("-", 1)[0], name)
        for i in range(n):
            write_frame(os.path.join(folder, "img", f"{i + 1:08d}.jpg"), RED_BGR if i == 0 else (90, 60, 30))
        write_text(os.path.join(folder, "groundtruth.txt"), [",".join(str(v + d) for v, d in zip(xywh(i), (1, 1, 0, 0)))
                                                             for i in range(n)])
        occlusion = ["1" if i == 1 else "0" for i in range(n)]
        out_of_view = ["1" if i == 2 else "0" for i in range(n)]
        write_text(os.path.join(folder, "full_occlusion.txt"), [",".join(occlusion)])
        write_text(os.path.join(folder, "out_of_view.txt"), [",".join(out_of_view)])
    return str(root)


def test_lasot_all_reads_every_sequence_with_xyxy_boxes_and_absent_frames(tmp_path):
    dataset = LaSOT(make_lasot(tmp_path), split="all")
    assert [dataset[i].name for i in range(len(dataset))] == ["airplane-1", "airplane-2", "airplane-10", "bear-1"]
    seq = dataset[0]
    assert [os.path.relpath(p, tmp_path) for p in seq.frame_paths] == [
        os.path.join("airplane", "airplane-1", "img", f"{i:08d}.jpg") for i in range(1, 6)]
    assert all(os.path.isfile(p) for p in seq.frame_paths)
    assert seq.boxes[0].tolist() == [0, 1, 4, 6]  # x - 1, y - 1, x-1+w, y-1+h of the 1-based line 1,2,4,5
    assert seq.boxes[4].tolist() == [4, 5, 12, 14]
    assert np.isnan(seq.boxes[1]).all()  # full_occlusion
    assert np.isnan(seq.boxes[2]).all()  # out_of_view
    assert seq.visible.tolist() == [True, False, False, True, True]
    assert dataset.problems == []
    rgb = seq.frame(0)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert rgb[8, 8, 0] > 240 and rgb[8, 8, 1] < 15 and rgb[8, 8, 2] < 15  # BGR red written, RGB red read


def test_lasot_splits_come_from_the_list_files(tmp_path):
    root = make_lasot(tmp_path)
    write_text(tmp_path / "training_set.txt", ["airplane-1", "bear-1"])
    train = LaSOT(root)
    assert train.name == "lasot-train"
    assert [train[i].name for i in range(len(train))] == ["airplane-1", "bear-1"]
    with pytest.raises(FileNotFoundError, match="testing_set.txt"):
        LaSOT(root, split="test")
    write_text(tmp_path / "testing_set.txt", ["airplane-2"])
    test = LaSOT(root, split="test")
    assert test.name == "lasot-test" and [test[i].name for i in range(len(test))] == ["airplane-2"]


def test_registry_builds_lasot_and_checks_path_and_options(tmp_path):
    root = make_lasot(tmp_path)
    dataset = build_dataset(DataSource.parse(f"lasot:{root},split=all"))
    assert isinstance(dataset, LaSOT) and len(dataset) == 4
    write_text(tmp_path / "training_set.txt", ["bear-1"])
    assert len(build_dataset(DataSource.parse(f"lasot:{root}"))) == 1  # default split: train
    with pytest.raises(ValueError, match="needs the dataset folder"):
        build_dataset(DataSource.parse("lasot"))
    with pytest.raises(ValueError, match=r"unknown lasot dataset option\(s\): chunks \(known: split\)"):
        build_dataset(DataSource.parse(f"lasot:{root},chunks=1"))


def make_got10k(root):
    for split, names in (("train", [f"GOT-10k_Train_{i:06d}" for i in range(1, 5)]),
                         ("val", ["GOT-10k_Val_000001"]), ("test", ["GOT-10k_Test_000001"])):
        for name in names:
            folder = os.path.join(root, split, name)
            for i in range(4):
                write_frame(os.path.join(folder, f"{i + 1:08d}.jpg"))
            lines = [",".join(map(str, xywh(i))) for i in range(1 if split == "test" else 4)]
            write_text(os.path.join(folder, "groundtruth.txt"), lines)
            if split != "test":
                write_text(os.path.join(folder, "absence.label"), ["0", "0", "1", "0"])
                write_text(os.path.join(folder, "cover.label"), ["8", "3", "5", "0"])
        if split == "train":  # val has no list.txt: the folder listing is used
            write_text(os.path.join(root, split, "list.txt"), names)
    return str(root)


def test_got10k_train_val_and_test(tmp_path):
    root = make_got10k(tmp_path)
    train = GOT10k(root)
    assert len(train) == 4 and train[0].name == "GOT-10k_Train_000001"
    seq = train[1]
    assert os.path.basename(seq.frame_paths[3]) == "00000004.jpg" and os.path.isfile(seq.frame_paths[3])
    assert seq.boxes[1].tolist() == [1, 2, 6, 8]
    assert np.isnan(seq.boxes[2]).all()  # absence.label 1
    assert np.isnan(seq.boxes[3]).all()  # cover.label 0: nothing of the target is visible
    assert seq.visible.tolist() == [True, True, False, False]
    assert [GOT10k(root, "val")[0].name] == ["GOT-10k_Val_000001"]
    test = GOT10k(root, "test")
    assert test[0].num_frames == 4  # counted from the frame files: only the first box is given
    assert test[0].boxes[0].tolist() == [0, 1, 4, 6] and np.isnan(test[0].boxes[1:]).all()
    assert test.problems == []


def test_got10k_vot_splits_need_an_index_file(tmp_path):
    root = make_got10k(tmp_path)
    with pytest.raises(ValueError, match="split_file=PATH.*ltr/data_specs/got10k_vot_train_split.txt"):
        GOT10k(root, "vot_train")
    split_file = tmp_path / "got10k_vot_train_split.txt"
    write_text(split_file, ["2", "0"])
    dataset = build_dataset(DataSource.parse(f"got10k:{root},split=vot_train,split_file={split_file}"))
    assert [dataset[i].name for i in range(len(dataset))] == ["GOT-10k_Train_000003", "GOT-10k_Train_000001"]
    with pytest.raises(ValueError, match="got10k_vot_val_split.txt"):
        GOT10k(root, "vot_val")
    write_text(split_file, ["3"])
    assert GOT10k(root, "vot_val", split_file=str(split_file))[0].name == "GOT-10k_Train_000004"
    write_text(split_file, ["9"])
    with pytest.raises(ValueError, match="index 9 but the train folder has 4 sequences"):
        GOT10k(root, "vot_train", split_file=str(split_file))


def make_trackingnet(root):
    for chunk, name, frames, lines in (("TRAIN_0", "seq_a", 12, 12), ("TRAIN_1", "seq_b", 3, 3),
                                       ("TEST", "seq_c", 11, 1)):
        for i in range(frames):
            write_frame(os.path.join(root, chunk, "frames", name, f"{i}.jpg"), size=8)
        write_text(os.path.join(root, chunk, "anno", name + ".txt"), [",".join(map(str, xywh(i)))
                                                                      for i in range(lines)])
    return str(root)


def test_trackingnet_numeric_frame_order_chunks_and_test(tmp_path):
    root = make_trackingnet(tmp_path)
    train = TrackingNet(root)
    assert [train[i].name for i in range(len(train))] == ["seq_a", "seq_b"]
    seq = train[0]
    assert [os.path.basename(p) for p in seq.frame_paths] == [f"{i}.jpg" for i in range(12)]  # 2 before 10
    assert all(os.path.isfile(p) for p in seq.frame_paths)
    assert seq.boxes[10].tolist() == [10, 11, 24, 26]
    assert [TrackingNet(root, chunks="1")[0].name] == ["seq_b"]
    assert len(TrackingNet(root, chunks="0,1")) == 2
    assert len(build_dataset(DataSource.parse(f"trackingnet:{root},chunks=0+1"))) == 2
    assert parse_chunks("0-3") == [0, 1, 2, 3] and parse_chunks("5,0+1") == [0, 1, 5]
    with pytest.raises(FileNotFoundError, match="TRAIN_2"):
        TrackingNet(root, chunks="0-2")
    test = TrackingNet(root, "test")
    assert test[0].num_frames == 11 and os.path.basename(test[0].frame_paths[10]) == "10.jpg"
    assert test[0].visible.tolist() == [True] + [False] * 10


def make_coco(root, layout="images/train2017", extra_objects=()):
    write_frame(os.path.join(root, layout, "000000000001.jpg"), RED_BGR, size=32)
    write_frame(os.path.join(root, layout, "000000000002.jpg"), size=32)
    annotations = {
        "images": [{"id": 1, "file_name": "000000000001.jpg"}, {"id": 2, "file_name": "000000000002.jpg"}],
        "annotations": [
            {"id": 10, "image_id": 1, "bbox": [1.5, 2, 10, 8], "iscrowd": 0},
            {"id": 11, "image_id": 1, "bbox": [0, 0, 20, 20], "iscrowd": 1},  # crowd: skipped
            {"id": 12, "image_id": 2, "bbox": [3, 3, 0, 5], "iscrowd": 0},  # no width: skipped
            {"id": 13, "image_id": 2, "bbox": [4, 5, 6, 7], "iscrowd": 0},
            *extra_objects,
        ]}
    os.makedirs(os.path.join(root, "annotations"))
    with open(os.path.join(root, "annotations", "instances_train2017.json"), "w") as f:
        json.dump(annotations, f)
    return str(root)


@pytest.mark.parametrize("layout", ["images/train2017", "train2017"])
def test_coco_objects_as_single_frames(tmp_path, layout):
    make_coco(tmp_path, layout)
    dataset = build_dataset(DataSource.parse(f"coco:{tmp_path}"))
    assert isinstance(dataset, COCO) and dataset.video is False and len(dataset) == 2
    first, second = dataset[0], dataset[1]
    assert (first.name, second.name) == ("10", "13")
    assert first.num_frames == 1 and first.boxes.tolist() == [[1.5, 2, 11.5, 10]]
    assert second.boxes.tolist() == [[4, 5, 10, 12]]
    assert second.frame_paths == [os.path.join(tmp_path, layout, "000000000002.jpg")]
    assert first.frame(0)[16, 16, 0] > 240
    with pytest.raises(FileNotFoundError, match="val2017"):
        COCO(str(tmp_path), "val")


def test_custom_format_separators_absent_lines_and_natural_order(tmp_path):
    for name in ("frame1.png", "frame2.png", "frame10.png"):
        write_frame(os.path.join(tmp_path, "walk", name))
    red = np.zeros((16, 16, 3), np.uint8)
    red[3, 5] = RED_BGR
    cv2.imwrite(str(tmp_path / "walk" / "frame1.png"), red)
    write_text(tmp_path / "walk" / "groundtruth.txt", ["1,2,3,4", "5\t6\t7\t8", "9 10  11 12"])
    for i in range(5):
        write_frame(os.path.join(tmp_path, "car", "img", f"{i:04d}.jpg"))
    write_text(tmp_path / "car" / "groundtruth.txt", ["1,1,5,5", "", "0,0,0,0", "NaN", "2.5, 3.5, 4, 4"])
    os.makedirs(tmp_path / "notes")  # no groundtruth.txt: not a sequence
    dataset = build_dataset(DataSource.parse(f"custom:{tmp_path}"))
    assert isinstance(dataset, CustomDataset) and dataset.name == "custom-all"
    assert [dataset[i].name for i in range(len(dataset))] == ["car", "walk"]
    walk = dataset[1]
    assert [os.path.basename(p) for p in walk.frame_paths] == ["frame1.png", "frame2.png", "frame10.png"]
    assert walk.boxes.tolist() == [[1, 2, 4, 6], [5, 6, 12, 14], [9, 10, 20, 22]]
    assert walk.frame(0)[3, 5].tolist() == [255, 0, 0]
    car = dataset[0]
    assert car.frame_paths[0] == os.path.join(tmp_path, "car", "img", "0000.jpg")
    assert car.visible.tolist() == [True, False, False, False, True]
    assert car.boxes[4].tolist() == [2.5, 3.5, 6.5, 7.5]
    assert dataset.problems == []
    write_text(tmp_path / "list.txt", ["walk"])
    assert len(CustomDataset(str(tmp_path))) == 1


def test_readers_survive_bad_lines_and_warn(tmp_path, caplog):
    for i in range(3):
        write_frame(os.path.join(tmp_path, "seq", f"{i}.jpg"))
    write_text(tmp_path / "seq" / "groundtruth.txt", ["1,2,3,4", "1,2,three,4", "1,2,3"])
    with caplog.at_level(logging.WARNING):
        dataset = CustomDataset(str(tmp_path))
    assert dataset[0].visible.tolist() == [True, False, False]
    assert [p.where for p in dataset.problems] == [f"{tmp_path / 'seq' / 'groundtruth.txt'}:{n}" for n in (2, 3)]
    assert "2 problem(s)" in caplog.text and "check-data custom" in caplog.text


def test_vot_workspace_sequences_one_per_visible_object(tmp_path):
    from training.vot_sequences import make_vot_sequences

    info = make_vot_sequences(str(tmp_path / "sequences"), count=2, frames=12, objects=2, seed=3)
    dataset = build_dataset(DataSource.parse(f"vot:{tmp_path / 'sequences'}"))
    assert dataset.name == f"vot-{tmp_path.name}"
    assert len(dataset) == sum(i["objects"] for i in info)
    seq = dataset[0]
    assert seq.name == "synth00_0" and seq.num_frames == 12
    assert np.isfinite(seq.boxes[0]).all() and (seq.boxes[0, 2:] > seq.boxes[0, :2]).all()
    assert seq.frame(0).shape[2] == 3
