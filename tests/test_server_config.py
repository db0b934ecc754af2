"""The TraX server's settings: environment, flags, and the errors for bad values."""
from __future__ import annotations

import pytest

from vot_lorat.trax_server import ServerConfig, parse_args


def test_environment_values_are_typed():
    cfg = ServerConfig.from_env({"LORAT_VARIANT": "L-378", "LORAT_ABSENCE_THRESHOLD": "0.3", "LORAT_THREADS": "2",
                                 "LORAT_SAM_MULTIMASK": "1", "LORAT_MASK": "box", "LORAT_WEIGHTS": " "})
    assert (cfg.variant, cfg.absence_threshold, cfg.threads, cfg.sam_multimask, cfg.mask) == \
        ("L-378", 0.3, 2, True, "box")
    assert cfg.weights is None  # blank means unset


def test_unexpanded_variable_from_trackers_ini_is_explained():
    with pytest.raises(ValueError, match=r"LORAT_SAM_CHECKPOINT is '\$\{LORAT_SAM_VIT_H\}': export LORAT_SAM_VIT_H"):
        ServerConfig.from_env({"LORAT_SAM_CHECKPOINT": "${LORAT_SAM_VIT_H}"})


def test_bad_numbers_are_named():
    with pytest.raises(ValueError, match="LORAT_ABSENCE_THRESHOLD='high' is not a valid float"):
        ServerConfig.from_env({"LORAT_ABSENCE_THRESHOLD": "high"})
    with pytest.raises(ValueError, match="is not a boolean"):
        ServerConfig.from_env({"LORAT_SAM_MULTIMASK": "maybe"})


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("LORAT_VARIANT", "B-224")
    monkeypatch.setenv("LORAT_DEVICE", "cpu")
    cfg = parse_args(["--variant", "g-378", "--absence-threshold", "0.2"])
    assert cfg.variant == "g-378" and cfg.device == "cpu" and cfg.absence_threshold == 0.2


def test_auto_precision_and_device_on_cpu():
    cfg = ServerConfig(device="cpu")
    assert str(cfg.resolved_device()) == "cpu" and cfg.resolved_precision(cfg.resolved_device()) == "fp32"
