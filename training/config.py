"""Training configuration as plain data. Defaults are the paper's recipe (lorat_reference 3)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

from .data.augment import AugmentConfig
from .data.transform import JitterConfig, TransformConfig


@dataclass
class DataSource:
    """One dataset: ``kind`` (lasot, got10k, trackingnet, coco, custom, synthetic), its root, its sampling
    weight, and reader options (for example ``split``)."""

    kind: str
    path: Optional[str] = None
    weight: float = 1.0  # LaSOT, GOT-10k, TrackingNet, COCO weighted 1 each = 25 % each (reference)
    options: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "DataSource":
        """``KIND[:PATH][@WEIGHT][,key=value...]``, e.g. ``got10k:/data/GOT-10k@1,split=vot_train``."""
        head, *opts = text.split(",")
        options = {}
        for opt in opts:
            if "=" not in opt:
                raise ValueError(f"bad dataset option {opt!r} in {text!r}: expected key=value")
            k, v = opt.split("=", 1)
            options[k.strip()] = v.strip()
        weight = 1.0
        if "@" in head:
            head, w = head.rsplit("@", 1)
            weight = float(w)
        kind, _, path = head.partition(":")
        return cls(kind.strip().lower(), path or None, weight, options)


@dataclass
class TrainConfig:
    variant: str = "B-224"
    backbone: Optional[str] = None  # DINOv2 weights; None trains the ViT from random weights
    init_weights: Optional[str] = None  # a LoRAT checkpoint to fine-tune from (any layout load_model reads)
    data: List[DataSource] = field(default_factory=list)
    eval_data: List[DataSource] = field(default_factory=list)
    output_dir: str = "runs/lorat"
    epochs: int = 170  # paper / config/LoRAT/run.yaml
    samples_per_epoch: int = 131_072  # run.yaml
    batch_size: int = 128  # global batch over all ranks and accumulation steps (run.yaml)
    accum_steps: int = 1
    lr: float = 1e-4  # AdamW (run.yaml)
    weight_decay: float = 0.1
    warmup_epochs: float = 2.0  # linear warmup from 1e-7 (run.yaml)
    min_lr: float = 1e-6
    warmup_lr: float = 1e-7
    grad_clip: float = 1.0  # clip_grad_norm_ max norm (run.yaml)
    precision: str = "auto"  # auto: fp16 autocast + GradScaler on CUDA (reference), fp32 on CPU; or fp32/fp16/bf16
    compile: bool = False  # torch.compile of the model (the reference compiles; off by default here)
    lora_rank: Optional[int] = None  # None: the variant's (64 for the paper variants)
    lora_alpha: Optional[float] = None
    lora_dropout: float = 0.0
    full_finetune: bool = False  # train every weight, no LoRA (needed when there is no pretrained backbone)
    layer_scale_init: float = 1e-5  # LayerScale gamma of a randomly initialised ViT (DINOv2 uses 1e-5)
    seed: int = 42  # reference default
    device: str = "auto"
    workers: int = 4
    threads: int = 1  # torch threads of each training process on CPU (see tiny_model_training.md)
    checkpoint_interval: int = 10  # epochs (reference: every 10 epochs + last, keep 5)
    checkpoint_every_steps: int = 0  # also every N optimiser steps when > 0
    keep_checkpoints: int = 5
    log_every: int = 10
    max_gap: int = 100  # search frame within +-100 frames of the template (reference)
    eval_sequences: int = 0  # cap on evaluation sequences per dataset (0: all)
    evaluate_at_end: bool = True
    jitter: JitterConfig = field(default_factory=JitterConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

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
        if key in ("data", "eval_data"):
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
