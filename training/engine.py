"""The optimiser steps of a run. One step takes ``accum_steps`` micro-batches (autocast forward, loss,
backward, through a GradScaler under fp16), then clips the gradient norm and steps AdamW at the scheduled lr,
one step behind the schedule as in the official runner (``WarmupCosine.lr_at_step``).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

import torch
from torch.utils.data import DataLoader

from vot_lorat.device import PRECISIONS, autocast

from .config import TrainConfig
from .distributed import Process
from .logger import RunLogger
from .loss import lorat_loss
from .optim import WarmupCosine, set_lr

Batch = Dict[str, torch.Tensor]


@dataclass
class Optimisation:
    """What an optimiser step works on."""

    net: torch.nn.Module  # the model, in DistributedDataParallel under torchrun
    forward: Callable[..., Dict[str, torch.Tensor]]  # ``net``, or ``net`` compiled
    params: List[torch.nn.Parameter]  # the trainable parameters, in the model's order (gradient clipping)
    optimizer: torch.optim.Optimizer
    scaler: Optional[torch.amp.GradScaler]
    schedule: WarmupCosine
    precision: str  # fp32, fp16 or bf16 (already resolved)


def grad_scaler(precision: str, device: torch.device) -> Optional[torch.amp.GradScaler]:
    """fp16 autocast needs loss scaling to keep small gradients; fp32 and bf16 have the range without it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}; got {precision!r}")
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def forward_backward(forward: Callable[..., Dict[str, torch.Tensor]], batch: Batch, precision: str,
                     device: torch.device, scaler: Optional[torch.amp.GradScaler],
                     accum_steps: int = 1) -> Dict[str, torch.Tensor]:
    """One micro-batch: the forward pass under autocast, the loss, and the backward pass of its
    ``1 / accum_steps`` share of the step; returns the (undivided) losses."""
    with autocast(precision, device):
        out = forward(batch["z"], batch["x"], batch["z_feat_mask"])
    losses = lorat_loss(out, batch["positives"], batch["target_box"])
    loss = losses["loss"] / accum_steps
    (scaler.scale(loss) if scaler is not None else loss).backward()
    return losses


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: Optional[torch.amp.GradScaler],
                   params: List[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Unscale (fp16), clip the gradient norm, step, zero the gradients; returns the norm before clipping."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def train_steps(opt: Optimisation, loader: DataLoader, cfg: TrainConfig, proc: Process, first_step: int,
                end_step: int, steps_per_epoch: int, logger: RunLogger) -> Iterator[int]:
    """Run optimiser steps ``first_step`` .. ``end_step - 1`` on the loader's micro-batches, log every
    ``cfg.log_every`` steps and the last, and yield the number of steps done after each one."""
    window_start, window_samples = time.perf_counter(), 0
    micro_batches = iter(loader)
    for step in range(first_step, end_step):
        set_lr(opt.optimizer, opt.schedule.lr_at_step(step))
        for sub in range(cfg.accum_steps):
            batch = {k: v.to(proc.device, non_blocking=True) for k, v in next(micro_batches).items()}
            last_micro = sub == cfg.accum_steps - 1
            # DDP all-reduces the gradients in the backward pass of the step's last micro-batch only
            sync = opt.net.no_sync() if proc.world > 1 and not last_micro else contextlib.nullcontext()
            with sync:
                losses = forward_backward(opt.forward, batch, opt.precision, proc.device, opt.scaler,
                                          cfg.accum_steps)
            window_samples += batch["z"].shape[0] * proc.world
        grad_norm = optimizer_step(opt.optimizer, opt.scaler, opt.params, cfg.grad_clip)
        done = step + 1
        if done % cfg.log_every == 0 or done == end_step:
            elapsed = time.perf_counter() - window_start
            logger.log(done, done / steps_per_epoch, {k: float(v.detach()) for k, v in losses.items()},
                       opt.optimizer.param_groups[0]["lr"], window_samples / max(elapsed, 1e-9), float(grad_norm))
            window_start, window_samples = time.perf_counter(), 0
        yield done
