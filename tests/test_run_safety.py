"""Training runs are never lost or overwritten: wrong devices and output folders fail at once with one line,
``--resume`` survives what a crash leaves behind, Ctrl-C and SIGTERM checkpoint and say how to go on."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from training.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
# 2 epochs of 8 steps of the tiny model on synthetic pairs, a checkpoint every epoch
ARGS = ["--variant", "tiny", "--full-finetune", "--layer-scale-init", "1.0", "--data",
        "synthetic,sequences=200,frames=60", "--epochs", "2", "--samples-per-epoch", "64", "--batch-size", "8",
        "--lr", "1e-3", "--warmup-epochs", "0.5", "--workers", "0", "--threads", "1", "--log-every", "1",
        "--checkpoint-interval", "1", "--no-eval", "--quiet"]
EVAL_DATA = "synthetic,split=held_out,sequences=1,frames=8"


def train_cli(out, *extra: str) -> int:
    return cli_main(["train", *ARGS, "--output", str(out), *extra])


def step_name(step: int) -> str:
    return f"step_{step:09d}"


def weights_equal(a, b) -> bool:
    wa, wb = load_file(str(a)), load_file(str(b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def log_rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The final weights of the uninterrupted run that every resumed run must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("straight")
    assert train_cli(out) == 0
    return out / "model.safetensors"


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    return lines[0]


# ----- issue 12: fail before the work starts, with one line


def test_a_cuda_device_that_is_not_there_is_one_line(tmp_path, capsys):
    count = torch.cuda.device_count()
    missing = f"cuda:{count}" if count else "cuda"
    assert train_cli(tmp_path / "run", "--device", missing) == 2
    assert missing in one_line(capsys.readouterr().err)
    assert cli_main(["evaluate", "--variant", "tiny", "--weights", WEIGHTS, "--data", EVAL_DATA, "--output",
                     str(tmp_path / "eval"), "--device", missing]) == 2
    assert missing in one_line(capsys.readouterr().err)


def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert train_cli(blocker / "run") == 2
    captured = capsys.readouterr()
    assert str(blocker / "run") in one_line(captured.err) and not captured.out
    assert cli_main(["evaluate", "--variant", "tiny", "--weights", WEIGHTS, "--data", EVAL_DATA, "--output",
                     str(blocker / "eval")]) == 2
    captured = capsys.readouterr()
    assert str(blocker / "eval") in one_line(captured.err) and not captured.out


def test_missing_parent_folders_of_the_output_are_made(tmp_path):
    assert train_cli(tmp_path / "a" / "b" / "run", "--epochs", "1", "--samples-per-epoch", "16") == 0
    assert (tmp_path / "a" / "b" / "run" / "model.safetensors").is_file()
    assert cli_main(["evaluate", "--variant", "tiny", "--weights", WEIGHTS, "--data", EVAL_DATA, "--output",
                     str(tmp_path / "c" / "d" / "eval"), "--quiet"]) == 0
    assert (tmp_path / "c" / "d" / "eval" / "report.json").is_file()


# ----- issue 12: --resume after a crash


@pytest.mark.parametrize("damaged", ["state.pt", "model.safetensors"])
def test_resume_skips_a_truncated_newest_checkpoint(tmp_path, straight, caplog, damaged):
    out = tmp_path / "run"
    assert train_cli(out, "--checkpoint-every-steps", "2", "--stop-after", "6") == 0
    path = out / "checkpoints" / step_name(6) / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # what a full disk or a bad copy leaves
    caplog.set_level("INFO")
    assert train_cli(out, "--resume") == 0
    assert re.search(rf"{step_name(6)}.*{damaged}", caplog.text), caplog.text  # which one was skipped, and why
    assert re.search(rf"resum\w* from .*{step_name(4)}", caplog.text), caplog.text
    assert weights_equal(out / "model.safetensors", straight)


def test_resume_with_an_empty_latest_json(tmp_path, straight, caplog):
    out = tmp_path / "run"
    assert train_cli(out, "--stop-after", "5") == 0
    (out / "checkpoints" / "latest.json").write_text("")
    caplog.set_level("INFO")
    assert train_cli(out, "--resume") == 0
    assert "latest.json" in caplog.text
    assert weights_equal(out / "model.safetensors", straight)


def test_resume_keeps_every_log_row_and_drops_only_a_torn_line(tmp_path, straight, caplog):
    out = tmp_path / "run"
    assert train_cli(out, "--checkpoint-every-steps", "4", "--stop-after", "6") == 0
    shutil.rmtree(out / "checkpoints" / step_name(6))  # killed after logging step 6, before its checkpoint
    (out / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": step_name(4), "step": 4}))
    first_run = log_rows(out / "log.jsonl")
    with open(out / "log.jsonl", "a") as f:
        f.write('{"step": 7, "epoch": 0.875, "lr": 0.0')  # the row being written when the process died
    caplog.set_level("INFO")
    assert train_cli(out, "--resume") == 0
    assert "torn" in caplog.text or "incomplete" in caplog.text, caplog.text
    assert [r["step"] for r in log_rows(out / "log.jsonl")] == list(range(1, 17))
    assert log_rows(out / "log.jsonl")[:4] == first_run[:4]
    # the rows of steps 5 and 6 that the resumed run did again are kept aside, not deleted
    assert log_rows(out / "log.superseded.jsonl") == first_run[4:]
    assert weights_equal(out / "model.safetensors", straight)


def test_resume_without_any_checkpoint_keeps_the_log(tmp_path):
    out = tmp_path / "run"
    assert train_cli(out, "--stop-after", "7") == 0
    shutil.rmtree(out / "checkpoints")  # killed before its first checkpoint
    first_run = log_rows(out / "log.jsonl")
    assert len(first_run) == 7
    assert train_cli(out, "--resume", "--stop-after", "2") == 0
    assert [r["step"] for r in log_rows(out / "log.jsonl")] == [1, 2]
    assert log_rows(out / "log.superseded.jsonl") == first_run


# ----- issue 14: no run is overwritten


def test_a_used_output_folder_needs_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    short = ["--epochs", "1", "--samples-per-epoch", "16"]
    assert train_cli(out, *short) == 0
    (out / "notes.txt").write_text("the user's own file")
    log_before = (out / "log.jsonl").read_bytes()
    capsys.readouterr()
    assert train_cli(out, *short) == 2
    message = one_line(capsys.readouterr().err)
    assert "--resume" in message and "--overwrite" in message and str(out) in message
    assert (out / "log.jsonl").read_bytes() == log_before
    assert train_cli(out, *short, "--resume", "--overwrite") == 2
    assert "--resume" in one_line(capsys.readouterr().err)
    # --overwrite starts again: the old run's files go, other files stay
    assert train_cli(out, "--epochs", "1", "--samples-per-epoch", "24", "--overwrite") == 0
    assert [r["step"] for r in log_rows(out / "log.jsonl")] == [1, 2, 3]
    assert sorted(os.listdir(out / "checkpoints")) == ["latest.json", step_name(3)]
    assert (out / "notes.txt").read_text() == "the user's own file"


# ----- issue 12 / 14: Ctrl-C and SIGTERM


def _wait_for_rows(path, rows: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and sum(1 for line in open(path) if line.endswith("\n")) >= rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {rows} rows (exit status {proc.poll()})")


@pytest.mark.parametrize("sig,extra", [
    # Ctrl-C in a terminal reaches the whole process group, data-loader workers included
    (signal.SIGINT, ["--workers", "1"]),
    # a cluster's pre-emption, while checkpoints are written at every step
    (signal.SIGTERM, ["--checkpoint-every-steps", "1"]),
], ids=["SIGINT", "SIGTERM"])
def test_a_signal_checkpoints_and_says_how_to_resume(tmp_path, sig, extra):
    args = [*ARGS, "--epochs", "40", "--checkpoint-interval", "100", *extra]  # 320 steps: far from the end
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "training", "train", *args, "--output", str(out)], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _wait_for_rows(out / "log.jsonl", 3, proc)
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    found = re.search(r"interrupted at step (\d+)", last)
    assert found and "--resume" in last, err
    step = int(found.group(1))
    assert (out / "checkpoints" / step_name(step) / "state.pt").is_file()
    # the interrupt's checkpoint continues exactly where the run stopped
    assert cli_main(["train", *args, "--output", str(out), "--resume", "--stop-after", "2"]) == 0
    assert cli_main(["train", *args, "--output", str(tmp_path / "straight"), "--stop-after", str(step + 2)]) == 0
    name = os.path.join("checkpoints", step_name(step + 2), "model.safetensors")
    assert weights_equal(out / name, tmp_path / "straight" / name)


@pytest.mark.slow
def test_sigterm_under_torchrun_stops_every_rank_at_the_same_step(tmp_path):
    """torchrun passes SIGTERM on to its ranks; they agree on the step, write one checkpoint and say so."""
    out = tmp_path / "run"
    args = [*ARGS, "--epochs", "40", "--checkpoint-interval", "100", "--device", "cpu"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541"]
    proc = subprocess.Popen([*torchrun, "-m", "training", "train", *args, "--output", str(out)], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_rows(out / "log.jsonl", 3, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    steps = [int(s) for s in re.findall(r"interrupted at step (\d+)", err)]
    assert len(steps) == 2 and steps[0] == steps[1], err  # both ranks, at one step
    step = steps[0]
    state = torch.load(out / "checkpoints" / step_name(step) / "state.pt", weights_only=False)
    assert state["step"] == step and len(state["rng"]) == 2
