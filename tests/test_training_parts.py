"""Training pieces on hand-made cases: labels, loss, optimiser groups, schedule, sampling, flags."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from training.cli import train_config_from_args
from training.config import DataSource, TrainConfig, config_from_dict
from training.data.pairs import PairDataset, StepBatchSampler
from training.data.registry import build_dataset
from training.data.sampler import EpochPicker, sample_frames
from training.data.sequence import ListDataset, Sequence
from training.data.transform import JitterConfig, PairTransform, TransformConfig, jitter_params
from training.loss import box_iou_giou, lorat_loss
from training.optim import WarmupCosine, param_groups
from vot_lorat.model.config import get_config
from vot_lorat.options import add_flags
from vot_lorat.tracking import box as bx
from vot_lorat.weights.loading import create_model


class _Seq(Sequence):
    def __init__(self, boxes, image=None):
        self.name = "s"
        self.boxes = np.asarray(boxes, dtype=np.float64)
        self.image = image

    def frame(self, index):
        return self.image


def test_positives_are_exactly_the_cells_the_box_covers():
    mc = get_config("tiny")  # 112 px search, 8x8 cells of 14 px
    cfg = TransformConfig(JitterConfig(scale=0.0, translation=0.0))
    cfg = TransformConfig(cfg.jitter, type(cfg.augment)(flip_prob=0.0, brightness=0, contrast=0, saturation=0,
                                                          deit3=False))
    image = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    box = np.array([121.0, 83.0, 153.0, 109.0])  # edges away from cell borders: float32 rounding cannot matter
    sample = PairTransform(mc, cfg)(np.random.default_rng(1), image, box, image, box)
    tb = sample["target_box"].numpy() * 112
    r = bx.rasterize(tb / 14)
    expect = np.zeros((8, 8), bool)
    expect[r[1]:r[3], r[0]:r[2]] = True
    assert np.array_equal(sample["positives"].numpy(), expect)
    assert 4 <= expect.sum() <= 9 and expect[3:5, 3:5].all()
    # no jitter: the box is centred in the crop, at the SiamFC scale
    scale = 112 / np.sqrt((32 + 3 * 29) * (26 + 3 * 29))
    assert np.allclose(bx.centre(tb), [56, 56], atol=0.6)
    assert np.allclose(bx.size(tb), [32 * scale, 26 * scale], atol=1.0)
    assert sample["z_feat_mask"].shape == (4, 4) and sample["z_feat_mask"].dtype == torch.int64


def test_jitter_keeps_box_reachable_and_statistics_match_the_formula():
    rng = np.random.default_rng(0)
    box = np.array([100.0, 100.0, 140.0, 120.0])
    cfg = JitterConfig()
    base = jitter_params(np.random.default_rng(5), box, 4.0, 224, JitterConfig(scale=0.0, translation=0.0))
    logs, shifts = [], []
    for _ in range(4000):
        p = jitter_params(rng, box, 4.0, 224, cfg)
        logs.append(np.log(base.scale / p.scale))
        centre = bx.centre(p.apply(box))
        w_s = 40 * p.scale[0] + 20 * p.scale[1]
        shifts.append((centre - 112) / (1.5 * w_s))
    logs, shifts = np.array(logs), np.array(shifts)
    assert abs(logs.std() - 0.25) < 0.02 and np.corrcoef(logs[:, 0], logs[:, 1])[0, 1] < 0.1  # per-axis N(0, .25)
    assert shifts.min() >= -1.0001 and shifts.max() <= 1.0001 and abs(shifts.std() - 1 / math.sqrt(3)) < 0.03


def test_loss_hand_computed_cases():
    g = 4
    out = {"score_map": torch.zeros(1, g, g), "boxes": torch.zeros(1, g, g, 4)}
    positives = torch.zeros(1, g, g, dtype=torch.bool)
    positives[0, 1, 2] = True
    target = torch.tensor([[0.25, 0.25, 0.75, 0.75]])
    out["boxes"][0, 1, 2] = target[0]
    losses = lorat_loss(out, positives, target)
    # perfect box: GIoU loss 0; logits 0 everywhere: BCE = log 2 per cell, target 1 or 0 alike
    assert losses["giou"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["cls"].item() == pytest.approx(g * g * math.log(2), rel=1e-6)
    # disjoint box: IoU 0 (classification target 0), GIoU = -(C - U) / C
    out["boxes"][0, 1, 2] = torch.tensor([0.0, 0.0, 0.25, 0.25])
    losses = lorat_loss(out, positives, target)
    union, enclose = 0.25 + 0.0625, 0.75 * 0.75
    assert losses["giou"].item() == pytest.approx(1 + (enclose - union) / enclose, rel=1e-5)
    # half-overlapping box: target IoU 1/3 at the positive cell
    out["boxes"][0, 1, 2] = torch.tensor([0.5, 0.25, 1.0, 0.75])
    out["score_map"][0, 1, 2] = 2.0
    losses = lorat_loss(out, positives, target)
    p = torch.sigmoid(torch.tensor(2.0)).item()
    bce_pos = -(1 / 3 * math.log(p) + 2 / 3 * math.log(1 - p))
    assert losses["cls"].item() == pytest.approx((g * g - 1) * math.log(2) + bce_pos, rel=1e-5)


def test_loss_normalises_by_positive_count_and_ignores_negatives_for_regression():
    out = {"score_map": torch.zeros(2, 4, 4), "boxes": torch.rand(2, 4, 4, 4)}
    positives = torch.zeros(2, 4, 4, dtype=torch.bool)
    positives[0, :2, :2] = True  # 4 positives
    target = torch.tensor([[0.1, 0.1, 0.6, 0.6], [0.2, 0.2, 0.3, 0.3]])
    losses = lorat_loss(out, positives, target)
    _, giou = box_iou_giou(out["boxes"][0, :2, :2].reshape(-1, 4), target[:1].expand(4, 4))
    assert losses["giou"].item() == pytest.approx((1 - giou).sum().item() / 4, rel=1e-5)


def test_weight_decay_groups_follow_the_reference():
    model = create_model(get_config("tiny"))
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert "token_type_embed" in no_decay_names  # name matches "embed"
    assert "head.cls_mlp.layers.2.weight" in no_decay_names  # [1, D] squeezes to 1-D
    assert "head.cls_mlp.layers.0.bias" in no_decay_names
    assert "head.reg_mlp.layers.2.weight" in decay_names and "blocks.0.attn.qkv.q.lora.A" in decay_names
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0


def test_warmup_cosine_schedule():
    s = WarmupCosine(1e-4, total_steps=1000, warmup_steps=100)
    assert s(0) == pytest.approx(1e-7)
    assert s(50) == pytest.approx(1e-7 + (1e-4 - 1e-7) / 2)
    assert s(100) == pytest.approx(1e-4)
    assert s(600) == pytest.approx(1e-6 + 0.5 * (1e-4 - 1e-6))
    # warmup_prefix: the cosine spans total_steps after the warmup, so the last step stays above min_lr
    assert s(1000) == pytest.approx(1e-6 + 0.5 * (1e-4 - 1e-6) * (1 + math.cos(math.pi * 0.9)))


def test_each_step_runs_one_schedule_value_behind_as_the_official_runner():
    """The paper's schedule (170 epochs of 1,024 steps, 2 warmup epochs): the values the official trainer's
    optimiser steps saw (1e-7, 1e-7, 1.48779e-7 for steps 0, 1, 2; 9.99512e-5 at the end of the warmup;
    1.033872e-6 at the last step)."""
    s = WarmupCosine(1e-4, total_steps=170 * 1024, warmup_steps=2 * 1024)
    assert s.lr_at_step(0) == s.lr_at_step(1) == 1e-7
    assert s.lr_at_step(2) == pytest.approx(1.48779e-7, rel=1e-6)
    assert s.lr_at_step(2048) == pytest.approx(9.99512e-5, rel=1e-6)  # the schedule's own value there is 1e-4
    assert s(2048) == pytest.approx(1e-4)
    middle = 1e-6 + 0.5 * (1e-4 - 1e-6) * (1 + math.cos(math.pi * (87040 - 1 - 2048) / 174080))
    assert s.lr_at_step(87040) == pytest.approx(middle, rel=1e-12)
    assert s.lr_at_step(174079) == pytest.approx(1.033872e-6, rel=1e-6)
    assert s(174079) == pytest.approx(1.033839e-6, rel=1e-6)  # what the step would run at without the delay


def test_epoch_picker_shares_by_weight_and_covers_sequences():
    a = ListDataset("a", [_Seq([[0, 0, 1, 1]])] * 10)
    b = ListDataset("b", [_Seq([[0, 0, 1, 1]])] * 3)
    picker = EpochPicker([a, b], [1, 1], 100, seed=0)
    picks = picker.picks(0)
    assert (picks[:, 0] == 0).sum() == 50 and (picks[:, 0] == 1).sum() == 50
    assert set(picks[picks[:, 0] == 0, 1]) == set(range(10))
    assert np.bincount(picks[picks[:, 0] == 0, 1]).tolist() == [5] * 10  # back-to-back permutations
    assert not np.array_equal(picker.picks(0), EpochPicker([a, b], [1, 1], 100, seed=0).picks(1))


def test_pair_frames_within_gap_and_visible():
    boxes = np.tile([[10.0, 10.0, 20.0, 20.0]], (400, 1))
    boxes[150:160] = np.nan
    seq = _Seq(boxes)
    rng = np.random.default_rng(0)
    for _ in range(500):
        z, x = sample_frames(rng, seq, video=True, max_gap=100)
        assert abs(z - x) <= 100 and z != x
        assert not (150 <= z < 160 or 150 <= x < 160)
    assert sample_frames(rng, seq, video=False) is not None
    z, x = sample_frames(rng, seq, video=False)
    assert z == x
    assert sample_frames(rng, _Seq(np.full((5, 4), np.nan)), video=True) is None


def test_samples_are_a_function_of_their_index():
    mc = get_config("tiny")
    synth = build_dataset(DataSource.parse("synthetic,sequences=50,frames=40"))
    make = lambda: PairDataset([synth], [1.0], PairTransform(mc), 64, seed=3)
    a, b = make(), make()
    for i in (5, 70):
        sa, sb = a[i], b[i]
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(a[5]["x"], a[6]["x"])


def test_step_batch_sampler_splits_ranks_without_overlap():
    r0 = list(StepBatchSampler(2, 4, 3, rank=0, world=2))
    r1 = list(StepBatchSampler(2, 4, 3, rank=1, world=2))
    assert r0 == [[12, 13, 14], [18, 19, 20]] and r1 == [[15, 16, 17], [21, 22, 23]]


def test_config_parsing():
    src = DataSource.parse("got10k:/data/GOT-10k@2.5,split=vot_train,split_file=/x.txt")
    assert (src.kind, src.path, src.weight) == ("got10k", "/data/GOT-10k", 2.5)
    assert src.options == {"split": "vot_train", "split_file": "/x.txt"}
    cfg = config_from_dict({"variant": "L-224", "data": ["lasot:/l"], "jitter": {"translation": 1.0}})
    assert cfg.variant == "L-224" and cfg.data[0].path == "/l" and cfg.jitter.translation == 1.0
    assert cfg.epochs == 170 and cfg.batch_size == 128 and cfg.lr == 1e-4  # the paper's defaults
    with pytest.raises(ValueError, match="unknown training option"):
        config_from_dict({"learning_rate": 1})


def test_train_flags_come_from_the_config_fields_and_override_the_yaml_file(tmp_path):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_flags(parser, TrainConfig)
    assert train_config_from_args(parser.parse_args([])) == TrainConfig()  # no flag: the dataclass defaults
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("epochs: 3\nlr: 0.5\njitter: {scale: 0.5, translation: 2.0}\n")
    cfg = train_config_from_args(parser.parse_args([
        "--config", str(yaml_file), "--lr", "0.01", "--warmup-lr", "3e-7", "--translation-jitter", "1.0",
        "--no-eval", "--output", "runs/x", "--data", "synthetic", "--data", "lasot:/l", "--compile",
        "--blur-radius-augment", "0.2", "1.0", "--no-deit3-augment", "--lora-rank", "8"]))
    assert (cfg.epochs, cfg.lr, cfg.warmup_lr, cfg.lora_rank) == (3, 0.01, 3e-7, 8)  # the file, then the flags
    assert cfg.jitter == JitterConfig(scale=0.5, translation=1.0)  # nested fields merge with the file's
    assert not cfg.evaluate_at_end and cfg.compile and cfg.output_dir == "runs/x"
    assert [s.kind for s in cfg.data] == ["synthetic", "lasot"]
    assert cfg.augment.blur_radius == (0.2, 1.0) and not cfg.augment.deit3
    assert "--warmup-lr X" in parser.format_help() and "(default: 1e-07)" in parser.format_help()


def test_fine_tuning_builds_adapters_at_the_init_checkpoints_rank(tmp_path):
    from training.trainer import build_training_model
    from vot_lorat.weights.checkpoint import read_checkpoint, save_checkpoint
    from vot_lorat.weights.loading import load_checkpoint

    source = create_model(get_config("tiny").replace(lora_rank=4))
    path = str(tmp_path / "rank4.safetensors")
    save_checkpoint(source, path)
    init = read_checkpoint(path)
    model = build_training_model(TrainConfig(variant="tiny"), init)
    load_checkpoint(model, init)  # would raise on a rank mismatch
    assert model.blocks[0].attn.qkv.q.lora.A.shape[0] == 4
    assert build_training_model(TrainConfig(variant="tiny")).blocks[0].attn.qkv.q.lora.A.shape[0] == 8
