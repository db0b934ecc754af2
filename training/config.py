"""Training configuration as plain data. The defaults are the LoRAT paper's recipe (Lin et al., ECCV 2024)."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

from vot_lorat.model.config import list_variants
from vot_lorat.options import option

from .data.augment import AugmentConfig
from .data.transform import JitterConfig, TransformConfig

_WEIGHT = re.compile(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass
class DataSource:
    """One dataset: ``kind`` (lasot, got10k, trackingnet, coco, custom, synthetic), its root, its sampling
    weight, and reader options (for example ``split``)."""

    kind: str
    path: Optional[str] = None
    weight: float = 1.0  # LaSOT, GOT-10k, TrackingNet, COCO weighted 1 each: 25 % each, as the paper trains
    options: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "DataSource":
        """``KIND[:PATH][@WEIGHT][,key=value...]``, e.g. ``got10k:/data/GOT-10k@1,split=vot_train``. The weight
        is the number after the last ``@``; an ``@`` followed by anything else is part of the path (a path that
        itself ends in ``@<number>`` needs an explicit weight: ``lasot:/data/x@2@1``)."""
        head, *opts = text.split(",")
        options = {}
        for opt in opts:
            if "=" not in opt:
                raise ValueError(f"bad dataset option {opt!r} in {text!r}: expected key=value")
            k, v = opt.split("=", 1)
            options[k.strip()] = v.strip()
        weight = 1.0
        base, at, w = head.rpartition("@")
        if at and _WEIGHT.fullmatch(w.strip()):  # any other @ belongs to the path
            head, weight = base, float(w)
        kind, _, path = head.partition(":")
        return cls(kind.strip().lower(), path or None, weight, options)


@dataclass
class TrainConfig:
    """A training run; the defaults are the LoRAT paper's recipe. Every field is a ``python -m training train``
    flag (see training/flags.py) and a key of the ``--config`` YAML file."""

    variant: str = option("B-224", f"LoRAT variant: {', '.join(list_variants())}")
    backbone: Optional[str] = option(None, "DINOv2 weights (Meta .pth or timm .safetensors); none: a random ViT",
                                     metavar="PATH")
    init_weights: Optional[str] = option(None, "LoRAT checkpoint to fine-tune from (any layout load_model reads); "
                                               "none: fresh adapters and head", metavar="PATH")
    data: List[DataSource] = option(factory=list, metavar="KIND[:PATH][@W][,k=v]", help=(
        "training dataset, repeatable: lasot:/d/LaSOT  got10k:/d/GOT-10k,split=vot_train  "
        "trackingnet:/d/TrackingNet  coco:/d/COCO  custom:/d/mine  synthetic"))
    eval_data: List[DataSource] = option(factory=list, metavar="KIND[:PATH][,k=v]", help=(
        "dataset for the one-pass evaluation at the end, repeatable (e.g. lasot:/d/LaSOT,split=test)"))
    output_dir: str = option("runs/lorat", "run folder (checkpoints, log.jsonl, eval/)", flag="--output",
                             metavar="DIR")
    # the paper's schedule: 170 epochs of 131,072 pairs, global batch 128, AdamW lr 1e-4, weight decay 0.1,
    # 2 warmup epochs, then cosine
    epochs: int = option(170, "training epochs")
    samples_per_epoch: int = option(131_072, "template/search pairs per epoch")
    batch_size: int = option(128, "global batch: over all ranks and accumulation steps")
    accum_steps: int = option(1, "micro-batches accumulated per optimiser step")
    lr: float = option(1e-4, "AdamW learning rate after the warmup")
    weight_decay: float = option(0.1, "AdamW weight decay (none for norms, biases, 1-D weights and embeddings)")
    warmup_epochs: float = option(2.0, "linear warmup from --warmup-lr, in epochs")
    min_lr: float = option(1e-6, "the cosine schedule's floor")  # the official code's lr_min
    warmup_lr: float = option(1e-7, "learning rate at step 0")  # the official code's warmup_lr
    grad_clip: float = option(1.0, "gradient norm clipping")  # the official code's max norm
    precision: str = option("auto", "auto (fp16 autocast + GradScaler on CUDA, as the paper trains; fp32 on the "
                                    "CPU), fp32, fp16 or bf16")
    compile: Optional[bool] = option(None, "torch.compile the model; default: on CUDA, as the paper trains, off on "
                                           "the CPU, where it costs more than it gains")
    lora_rank: Optional[int] = option(None, "LoRA rank; none: the variant's (64 for the paper's variants)")
    lora_alpha: Optional[float] = option(None, "LoRA alpha; none: the variant's (64 for the paper's variants)")
    lora_dropout: float = option(0.0, "dropout on the LoRA input")
    full_finetune: bool = option(False, "train every weight without LoRA (for a ViT without pretrained weights)")
    random_backbone: bool = option(False, "allow LoRA on a random ViT (tests and speed benchmarks: the random "
                                          "weights are not saved, so the result cannot be evaluated later)",
                                   hidden=True)
    layer_scale_init: float = option(1e-5, "LayerScale gamma of a randomly initialised ViT (DINOv2's is 1e-5)")
    seed: int = option(42, "seed of the model's initialisation and of the sample stream")  # the official default
    device: str = option("auto", "auto (cuda when available; under torchrun this rank's GPU), cpu, cuda or cuda:N")
    workers: int = option(4, "data loader processes per rank")
    threads: int = option(1, "torch threads of each training process on the CPU (the data workers use one each)")
    checkpoint_interval: int = option(10, "checkpoint every N epochs, and after the last step")  # the official code's
    checkpoint_every_steps: int = option(0, "also checkpoint every N optimiser steps when > 0")
    keep_checkpoints: int = option(5, "checkpoints kept, newest first")  # the official code keeps 5
    log_every: int = option(10, "log.jsonl row every N optimiser steps")
    max_gap: int = option(100, "search frame within +-N frames of the template")  # the official code's max_gaps
    eval_sequences: int = option(0, "at most N evaluation sequences per dataset (0: all)")
    val_data: List[DataSource] = option(factory=list, metavar="KIND[:PATH][,k=v]", help=(
        "dataset for the tracking evaluation every --val-interval epochs and after the last, repeatable "
        "(the paper validates on got10k:/d/GOT-10k,split=val)"))
    val_interval: int = option(10, "validate every N epochs")  # the official code: GOT-10k val every 10 epochs
    val_sequences: int = option(0, "at most N validation sequences per dataset (0: all)")
    evaluate_at_end: bool = option(True, "one-pass evaluation on --eval-data after the last step", flag="--eval")
    jitter: JitterConfig = option(factory=JitterConfig)
    augment: AugmentConfig = option(factory=AugmentConfig)

    @property
    def transform(self) -> TransformConfig:
        return TransformConfig(self.jitter, self.augment)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, data: Dict[str, Any]):
    kwargs = {}
    names = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        key = key.replace("-", "_")
        if key not in names:
            raise ValueError(f"unknown training option {key!r}; known: {', '.join(names)}")
        if key in ("data", "eval_data", "val_data"):
            value = [DataSource.parse(v) if isinstance(v, str) else DataSource(**v) for v in value]
        elif key == "jitter":
            value = JitterConfig(**value)
        elif key == "augment":
            value = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
        kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(data: Dict[str, Any]) -> TrainConfig:
    return _build(TrainConfig, data)


def load_yaml(path: str) -> Dict[str, Any]:
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of training options")
    return data
