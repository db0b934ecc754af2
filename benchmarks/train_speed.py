"""Training-step throughput and peak memory per variant and precision, and the data pipeline's throughput.

A training step is what ``training/engine.py`` does per optimiser step: autocast forward, ``lorat_loss``,
backward (through a GradScaler for fp16), gradient clipping, the AdamW step, zeroing the gradients; the
model comes from ``build_training_model`` (LoRA by default, every weight with ``--full-finetune``) and the
batch from the trainer's ``PairDataset`` on the synthetic dataset (one batch, reused for every step).

    .venv/bin/python benchmarks/train_speed.py --variants B-224 --device cpu --precisions fp32 --batch 8 --json cpu.json
    .venv/bin/python benchmarks/train_speed.py --variants B-224,L-224,g-378 --device cuda --precisions fp16,bf16 \\
        --batch 16 --json gpu.json

Peak memory covers the model's weights, gradients, optimiser state and activations, from before the model
is built to the last step: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the rise of the
process's peak resident set size (``ru_maxrss``, reset per setting on Linux) above the size at the start.

The data rows time ``PairDataset.__getitem__`` in a loop with one torch thread, what one DataLoader worker
does: the synthetic dataset always, and each ``--data KIND:PATH`` (as ``python -m training --data``).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Dict, List

import torch
from torch.utils.data import default_collate

from training.config import DataSource, TrainConfig
from training.data.pairs import PairDataset
from training.data.registry import build_dataset
from training.data.sequence import SequenceDataset
from training.data.transform import PairTransform
from training.engine import forward_backward, grad_scaler, optimizer_step
from training.optim import build_optimizer
from training.trainer import build_training_model
from vot_lorat.device import PRECISIONS, resolve_precision
from vot_lorat.model.config import VARIANTS, get_config

from common import (PeakMemory, add_common_args, apply_threads, csv_ints, csv_list, device_name, emit_tables,
                    markdown_table, summarize, time_calls, write_json)


def source_name(source: DataSource) -> str:
    """``KIND[:PATH][,key=value...]``, as given to ``--data``."""
    return (source.kind + (f":{source.path}" if source.path else "")
            + "".join(f",{k}={v}" for k, v in source.options.items()))


def pair_dataset(dataset: SequenceDataset, cfg: TrainConfig) -> PairDataset:
    """The trainer's sample stream over one dataset."""
    return PairDataset([dataset], [1.0], PairTransform(get_config(cfg.variant), cfg.transform), cfg.samples_per_epoch,
                       cfg.seed, cfg.max_gap)


def train_row(cfg: TrainConfig, batch: Dict[str, torch.Tensor], warmup: int, steps: int,
              device: torch.device) -> Dict:
    """Time ``steps`` optimiser steps after ``warmup`` and record the peak memory of the whole run."""
    precision = resolve_precision(cfg.precision, device)
    scaler = grad_scaler(precision, device)
    memory = PeakMemory(device)
    memory.start()
    torch.manual_seed(cfg.seed)
    model = build_training_model(cfg).to(device).train()
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    batch = {k: v.to(device) for k, v in batch.items()}
    losses: List[float] = []

    def step(_: int) -> None:
        loss = forward_backward(model, batch, precision, device, scaler)["loss"]
        optimizer_step(optimizer, scaler, trainable, cfg.grad_clip)
        losses.append(loss.item())

    times = time_calls(step, warmup, steps, device)
    peak = memory.stop()
    stats = summarize(times)
    size = batch["z"].shape[0]
    return {"table": "train", "variant": cfg.variant, "training": "full" if cfg.full_finetune else "lora",
            "precision": precision, "batch": size, "trainable_params": sum(p.numel() for p in trainable), **stats,
            "samples_per_s": size * 1e3 / stats["mean_ms"], "peak_mib": peak, "memory": memory.kind,
            "last_loss": losses[-1], "times_ms": times}


def data_row(name: str, dataset: SequenceDataset, cfg: TrainConfig, warmup: int, samples: int) -> Dict:
    """Samples per second of one worker: ``PairDataset.__getitem__`` with one torch thread."""
    pairs = pair_dataset(dataset, cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = time_calls(lambda i: pairs[i], warmup, samples, "cpu")
    finally:
        torch.set_num_threads(threads)
    stats = summarize(times)
    return {"table": "data", "variant": cfg.variant, "source": name, "samples": samples, **stats,
            "samples_per_s": 1e3 / stats["mean_ms"], "times_ms": times}


def train_table(rows: List[Dict]) -> str:
    headers = ["variant", "training", "precision", "batch", "trainable params (M)", "mean ms/step", "samples/s",
               "peak MiB", "last loss"]
    cells = [[r["variant"], r["training"], r["precision"], str(r["batch"]), f"{r['trainable_params'] / 1e6:.2f}",
              f"{r['mean_ms']:.1f}", f"{r['samples_per_s']:.2f}", f"{r['peak_mib']:.0f}", f"{r['last_loss']:.3f}"]
             for r in rows]
    return markdown_table(headers, cells)


def data_table(rows: List[Dict]) -> str:
    headers = ["variant", "dataset", "samples", "mean ms/sample", "median ms/sample", "samples/s (1 worker)"]
    cells = [[r["variant"], r["source"], str(r["samples"]), f"{r['mean_ms']:.1f}", f"{r['median_ms']:.1f}",
              f"{r['samples_per_s']:.1f}"] for r in rows]
    return markdown_table(headers, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=csv_list, default=["B-224"], help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--precisions", type=csv_list,
                        help="fp32, fp16, bf16 autocast (default: fp16 on CUDA, as the reference; fp32 on the CPU)")
    parser.add_argument("--batch", type=csv_ints, default=[16], help="samples per step on this device, e.g. 16,32")
    parser.add_argument("--full-finetune", action="store_true", help="train every weight instead of LoRA")
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps per setting (0: none)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (and data samples) per setting")
    parser.add_argument("--data", action="append", default=[], metavar="KIND:PATH",
                        help="also time this dataset's pipeline (repeatable), e.g. got10k:/data/GOT-10k")
    parser.add_argument("--data-samples", type=int, default=100, help="timed samples per dataset (0: no data rows)")
    parser.add_argument("--seed", type=int, default=42)
    add_common_args(parser)
    args = parser.parse_args()
    apply_threads(args)
    device = args.device
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    precisions = args.precisions or [resolve_precision("auto", device)]
    if any(p not in PRECISIONS for p in precisions):
        raise SystemExit(f"precisions must be among {', '.join(PRECISIONS)}")
    skipped = []
    if device.type != "cuda" and "fp16" in precisions:
        skipped.append("fp16: CUDA only (use bf16 on the CPU)")
        precisions = [p for p in precisions if p != "fp16"]
    for note in skipped:
        print(f"skipped {note}", file=sys.stderr)
    sources = [DataSource("synthetic")] + [DataSource.parse(text) for text in args.data]
    datasets = {source_name(source): build_dataset(source) for source in sources}  # a bad --data fails here

    train_rows, data_rows = [], []
    for variant in args.variants:
        base = TrainConfig(variant=variant, full_finetune=args.full_finetune, device=str(device), seed=args.seed)
        if args.steps:
            synthetic = pair_dataset(datasets["synthetic"], base)
            for size in args.batch:
                batch = default_collate([synthetic[i] for i in range(size)])
                for precision in precisions:
                    cfg = dataclasses.replace(base, precision=precision, batch_size=size)
                    train_rows.append(train_row(cfg, batch, args.warmup, args.steps, device))
                    r = train_rows[-1]
                    print(f"{variant} {precision} batch {size}: {r['mean_ms']:.1f} ms/step", file=sys.stderr)
        if args.data_samples:
            data_rows += [data_row(name, dataset, base, args.warmup, args.data_samples)
                          for name, dataset in datasets.items()]

    where = f"{device_name(device)} ({device.type}, {torch.get_num_threads()} threads)"
    memory = ("CUDA max_memory_allocated" if device.type == "cuda"
              else "rise of the process peak RSS (ru_maxrss) over the RSS at the start")
    sections = []
    if train_rows:
        sections.append((f"LoRAT training step, {where}, {args.steps} timed steps after {args.warmup} warm-up, "
                         f"random weights, synthetic batch; peak memory: {memory}", train_table(train_rows)))
    if data_rows:
        sections.append((f"Training data pipeline, one worker (1 torch thread), {args.data_samples} timed samples "
                         f"after {args.warmup}", data_table(data_rows)))
    emit_tables(sections, args.markdown)
    settings = {"variants": args.variants, "precisions": precisions, "batch": args.batch,
                "full_finetune": args.full_finetune, "steps": args.steps, "warmup": args.warmup,
                "data": list(datasets),
                "data_samples": args.data_samples, "seed": args.seed, "weights": "random", "skipped": skipped}
    write_json(args.json, device, settings, train_rows + data_rows)


if __name__ == "__main__":
    main()
