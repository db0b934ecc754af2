"""``python -m training evaluate`` scores what it can and loses nothing: a missing frame is a frame the tracker
could not see, an empty sequence is named and skipped, finished sequences survive an interrupt (``--resume``),
an earlier evaluation is never replaced or mixed silently, and a full disk leaves no truncated file."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import training.evaluate as evaluation
from training.cli import main
from training.miniature import write_lasot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
SYNTHETIC = "synthetic,split=held_out,sequences=2,frames=8"


@pytest.fixture(scope="module")
def lasot(tmp_path_factory):
    """A miniature LaSOT with three test sequences of ten frames."""
    root = tmp_path_factory.mktemp("lasot") / "LaSOT"
    write_lasot(str(root), sequences=3, frames=10)
    return root


def _sequences(root):
    names = (root / "testing_set.txt").read_text().split()
    return [root / name.rsplit("-", 1)[0] / name for name in names]


def _evaluate(out, *data, extra=()):
    return main(["evaluate", "--variant", "tiny", "--weights", str(WEIGHTS), "--threads", "1", "--quiet",
                 "--output", str(out), *[a for d in data for a in ("--data", d)], *extra])


def test_a_missing_frame_costs_one_frame_and_an_empty_sequence_is_skipped(lasot, tmp_path, capsys, caplog):
    root = tmp_path / "LaSOT"
    shutil.copytree(lasot, root)
    holed, emptied, whole = _sequences(root)
    os.unlink(holed / "img" / "00000005.jpg")
    for frame in (emptied / "img").iterdir():
        frame.unlink()
    out = tmp_path / "eval"
    caplog.set_level("WARNING")
    assert _evaluate(out, f"lasot:{root},split=test", SYNTHETIC) == 0
    boxes = np.loadtxt(out / "lasot-test" / f"{holed.name}.txt", delimiter=",")
    assert boxes.shape == (10, 4) and np.array_equal(boxes[4], boxes[3])  # the last box, where it could not see
    assert not (out / "lasot-test" / f"{emptied.name}.txt").exists()
    metrics = json.loads((out / "lasot-test" / "metrics.json").read_text())
    assert metrics["sequences"] == 2 and sorted(metrics["per_sequence_mean_iou"]) == sorted([holed.name, whole.name])
    assert list(metrics["skipped"]) == [emptied.name] and "first frame cannot be read" in metrics["skipped"][
        emptied.name]
    assert metrics["unread_frames"] == {holed.name: 1}
    assert f"{holed.name}: 1 of 10 frames could not be read" in caplog.text and "00000005.jpg" in caplog.text
    assert f"{emptied.name}: its first frame cannot be read" in caplog.text
    printed = capsys.readouterr().out
    assert f"lasot-test: 1 sequence(s) skipped, not in the scores ({emptied.name}: " in printed
    assert f"lasot-test: 1 frame(s) could not be read, in {holed.name}" in printed
    # every --data is in the report
    assert sorted(json.loads((out / "report.json").read_text())) == ["lasot-test", "synthetic-held-out"]


def test_a_rerun_is_refused_and_resume_keeps_the_finished_sequences(lasot, tmp_path, capsys, monkeypatch):
    out = tmp_path / "eval"
    assert _evaluate(out, f"lasot:{lasot},split=test") == 0
    first = {p.name: p.read_bytes() for p in (out / "lasot-test").iterdir()}
    capsys.readouterr()
    assert _evaluate(out, f"lasot:{lasot},split=test") == 2
    err = capsys.readouterr().err
    assert "already holds an evaluation" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in (out / "lasot-test").iterdir()} == first
    # --resume tracks only what is not finished: here a dataset more
    tracked = []
    real = evaluation.track_sequence
    monkeypatch.setattr(evaluation, "track_sequence", lambda t, s, *a: tracked.append(s.name) or real(t, s, *a))
    assert _evaluate(out, f"lasot:{lasot},split=test", SYNTHETIC, extra=["--resume"]) == 0
    assert len(tracked) == 2 and all(name.startswith("synthetic") for name in tracked)
    assert {p.name: p.read_bytes() for p in (out / "lasot-test").iterdir() if p.suffix == ".txt"} == {
        name: data for name, data in first.items() if name.endswith(".txt")}
    report = json.loads((out / "report.json").read_text())
    assert sorted(report) == ["lasot-test", "synthetic-held-out"]
    assert report["lasot-test"]["auc"] == json.loads(first["metrics.json"])["auc"]
    # a later --resume without the synthetic data keeps its line in the report
    assert _evaluate(out, f"lasot:{lasot},split=test", extra=["--resume"]) == 0
    assert sorted(json.loads((out / "report.json").read_text())) == ["lasot-test", "synthetic-held-out"]
    # results of other weights are never mixed in
    other = tmp_path / "other.safetensors"
    shutil.copy(WEIGHTS, other)
    capsys.readouterr()
    assert main(["evaluate", "--variant", "tiny", "--weights", str(other), "--output", str(out), "--data",
                 f"lasot:{lasot},split=test", "--resume", "--quiet"]) == 2
    assert "holds an evaluation of something else" in capsys.readouterr().err
    # --overwrite deletes what evaluate wrote, and nothing else
    (out / "lasot-test" / "notes.txt").write_text("mine")
    assert _evaluate(out, SYNTHETIC, extra=["--overwrite"]) == 0
    assert sorted(os.listdir(out / "lasot-test")) == ["notes.txt"]
    assert sorted(json.loads((out / "report.json").read_text())) == ["synthetic-held-out"]


def test_two_datasets_of_one_name_are_refused(tmp_path, capsys):
    assert _evaluate(tmp_path / "eval", SYNTHETIC, "synthetic,split=held_out,sequences=1,frames=8") == 2
    assert "several --data are the dataset synthetic-held-out" in capsys.readouterr().err


def _rows(path):
    return [json.loads(line) for line in open(path)] if path.exists() else []


@pytest.mark.slow  # an evaluation stopped half-way, then resumed
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_stops_with_one_line_and_resume_finishes(tmp_path, sig):
    out = tmp_path / "eval"
    data = "synthetic,split=held_out,sequences=16,frames=60"
    cmd = [sys.executable, "-m", "training", "evaluate", "--variant", "tiny", "--weights", WEIGHTS, "--threads",
           "1", "--data", data, "--output", str(out)]
    # SIGINT as a terminal's Ctrl-C delivers it: a shell starts background jobs with SIGINT ignored, and a Python
    # started so never turns it into KeyboardInterrupt
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    done = out / "synthetic-held-out" / evaluation.DONE_FILE
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not _rows(done):
            time.sleep(0.05)
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"{sig.name}: interrupted; the finished sequences are kept in {out}: "
                                            f"add --resume to track the rest")
    kept = _rows(done)
    assert 1 <= len(kept) < 16
    assert _evaluate(out, data, extra=["--resume"]) == 0
    rows = _rows(done)
    assert rows[:len(kept)] == kept  # kept, not tracked again
    metrics = json.loads((out / "synthetic-held-out" / "metrics.json").read_text())
    assert metrics["sequences"] + len(metrics.get("skipped", {})) == 16


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_names_the_file_and_leaves_no_truncated_result(tmp_path):
    """Writes past 700 bytes fail, as on a full disk: the result files (a few hundred bytes) are written, the
    metrics.json (longer) is not; it is named, and no partial file is left."""
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "training", "evaluate", "--variant", "tiny", "--weights", WEIGHTS, "--threads",
           "1", "--quiet", "--data", SYNTHETIC, "--output", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                          preexec_fn=_file_size_limit(700), timeout=300)
    assert proc.returncode == 2, proc.stderr
    metrics = out / "synthetic-held-out" / "metrics.json"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write {metrics}: File too large (") and "free on its disk)" in last
    files = sorted(p.name for p in (out / "synthetic-held-out").iterdir())
    assert files == sorted([evaluation.DONE_FILE, *(f"{r['name']}.txt" for r in _rows(out / "synthetic-held-out" /
                                                                                       evaluation.DONE_FILE))])
    assert all(len((out / "synthetic-held-out" / f).read_text().splitlines()) == 8 for f in files if f.endswith("txt"))
    assert _evaluate(out, SYNTHETIC, extra=["--resume"]) == 0 and metrics.is_file()
