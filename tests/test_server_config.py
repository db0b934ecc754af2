"""The TraX server's settings: environment, flags, and the errors for bad values."""
from __future__ import annotations

import pytest
import torch

from vot_lorat.toolkit.server import main
from vot_lorat.toolkit.settings import ServerSettings, parse_args


def test_environment_values_are_typed():
    cfg = ServerSettings.from_env({"LORAT_VARIANT": "L-378", "LORAT_ABSENCE_THRESHOLD": "0.3", "LORAT_THREADS": "2",
                                 "LORAT_SAM_MULTIMASK": "1", "LORAT_MASK": "box", "LORAT_WEIGHTS": " "})
    assert (cfg.variant, cfg.absence_threshold, cfg.threads, cfg.sam_multimask, cfg.mask) == \
        ("L-378", 0.3, 2, True, "box")
    assert cfg.weights is None  # blank means unset
    assert cfg.read_ahead and not ServerSettings.from_env({"LORAT_READ_AHEAD": "0"}).read_ahead


def test_unexpanded_variable_from_trackers_ini_is_explained():
    with pytest.raises(ValueError, match=r"LORAT_SAM_CHECKPOINT is '\$\{LORAT_SAM_VIT_H\}': export LORAT_SAM_VIT_H"):
        ServerSettings.from_env({"LORAT_SAM_CHECKPOINT": "${LORAT_SAM_VIT_H}"})


def test_bad_numbers_are_named():
    with pytest.raises(ValueError, match="LORAT_ABSENCE_THRESHOLD='high' is not a valid float"):
        ServerSettings.from_env({"LORAT_ABSENCE_THRESHOLD": "high"})
    with pytest.raises(ValueError, match="is not a boolean"):
        ServerSettings.from_env({"LORAT_SAM_MULTIMASK": "maybe"})


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("LORAT_VARIANT", "B-224")
    monkeypatch.setenv("LORAT_DEVICE", "cpu")
    cfg = parse_args(["--variant", "g-378", "--absence-threshold", "0.2"])
    assert cfg.variant == "g-378" and cfg.device == "cpu" and cfg.absence_threshold == 0.2


def test_environment_round_trips():
    cfg = ServerSettings(variant="L-378", weights="/w/LoRAT-L-378/model.bin", device="cuda:1", mask="sam",
                       absence_threshold=0.3, threads=2, sam_checkpoint="/w/sam_vit_b_01ec64.pth", sam_model="vit_b",
                       sam_multimask=True)
    env = cfg.to_env()
    assert env["LORAT_ABSENCE_THRESHOLD"] == "0.3" and env["LORAT_SAM_MULTIMASK"] == "1"
    assert "LORAT_BACKBONE" not in env  # None: unset
    assert ServerSettings.from_env(env) == cfg
    assert ServerSettings.from_env(ServerSettings().to_env()) == ServerSettings()


def test_a_missing_device_is_one_line_before_any_loading(capsys):
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, on any machine
    assert main(["--variant", "static", "--device", missing]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"LoRAT error: device '{missing}' asked") and "\n" not in err
