"""python -m training compare: result folders in every published layout on the miniature LaSOT and GOT-10k,
scored as each tracker alone scores; missing and short files named; the common sequences; LaSOT's
attribute breakdown; the zero-area convention of the LaSOT toolkit; our own evaluation folders."""
from __future__ import annotations

import csv
import json
import os
import re

import cv2
import numpy as np
import pytest

from training.cli import main
from training.compare import ATTRIBUTES, Tracker, compare, tracker_folder
from training.data.got10k import GOT10k
from training.data.lasot import LaSOT, present_frames
from training.metrics import fill_invalid_predictions, got10k_ious, got10k_summary, ope_curves, ope_summary
from training.miniature import write_got10k, write_lasot
from training.result_files import ResultFormat, result_format

from test_cli_help import BAR, run_on_terminal, run_piped

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_WEIGHTS = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
FRAMES = 30
SCORES = ("auc", "op50", "op75", "precision", "norm_precision")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini")
    write_lasot(str(root / "LaSOT"), sequences=3, frames=FRAMES)
    write_got10k(str(root / "GOT-10k"), sequences=3, frames=FRAMES, seed=1)  # a val target leaves for a while
    return root


def _noisy(gt: np.ndarray, seed: int, noise: float) -> np.ndarray:
    """A tracker's output: the ground truth (the last one seen where the target is absent) with noise in
    proportion to the box's size, and one frame far off."""
    rng = np.random.default_rng(seed)
    pred = gt.copy()
    for t in range(1, len(pred)):
        if not np.isfinite(pred[t]).all():
            pred[t] = pred[t - 1]
    pred += rng.normal(0, noise, pred.shape) * np.tile(pred[:, 2:] - pred[:, :2], 2)
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
    pred[5] += 120
    return pred


def _write(folder, name: str, boxes_xyxy: np.ndarray, sep: str = ",", nested: bool = False,
           one_based: bool = True) -> str:
    """``boxes`` as x,y,w,h lines separated by ``sep``, in ``<name>.txt`` or ``<name>/<name>_001.txt``."""
    xywh = np.concatenate([boxes_xyxy[:, :2] + (1 if one_based else 0), boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]], 1)
    path = os.path.join(str(folder), name, f"{name}_001.txt") if nested else os.path.join(str(folder), f"{name}.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(sep.join(f"{v:.3f}" for v in row) for row in xywh) + "\n")
    return path


def _read_back(path: str, one_based: bool = True) -> np.ndarray:
    """A result file read independently of the code under test: any of the three separators."""
    with open(path) as f:
        rows = np.array([[float(v) for v in re.split(r"[,\t ]+", line.strip())] for line in f if line.strip()])
    rows[:, :2] -= 1 if one_based else 0
    return np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:]], 1)


# the layouts trackers publish: (name, separator, GOT-10k nesting, noise)
LAYOUTS = (("commas", ",", False, 0.04), ("tabs", "\t", False, 0.12), ("spaces-nested", " ", True, 0.08))


def _lasot_trackers(mini, tmp_path):
    """One result folder per layout on the miniature LaSOT test split; returns the dataset, the folders and
    the files written per tracker."""
    dataset = LaSOT(str(mini / "LaSOT"), "test")
    folders, files = {}, {}
    for k, (name, sep, nested, noise) in enumerate(LAYOUTS):
        folders[name] = tmp_path / "results" / name
        files[name] = {dataset[i].name: _write(folders[name], dataset[i].name, _noisy(dataset[i].boxes, 10 * k + i,
                                                                                       noise), sep, nested)
                       for i in range(len(dataset))}
    return dataset, folders, files


def _alone(dataset, name, files, sequences):
    """A tracker's numbers computed directly from its files with the metrics, sequence by sequence."""
    curves = [ope_curves(_read_back(files[s]), dataset[dataset.names.index(s)].boxes) for s in sequences]
    return ope_summary(curves), {s: ope_summary([c]) for s, c in zip(sequences, curves)}


def test_every_layout_is_scored_as_the_tracker_alone_and_ranked_by_auc(mini, tmp_path, capsys):
    dataset, folders, files = _lasot_trackers(mini, tmp_path)
    out = tmp_path / "comparison"
    assert main(["compare", "--data", f"lasot:{mini / 'LaSOT'},split=test", "--output", str(out),
                 *(str(folders[name]) for name, *_ in LAYOUTS)]) == 0
    printed = capsys.readouterr().out.splitlines()
    print("\n".join(printed))
    assert printed[0] == "lasot-test: 3 trackers on 3 of 3 sequences, sorted by success AUC; scores in %"
    assert printed[1].split() == ["Tracker", "AUC", "OP50", "OP75", "P@20", "Pnorm@0.2", "Sequences"]
    names = [name for name, *_ in LAYOUTS]
    expected = {name: _alone(dataset, name, files[name], dataset.names) for name in names}
    ranked = sorted(names, key=lambda n: -expected[n][0]["auc"])
    assert [line.split()[0] for line in printed[2:5]] == ranked
    for line in printed[2:5]:
        name, *cells, count = line.split()
        assert [float(c) for c in cells] == [round(expected[name][0][key], 1) for key in SCORES] and count == "3"
    with open(out / "comparison.csv") as f:
        table = list(csv.DictReader(f))
    assert [row["tracker"] for row in table] == ranked
    for row in table:
        for key in SCORES:
            assert float(row[key]) == pytest.approx(expected[row["tracker"]][0][key], abs=1e-4)
    # each tracker alone, through the command, gives the same numbers as in the comparison
    for name in names:
        alone = compare(dataset, [tracker_folder(str(folders[name]), dataset.name)], progress=False)
        assert alone.summaries[name]["auc"] == pytest.approx(expected[name][0]["auc"], abs=1e-12)
        assert alone.summaries[name]["norm_precision"] == pytest.approx(expected[name][0]["norm_precision"],
                                                                        abs=1e-12)
    with open(out / "per-sequence.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 3
    for row in rows:
        assert float(row["auc"]) == pytest.approx(expected[row["tracker"]][1][row["sequence"]]["auc"], abs=1e-4)
    markdown = open(out / "comparison.md").read()
    assert "| Tracker | AUC | OP50 | OP75 | P@20 | Pnorm@0.2 | Sequences |" in markdown
    for curve in ("success", "precision", "norm-precision"):
        with open(out / f"lasot-test-{curve}.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        with open(out / f"lasot-test-{curve}.pdf", "rb") as f:
            assert f.read(5) == b"%PDF-"
    # a second comparison into the same folder is refused, unless --overwrite
    assert main(["compare", "--data", f"lasot:{mini / 'LaSOT'},split=test", "--output", str(out),
                 str(folders["commas"])]) == 2
    assert "already holds a comparison" in capsys.readouterr().err
    assert main(["compare", "--data", f"lasot:{mini / 'LaSOT'},split=test", "--output", str(out), "--overwrite",
                 "--quiet", f"only={folders['commas']}"]) == 0
    assert [row["tracker"] for row in csv.DictReader(open(out / "comparison.csv"))] == ["only"]


def test_missing_and_short_files_are_named_and_need_common_sequences(mini, tmp_path, capsys):
    dataset = LaSOT(str(mini / "LaSOT"), "test")
    first, second, third = dataset.names
    files = {}
    for k, name in enumerate(("complete", "missing", "short", "long")):
        files[name] = {dataset[i].name: _write(tmp_path / name, dataset[i].name, _noisy(dataset[i].boxes, k, 0.1))
                       for i in range(len(dataset))}
    os.remove(files["missing"][first])
    lines = open(files["short"][second]).read().splitlines()
    with open(files["short"][second], "w") as f:
        f.write("\n".join(lines[:-4]) + "\n")
    with open(files["long"][third], "a") as f:
        f.write("1,1,10,10\n" * 3)
    argv = ["compare", "--data", f"lasot:{mini / 'LaSOT'},split=test", "--output", str(tmp_path / "out"), "--quiet",
            *(str(tmp_path / name) for name in files)]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if first in line]) == 1
    assert [line for line in err if f"{first}.txt" in line][0].startswith(f"missing: no result for {first} ")
    assert f"short: {files['short'][second]} has {FRAMES - 4} lines for the {FRAMES} frames of {second}" in err
    assert (f"long: {files['long'][third]} has {FRAMES + 3} lines for the {FRAMES} frames of {third}; the last 3 "
            f"are left out, as the LaSOT toolkit and pytracking leave them out") in err
    assert err[-1] == ("error: 2 result file(s) missing or short (named above): complete them, or add "
                       "--common-sequences to score the 1 sequence(s) every tracker has")
    assert not os.path.exists(tmp_path / "out" / "comparison.csv")

    assert main([*argv, "--common-sequences"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "lasot-test: 4 trackers on 1 of 3 sequences, sorted by success AUC; scores in %"
    table = {row["tracker"]: row for row in csv.DictReader(open(tmp_path / "out" / "comparison.csv"))}
    for name in files:
        # "long" is scored on the sequence's frames, the lines after them left out
        expected = ope_summary([ope_curves(_read_back(files[name][third])[:FRAMES], dataset[2].boxes)])
        assert table[name]["sequences"] == "1"
        assert float(table[name]["auc"]) == pytest.approx(expected["auc"], abs=1e-4)
    assert "- missing: no result for" in open(tmp_path / "out" / "comparison.md").read()


def test_attribute_breakdown_is_the_success_over_the_sequences_with_each_attribute(mini, tmp_path, capsys):
    dataset, folders, files = _lasot_trackers(mini, tmp_path)
    names = dataset.names
    att = tmp_path / "att"
    os.makedirs(att)
    flags = {names[0]: [1, 0, 1] + [0] * 11, names[1]: [1, 0, 0] + [0] * 10 + [1], names[2]: [0, 1, 1] + [0] * 11}
    for name, row in flags.items():
        with open(att / f"{name}.txt", "w") as f:
            f.write(",".join(map(str, row)) + "\n")
    out = tmp_path / "out"
    argv = ["compare", "--data", f"lasot:{mini / 'LaSOT'},split=test", "--output", str(out), "--quiet",
            "--attributes", str(att), *(str(folders[name]) for name, *_ in LAYOUTS)]
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    print("\n".join(printed))
    start = printed.index("success AUC (%) per attribute; Sequences: how many of the scored ones have it")
    header = printed[start + 1].split()
    assert header[:2] == ["Attribute", "Sequences"] and len(printed) >= start + 2 + len(ATTRIBUTES)
    rows = {row["short_name"]: row for row in csv.DictReader(open(out / "attributes.csv"))}
    assert list(rows) == [short for short, _ in ATTRIBUTES]  # the LaSOT toolkit's order
    for j, (short, _) in enumerate(ATTRIBUTES):
        having = [s for s in names if flags[s][j]]
        assert rows[short]["sequences"] == str(len(having))
        for tracker, *_ in LAYOUTS:
            if having:
                expected = _alone(dataset, tracker, files[tracker], having)[0]["auc"]
                assert float(rows[short][tracker]) == pytest.approx(expected, abs=1e-4)
            else:
                assert rows[short][tracker] == "-"
        assert os.path.isfile(out / f"lasot-test-{short}-success.png") == bool(having)
    # the printed line of Illumination Variation: its two sequences and one AUC per tracker
    iv = next(line for line in printed[start:] if line.startswith("Illumination Variation"))
    assert iv.split()[2] == "2" and len(iv.split()) == 3 + len(LAYOUTS)

    # a file with a flag too few is an error that names it; a missing file leaves its sequence out, said once
    with open(att / f"{names[2]}.txt", "w") as f:
        f.write(",".join(["0"] * 13) + "\n")
    assert main([*argv, "--overwrite"]) == 2
    assert f"{att / names[2]}.txt: expected 14 comma-separated 0/1 flags" in capsys.readouterr().err
    os.remove(att / f"{names[2]}.txt")
    assert main([*argv, "--overwrite"]) == 0
    assert f"no attribute file in {att} for 1 scored sequence(s) ({names[2]})" in capsys.readouterr().err
    rows = {row["short_name"]: row for row in csv.DictReader(open(out / "attributes.csv"))}
    assert rows["POC"]["sequences"] == "0" and rows["DEF"]["sequences"] == "1"


def _write_lasot_sequence(root, name, xywh, absent):
    folder = os.path.join(str(root), name.rsplit("-", 1)[0], name)
    os.makedirs(folder)
    with open(os.path.join(folder, "groundtruth.txt"), "w") as f:
        f.write("\n".join(",".join(f"{v:g}" for v in row) for row in xywh) + "\n")
    for flag_file in ("full_occlusion.txt", "out_of_view.txt"):
        with open(os.path.join(folder, flag_file), "w") as f:
            f.write(",".join(str(int(v)) for v in absent) + "\n")


def test_a_present_target_with_an_empty_box_is_a_precision_success_as_in_the_lasot_toolkit(tmp_path):
    """LaSOT has three such frames (tiger-6 #117, lion-5 #552, microphone-6 #1108): present, not flagged,
    with zero width or height. The LaSOT toolkit sets their centre error to -1 (a success of both precision
    curves at every threshold) and their overlap to -1 (a success failure)."""
    xywh = np.tile([[21.0, 11.0, 30.0, 20.0]], (10, 1))
    xywh[3, 2] = 0  # present, but no width
    xywh[6] = 0  # absent: 0,0,0,0 and flagged
    absent = np.zeros(10, dtype=bool)
    absent[6] = True
    _write_lasot_sequence(tmp_path / "LaSOT", "cube-1", xywh, absent)
    dataset = LaSOT(str(tmp_path / "LaSOT"), "all")
    visible = present_frames(dataset, 0)
    assert visible.tolist() == [True] * 6 + [False] + [True] * 3
    perfect = dataset[0].boxes.copy()
    perfect[3], perfect[6] = perfect[2], perfect[5]
    curves = ope_curves(perfect, dataset[0].boxes, visible)
    assert np.allclose(curves["precision"], 9 / 10) and np.allclose(curves["norm_precision"], 9 / 10)
    assert np.allclose(curves["success"][:-1], 8 / 10) and curves["success"][-1] == 0
    without = ope_curves(perfect, dataset[0].boxes)  # no presence flags: the empty box counts as absent
    assert np.allclose(without["precision"], 8 / 10)
    # compare passes LaSOT's flags
    _write(tmp_path / "results" / "perfect", "cube-1", perfect)
    comparison = compare(dataset, [Tracker("perfect", str(tmp_path / "results" / "perfect"))], progress=False)
    assert comparison.summaries["perfect"]["precision"] == pytest.approx(90.0)
    assert comparison.summaries["perfect"]["norm_precision"] == pytest.approx(90.0)
    # and evaluate scores its own results the same way
    frames = tmp_path / "LaSOT" / "cube" / "cube-1" / "img"
    frames.mkdir()
    for t in range(10):
        image = np.full((48, 64, 3), 90, np.uint8)
        image[11:31, 21:51] = (200, 60, 30)
        cv2.imwrite(str(frames / f"{t + 1:08d}.jpg"), image)
    assert main(["evaluate", "--variant", "tiny", "--weights", DEMO_WEIGHTS, "--threads", "1", "--quiet",
                 "--data", f"lasot:{tmp_path / 'LaSOT'},split=all", "--output", str(tmp_path / "evals")]) == 0
    ours = ResultFormat.read(result_format(dataset), str(tmp_path / "evals" / "lasot-all"), "cube-1")
    scored = json.load(open(tmp_path / "evals" / "lasot-all" / "metrics.json"))
    expected = ope_summary([ope_curves(ours, dataset[0].boxes, visible)])
    assert scored["precision"] == pytest.approx(expected["precision"])
    assert scored["precision"] != pytest.approx(ope_summary([ope_curves(ours, dataset[0].boxes)])["precision"])


def test_curves_count_as_comparing_every_frame_with_every_threshold():
    """The curves (counted by sorting) against the definition, on boxes with ties at the thresholds: a centre
    error of exactly 20 px and a normalised one of exactly 0.2 are successes, an IoU of exactly 0.5 is not."""
    rng = np.random.default_rng(5)
    gt = np.concatenate([rng.uniform(0, 200, (300, 2)), np.zeros((300, 2))], 1)
    gt[:, 2:] = gt[:, :2] + rng.uniform(10, 80, (300, 2))
    gt[rng.random(300) < 0.1] = np.nan
    gt[0] = [10, 10, 110, 60]
    pred = gt + rng.normal(0, 6, gt.shape)
    pred[1], gt[1] = [0, 0, 100, 50], [20, 0, 120, 50]  # 20 px to the right, 0.2 of the width
    pred[2], gt[2] = [0, 0, 100, 30], [0, 0, 100, 60]  # IoU 0.5
    curves = ope_curves(pred, gt)
    valid = np.isfinite(gt).all(1)
    filled = fill_invalid_predictions(pred, gt[0])[valid]
    iou = np.array([_iou(p, g) for p, g in zip(filled, gt[valid])])
    offset = (filled[:, :2] + filled[:, 2:]) / 2 - (gt[valid, :2] + gt[valid, 2:]) / 2
    err = np.hypot(*offset.T)
    norm = np.hypot(*(offset / (gt[valid, 2:] - gt[valid, :2])).T)
    assert np.array_equal(curves["success"], [(iou > t).sum() / 300 for t in np.linspace(0, 1, 21)])
    assert np.array_equal(curves["precision"], [(err <= t).sum() / 300 for t in range(51)])
    assert np.array_equal(curves["norm_precision"], [(norm <= t / 100).sum() / 300 for t in range(51)])
    assert (err[1], norm[1], iou[2]) == (20, 0.2, 0.5)  # the ties are there, and counted as defined above


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_invalid_predictions_take_the_previous_frames_box():
    rng = np.random.default_rng(3)
    pred = rng.uniform(0, 50, (200, 4))
    pred[:, 2:] = pred[:, :2] + rng.uniform(-5, 20, (200, 2))  # some with no area
    pred[rng.random(200) < 0.1] = np.nan
    first = np.array([1.0, 2.0, 30.0, 40.0])
    filled = fill_invalid_predictions(pred, first)
    expected = pred.copy()
    expected[0] = first
    for t in range(1, len(expected)):  # the LaSOT toolkit's loop
        box = expected[t]
        if not (np.isfinite(box).all() and box[0] < box[2] and box[1] < box[3]):
            expected[t] = expected[t - 1]
    assert np.array_equal(filled, expected)


def test_got10k_val_in_both_layouts_is_scored_by_ao(mini, tmp_path, capsys):
    dataset = GOT10k(str(mini / "GOT-10k"), "val")
    expected = {}
    for k, (name, nested) in enumerate((("flat", False), ("nested", True))):
        ious = []
        for i in range(len(dataset)):
            seq = dataset[i]
            path = _write(tmp_path / name, seq.name, _noisy(seq.boxes, k * 10 + i, 0.1), "\t" if nested else ",",
                          nested, one_based=False)
            height, width = seq.frame(0).shape[:2]
            ious.append(got10k_ious(_read_back(path, one_based=False), seq.boxes, width, height))
        expected[name] = got10k_summary(ious)
    out = tmp_path / "out"
    assert main(["compare", "--data", f"got10k:{mini / 'GOT-10k'},split=val", "--output", str(out), "--quiet",
                 str(tmp_path / "flat"), str(tmp_path / "nested")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "got10k-val: 2 trackers on 3 of 3 sequences, sorted by AO; scores in %"
    assert printed[1].split() == ["Tracker", "AO", "SR0.5", "SR0.75", "Sequences"]
    table = {row["tracker"]: row for row in csv.DictReader(open(out / "comparison.csv"))}
    for name in expected:
        for key in ("ao", "sr50", "sr75"):
            assert float(table[name][key]) == pytest.approx(expected[name][key], abs=1e-4)
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == ["got10k-val-success.png"]
    # a test split has no ground truth to compare with
    assert main(["compare", "--data", f"got10k:{mini / 'GOT-10k'},split=test", "--output", str(tmp_path / "t"),
                 str(tmp_path / "flat")]) == 2
    assert "scored by the benchmark's server" in capsys.readouterr().err


def test_tracker_names(tmp_path):
    (tmp_path / "ATOM_tracking_result").mkdir()
    (tmp_path / "evals" / "demo" / "lasot-test").mkdir(parents=True)
    (tmp_path / "evals" / "demo" / "lasot-test" / "metrics.json").write_text("{}")
    (tmp_path / "runs" / "B-224" / "eval" / "lasot-test").mkdir(parents=True)
    assert tracker_folder(str(tmp_path / "ATOM_tracking_result"), "lasot-test").name == "ATOM"
    assert tracker_folder(f"mine={tmp_path / 'ATOM_tracking_result'}", "lasot-test").name == "mine"
    assert tracker_folder(str(tmp_path / "evals" / "demo" / "lasot-test"), "lasot-test").name == "demo"
    ours = tracker_folder(str(tmp_path / "evals" / "demo"), "lasot-test")
    assert (ours.name, ours.folder) == ("demo", str(tmp_path / "evals" / "demo" / "lasot-test"))
    run = tracker_folder(str(tmp_path / "runs" / "B-224"), "lasot-test")
    assert (run.name, run.folder) == ("B-224", str(tmp_path / "runs" / "B-224" / "eval" / "lasot-test"))
    with pytest.raises(ValueError, match="does not exist"):
        tracker_folder(str(tmp_path / "nowhere"), "lasot-test")
    (tmp_path / "results.zip").write_bytes(b"")
    with pytest.raises(ValueError, match="unpack it"):
        tracker_folder(str(tmp_path / "results.zip"), "lasot-test")


def test_trackers_with_one_name_are_refused(mini, tmp_path):
    dataset = LaSOT(str(mini / "LaSOT"), "test")
    with pytest.raises(ValueError, match="more than one tracker named a: name them with NAME=PATH"):
        compare(dataset, [Tracker("a", str(tmp_path)), Tracker("a", str(tmp_path))], progress=False)


def test_compare_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    for flag in ("--data", "--output", "--common-sequences", "--attributes", "--overwrite", "--quiet"):
        assert re.search(rf"^  {flag}\b.*\S", text, re.M), flag


def test_our_evaluation_folder_is_scored_as_evaluate_scored_it(mini, tmp_path, capsys):
    """The demo model evaluated by ``python -m training evaluate``, compared from its --output folder as it
    is, beside a folder of another tracker: the same numbers as evaluate's metrics.json."""
    evals = tmp_path / "evals" / "demo"
    assert main(["evaluate", "--variant", "tiny", "--weights", DEMO_WEIGHTS, "--threads", "1", "--quiet",
                 "--data", f"lasot:{mini / 'LaSOT'},split=test", "--output", str(evals)]) == 0
    theirs = json.load(open(evals / "lasot-test" / "metrics.json"))
    _, folders, _ = _lasot_trackers(mini, tmp_path)
    capsys.readouterr()
    assert main(["compare", "--data", f"lasot:{mini / 'LaSOT'},split=test", "--output", str(tmp_path / "out"),
                 "--quiet", str(evals), str(folders["tabs"])]) == 0
    table = {row["tracker"]: row for row in csv.DictReader(open(tmp_path / "out" / "comparison.csv"))}
    for key in ("auc", "precision", "norm_precision"):
        assert float(table["demo"][key]) == pytest.approx(theirs[key], abs=1e-4)


@pytest.mark.slow
def test_progress_bar_on_a_terminal_only(mini, tmp_path):
    _, folders, _ = _lasot_trackers(mini, tmp_path)
    argv = ["compare", "--data", f"lasot:{mini / 'LaSOT'},split=test", *(str(f) for f in folders.values())]
    shown = run_on_terminal([*argv, "--output", str(tmp_path / "tty")], str(tmp_path))
    assert BAR.search(shown) and "scoring lasot-test" in shown, shown
    assert not BAR.search(run_on_terminal([*argv, "--output", str(tmp_path / "quiet"), "--quiet"], str(tmp_path)))
    piped = run_piped([*argv, "--output", str(tmp_path / "piped")], str(tmp_path))
    assert not BAR.search(piped.stderr + piped.stdout), piped.stderr
