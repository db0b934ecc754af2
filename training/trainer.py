"""The training loop: one process per device, DistributedDataParallel under torchrun, resumable anywhere.

Read top to bottom: set up the process, build model / data / optimiser, restore a checkpoint if asked,
loop over optimiser steps (AMP, accumulation, clipping, warmup + cosine), checkpoint, evaluate.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from vot_lorat.builder import create_model
from vot_lorat.checkpoint import check_compatible, read_checkpoint, save_checkpoint
from vot_lorat.config import get_config

from . import checkpointing
from .config import TrainConfig
from .data.pairs import PairDataset, StepBatchSampler, worker_init
from .data.registry import build_dataset
from .data.sequence import SequenceDataset
from .data.transform import PairTransform
from .evaluate import evaluate, format_report
from .logger import RunLogger
from .loss import lorat_loss
from .optim import WarmupCosine, build_optimizer, set_lr

log = logging.getLogger("training")


@dataclass
class Process:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup_process(device: str = "auto", threads: int = 0) -> Process:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), pick this rank's device and start the
    process group if there are several ranks. ``threads`` > 0 sets the CPU threads."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(want)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    elif threads > 0:
        torch.set_num_threads(threads)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Process(rank, world, local_rank, device)


def autocast_and_scaler(precision: str, device: torch.device):
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"  # the reference trains with fp16 autocast
    if precision == "fp32":
        return precision, contextlib.nullcontext, None
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    if dtype is None:
        raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return precision, (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def optimizer_step(optimizer: torch.optim.Optimizer, scaler, params, max_norm: float) -> torch.Tensor:
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


def build_training_model(cfg: TrainConfig):
    mc = get_config(cfg.variant)
    overrides = {k: v for k, v in (("lora_rank", cfg.lora_rank), ("lora_alpha", cfg.lora_alpha)) if v is not None}
    mc = mc.replace(lora_dropout=cfg.lora_dropout, **overrides)
    return create_model(mc, cfg.backbone, lora=not cfg.full_finetune, init_values=cfg.layer_scale_init)


def restore_weights(model: torch.nn.Module, path: str) -> None:
    """Put a checkpoint's trainable tensors back (the frozen ones come from the backbone file)."""
    ckpt = read_checkpoint(path)
    check_compatible(ckpt, model.config)
    state = ckpt.state
    missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in state]
    if missing:
        raise ValueError(f"{path} lacks trainable parameters {missing[:3]}: it is not from this run's model")
    model.load_state_dict(state, strict=False)


def _datasets(sources) -> list[SequenceDataset]:
    return [build_dataset(s) for s in sources]


def train(cfg: TrainConfig, resume: bool = False, stop_after: Optional[int] = None) -> Dict[str, Any]:
    """Train (or continue) the run in ``cfg.output_dir``; ``stop_after`` ends early after that many optimiser
    steps of this invocation (to test resuming). Returns the final step and evaluation report."""
    proc = setup_process(cfg.device, max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    precision, autocast, scaler = autocast_and_scaler(cfg.precision, proc.device)
    if not cfg.data:
        raise ValueError("no training data: give at least one --data KIND:PATH (or --data synthetic)")

    local_batch, rest = divmod(cfg.batch_size, proc.world * cfg.accum_steps)
    if rest or local_batch == 0:
        raise ValueError(f"batch size {cfg.batch_size} must be a multiple of world size x accumulation steps "
                         f"({proc.world} x {cfg.accum_steps})")
    steps_per_epoch = cfg.samples_per_epoch // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"samples per epoch ({cfg.samples_per_epoch}) is smaller than the batch ({cfg.batch_size})")
    total_steps = cfg.epochs * steps_per_epoch
    schedule = WarmupCosine(cfg.lr, total_steps, round(cfg.warmup_epochs * steps_per_epoch), cfg.min_lr,
                            cfg.warmup_lr)

    model = build_training_model(cfg)
    if cfg.init_weights:
        restore_weights(model, cfg.init_weights)
    model = model.to(proc.device)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    ckpt_root = os.path.join(cfg.output_dir, "checkpoints")
    start_step = 0
    if resume:
        folder = checkpointing.latest(ckpt_root)
        if folder is None:
            log.warning("no checkpoint in %s yet: starting from the beginning", ckpt_root)
        else:
            state = checkpointing.load_state(folder)
            restore_weights(model, os.path.join(folder, "model.safetensors"))
            optimizer.load_state_dict(state["optimizer"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            checkpointing.set_rng_state(state["rng"][proc.rank] if proc.rank < len(state["rng"]) else state["rng"][0])
            start_step = int(state["step"])
            if proc.main:
                log.info("resumed from %s at step %d", folder, start_step)

    net: torch.nn.Module = model
    if proc.world > 1:
        net = DistributedDataParallel(model, device_ids=[proc.device.index] if proc.device.type == "cuda" else None,
                                      find_unused_parameters=False, gradient_as_bucket_view=True,
                                      # the reference's static graph; DDP cannot combine it with no_sync()
                                      static_graph=cfg.accum_steps == 1, bucket_cap_mb=100)
    forward = torch.compile(net) if cfg.compile else net

    mc = model.config
    pairs = PairDataset(_datasets(cfg.data), [s.weight for s in cfg.data], PairTransform(mc, cfg.transform),
                        steps_per_epoch * cfg.batch_size, cfg.seed, cfg.max_gap)
    end_step = total_steps if stop_after is None else min(total_steps, start_step + stop_after)
    sampler = StepBatchSampler(start_step * cfg.accum_steps, end_step * cfg.accum_steps, local_batch, proc.rank,
                               proc.world)
    loader = DataLoader(pairs, batch_sampler=sampler, num_workers=cfg.workers, worker_init_fn=worker_init,
                        pin_memory=proc.device.type == "cuda", persistent_workers=False,
                        prefetch_factor=4 if cfg.workers > 0 else None)

    logger = RunLogger(cfg.output_dir, total_steps, start_step, enabled=proc.main)
    if proc.main:
        with open(os.path.join(cfg.output_dir, "config.json"), "w") as f:
            json.dump(cfg.to_dict(), f, indent=1)
        logger.info(f"{mc.name}: {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable "
                    f"parameters, {proc.world} process(es) on {proc.device}, precision {precision}, "
                    f"{total_steps} steps of {cfg.batch_size}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    step = start_step
    window_start, window_samples = time.perf_counter(), 0
    for micro, batch in enumerate(loader, start=start_step * cfg.accum_steps):
        step, sub = divmod(micro, cfg.accum_steps)
        last_micro = sub == cfg.accum_steps - 1
        if sub == 0:
            set_lr(optimizer, schedule(step))
        batch = {k: v.to(proc.device, non_blocking=True) for k, v in batch.items()}
        sync = net.no_sync() if proc.world > 1 and not last_micro else contextlib.nullcontext()
        with sync:
            with autocast():
                out = forward(batch["z"], batch["x"], batch["z_feat_mask"])
            losses = lorat_loss(out, batch["positives"], batch["target_box"])
            loss = losses["loss"] / cfg.accum_steps
            (scaler.scale(loss) if scaler is not None else loss).backward()
        window_samples += batch["z"].shape[0] * proc.world
        if not last_micro:
            continue
        grad_norm = optimizer_step(optimizer, scaler, trainable, cfg.grad_clip)
        step += 1
        epoch = step / steps_per_epoch
        if step % cfg.log_every == 0 or step == end_step:
            elapsed = time.perf_counter() - window_start
            logger.log(step, epoch, {k: float(v.detach()) for k, v in losses.items()}, optimizer.param_groups[0]["lr"],
                       window_samples / max(elapsed, 1e-9), float(grad_norm))
            window_start, window_samples = time.perf_counter(), 0
        epoch_end = step % steps_per_epoch == 0
        if (step == end_step or (epoch_end and (step // steps_per_epoch) % cfg.checkpoint_interval == 0)
                or (cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0)):
            _checkpoint(cfg, proc, model, optimizer, scaler, step, steps_per_epoch, ckpt_root)
    logger.close()

    report: Dict[str, Any] = {}
    if step >= total_steps:
        if proc.main:
            save_checkpoint(model, os.path.join(cfg.output_dir, "model.safetensors"))
        if cfg.evaluate_at_end and cfg.eval_data:
            report = evaluate(model, _datasets(cfg.eval_data), os.path.join(cfg.output_dir, "eval"),
                              max_sequences=cfg.eval_sequences, rank=proc.rank, world=proc.world)
            if proc.main:
                print(format_report(report), flush=True)
    proc.barrier()
    return {"step": step, "total_steps": total_steps, "report": report, "model": model}


def _checkpoint(cfg, proc, model, optimizer, scaler, step, steps_per_epoch, root) -> None:
    rng_states = [checkpointing.rng_state()]
    if proc.world > 1:
        gathered = [None] * proc.world
        dist.all_gather_object(gathered, rng_states[0])
        rng_states = gathered
    if proc.main:
        state = {"step": step, "epoch": step // steps_per_epoch, "optimizer": optimizer.state_dict(),
                 "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_states,
                 "config": cfg.to_dict()}
        checkpointing.save(root, model, state, cfg.keep_checkpoints)
    proc.barrier()
