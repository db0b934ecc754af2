"""workspace_setup.sh and the trackers.ini / stack it writes."""
from __future__ import annotations

import configparser
import os
import subprocess
import sys

import pytest

from vot_lorat.toolkit.replica import write_replica
from vot_lorat.toolkit.stacks import OLDER_TOOLKIT, PROJECT_TOOLKIT, plan_stack
from vot_lorat.toolkit.workspace import format_headline, headline, main, sam_model_from_path, trackers_ini
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


@pytest.mark.slow  # workspace_setup.sh, several times
def test_workspace_setup_refuses_missing_weights_before_making_the_workspace(tmp_path):
    script = os.path.join(ROOT, "workspace_setup.sh")
    workspace = tmp_path / "vot_workspace"
    result = subprocess.run([script, "--python", sys.executable, "--weights", str(tmp_path / "missing.bin"),
                             "--workspace", str(workspace), "--nodownload"], capture_output=True, text=True,
                            env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert result.returncode != 0 and "file not found" in result.stderr
    assert not workspace.exists()  # nothing left behind to clean up or to be mistaken for a workspace
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nor the trackers entries written on the way


@pytest.mark.parametrize("stack, toolkit, masks, anchors", [
    ("vot2022/shorttermbox", OLDER_TOOLKIT, False, True),  # multistart (and realtime): 0.9.0 crashes on them
    ("vot2020/shortterm", OLDER_TOOLKIT, True, True),
    ("vot2019/shortterm", OLDER_TOOLKIT, False, False),  # supervised
    ("vots2025/realtime", OLDER_TOOLKIT, True, False),  # the realtime modifier
    ("vots2024/main", PROJECT_TOOLKIT, True, False),
    ("vot2022/longterm", PROJECT_TOOLKIT, False, False),
])
def test_each_stack_gets_the_toolkit_that_runs_it(stack, toolkit, masks, anchors):
    plan = plan_stack(stack)
    assert (plan.toolkit, plan.masks, plan.anchors) == (toolkit, masks, anchors)
    assert plan.local_copy == stack.endswith("longterm")


def test_stacks_for_other_trackers_and_unknown_stacks_are_refused():
    with pytest.raises(ValueError, match="needs a point tracker"):
        plan_stack("vots2026/point")
    with pytest.raises(ValueError, match="started from a text description"):
        plan_stack("vots2026/referral")
    with pytest.raises(ValueError, match="no stack 'vot2023/shortterm'.*vot2022/shorttermbox"):
        plan_stack("vot2023/shortterm")


def test_a_longterm_workspace_stack_leaves_out_redetection_and_the_toolkit_reads_it(tmp_path):
    from vot.stack import Stack

    path = tmp_path / "stack.yaml"
    assert main(["stack", "--from", "vot2022/longterm", "--output", str(path)]) == 0
    assert path.read_text().startswith("# vot2022/longterm for vot_lorat, without redetection")
    stack = Stack.read(str(path))
    assert list(stack.experiments) == ["longterm"] and len(stack.experiments["longterm"].analyses) == 3


def test_replica_of_a_mask_multistart_stack(tmp_path):
    from vot.dataset import load_dataset
    from vot.experiment.multistart import find_anchors
    from vot.region import Mask

    root = tmp_path / "sequences"
    assert write_replica(plan_stack("vot2020/shortterm"), str(root), count=2, frames=6) == ["dummy00", "dummy01"]
    dataset = load_dataset(str(root))
    for name, length in (("dummy00", 6), ("dummy01", 7)):
        sequence = dataset[name]
        assert len(sequence) == length and list(sequence.objects()) == ["object"]
        masks = [sequence.groundtruth(t) for t in range(length)]
        assert all(isinstance(m, Mask) for m in masks)
        assert len({int(m.mask.sum()) for m in masks}) == 1 and masks[0].mask.sum() > 5000  # the whole sprite
        assert find_anchors(sequence) == ([0], [length - 1])
    with pytest.raises(ValueError, match="already holds sequences"):
        write_replica(plan_stack("vot2020/shortterm"), str(root), count=1, frames=6)


def test_headline_names_the_measures_of_each_stack_family():
    def experiment(*types):
        return {"parameters": {"analyses": [{"type": t, "name": None} for t in types]},
                "results": [[r] for r in RESULTS[:len(types)]]}

    RESULTS = [[0.4], [[0, 0.9, 0.8]], [0.7, 0.95, [0.95, 0.7]]]
    analysis = {"trackers": {"LoRAT": {}}, "results": {
        "baseline": experiment("vot.analysis.multistart.EAOScore", "vot.analysis.multistart.EAOCurve",
                               "vot.analysis.multistart.AverageAccuracyRobustness"),
        "supervised": experiment("vot.analysis.supervised.EAOScore", "vot.analysis.supervised.EAOCurve",
                                 "vot.analysis.supervised.AverageAccuracyRobustness")}}
    rows = headline(analysis)
    assert rows[0] == {"tracker": "LoRAT", "experiment": "baseline", "eao": 0.4, "accuracy": 0.7, "robustness": 0.95}
    assert rows[1] == {"tracker": "LoRAT", "experiment": "supervised", "eao": 0.4, "accuracy": 0.7, "failures": 0.95}
    table = format_headline(rows, {"LoRAT": "LoRAT-tiny"})
    assert "experiment baseline" in table and "Failures" in table and "LoRAT-tiny       0.400" in table


@pytest.mark.slow  # workspace_setup.sh
def test_workspace_setup_refuses_a_stack_for_point_trackers_before_making_the_workspace(tmp_path):
    script = os.path.join(ROOT, "workspace_setup.sh")
    weights = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
    workspace = tmp_path / "ws"
    result = subprocess.run([script, "--python", sys.executable, "--stack", "vots2026/point", "--weights", weights,
                             "--workspace", str(workspace)], capture_output=True, text=True)
    assert result.returncode == 2 and "needs a point tracker" in result.stderr
    assert not workspace.exists()
