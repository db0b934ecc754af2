"""The speed scripts at smoke size: each reports the rows it promises, with positive times and the derived
columns computed from them. Which setting is faster is for the scripts to measure, never for a test to assert.
The full-size commands are in docs/speed.md and benchmarks/README.md (their flags are checked by
tests/test_readme.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tiny_models import script_with_tiny_models

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
WEIGHTS = os.path.join("vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")


def _run(args, timeout, command=None, env=None):
    result = subprocess.run(command or [sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout, env=env or dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, ROOT])))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_model_speed_reports_every_setting(tmp_path):
    out = tmp_path / "model.json"
    _run(["benchmarks/model_speed.py", "--variants", "tiny", "--batch", "1,2", "--precisions", "fp32,bf16,int8",
          "--warmup", "1", "--iters", "2", "--threads", "1", "--device", "cpu", "--json", str(out)], timeout=300)
    rows = json.loads(out.read_text())["rows"]
    settings = {(r["lora"], r["precision"], r["batch"]) for r in rows}
    assert {("merged", p, b) for p in ("fp32", "bf16", "int8") for b in (1, 2)} <= settings
    for row in rows:
        assert len(row["times_ms"]) == 2 and all(t > 0 for t in row["times_ms"])
        assert row["fps"] == pytest.approx(1000 / row["mean_ms"])
        assert row["samples_per_s"] == pytest.approx(row["batch"] * row["fps"])


@pytest.mark.slow  # two TraX servers
def test_tracker_speed_times_the_forward_passes_inside_each_trax_server(tmp_path):
    out = tmp_path / "speed.json"
    _run(["benchmarks/tracker_speed.py", "--variants", "tiny", "--weights", WEIGHTS, "--objects", "2", "--frames",
          "4", "--warmup", "1", "--threads", "1", "--device", "cpu", "--frame-size", "320x240", "--trax",
          "--trax-checkout", f"a={ROOT}", "--trax-checkout", f"b={ROOT}", "--json", str(out)], timeout=600)
    report = json.loads(out.read_text())
    assert [r["objects"] for r in report["rows"]] == [2]
    for part in ("decode_ms", "preprocess_ms", "model_ms", "postprocess_ms", "total_ms"):
        assert report["rows"][0][part] >= 0
    rows = report["trax_rows"]
    assert [r["checkout"] for r in rows] == ["a", "b"]
    for row in rows:
        trax, forward = row["trax_times_ms"], row["forward_times_ms"]
        assert len(trax) == len(forward) == len(row["model_times_ms"]) == 4
        assert all(t > 0 for t in trax) and all(f > 0 for f in forward)
        outside = sorted(t - f for t, f in zip(trax, forward))
        assert row["outside_ms"] == pytest.approx((outside[1] + outside[2]) / 2)
        assert row["outside_share"] == pytest.approx(row["outside_ms"] / row["forward_ms"])


def test_train_speed_reports_steps_and_the_data_pipeline(tmp_path):
    out = tmp_path / "train.json"
    _run(["benchmarks/train_speed.py", "--variants", "tiny", "--full-finetune", "--steps", "2", "--warmup", "1",
          "--batch", "2", "--data-samples", "4", "--threads", "1", "--device", "cpu", "--json", str(out)],
         timeout=300)
    rows = json.loads(out.read_text())["rows"]
    train = [r for r in rows if "training" in r]
    data = [r for r in rows if "source" in r]
    assert [(r["variant"], r["training"], r["batch"]) for r in train] == [("tiny", "full", 2)]
    assert [(r["source"], r["samples"]) for r in data] == [("synthetic", 4)]
    for row in train + data:
        assert all(t > 0 for t in row["times_ms"]) and row["samples_per_s"] > 0
    assert train[0]["trainable_params"] > 0 and train[0]["last_loss"] > 0


def test_sam_speed_reports_both_modes_with_the_tiny_sam(tmp_path):
    out = tmp_path / "sam.json"
    _run([], timeout=300, command=script_with_tiny_models(
        "benchmarks/sam_speed.py", "--model-type", "tiny", "--modes", "crop,frame", "--objects", "1,3", "--frames",
        "2", "--warmup", "0", "--threads", "1", "--json", str(out)))
    rows = json.loads(out.read_text())["rows"]
    assert sorted((r["mode"], r["objects"]) for r in rows) == [("crop", 1), ("crop", 3), ("frame", 1), ("frame", 3)]
    assert all(r["median_ms"] > 0 and 0 <= r["crop_frame_mean_iou"] <= 1 for r in rows)


@pytest.mark.slow  # four benchmark scripts, one after the other
def test_gpu_check_runs_on_a_bare_python_without_an_install(tmp_path):
    """As a lent GPU machine runs it: PYTHON names the interpreter, nothing is installed, the checkout is on
    PYTHONPATH by the script itself."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(GPU_CHECK_DEVICE="cpu", GPU_CHECK_SMOKE="1", PYTHON=sys.executable)
    result = _run([], timeout=600, command=["benchmarks/gpu_check.sh", str(tmp_path / "out")], env=env)
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    for row in ("| CUDA checks |", "| model, batch 1 | tiny fp32 eager |", "| tracker | tiny, 1 objects |",
                "| training step | tiny lora fp32 batch 2 |"):
        assert row in table, table
    assert "| check | setting | result |" in result.stdout


@pytest.mark.slow
def test_vot_speed_reads_the_forward_passes_of_every_sequence(tmp_path):
    out = tmp_path / "vot.json"
    result = _run(["benchmarks/vot_speed.py", "--frame-size", "native", "--repeats", "1", "--model-iters", "3",
                   "--sequences", "2", "--json", str(out)], timeout=900)
    rows = {r["tracker"]: r for r in json.loads(out.read_text())["rows"]}
    lorat, static = rows["LoRAT_this"], rows["static_this"]
    assert lorat["frames"] == static["frames"] == 2 * 79  # two demo sequences, every frame after the first
    assert lorat["forward_ms"] > 0 and lorat["mean_ms"] > 0
    assert lorat["per_frame_over_forward"] == pytest.approx(lorat["mean_ms"] / lorat["forward_ms"])
    assert static["forward_ms"] is None and "| static_this | 158 |" in result.stdout
