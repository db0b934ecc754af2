"""The parts of the paper's recipe around the training loop: periodic validation, torch.compile where the
reference compiles, LoRA only on a pretrained backbone, dataset paths with an ``@``."""
from __future__ import annotations

import json
import os

import pytest
import torch

from training.cli import main as cli_main
from training.config import DataSource, TrainConfig
from training.optim import WarmupCosine
from training.trainer import compile_enabled, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")


def test_dataset_paths_may_contain_at_signs():
    src = DataSource.parse("lasot:/data/LaSOT@v2/LaSOT,split=test")  # an @ followed by no number: the path's
    assert (src.kind, src.path, src.weight, src.options) == ("lasot", "/data/LaSOT@v2/LaSOT", 1.0, {"split": "test"})
    src = DataSource.parse("lasot:/data/LaSOT@v2/LaSOT@0.5")
    assert (src.path, src.weight) == ("/data/LaSOT@v2/LaSOT", 0.5)
    assert DataSource.parse("synthetic@2").weight == 2.0 and DataSource.parse("synthetic@2").path is None
    src = DataSource.parse("custom:/mnt/user@host/seqs@1.5e0,split=all")
    assert (src.path, src.weight) == ("/mnt/user@host/seqs", 1.5)


def test_compile_is_on_by_default_on_gpus_only():
    """The reference compiles the model for training (on Linux GPUs); on a CPU it costs more than it gains."""
    assert compile_enabled(TrainConfig(), torch.device("cuda", 0)) is True
    assert compile_enabled(TrainConfig(), torch.device("cpu")) is False
    assert compile_enabled(TrainConfig(compile=False), torch.device("cuda", 0)) is False
    assert compile_enabled(TrainConfig(compile=True), torch.device("cpu")) is True


TINY_LORA = ["--variant", "tiny", "--data", "synthetic,sequences=20,frames=30", "--epochs", "1",
             "--samples-per-epoch", "16", "--batch-size", "8", "--workers", "0", "--threads", "1", "--no-eval"]


def test_lora_run_without_backbone_is_refused(tmp_path, capsys):
    assert cli_main(["train", *TINY_LORA, "--output", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "--backbone" in err and "--full-finetune" in err and "--random-backbone" not in err  # a test switch
    assert not (tmp_path / "refused" / "model.safetensors").exists()
    # tests may train adapters on a random ViT, when they say so; users' --help does not offer it
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    assert "--random-backbone" not in capsys.readouterr().out
    assert cli_main(["train", *TINY_LORA, "--random-backbone", "--output", str(tmp_path / "random")]) == 0
    assert (tmp_path / "random" / "model.safetensors").is_file()


def test_validation_every_n_epochs_is_logged(tmp_path):
    """A tracking evaluation on the validation data after epochs 2 and 3 (every 2 epochs and after the last),
    each in its own folder and as a row of log.jsonl."""
    cfg = TrainConfig(variant="tiny", full_finetune=True, init_weights=WEIGHTS, layer_scale_init=1.0,
                      data=[DataSource.parse("synthetic,sequences=20,frames=30")], output_dir=str(tmp_path),
                      epochs=3, samples_per_epoch=16, batch_size=8, lr=1e-5, workers=0, threads=1,
                      evaluate_at_end=False, val_interval=2,
                      val_data=[DataSource.parse("synthetic,split=held_out,sequences=2,frames=12")])
    train(cfg)
    rows = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    validation = [r for r in rows if "validation" in r]
    assert [(r["step"], r["epoch"]) for r in validation] == [(4, 2), (6, 3)]
    scores = validation[-1]["validation"]["synthetic-held-out"]
    assert scores["sequences"] == 2 and 0 < scores["auc"] <= 100 and "mean_iou" in scores
    assert sorted(os.listdir(tmp_path / "val")) == ["epoch_002", "epoch_003"]
    assert (tmp_path / "val" / "epoch_003" / "synthetic-held-out" / "metrics.json").is_file()
    assert all("loss" in r for r in rows if "validation" not in r)


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_validation_interval_must_be_positive(tmp_path, bad, capsys):
    args = ["train", "--variant", "tiny", "--full-finetune", "--data", "synthetic", "--val-data", "synthetic",
            "--val-interval", bad, "--output", str(tmp_path)]
    assert cli_main(args) == 2
    assert "--val-interval" in capsys.readouterr().err


def test_logged_lr_is_one_step_behind_the_schedule_and_resume_continues_it(tmp_path):
    """Each logged step ran at ``lr_at_step`` (step 0 at the warmup start, step k at the schedule's value for
    k - 1), in a run straight through and in one stopped after 2 steps and resumed."""
    def cfg(out):
        return TrainConfig(variant="tiny", full_finetune=True, layer_scale_init=1.0,
                           data=[DataSource.parse("synthetic,sequences=20,frames=30")], output_dir=str(out),
                           epochs=1, samples_per_epoch=48, batch_size=8, lr=1e-3, warmup_epochs=0.5, workers=0,
                           threads=1, log_every=1, evaluate_at_end=False)

    def logged(out):
        return [(r["step"], r["lr"]) for r in map(json.loads, open(out / "log.jsonl"))]

    train(cfg(tmp_path / "straight"))
    train(cfg(tmp_path / "resumed"), stop_after=2)
    train(cfg(tmp_path / "resumed"), resume=True)
    schedule = WarmupCosine(1e-3, total_steps=6, warmup_steps=3)
    expected = [(step + 1, schedule.lr_at_step(step)) for step in range(6)]  # a row's step counts steps done
    assert logged(tmp_path / "straight") == expected
    assert logged(tmp_path / "resumed") == expected
    assert expected[0][1] == expected[1][1] == 1e-7 and expected[2][1] == schedule(1)
