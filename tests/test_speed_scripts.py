"""The speed benchmarks that drive TraX servers: the forward passes timed inside the servers line up with the
frames the client timed, so that the share outside the model is computed frame by frame."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join("vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")


def _run(args, timeout):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_tracker_speed_times_the_forward_passes_inside_each_trax_server(tmp_path):
    out = tmp_path / "speed.json"
    _run(["benchmarks/tracker_speed.py", "--variants", "tiny", "--weights", WEIGHTS, "--objects", "2", "--frames",
          "4", "--warmup", "1", "--threads", "1", "--device", "cpu", "--frame-size", "320x240", "--trax",
          "--trax-checkout", f"a={ROOT}", "--trax-checkout", f"b={ROOT}", "--json", str(out)], timeout=600)
    rows = json.loads(out.read_text())["trax_rows"]
    assert [r["checkout"] for r in rows] == ["a", "b"]
    for row in rows:
        trax, forward = row["trax_times_ms"], row["forward_times_ms"]
        assert len(trax) == len(forward) == len(row["model_times_ms"]) == 4
        # the forward pass of a frame lies inside its round trip (the client times with the wall clock: allow one)
        assert all(f > 0 for f in forward) and sum(f < t for t, f in zip(trax, forward)) >= 3, (trax, forward)
        outside = sorted(t - f for t, f in zip(trax, forward))
        assert row["outside_ms"] == pytest.approx((outside[1] + outside[2]) / 2)
        assert row["outside_share"] == pytest.approx(row["outside_ms"] / row["forward_ms"])


@pytest.mark.slow
def test_vot_speed_reads_the_forward_passes_of_every_sequence(tmp_path):
    out = tmp_path / "vot.json"
    result = _run(["benchmarks/vot_speed.py", "--frame-size", "native", "--repeats", "1", "--model-iters", "3",
                   "--json", str(out)], timeout=900)
    rows = {r["tracker"]: r for r in json.loads(out.read_text())["rows"]}
    lorat, static = rows["LoRAT_this"], rows["static_this"]
    assert lorat["frames"] == static["frames"] == 6 * 79  # the demo's sequences, every frame after the first
    assert 0 < lorat["forward_ms"] < lorat["mean_ms"]
    assert lorat["per_frame_over_forward"] == pytest.approx(lorat["mean_ms"] / lorat["forward_ms"])
    assert static["forward_ms"] is None and "| static_this | 474 |" in result.stdout
