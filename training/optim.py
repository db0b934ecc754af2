"""AdamW with the official LoRAT code's weight-decay groups, and warmup + cosine per iteration."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, List

import torch
import torch.nn as nn

_NO_DECAY_NAME = re.compile(r"embed")  # token_type_embed (and pos_embed when fully fine-tuned)


def _in_norm_layer(model: nn.Module, name: str) -> bool:
    owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    return isinstance(owner, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d))


def param_groups(model: nn.Module, weight_decay: float) -> List[Dict]:
    """No decay for parameters that squeeze to <= 1-D (this includes the [1, D] last score layer), for norm
    layers and for names containing ``embed``; ``weight_decay`` for the rest."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.squeeze().ndim <= 1 or _in_norm_layer(model, name) or _NO_DECAY_NAME.search(name):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-8)


@dataclass(frozen=True)
class WarmupCosine:
    """timm CosineLRScheduler as the reference sets it: linear warmup from ``warmup_lr``, then cosine over
    ``total_steps`` counted after the warmup (warmup_prefix), so the last lr stays a little above ``min_lr``."""

    base_lr: float
    total_steps: int
    warmup_steps: int
    min_lr: float = 1e-6
    warmup_lr: float = 1e-7

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr + (self.base_lr - self.warmup_lr) * step / self.warmup_steps
        t = min(step - self.warmup_steps, self.total_steps)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t / self.total_steps))

    def lr_at_step(self, step: int) -> float:
        """The lr that optimiser step ``step`` (0-based) runs at: one step behind the schedule, as in the
        official runner, which updates the scheduler after each optimiser step and whose scheduler sets
        ``warmup_lr`` when it is built. So steps 0 and 1 run at ``warmup_lr`` and step k at ``self(k - 1)``;
        the value depends on ``step`` alone, so a resumed run continues at the same values."""
        return self(max(step - 1, 0))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
