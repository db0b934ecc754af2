"""The dataset and figure commands with what a user has lying around: an evaluate root given to ``plot``, a
truncated or foreign metrics.json, a workspace's own sequences next to ``make-vot-sequences``, a miniature
written twice into one folder."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from training.cli import main
from training.metrics import ope_curves, ope_summary


def _metrics(folder, dataset: str, shift: float) -> None:
    os.makedirs(folder)
    gt = np.array([[0, 0, 10, 10]] * 5, float)
    pred = gt + [[0, 0, 0, 0], [shift, 0, shift, 0], [1, 1, 1, 1], [0, 2, 0, 2], [3, 0, 3, 0]]
    metrics = dict(ope_summary([ope_curves(pred, gt)]), dataset=dataset, benchmark="plain", sequences=1)
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_plot_on_an_evaluate_root_plots_each_dataset_in_it(tmp_path, capsys):
    root = tmp_path / "evals" / "demo"
    _metrics(root / "lasot-test", "lasot-test", 2)
    _metrics(root / "custom-all", "custom-all", 4)
    (root / "report.json").write_text("{}")
    assert main(["plot", str(root), "--output", str(tmp_path / "plots")]) == 0
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(
        f"{dataset}-{kind}.{ext}" for dataset in ("lasot-test", "custom-all")
        for kind in ("success", "precision", "norm-precision") for ext in ("png", "pdf"))
    assert "lasot-test-success.png" in capsys.readouterr().out


@pytest.mark.parametrize("content,expected", [
    ('{"dataset": "lasot-test", "success_cur', "is not JSON"),
    ('[1, 2, 3]', "is not a metrics file"),
    ('{"dataset": "x", "success_curve": [0.5, 0.4], "auc": 40}', "has damaged curves"),
], ids=["truncated", "foreign", "damaged"])
def test_a_bad_metrics_file_is_named(tmp_path, capsys, content, expected):
    folder = tmp_path / "lasot-test"
    folder.mkdir()
    (folder / "metrics.json").write_text(content)
    assert main(["plot", str(folder), "--output", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{folder / 'metrics.json'} {expected}" in err


def test_vot_sequences_join_a_workspace_and_replace_their_own_earlier_set(tmp_path, capsys):
    sequences = tmp_path / "sequences"
    (sequences / "mine").mkdir(parents=True)
    (sequences / "mine" / "sequence").write_text("channels.color=color/%08d.jpg\n")
    (sequences / "list.txt").write_text("mine\n")

    def make(count: int, objects: int, seed: int) -> None:
        assert main(["make-vot-sequences", "--output", str(sequences), "--count", str(count), "--frames", "6",
                     "--objects", str(objects), "--seed", str(seed)]) == 0

    make(2, 3, 1)
    first = sorted(os.listdir(sequences / "synth01"))
    make(1, 1, 2)  # fewer sequences of fewer objects under the same names
    assert (sequences / "list.txt").read_text().split() == ["mine", "synth00", "synth01"]
    assert sorted(os.listdir(sequences)) == ["list.txt", "mine", "synth00", "synth01"]  # no temporary folders
    assert sorted(p for p in os.listdir(sequences / "synth00") if p.startswith("groundtruth")) == [
        "groundtruth_0.txt"]  # none of the earlier set's objects left over
    assert len(os.listdir(sequences / "synth00" / "color")) == 6
    assert sorted(os.listdir(sequences / "synth01")) == first
    # a folder of that name that is not a sequence is not replaced
    (tmp_path / "other" / "synth00").mkdir(parents=True)
    (tmp_path / "other" / "synth00" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["make-vot-sequences", "--output", str(tmp_path / "other"), "--count", "1", "--frames", "6"]) == 2
    assert "is no VOT sequence" in capsys.readouterr().err
    assert os.listdir(tmp_path / "other" / "synth00") == ["notes.txt"]


def test_make_miniature_never_mixes_two_sets(tmp_path, capsys):
    assert main(["make-miniature", "--output", str(tmp_path), "--sequences", "1", "--frames", "3"]) == 0
    before = sorted(os.walk(tmp_path))
    capsys.readouterr()
    assert main(["make-miniature", "--output", str(tmp_path), "--sequences", "2", "--frames", "4", "--seed",
                 "1"]) == 2
    err = capsys.readouterr().err
    assert "already holds LaSOT, GOT-10k, TrackingNet, COCO" in err and err.count("\n") == 1
    assert sorted(os.walk(tmp_path)) == before
