"""Faults and odd input at run time, as the toolkit or a user produces them: every case ends with one clear
line (or a warning) and a session that goes on, never with random weights, a traceback or an erased object."""
from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import trax
from trax.client import Client
from trax.image import FileImage
from trax.server import Request

import vot_lorat
from vot_lorat.frames.reading import read_rgb
from vot_lorat.masks.box_masks import BoxMaskGenerator
from vot_lorat.masks.sam import SamMaskGenerator, SamOptions
from vot_lorat.toolkit.server import main
from vot_lorat.toolkit.session import TrackingSession
from vot_lorat.toolkit.settings import ServerSettings, parse_args
from vot_lorat.toolkit.trax_adapter import TraxAdapter
from vot_lorat.tracking.tracker import LoRATTracker

from official_files import meta_dinov2_state
from scenes import write_scene_frames
from tiny_models import build_tiny_sam

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
MISSING_GPU = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, on any machine


@pytest.fixture
def clean_env(monkeypatch):
    """No LORAT_* or TRAX variables from the shell that runs the tests."""
    for name in list(os.environ):
        if name.startswith("LORAT_") or name == "TRAX":
            monkeypatch.delenv(name)
    return monkeypatch


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("LoRAT error: ")
    return lines[0]


# --- start-up: refuse what cannot be right, in one line -----------------------------------------------------


@pytest.mark.parametrize("env", [{"LORAT_VARIANT": "tiny"}, {"LORAT_VARIANT": "tiny", "LORAT_BACKBONE": "BACKBONE"},
                                 {}])
def test_no_lorat_weights_refuses_to_start(clean_env, capsys, tmp_path, env):
    backbone = tmp_path / "dinov2_vits14_pretrain.pth"
    backbone.write_bytes(b"never read")
    for key, value in env.items():
        clean_env.setenv(key, str(backbone) if value == "BACKBONE" else value)
    assert main([]) == 1
    line = _one_error_line(capsys)
    variant = env.get("LORAT_VARIANT")
    assert "no LoRAT weights" in line and "LORAT_WEIGHTS" in line and "random" in line
    assert variant is None or f"no LoRAT weights for {variant}" in line


def test_random_weights_are_no_setting_of_the_tracker(clean_env, capsys):
    from vot_lorat.toolkit.server import build_tracker

    with pytest.raises(ValueError, match="no LoRAT weights"):
        build_tracker(ServerSettings(variant="tiny", device="cpu"), torch.device("cpu"))
    with pytest.raises(SystemExit):
        parse_args(["--variant", "tiny", "--random-weights"])
    assert "unrecognized arguments: --random-weights" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cuda", MISSING_GPU, "gpu0"])
def test_a_device_that_is_not_there_is_one_line(clean_env, capsys, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    clean_env.setenv("LORAT_VARIANT", "tiny")
    clean_env.setenv("LORAT_WEIGHTS", WEIGHTS)
    clean_env.setenv("LORAT_DEVICE", device)
    assert main([]) == 1
    line = _one_error_line(capsys)
    assert repr(device) in line and ("CUDA" in line or "CPU-only" in line)


def test_the_start_up_error_is_the_toolkits_quit_reason(tmp_path):
    """Under the toolkit (TRAX=1) the line goes over TraX, which is what ``vot evaluate`` prints."""
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((32, 32, 3), np.uint8))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAT_")}
    env.update(TRAX="1", PYTHONPATH=ROOT, LORAT_VARIANT="tiny", LORAT_WEIGHTS=WEIGHTS, LORAT_DEVICE=MISSING_GPU)
    proc = subprocess.Popen([sys.executable, "-m", "vot_lorat"], cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        client = Client(stream=(proc.stdin.fileno(), proc.stdout.fileno()), log=lambda text: None)
        with pytest.raises(trax.TraxException) as failure:
            client.initialize({"color": FileImage.create(str(frame))}, [(trax.Rectangle.create(1, 1, 8, 8), {})], {})
        assert f"LoRAT error: device '{MISSING_GPU}'" in str(failure.value)
    finally:
        proc.stdin.close()
        stderr = proc.stderr.read().decode()
        proc.wait(timeout=60)
    assert [line for line in stderr.splitlines() if line.strip()] == [str(failure.value).split(": ", 1)[1]]


@pytest.mark.parametrize("name,value", [("LORAT_ABSENCE_THRESHOLD", "nan"), ("LORAT_ABSENCE_THRESHOLD", "inf"),
                                        ("LORAT_ABSENCE_THRESHOLD", "1.5"), ("LORAT_ABSENCE_THRESHOLD", "-0.1"),
                                        ("LORAT_THREADS", "-3")])
def test_numbers_out_of_range_are_refused(clean_env, capsys, name, value):
    with pytest.raises(ValueError, match=f"{name}={value!r}"):
        ServerSettings.from_env({name: value})
    clean_env.setenv(name, value)
    clean_env.setenv("LORAT_VARIANT", "static")
    assert main([]) == 1
    assert name in _one_error_line(capsys)
    flag = "--" + name[len("LORAT_"):].lower().replace("_", "-")
    with pytest.raises(ValueError, match=name):
        parse_args([flag, value])


def _dinov2_file(path, variant: str) -> str:
    spec = vot_lorat.get_config(variant).backbone
    torch.save(meta_dinov2_state(spec.embed_dim, spec.depth, spec.mlp == "swiglu", spec.mlp_hidden), path)
    return str(path)


def test_swapped_backbone_and_weights_are_named(tmp_path, capsys, clean_env):
    backbone = _dinov2_file(tmp_path / "dinov2_tiny_pretrain.pth", "tiny")
    lora = vot_lorat.create_model(vot_lorat.get_config("tiny"))
    vot_lorat.save_checkpoint(lora, str(tmp_path / "model.safetensors"))
    assert main(["--variant", "tiny", "--backbone", str(tmp_path / "model.safetensors"), "--weights", backbone]) == 1
    line = _one_error_line(capsys)
    assert "swapped" in line and "model.safetensors" in line and "dinov2_tiny_pretrain.pth" in line


# --- a session: odd initial regions, frames that change, ties between objects --------------------------------


@pytest.fixture(scope="module")
def model():
    return vot_lorat.load_model("tiny", None, WEIGHTS)


@pytest.fixture(scope="module")
def scene_frames(tmp_path_factory):
    return write_scene_frames(tmp_path_factory.mktemp("frames"), 4242, 5, targets=1)


def _glue(model, masks=None) -> TraxAdapter:
    return TraxAdapter(TrackingSession(LoRATTracker(model), masks), masks is not None)


def _request(kind, path, objects=None):
    return Request(kind, {"color": FileImage.create(path)}, objects, None)


def _rect(x, y, w, h):
    return trax.Rectangle.create(x, y, w, h), {}


def _target(scene):
    x1, y1, x2, y2 = scene.boxes(0)[0]
    return float(x1), float(y1), float(x2 - x1), float(y2 - y1)


def test_initial_box_outside_the_frame_is_absent_with_one_log_line(model, scene_frames, caplog):
    scene, paths = scene_frames
    glue = _glue(model)
    outside = (scene.width + 50, 10, 20, 20)
    with caplog.at_level(logging.INFO, logger="vot_lorat"):
        glue.initialize(_request(trax.TraxStatus.INITIALIZE, paths[0], [_rect(*outside), _rect(*_target(scene))]))
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "outside" in errors[0].getMessage() and errors[0].exc_info is None
    assert f"{scene.width}x{scene.height}" in errors[0].getMessage()
    for path in paths[1:3]:
        absent, tracked = glue.frame(_request(trax.TraxStatus.FRAME, path))
        assert absent[0].bounds() == (0, 0, 0, 0) and tracked[0].bounds()[2] > 0


@pytest.mark.parametrize("bad", [(math.nan, 10, 20, 20), (10, 10, math.inf, 20), (10, 10, 20, -math.inf)])
def test_non_finite_initial_box_is_one_log_line(model, scene_frames, caplog, bad):
    scene, paths = scene_frames
    glue = _glue(model)
    with caplog.at_level(logging.INFO, logger="vot_lorat"):
        glue.initialize(_request(trax.TraxStatus.INITIALIZE, paths[0], [_rect(*bad), _rect(*_target(scene))]))
        absent, tracked = glue.frame(_request(trax.TraxStatus.FRAME, paths[1]))
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].exc_info is None and "not finite" in errors[0].getMessage()
    assert absent[0].bounds() == (0, 0, 0, 0) and tracked[0].bounds()[2] > 0


def test_frame_that_shrinks_moves_the_state_into_it(model, scene_frames, tmp_path, caplog):
    scene, paths = scene_frames
    glue = _glue(model)
    w, h = scene.width, scene.height
    corner = (w - 60, h - 60, 50, 50)  # in the bottom-right corner: outside the smaller frame
    glue.initialize(_request(trax.TraxStatus.INITIALIZE, paths[0], [_rect(*corner)]))
    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), cv2.imread(paths[1])[: h // 2, : w // 2])
    with caplog.at_level(logging.INFO, logger="vot_lorat"):
        answers = [glue.frame(_request(trax.TraxStatus.FRAME, str(small)))[0][0].bounds() for _ in range(3)]
    assert sum("frame size changed" in r.getMessage() for r in caplog.records) == 1
    for x, y, bw, bh in answers:
        assert bw > 0 and bh > 0 and x + bw <= w // 2 and y + bh <= h // 2
    # and back to the full size: tracking goes on without another state move
    assert glue.frame(_request(trax.TraxStatus.FRAME, paths[2]))[0][0].bounds()[2] > 0


def test_tiny_first_frame_and_truncated_jpeg_warn(model, scene_frames, tmp_path, caplog):
    scene, paths = scene_frames
    one = tmp_path / "one.png"
    cv2.imwrite(str(one), np.zeros((1, 1, 3), np.uint8))
    glue = _glue(model)
    with caplog.at_level(logging.WARNING):
        glue.initialize(_request(trax.TraxStatus.INITIALIZE, str(one), [_rect(0, 0, 1, 1)]))
    assert "1x1" in caplog.text
    caplog.clear()
    data = open(paths[1], "rb").read()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        image = read_rgb(str(truncated))
    assert image.shape == (scene.height, scene.width, 3)  # what OpenCV decoded is still used
    assert "truncated" in caplog.text and "truncated.jpg" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        read_rgb(paths[1])
    assert caplog.text == ""


def _two_identical(scene, paths, glue):
    x, y, w, h = (int(round(v)) for v in _target(scene))
    mask = np.ones((h, w), np.uint8)
    objects = [(trax.Mask.create(mask, x, y), {}), (trax.Mask.create(mask, x, y), {})]
    glue.initialize(_request(trax.TraxStatus.INITIALIZE, paths[0], objects))
    return [glue.frame(_request(trax.TraxStatus.FRAME, p)) for p in paths[1:3]]


@pytest.mark.parametrize("masks", ["box", "sam"])
def test_identical_objects_split_their_region_instead_of_erasing_one(model, scene_frames, masks):
    scene, paths = scene_frames
    generator = BoxMaskGenerator() if masks == "box" else SamMaskGenerator(build_tiny_sam(), SamOptions(mode="frame"))
    for reply in _two_identical(scene, paths, _glue(model, generator)):
        full = [region.array(True) for region, _ in reply]
        shape = (max(m.shape[0] for m in full), max(m.shape[1] for m in full))
        padded = [np.pad(m, ((0, shape[0] - m.shape[0]), (0, shape[1] - m.shape[1]))) > 0 for m in full]
        assert all(m.sum() > 0 for m in padded)  # neither object is erased
        assert not (padded[0] & padded[1]).any()  # and the masks stay disjoint, as VOTS requires
        if masks == "box":
            sizes = sorted(m.sum() for m in padded)
            assert sizes[0] >= 0.3 * sizes[1]  # the shared box split in strips, not a sliver left over


def test_the_tie_rule_on_box_masks():
    image = np.zeros((40, 40, 3), np.uint8)
    same = BoxMaskGenerator()(image, np.array([[10, 10, 30, 20]] * 3, float), np.full(3, 0.5))
    assert [tuple(np.flatnonzero(m.mask.any(axis=0))[[0, -1]]) for m in same] == [(10, 15), (16, 22), (23, 29)]
    # a box inside a more confident one is not erased either: it takes its half back
    nested = BoxMaskGenerator()(image, np.array([[0, 0, 40, 40], [10, 10, 20, 30]], float), np.array([0.9, 0.5]))
    assert nested[1].mask.sum() == 10 * 10 and not (nested[0].mask & nested[1].mask).any()


def test_help_explains_every_setting(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    text = re.sub(r", --no-[\w-]+", "", text[text.index("options:"):])  # a switch is --x, --no-x: keep --x
    for name in ServerSettings.__dataclass_fields__:
        flag = "--" + name.replace("_", "-")
        entry = text[text.index(flag + " "):]
        assert f"(env LORAT_{name.upper()}; default: " in entry.split(" --")[0], flag
    assert "g-378" in text and "tiny-g" not in text and "LORA_RANK" not in text


def test_the_variant_is_read_from_the_weights():
    from vot_lorat.weights.checkpoint import LoRATCheckpoint, infer_variant

    assert infer_variant(vot_lorat.read_checkpoint(WEIGHTS)) == "tiny"  # saved in the file
    # a released LoRA-only B file: its shapes fit B-224 and B-378, its folder name tells which
    state = {"token_type_embed": torch.zeros(3, 768), "blocks.11.attn.qkv.q.lora.A": torch.zeros(64, 768)}
    assert infer_variant(LoRATCheckpoint("/w/LoRAT-B-378/model.bin", state, "lora", 64)) == "B-378"
    with pytest.raises(ValueError, match="fit B-224, B-378; give the variant"):
        infer_variant(LoRATCheckpoint("/w/model.bin", state, "lora", 64))
