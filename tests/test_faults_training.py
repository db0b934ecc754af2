"""Training runs under what goes wrong around them: odd log rows, a resume with another recipe, a folder that
only looks like a run, a full disk at a checkpoint, a state.pt from elsewhere, a checkpoint of another model,
a stale latest.json, a validation set with a missing frame. Resumes stay bit for bit exact."""
from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest
import torch

import training.checkpointing as checkpointing
import vot_lorat
from training.cli import main as cli_main
from training.miniature import write_lasot
from vot_lorat.model.config import get_config

from test_run_safety import ARGS, step_name, train_cli, weights_equal  # the same short run


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The final weights of the uninterrupted run that every resumed run must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("straight")
    assert train_cli(out) == 0
    return out / "model.safetensors"


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped after 6 of 16 steps, with checkpoints at steps 2, 4 and 6: copied by the tests."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    assert train_cli(out, "--checkpoint-every-steps", "2", "--stop-after", "6") == 0
    return out


def _copy(stopped, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    return out


def test_odd_log_rows_cost_the_run_nothing(stopped, straight, tmp_path, caplog):
    """A row without ``cls``, a ``42``: the resumed run ends with its final weights and its curves, and says
    which lines it left out of them."""
    out = _copy(stopped, tmp_path)
    rows = [json.loads(line) for line in open(out / "log.jsonl")]
    del rows[2]["cls"]
    (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]) + "42\n" +
                                   "".join(json.dumps(r) + "\n" for r in rows[4:]))
    caplog.set_level("WARNING")
    assert train_cli(out, "--resume") == 0
    assert weights_equal(out / "model.safetensors", straight)
    assert (out / "training-curves.png").stat().st_size > 1000
    assert "left out line(s) 3, 5" in caplog.text
    # and plot-training alone, on a row missing its learning rate too
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps({"step": 17, "loss": 1.0, "samples_per_s": 3.0}) + "\n")
    caplog.clear()
    assert cli_main(["plot-training", str(out), "--output", str(tmp_path / "figures")]) == 0
    assert "left out line(s) 3, 5, 18" in caplog.text
    assert (tmp_path / "figures" / "training-curves.pdf").is_file()


def test_curves_that_cannot_be_drawn_are_a_warning(stopped, tmp_path, caplog, monkeypatch):
    out = _copy(stopped, tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("no figure today")

    monkeypatch.setattr("training.trainer.plot_training_log", broken)
    caplog.set_level("WARNING")
    assert train_cli(out, "--resume") == 0
    assert (out / "model.safetensors").is_file()
    assert "the training curves were not drawn: no figure today" in caplog.text


def test_resume_with_another_recipe_is_refused_unless_allowed(stopped, tmp_path, capsys, caplog):
    out = _copy(stopped, tmp_path)
    log_before = (out / "log.jsonl").read_bytes()
    capsys.readouterr()
    assert train_cli(out, "--resume", "--batch-size", "16", "--lr", "2e-3") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "batch_size 8 -> 16" in err and "lr 0.001 -> 0.002" in err
    assert "--allow-changes" in err
    assert (out / "log.jsonl").read_bytes() == log_before  # refused before anything was written
    # settings of how the run runs are no recipe
    assert train_cli(out, "--resume", "--workers", "1", "--log-every", "2", "--stop-after", "1") == 0
    caplog.set_level("WARNING")
    assert train_cli(out, "--resume", "--batch-size", "16", "--allow-changes", "--stop-after", "1") == 0
    assert "changed recipe: batch_size 8 -> 16" in caplog.text
    assert train_cli(out, "--allow-changes") == 2
    assert "--allow-changes goes with --resume" in capsys.readouterr().err


def test_a_folder_that_only_looks_like_a_run_is_never_written_over(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "eval").mkdir(parents=True)
    (out / "config.json").write_text('{"mine": 1}')
    (out / "eval" / "notes.txt").write_text("my notes")
    for flag in ("--overwrite", "--resume"):
        assert train_cli(out, flag) == 2
        assert "which no training run wrote" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["config.json", "eval"] and (out / "config.json").read_text() == '{"mine": 1}'
    assert (out / "eval" / "notes.txt").read_text() == "my notes"


def test_a_full_disk_at_a_checkpoint_is_one_line_and_resume_is_exact(straight, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save
    saves = []

    def disk_full_at_the_second(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:
            real_save(obj, f, *args, **kwargs)  # a part of the file is written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpointing.torch, "save", disk_full_at_the_second)
    capsys.readouterr()
    assert train_cli(out, "--checkpoint-every-steps", "2") == 2
    err = capsys.readouterr().err
    state = out / "checkpoints" / step_name(4) / "state.pt"
    assert err.count("\n") == 1 and err.startswith(f"error: cannot write {state}: No space left on device (")
    assert "free on its disk)" in err and "--resume" in err
    assert sorted(os.listdir(out / "checkpoints")) == ["latest.json", step_name(2)]  # no partial checkpoint
    monkeypatch.setattr(checkpointing.torch, "save", real_save)
    assert train_cli(out, "--checkpoint-every-steps", "2", "--resume") == 0
    assert weights_equal(out / "model.safetensors", straight)


class RunsCode:
    """What an attacker puts into a state.pt: unpickling it would create ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_state_pt_that_would_run_code_is_not_loaded(stopped, straight, tmp_path, caplog):
    out = _copy(stopped, tmp_path)
    planted = tmp_path / "planted"
    state = out / "checkpoints" / step_name(6) / "state.pt"
    torch.save({"step": 6, "optimizer": {}, "rng": [], "payload": RunsCode(str(planted))}, state)
    caplog.set_level("INFO")
    assert train_cli(out, "--resume") == 0
    assert not planted.exists()
    assert f"skipping checkpoint {state.parent}" in caplog.text and "could run code" in caplog.text
    assert f"resumed from {out / 'checkpoints' / step_name(4)}" in caplog.text
    assert weights_equal(out / "model.safetensors", straight)


def test_a_state_pt_of_the_earlier_layout_still_resumes_exactly(stopped, straight, tmp_path):
    """Before the RNG states were tensors, state.pt held numpy's and Python's own tuples."""
    out = _copy(stopped, tmp_path)
    path = out / "checkpoints" / step_name(6) / "state.pt"
    state = checkpointing.read_state(str(path))
    for rng in state["rng"]:
        numpy = rng["numpy"]
        rng["numpy"] = ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                        numpy["cached_gaussian"])
        python = rng["python"]
        rng["python"] = (python["version"], tuple(python["internal"].tolist()), python["gauss_next"])
    torch.save(state, path)
    assert train_cli(out, "--resume") == 0
    assert weights_equal(out / "model.safetensors", straight)


def test_stale_pointers_and_checkpoints_of_another_model(stopped, tmp_path, caplog, capsys):
    out = _copy(stopped, tmp_path)
    (out / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": step_name(8), "step": 8}))
    other = out / "checkpoints" / step_name(7)  # the newest: a tiny-g model someone copied in
    other.mkdir()
    shutil.copy(out / "checkpoints" / step_name(6) / "state.pt", other / "state.pt")
    vot_lorat.save_checkpoint(vot_lorat.create_model(get_config("tiny-g")), str(other / "model.safetensors"))
    caplog.set_level("INFO")
    assert train_cli(out, "--resume", "--stop-after", "1") == 0
    assert f"latest.json names {step_name(8)}, which is not there" in caplog.text
    assert "is newer" not in caplog.text
    assert f"skipping checkpoint {other}: it does not fit this run's tiny model" in caplog.text
    assert f"resumed from {out / 'checkpoints' / step_name(6)}" in caplog.text
    # when no checkpoint fits, the run is refused rather than started again over them
    before = sorted(os.listdir(out / "checkpoints"))
    capsys.readouterr()
    assert cli_main(["train", *ARGS, "--variant", "tiny-g", "--output", str(out), "--resume", "--allow-changes"]) == 2
    assert "fits this run's tiny-g model" in capsys.readouterr().err
    assert sorted(os.listdir(out / "checkpoints")) == before


def test_validation_with_a_missing_frame_goes_on(tmp_path):
    root = tmp_path / "LaSOT"
    write_lasot(str(root), sequences=2, frames=8)
    name = (root / "testing_set.txt").read_text().split()[0]
    os.unlink(root / name.rsplit("-", 1)[0] / name / "img" / "00000003.jpg")
    out = tmp_path / "run"
    assert train_cli(out, "--epochs", "1", "--samples-per-epoch", "16", "--val-data", f"lasot:{root},split=test",
                     "--val-interval", "1") == 0
    rows = [json.loads(line) for line in open(out / "log.jsonl")]
    validation = [r["validation"]["lasot-test"] for r in rows if "validation" in r]
    assert validation and validation[-1]["sequences"] == 2
    metrics = json.loads((out / "val" / "epoch_001" / "lasot-test" / "metrics.json").read_text())
    assert metrics["unread_frames"] == {name: 1}
