"""workspace_setup.sh and the trackers.ini / stack it writes."""
from __future__ import annotations

import configparser
import os
import subprocess
import sys

import pytest

from vot_lorat.toolkit.workspace import sam_model_from_path, trackers_ini
from vot_lorat.weights.checkpoint import variant_from_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the keys vot-toolkit 0.9.0 accepts for a traxpython tracker (any other key is an error)
TRAX_KEYS = {"label", "protocol", "command", "paths", "python", "timeout", "restart", "linkpaths", "socket",
             "version", "tags", "storage"}


def _check_entries(text: str):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    for name in parser.sections():
        keys = set(parser[name])
        assert all(k in TRAX_KEYS or k.startswith(("env_", "meta_")) for k in keys), (name, keys)
        assert parser[name]["protocol"] == "traxpython" and parser[name]["command"] == "vot_lorat"
        assert parser[name]["env_ld_library_path"] == "${LD_LIBRARY_PATH}"
    return parser


def test_variant_and_sam_size_from_paths():
    assert variant_from_path("/w/LoRAT-L-378/model.bin") == "L-378"
    assert variant_from_path("/w/lorat_g-224.safetensors") == "g-224"
    assert variant_from_path("/w/model.bin") is None
    assert sam_model_from_path("/w/sam_vit_h_4b8939.pth") == "vit_h"
    with pytest.raises(ValueError, match="--sam-model"):
        sam_model_from_path("/w/segmenter.pth")


def test_workspace_trackers_ini_has_absolute_paths_and_only_known_keys(tmp_path):
    text = trackers_ini("repo", "repo/.venv/bin/python", "L-378", "b.pth", "w/model.bin", sam="sam_vit_b_x.pth",
                        absence_threshold=0.3, static=True)
    parser = _check_entries(text)
    assert parser.sections() == ["LoRAT", "LoRAT-mask", "LoRAT-SAM", "static"]
    lorat = parser["LoRAT"]
    assert os.path.isabs(lorat["paths"]) and os.path.isabs(lorat["env_lorat_weights"])
    assert lorat["env_lorat_mask"] == "none" and parser["LoRAT-mask"]["env_lorat_mask"] == "box"
    assert parser["LoRAT-SAM"]["env_lorat_sam_model"] == "vit_b"
    assert lorat["env_lorat_absence_threshold"] == "0.3"


def test_repository_trackers_ini_registers_the_documented_trackers():
    with open(os.path.join(ROOT, "trackers.ini")) as f:
        parser = _check_entries(f.read())
    assert {"LoRAT", "LoRAT-mask", "LoRAT-SAM-b", "LoRAT-SAM-l", "LoRAT-SAM-h"} <= set(parser.sections())


def test_workspace_setup_arguments(tmp_path):
    script = os.path.join(ROOT, "workspace_setup.sh")
    help_text = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "--demo" in help_text.stdout and "--stack" in help_text.stdout
    bad = subprocess.run([script, "--frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --frobnicate" in bad.stderr
    missing = subprocess.run([script, "--weights"], capture_output=True, text=True)
    assert missing.returncode == 2 and "--weights needs a value" in missing.stderr


def test_backbone_only_when_the_weights_need_one(tmp_path, capsys):
    import vot_lorat
    from vot_lorat.toolkit.workspace import main

    weights = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
    common = ["trackers", "--repo", ROOT, "--python", sys.executable, "--output", str(tmp_path / "trackers.ini")]
    assert main(common + ["--weights", weights]) == 0  # a whole model: no backbone, variant from the file
    parser = _check_entries((tmp_path / "trackers.ini").read_text())
    assert parser["LoRAT"]["env_lorat_variant"] == "tiny" and "env_lorat_backbone" not in parser["LoRAT"]
    lora_only = tmp_path / "LoRAT-tiny" / "model.safetensors"
    vot_lorat.save_checkpoint(vot_lorat.create_model(vot_lorat.get_config("tiny")), str(lora_only))
    capsys.readouterr()
    assert main(common + ["--weights", str(lora_only)]) == 2
    assert "holds only the LoRAT adapters and head: pass --backbone" in capsys.readouterr().err


def test_workspace_setup_uses_the_python_it_is_given(tmp_path):
    script = os.path.join(ROOT, "workspace_setup.sh")
    weights = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
    bare = subprocess.run([script, "--python", "/bin/false", "--weights", weights, "--workspace", str(tmp_path)],
                          capture_output=True, text=True)
    assert bare.returncode == 2 and "/bin/false cannot import vot_lorat's dependencies" in bare.stderr


def test_workspace_setup_refuses_missing_weights_before_making_the_workspace(tmp_path):
    script = os.path.join(ROOT, "workspace_setup.sh")
    workspace = tmp_path / "vot_workspace"
    result = subprocess.run([script, "--python", sys.executable, "--weights", str(tmp_path / "missing.bin"),
                             "--workspace", str(workspace), "--nodownload"], capture_output=True, text=True,
                            env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert result.returncode != 0 and "file not found" in result.stderr
    assert not workspace.exists()  # nothing left behind to clean up or to be mistaken for a workspace
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nor the trackers entries written on the way
