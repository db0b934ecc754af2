"""Benchmark-grade evaluation: LaSOT's 1-based boxes, result files in each benchmark's format, metrics checked
against the GOT-10k benchmark's official API (the ``got10k`` package) on the same files, plots, the miniature
datasets and what check-data counts in them."""
from __future__ import annotations

import json
import os
import zipfile

import cv2
import numpy as np
import pytest
from got10k.experiments import ExperimentGOT10k, ExperimentOTB

from training.cli import main
from training.data.got10k import GOT10k
from training.data.lasot import LaSOT
from training.metrics import got10k_ious, got10k_summary, ope_curves, ope_summary
from training.miniature import make_miniature, write_got10k, write_lasot
from training.plots import plot_results, plot_training_log
from training.result_files import FORMATS
from vot_lorat.frames.reading import read_rgb

# the got10k package computes in float64 like us; what is left is summation order
TOLERANCE = 1e-6


def _write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def test_lasot_boxes_are_one_based_in_the_files_and_zero_based_inside(tmp_path):
    """A 10x10 red square on pixels 10..19 (columns) x 5..14 (rows), 0-based; LaSOT's ground truth counts
    pixels from 1 and says 11,6,10,10."""
    folder = tmp_path / "cube" / "cube-1"
    image = np.zeros((24, 32, 3), np.uint8)
    image[5:15, 10:20] = (0, 0, 255)  # BGR red
    os.makedirs(folder / "img")
    assert cv2.imwrite(str(folder / "img" / "00000001.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    _write(str(folder / "groundtruth.txt"), ["11,6,10,10"])
    _write(str(folder / "full_occlusion.txt"), ["0"])
    _write(str(folder / "out_of_view.txt"), ["0"])
    seq = LaSOT(str(tmp_path), "all")[0]
    box = seq.boxes[0]
    print(f"LaSOT line 11,6,10,10 -> xyxy {box.tolist()} (before the fix: [11.0, 6.0, 21.0, 16.0])")
    assert box.tolist() == [10, 5, 20, 15]
    x1, y1, x2, y2 = box.astype(int)
    red = seq.frame(0)[..., 0] > 127
    assert red[y1:y2, x1:x2].all() and red.sum() == (x2 - x1) * (y2 - y1)  # exactly the square's pixels
    lasot = FORMATS["lasot"]
    written = lasot.write(str(tmp_path / "results"), seq.name, seq.boxes, np.zeros(1))
    assert open(written[0]).read() == "11.000,6.000,10.000,10.000\n"  # back in LaSOT's own convention
    assert lasot.read(str(tmp_path / "results"), seq.name).tolist() == [box.tolist()]


def _predictions(gt: np.ndarray, seed: int) -> np.ndarray:
    """A plausible tracker output: the ground truth (the last one seen where the target is absent) with
    noise, one box half outside the image and one far away."""
    rng = np.random.default_rng(seed)
    pred = gt.copy()
    for t in range(1, len(pred)):
        if not np.isfinite(pred[t]).all():
            pred[t] = pred[t - 1]
    size = np.tile(pred[:, 2:] - pred[:, :2], 2)
    pred += rng.normal(0, 0.15, pred.shape) * size + rng.normal(0, 2, pred.shape)
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
    pred[3] = [-30, -20, 40, 50]
    pred[6] += 150
    return pred


class _Sequences:
    """The (frames, annotation) items and names the got10k package's experiments iterate over."""

    def __init__(self):
        self.seq_names, self.items = [], []

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


def test_ope_metrics_match_the_got10k_package_on_the_same_files(tmp_path):
    write_lasot(str(tmp_path / "LaSOT"), sequences=3, frames=40)
    dataset = LaSOT(str(tmp_path / "LaSOT"), "all")
    lasot = FORMATS["lasot"]
    results = tmp_path / "results" / "ours"
    sequences, curves = _Sequences(), []
    for i in range(len(dataset)):
        seq = dataset[i]
        if not np.isfinite(seq.boxes).all():  # the package's OTB experiment has no notion of absent frames
            continue
        pred = _predictions(seq.boxes, i)
        lasot.write(str(results), seq.name, pred, np.zeros(len(pred)))
        curves.append(ope_curves(lasot.reported(pred), seq.boxes))
        gt_file = os.path.join(tmp_path, "LaSOT", seq.name.rsplit("-", 1)[0], seq.name, "groundtruth.txt")
        sequences.seq_names.append(seq.name)
        sequences.items.append((seq.frame_paths, np.loadtxt(gt_file, delimiter=",")))
    assert len(curves) >= 3
    experiment = ExperimentOTB.__new__(ExperimentOTB)  # its constructor downloads OTB: set what report() reads
    experiment.dataset, experiment.nbins_iou, experiment.nbins_ce = sequences, 21, 51
    experiment.result_dir, experiment.report_dir = str(tmp_path / "results"), str(tmp_path / "reports")
    theirs = experiment.report(["ours"])["ours"]["overall"]
    ours = ope_summary(curves)
    differences = {
        "AUC": abs(ours["auc"] / 100 - theirs["success_score"]),
        "P@20": abs(ours["precision"] / 100 - theirs["precision_score"]),
        "success curve": np.abs(np.subtract(ours["success_curve"], theirs["success_curve"])).max(),
        "precision curve": np.abs(np.subtract(ours["precision_curve"], theirs["precision_curve"])).max(),
    }
    print(f"ours AUC {ours['auc']:.4f} P {ours['precision']:.4f}; got10k {theirs['success_score'] * 100:.4f} "
          f"{theirs['precision_score'] * 100:.4f}; largest differences {differences}")
    assert 20 < ours["auc"] < 90  # the predictions are neither perfect nor useless
    assert max(differences.values()) < TOLERANCE


def test_got10k_metrics_match_the_got10k_package_on_the_same_files(tmp_path):
    write_got10k(str(tmp_path / "GOT-10k"), sequences=3, frames=40, seed=1)  # a val target leaves for a while
    dataset = GOT10k(str(tmp_path / "GOT-10k"), "val")
    got10k = FORMATS["got10k"]
    results = tmp_path / "results" / "GOT-10k" / "ours"
    ious = []
    for i in range(len(dataset)):
        seq = dataset[i]
        pred = _predictions(seq.boxes, i)
        got10k.write(str(results), seq.name, pred, np.full(len(pred), 0.01))
        height, width = read_rgb(seq.frame_paths[0]).shape[:2]
        ious.append(got10k_ious(got10k.reported(pred), seq.boxes, width, height))
    assert sum(not np.isfinite(dataset[i].boxes).all() for i in range(len(dataset))) >= 1  # absent frames
    experiment = ExperimentGOT10k(str(tmp_path / "GOT-10k"), subset="val", result_dir=str(tmp_path / "results"),
                                  report_dir=str(tmp_path / "reports"))
    theirs = experiment.report(["ours"])["ours"]["overall"]
    ours = got10k_summary(ious)
    differences = {
        "AO": abs(ours["ao"] / 100 - theirs["ao"]),
        "SR0.5": abs(ours["sr50"] / 100 - theirs["sr"]),
        "SR0.75": abs(ours["sr75"] / 100 - theirs["succ_curve"][75]),
        "success curve": np.abs(np.subtract(ours["success_curve"], theirs["succ_curve"])).max(),
    }
    print(f"ours AO {ours['ao']:.4f} SR0.5 {ours['sr50']:.4f}; got10k {theirs['ao'] * 100:.4f} "
          f"{theirs['sr'] * 100:.4f}; largest differences {differences}")
    assert 20 < ours["ao"] < 90
    assert max(differences.values()) < TOLERANCE


def test_ope_conventions_on_a_hand_made_sequence():
    """Frame 0 is the given box; absent frames stay in the denominator; an empty prediction is replaced by the
    previous one (LaSOT toolkit)."""
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 20]], float)
    pred = np.array([[50, 50, 60, 60],  # ignored: frame 0 is the given box
                     [5, 0, 15, 10],  # IoU 1/3, centre error 5 px, normalised 0.5
                     [4, 4, 4, 9],  # empty: replaced by frame 1's box
                     [0, 0, 1, 1],  # target absent: a failure whatever the prediction
                     [0, 0, 10, 10]], float)  # IoU 0.5, centre error 5 px, normalised 5/20
    c = ope_curves(pred, gt)
    ious = np.array([1.0, 1 / 3, 1 / 3, 0.5])
    assert c["success"].tolist() == pytest.approx([(ious > t).sum() / 5 for t in np.linspace(0, 1, 21)])
    assert c["precision"][20] == pytest.approx(4 / 5) and c["precision"][4] == pytest.approx(1 / 5)
    assert c["norm_precision"][20] == pytest.approx(1 / 5) and c["norm_precision"][25] == pytest.approx(2 / 5)
    assert c["norm_precision"][50] == pytest.approx(4 / 5)
    summary = ope_summary([c])
    assert summary["auc"] == pytest.approx(c["success"].mean() * 100)
    assert summary["mean_iou"] == pytest.approx(np.mean(ious[1:]))


def test_got10k_clips_like_its_toolkit():
    """x, y into the image, then w, h to what is left: a box that starts left of the image keeps its width."""
    gt = np.array([[0, 0, 10, 10], [0, 0, 20, 10]], float)
    pred = np.array([[0, 0, 10, 10], [-10, 0, 10, 10]], float)  # clipped to x 0..20: IoU 1
    assert got10k_ious(pred, gt, 100, 100).tolist() == [1.0]  # frame 0 is not scored


def test_submission_files_and_zips(tmp_path):
    boxes = np.array([[10.2, 20.7, 30.5, 40.0], [11.0, 21.0, 31.0, 41.0]])
    got10k = FORMATS["got10k"]
    folder = tmp_path / "got10k-test"
    files = got10k.write(str(folder), "GOT-10k_Test_000001", boxes, np.array([0.5, 0.25]))
    files += got10k.write(str(folder), "GOT-10k_Test_000002", boxes, np.array([0.5, 0.25]))
    assert open(files[0]).read() == "10,20,21,20\n11,21,20,20\n"  # rasterised: every pixel the box touches
    assert open(files[1]).read().split() == ["0.50000000", "0.25000000"]
    zip_path = got10k.pack(str(folder), files, str(tmp_path / "got10k-test.zip"))
    assert sorted(zipfile.ZipFile(zip_path).namelist()) == [
        "GOT-10k_Test_000001/GOT-10k_Test_000001_001.txt", "GOT-10k_Test_000001/GOT-10k_Test_000001_time.txt",
        "GOT-10k_Test_000002/GOT-10k_Test_000002_001.txt", "GOT-10k_Test_000002/GOT-10k_Test_000002_time.txt"]
    trackingnet = FORMATS["trackingnet"]
    files = trackingnet.write(str(tmp_path / "tn"), "video_a", boxes, np.zeros(2))
    assert files == [str(tmp_path / "tn" / "video_a.txt")]
    assert zipfile.ZipFile(trackingnet.pack(str(tmp_path / "tn"), files, str(tmp_path / "tn.zip"))).namelist() == [
        "video_a.txt"]
    files = FORMATS["plain"].write(str(tmp_path / "plain"), "walk", boxes, np.zeros(2))
    assert open(files[0]).read() == "10.200,20.700,20.300,19.300\n11.000,21.000,20.000,20.000\n"


def _metrics_folder(path, dataset, auc_shift):
    os.makedirs(path)
    gt = np.array([[0, 0, 10, 10]] * 5, float)
    pred = gt + [[0, 0, 0, 0], [auc_shift, 0, auc_shift, 0], [1, 1, 1, 1], [0, 2, 0, 2], [3, 0, 3, 0]]
    metrics = dict(ope_summary([ope_curves(pred, gt)]), dataset=dataset)
    with open(os.path.join(path, "metrics.json"), "w") as f:
        json.dump(metrics, f)


def test_plot_command_writes_success_and_precision_plots(tmp_path, capsys):
    _metrics_folder(tmp_path / "runs" / "A" / "eval" / "lasot-test", "lasot-test", 2)
    _metrics_folder(tmp_path / "runs" / "B" / "eval" / "lasot-test", "lasot-test", 5)
    folders = [str(tmp_path / "runs" / run / "eval" / "lasot-test") for run in "AB"]
    assert main(["plot", *folders, "--output", str(tmp_path / "plots")]) == 0
    names = sorted(os.listdir(tmp_path / "plots"))
    assert names == sorted(f"lasot-test-{kind}.{ext}" for kind in ("success", "precision", "norm-precision")
                           for ext in ("png", "pdf"))
    for name in names:
        head = open(tmp_path / "plots" / name, "rb").read(8)
        assert head.startswith(b"\x89PNG" if name.endswith("png") else b"%PDF")
    assert "lasot-test-success.png" in capsys.readouterr().out
    with pytest.raises(ValueError, match="2 labels for 1 result folders"):
        plot_results(folders[:1], str(tmp_path / "plots"), labels=["a", "b"])


def test_training_curves_from_the_log(tmp_path):
    rows = [{"step": s, "epoch": s / 4, "lr": 1e-4 * s, "samples_per_s": 100 + s, "loss": 2 / s, "cls": 1 / s,
             "giou": 1 / s} for s in range(1, 9)]
    rows.insert(4, {"step": 4, "epoch": 1, "validation": {"got10k-val": {"ao": 40.0, "sr50": 30.0}}})
    with open(tmp_path / "log.jsonl", "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 9, "lo')  # torn last line
    paths = plot_training_log(str(tmp_path))
    assert paths == [str(tmp_path / "training-curves.png"), str(tmp_path / "training-curves.pdf")]
    assert all(os.path.getsize(p) > 1000 for p in paths)


def test_miniature_datasets_and_what_check_data_counts(tmp_path, capsys):
    assert main(["make-miniature", "--output", str(tmp_path), "--sequences", "2", "--frames", "12"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["COCO", "GOT-10k", "LaSOT", "TrackingNet"]
    assert f"LaSOT: {tmp_path / 'LaSOT'}" in capsys.readouterr().out

    def check(*args):
        assert main(["check-data", *args]) == 0
        return capsys.readouterr().out.strip().splitlines()[0]  # the counts come first, then the problems

    lasot = tmp_path / "LaSOT"
    names = open(lasot / "testing_set.txt").read().split()
    absent = sum("1" in flags for name in names for which in ("full_occlusion", "out_of_view")
                 for flags in open(lasot / name.rsplit("-", 1)[0] / name / f"{which}.txt").read().strip().split(","))
    assert check("lasot", str(lasot), "--split", "test") == (
        f"lasot-test: 2 sequences, 24 frames: {24 - absent} with a box, {absent} absent or unannotated; dropped: "
        f"0 degenerate boxes (no area, not marked absent)")
    val = tmp_path / "GOT-10k" / "val"
    uncovered = sum(open(val / name / "cover.label").read().split().count("0") for name in os.listdir(val)
                    if name != "list.txt")
    assert check("got10k", str(tmp_path / "GOT-10k"), "--split", "val").startswith(
        f"got10k-val: 2 sequences, 24 frames: {24 - uncovered} with a box, {uncovered} absent")
    assert check("got10k", str(tmp_path / "GOT-10k"), "--split", "test") == (
        "got10k-test: 2 sequences, 24 frames; a test split: only each sequence's first frame has a box")
    assert check("trackingnet", str(tmp_path / "TrackingNet")).startswith(
        "trackingnet-train: 2 sequences, 24 frames: 24 with a box, 0 absent")
    assert check("coco", str(tmp_path / "COCO"), "--split", "val") == (
        "coco-val: 2 objects in 2 images; dropped: 1 crowd, 1 degenerate (no width or height)")


def test_make_miniature_refuses_empty_datasets(tmp_path, capsys):
    assert main(["make-miniature", "--output", str(tmp_path), "--frames", "1"]) == 2
    assert "at least 1 sequence of 2 frames" in capsys.readouterr().err


def test_miniature_layouts_follow_the_published_ones(tmp_path):
    make_miniature(str(tmp_path), sequences=1, frames=3)
    lasot = tmp_path / "LaSOT" / "blob" / "blob-1"
    assert sorted(os.listdir(lasot)) == ["full_occlusion.txt", "groundtruth.txt", "img", "nlp.txt",
                                         "out_of_view.txt"]
    assert sorted(os.listdir(lasot / "img")) == ["00000001.jpg", "00000002.jpg", "00000003.jpg"]
    got = tmp_path / "GOT-10k"
    assert open(got / "val" / "list.txt").read().split() == ["GOT-10k_Val_000001"]
    assert sorted(os.listdir(got / "val" / "GOT-10k_Val_000001")) == [
        "00000001.jpg", "00000002.jpg", "00000003.jpg", "absence.label", "cover.label", "cut_by_image.label",
        "groundtruth.txt", "meta_info.ini"]
    assert len(open(got / "test" / "GOT-10k_Test_000001" / "groundtruth.txt").read().split()) == 1
    tn = tmp_path / "TrackingNet"
    (video,) = os.listdir(tn / "TEST" / "frames")
    assert sorted(os.listdir(tn / "TEST" / "frames" / video)) == ["0.jpg", "1.jpg", "2.jpg"]
    assert len(open(tn / "TEST" / "anno" / f"{video}.txt").read().split()) == 1
    coco = json.load(open(tmp_path / "COCO" / "annotations" / "instances_train2017.json"))
    assert {"images", "annotations", "categories"} <= coco.keys()
    assert os.path.isfile(tmp_path / "COCO" / "train2017" / coco["images"][0]["file_name"])


DEMO_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vot_lorat", "checkpoints",
                            "lorat_tiny_synthetic.safetensors")


def test_evaluate_scores_what_has_ground_truth_and_packs_test_splits(tmp_path, capsys):
    """The demo model on a miniature: LaSOT test and GOT-10k val are scored (and the got10k package, run on the
    GOT-10k result files evaluate wrote, agrees); GOT-10k test and TrackingNet TEST, which give the first box
    only, get no metrics but the zip each server takes and a line saying where it goes."""
    mini = make_miniature(str(tmp_path / "mini"), sequences=2, frames=12, seed=1)
    out = tmp_path / "eval"
    assert main(["evaluate", "--variant", "tiny", "--weights", DEMO_WEIGHTS, "--threads", "1", "--output", str(out),
                 "--data", f"lasot:{mini['LaSOT']},split=test", "--data", f"got10k:{mini['GOT-10k']},split=val",
                 "--data", f"got10k:{mini['GOT-10k']},split=test",
                 "--data", f"trackingnet:{mini['TrackingNet']},split=test"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["dataset", "seqs", "AO", "SR0.5", "SR0.75", "AUC", "P", "Pnorm", "mIoU", "static",
                                  "fps"]
    assert printed[1].startswith("lasot-test") and printed[1].split()[2:5] == ["-", "-", "-"]
    assert printed[2].startswith("got10k-val") and printed[2].split()[5:8] == ["-", "-", "-"]
    zips = {"got10k-test": out / "got10k-test" / "got10k-test.zip",
            "trackingnet-test": out / "trackingnet-test" / "trackingnet-test.zip"}
    assert printed[3] == (f"got10k-test: a test split without ground truth, no metrics: 2 sequences packed in "
                          f"{zips['got10k-test']}; upload it to http://got-10k.aitestunion.com/submit_instructions")
    assert printed[4].startswith(f"trackingnet-test: a test split without ground truth, no metrics: 2 sequences "
                                 f"packed in {zips['trackingnet-test']}; upload it to ")
    test_metrics = json.load(open(out / "got10k-test" / "metrics.json"))
    assert not {"ao", "auc", "precision", "success_curve"} & test_metrics.keys()
    names = sorted(zipfile.ZipFile(zips["got10k-test"]).namelist())
    assert names == sorted(f"GOT-10k_Test_{i:06d}/GOT-10k_Test_{i:06d}_{kind}.txt" for i in (1, 2)
                           for kind in ("001", "time"))
    for name in names:
        lines = zipfile.ZipFile(zips["got10k-test"]).read(name).decode().split()
        assert len(lines) == 12 and all(len(line.split(",")) == (1 if name.endswith("time.txt") else 4)
                                        for line in lines)
    videos = sorted(os.listdir(os.path.join(mini["TrackingNet"], "TEST", "anno")))
    assert sorted(zipfile.ZipFile(zips["trackingnet-test"]).namelist()) == videos
    # LaSOT results are 1-based like LaSOT's ground truth: the first line is the given box, as the file has it
    first = open(os.path.join(mini["LaSOT"], "blob", "blob-2", "groundtruth.txt")).readline().strip()
    assert open(out / "lasot-test" / "blob-2.txt").readline().strip() == ",".join(
        f"{float(v):.3f}" for v in first.split(","))
    # the GOT-10k toolkit scores the files evaluate wrote as evaluate did
    os.makedirs(tmp_path / "results" / "GOT-10k")
    os.symlink(out / "got10k-val", tmp_path / "results" / "GOT-10k" / "demo")
    experiment = ExperimentGOT10k(mini["GOT-10k"], subset="val", result_dir=str(tmp_path / "results"),
                                  report_dir=str(tmp_path / "reports"))
    theirs = experiment.report(["demo"])["demo"]["overall"]
    ours = json.load(open(out / "got10k-val" / "metrics.json"))
    print(f"GOT-10k val AO ours {ours['ao']:.6f}, got10k {theirs['ao'] * 100:.6f}")
    assert abs(ours["ao"] / 100 - theirs["ao"]) < TOLERANCE and abs(ours["sr50"] / 100 - theirs["sr"]) < TOLERANCE
    assert main(["plot", str(out / "lasot-test"), str(out / "got10k-val"), str(out / "got10k-test"),
                 "--output", str(tmp_path / "plots")]) == 0
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(
        f"{name}.{ext}" for name in ("lasot-test-success", "lasot-test-precision", "lasot-test-norm-precision",
                                     "got10k-val-success") for ext in ("png", "pdf"))
