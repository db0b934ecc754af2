"""Training a LoRAT: one process per device, DistributedDataParallel under torchrun, resumable anywhere.

``train`` reads top to bottom: set up the process, plan the steps, build the model and optimiser, restore
the newest checkpoint when resuming, wrap the model for DDP, build the data, run the optimiser steps
(``engine.train_steps``) with periodic checkpoints (``checkpointing.save``), save the final weights and
evaluate.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from vot_lorat.device import resolve_precision
from vot_lorat.model.config import LoRATConfig, get_config
from vot_lorat.model.network import LoRAT
from vot_lorat.weights.checkpoint import LoRATCheckpoint, read_checkpoint, save_checkpoint
from vot_lorat.weights.loading import create_model, load_checkpoint

from . import checkpointing, distributed, engine, run_folder
from .config import DataSource, TrainConfig
from .data.pairs import PairDataset, StepBatchSampler, worker_init
from .data.registry import build_dataset
from .data.sequence import SequenceDataset
from .data.transform import PairTransform
from .distributed import Process
from .evaluate import evaluate, format_report
from .interrupt import Interrupted, StopRequests
from .logger import RunLogger
from .optim import WarmupCosine, build_optimizer
from .plots import plot_training_log

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepPlan:
    """How the global batch splits over ranks and accumulation steps, and how many steps the run has."""

    local_batch: int  # samples per micro-batch on each rank
    steps_per_epoch: int
    total_steps: int


def train(cfg: TrainConfig, resume: bool = False, stop_after: Optional[int] = None, overwrite: bool = False,
          progress: bool = True, allow_changes: bool = False) -> Dict[str, Any]:
    """Train (or continue, ``resume``) the run in ``cfg.output_dir``; a folder that holds another run is refused
    unless ``overwrite`` deletes it, and a resume whose recipe differs from the checkpoint's unless
    ``allow_changes``. ``stop_after`` ends early after that many optimiser steps of this invocation;
    ``progress`` shows a bar on a terminal. SIGINT / SIGTERM end the run at the next step boundary with a
    checkpoint and raise :class:`Interrupted`. Returns the final step, the evaluation report and the model."""
    proc = distributed.setup(cfg.device, max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    precision = resolve_precision(cfg.precision, proc.device)
    scaler = engine.grad_scaler(precision, proc.device)
    check_recipe(cfg)
    plan = plan_steps(cfg, proc.world)
    if proc.main:  # before any work, so that hours of it are not lost at the first file written
        run_folder.prepare(cfg.output_dir, resume, overwrite)
    distributed.barrier()
    schedule = WarmupCosine(cfg.lr, plan.total_steps, round(cfg.warmup_epochs * plan.steps_per_epoch), cfg.min_lr,
                            cfg.warmup_lr)

    init = read_checkpoint(cfg.init_weights) if cfg.init_weights else None
    model = build_training_model(cfg, init)
    if init is not None:
        load_checkpoint(model, init)
    model = model.to(proc.device)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    ckpt_root = os.path.join(cfg.output_dir, "checkpoints")
    start_step = 0
    if resume:
        restored = checkpointing.restore(ckpt_root, proc, model, optimizer, scaler)
        start_step = restored.step
        if restored.recipe is not None:
            check_resumed_recipe(restored.recipe, cfg, start_step, allow_changes)
        if restored.folder is not None and proc.main:
            log.info("resumed from %s at step %d", restored.folder, start_step)
    net = _distribute(model, cfg, proc)
    opt = engine.Optimisation(net, torch.compile(net) if compile_enabled(cfg, proc.device) else net,
                              [p for p in model.parameters() if p.requires_grad], optimizer, scaler, schedule,
                              precision)

    end_step = plan.total_steps if stop_after is None else min(plan.total_steps, start_step + stop_after)
    loader = _loader(cfg, model.config, plan, proc, start_step, end_step)
    logger = RunLogger(cfg.output_dir, plan.total_steps, start_step, enabled=proc.main, progress=progress)
    if proc.main:
        with open(os.path.join(cfg.output_dir, "config.json"), "w") as f:
            json.dump(cfg.to_dict(), f, indent=1)
        logger.info(f"{model.config.name}: {sum(p.numel() for p in opt.params):,} trainable parameters, "
                    f"{proc.world} process(es) on {proc.device}, precision {precision}, "
                    f"{plan.total_steps} steps of {cfg.batch_size}")
    val_sets = _datasets(cfg.val_data)
    model.train()
    step = start_step
    signum = 0
    with StopRequests() as stop:
        for step in engine.train_steps(opt, loader, cfg, proc, start_step, end_step, plan.steps_per_epoch, logger):
            if val_sets and _validation_due(cfg, step, plan):
                _validate(cfg, proc, model, val_sets, step, plan.steps_per_epoch, precision, logger)
            signum = max(s or 0 for s in distributed.gather(stop.signum))  # every rank stops at the same step
            if signum or step == end_step or _checkpoint_due(cfg, step, plan.steps_per_epoch):
                checkpointing.save(ckpt_root, proc, model, optimizer, scaler, step, step // plan.steps_per_epoch,
                                   cfg.to_dict(), cfg.keep_checkpoints)
            if signum:
                break
    logger.close()
    if proc.main:
        _plot_curves(cfg.output_dir)
    if signum:
        raise Interrupted(signum, step, cfg.output_dir)

    # an evaluation of the same final weights (no step done now) keeps the sequences it finished before
    report = _finish(cfg, proc, model, progress, resume and step == start_step) if step >= plan.total_steps else {}
    distributed.barrier()
    return {"step": step, "total_steps": plan.total_steps, "report": report, "model": model}


def _plot_curves(folder: str) -> None:
    """training-curves.png / .pdf from the run's log.jsonl, redrawn whenever an invocation ends. Figures are
    a view of the log: whatever goes wrong drawing them is a warning, never the end of the run before its final
    weights and evaluation."""
    try:
        plot_training_log(folder)
    except Exception as err:  # noqa: BLE001 - see above
        log.warning("the training curves were not drawn: %s (python -m training plot-training %s draws them "
                    "from the log)", err, folder)


# what a resumed run may change: where and how fast it runs and what it reports; every other field is part
# of the optimisation the checkpoint belongs to
RESUME_FREE = ("output_dir", "device", "workers", "threads", "compile", "log_every", "checkpoint_interval",
               "checkpoint_every_steps", "keep_checkpoints", "eval_data", "eval_sequences", "evaluate_at_end",
               "val_data", "val_interval", "val_sequences")


def check_resumed_recipe(saved: Dict[str, Any], cfg: TrainConfig, step: int, allow_changes: bool) -> None:
    """Refuse to continue a checkpoint with another recipe than its own (unless ``allow_changes``): a run
    resumed with another batch size, learning rate or data would silently follow a plan nobody chose."""
    now = json.loads(json.dumps(cfg.to_dict()))  # tuples as lists, as in the saved one
    saved = json.loads(json.dumps(saved))
    changed = [f"{key} {saved.get(key)!r} -> {value!r}" for key, value in now.items()
               if key not in RESUME_FREE and saved.get(key) != value]
    if not changed:
        return
    if not allow_changes:
        raise ValueError(f"--resume: the checkpoint of step {step} was trained with another recipe "
                         f"({'; '.join(changed)}): give the same settings to continue it, or add --allow-changes "
                         f"to go on with the new ones")
    log.warning("resuming step %d with a changed recipe: %s", step, "; ".join(changed))


def check_recipe(cfg: TrainConfig) -> None:
    """Refuse runs whose result would be unusable: no data, LoRA on a random backbone (the frozen random ViT is
    not saved, so the adapters could never be loaded again) unless ``random_backbone`` says it is meant."""
    if not cfg.data:
        raise ValueError("no training data: give at least one --data KIND:PATH (or --data synthetic)")
    if not (cfg.backbone or cfg.full_finetune or cfg.random_backbone):
        raise ValueError("a LoRA run needs the pretrained DINOv2 weights its adapters build on: pass --backbone "
                         "PATH (Meta's dinov2_vit*14_pretrain.pth or a timm .safetensors). Without pretrained weights "
                         "train every weight with --full-finetune")
    if cfg.val_data and cfg.val_interval < 1:
        raise ValueError(f"--val-interval must be at least 1 epoch, got {cfg.val_interval}")


def compile_enabled(cfg: TrainConfig, device: torch.device) -> bool:
    """``cfg.compile``, or by default: on CUDA, as the paper trains; off on the CPU, where compiling costs more
    than it gains."""
    return cfg.compile if cfg.compile is not None else device.type == "cuda"


def plan_steps(cfg: TrainConfig, world: int) -> StepPlan:
    """Split ``cfg.batch_size`` over ``world`` ranks and ``cfg.accum_steps``; the run is ``cfg.epochs`` epochs of
    ``cfg.samples_per_epoch // cfg.batch_size`` optimiser steps."""
    local_batch, rest = divmod(cfg.batch_size, world * cfg.accum_steps)
    if rest or local_batch == 0:
        raise ValueError(f"batch size {cfg.batch_size} must be a multiple of world size x accumulation steps "
                         f"({world} x {cfg.accum_steps})")
    steps_per_epoch = cfg.samples_per_epoch // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"samples per epoch ({cfg.samples_per_epoch}) is smaller than the batch ({cfg.batch_size})")
    return StepPlan(local_batch, steps_per_epoch, cfg.epochs * steps_per_epoch)


def build_training_model(cfg: TrainConfig, init: Optional[LoRATCheckpoint] = None) -> LoRAT:
    """The variant with the run's LoRA settings: DINOv2 weights from ``cfg.backbone`` (random when None), fresh
    adapters and head; every weight trainable and no adapters with ``cfg.full_finetune``. Fine-tuning from
    ``init`` builds the adapters at that checkpoint's rank unless ``cfg.lora_rank`` says otherwise."""
    mc = get_config(cfg.variant)
    rank = cfg.lora_rank if cfg.lora_rank is not None or init is None else init.lora_rank
    overrides = {k: v for k, v in (("lora_rank", rank), ("lora_alpha", cfg.lora_alpha)) if v is not None}
    mc = mc.replace(lora_dropout=cfg.lora_dropout, **overrides)
    return create_model(mc, cfg.backbone, lora=not cfg.full_finetune, init_values=cfg.layer_scale_init)


def _distribute(model: LoRAT, cfg: TrainConfig, proc: Process) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are several ranks, else ``model`` itself."""
    if proc.world == 1:
        return model
    return DistributedDataParallel(model, device_ids=[proc.device.index] if proc.device.type == "cuda" else None,
                                   find_unused_parameters=False, gradient_as_bucket_view=True,
                                   # the reference's static graph; DDP cannot combine it with no_sync()
                                   static_graph=cfg.accum_steps == 1, bucket_cap_mb=100)


def _loader(cfg: TrainConfig, mc: LoRATConfig, plan: StepPlan, proc: Process, start_step: int,
            end_step: int) -> DataLoader:
    """This rank's micro-batches for optimiser steps ``start_step`` .. ``end_step - 1``."""
    pairs = PairDataset(_datasets(cfg.data), [s.weight for s in cfg.data], PairTransform(mc, cfg.transform),
                        plan.steps_per_epoch * cfg.batch_size, cfg.seed, cfg.max_gap)
    sampler = StepBatchSampler(start_step * cfg.accum_steps, end_step * cfg.accum_steps, plan.local_batch,
                               proc.rank, proc.world)
    return DataLoader(pairs, batch_sampler=sampler, num_workers=cfg.workers, worker_init_fn=worker_init,
                      pin_memory=proc.device.type == "cuda", persistent_workers=False,
                      prefetch_factor=4 if cfg.workers > 0 else None)


def _datasets(sources: List[DataSource]) -> List[SequenceDataset]:
    return [build_dataset(s) for s in sources]


def _checkpoint_due(cfg: TrainConfig, step: int, steps_per_epoch: int) -> bool:
    """Every ``cfg.checkpoint_interval`` epochs, and every ``cfg.checkpoint_every_steps`` steps when set."""
    epoch, into_epoch = divmod(step, steps_per_epoch)
    return ((into_epoch == 0 and epoch % cfg.checkpoint_interval == 0)
            or (cfg.checkpoint_every_steps > 0 and step % cfg.checkpoint_every_steps == 0))


def _validation_due(cfg: TrainConfig, step: int, plan: StepPlan) -> bool:
    """Every ``cfg.val_interval`` epochs and after the last step."""
    epoch, into_epoch = divmod(step, plan.steps_per_epoch)
    return step == plan.total_steps or (into_epoch == 0 and epoch % cfg.val_interval == 0)


def _validate(cfg: TrainConfig, proc: Process, model: LoRAT, datasets: List[SequenceDataset], step: int,
              steps_per_epoch: int, precision: str, logger: RunLogger) -> None:
    """Track the validation sequences with the current weights into ``val/epoch_<N>/`` and log the main
    scores; training goes on in training mode."""
    epoch = step / steps_per_epoch
    report = evaluate(model, datasets, os.path.join(cfg.output_dir, "val", f"epoch_{math.ceil(epoch):03d}"),
                      precision=precision, max_sequences=cfg.val_sequences, rank=proc.rank, world=proc.world,
                      progress=False)  # the training bar stays the one bar
    keys = ("sequences", "ao", "sr50", "sr75", "auc", "precision", "norm_precision", "mean_iou")
    logger.validation(step, epoch, {name: {k: m[k] for k in keys if k in m} for name, m in report.items()})
    model.train()


def _finish(cfg: TrainConfig, proc: Process, model: LoRAT, progress: bool, keep_evaluated: bool) -> Dict[str, Any]:
    """After the last step: the final weights, and the one-pass evaluation when the run has evaluation data
    (``keep_evaluated``: keeping the sequences an earlier evaluation of these weights finished)."""
    if proc.main:
        save_checkpoint(model, os.path.join(cfg.output_dir, "model.safetensors"))
    if not (cfg.evaluate_at_end and cfg.eval_data):
        return {}
    report = evaluate(model, _datasets(cfg.eval_data), os.path.join(cfg.output_dir, "eval"),
                      max_sequences=cfg.eval_sequences, rank=proc.rank, world=proc.world, progress=progress,
                      resume=keep_evaluated)
    if proc.main:
        print(format_report(report), flush=True)
    return report
