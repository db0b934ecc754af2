"""Model-only LoRAT latency per variant, batch size, precision, LoRA merged or not, eager or compiled.

The paper's protocol (V100, batch 1, fp16 autocast): 10 warm-up and 100 timed forward passes on dummy
inputs (z and x filled with 0.5, z_feat_mask all ones); FPS = 1000 / mean latency in ms. These are the
defaults here (``--warmup 10 --iters 100``); every timed pass is synchronised on CUDA.

    .venv/bin/python benchmarks/model_speed.py --variants B-224,L-224 --device cpu --precisions fp32,bf16,int8
    .venv/bin/python benchmarks/model_speed.py --variants B-224,L-224,g-378 --device cuda --precisions fp32,fp16 \\
        --batch 1,8 --compile --cuda-graphs --json gpu.json

Weights are random (``create_model`` with LoRA adapters and LayerScale gammas of 1, so no block is an
identity); the ``merged`` rows run the same model after ``merge_lora``. ``int8`` is dynamic int8
quantisation of the merged model's Linear layers (CPU only); ``fp16`` / ``bf16`` are autocast (fp16 on
CUDA only). Accuracy columns (eager rows): each setting's outputs against the fp32 eager outputs of the
unmerged model on ``--accuracy-batch`` random-normal inputs with a centred template box: the largest
absolute difference of the score logits and of the normalised boxes, and the share of samples whose
arg-max score cell is the same.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from vot_lorat import LoRATConfig, create_model, get_config, merge_lora
from vot_lorat.device import resolve_precision
from vot_lorat.model.config import VARIANTS
from vot_lorat.tracking.crop import token_mask
from vot_lorat.tracking.tracker import PRECISIONS, precision_context, quantize_int8

from common import (add_common_args, apply_threads, csv_ints, csv_list, device_name, emit_tables, markdown_table,
                    summarize, time_calls, write_json)

MODES = {"eager": None, "compile": "default", "cuda-graphs": "reduce-overhead"}  # torch.compile mode
Inputs = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (z, x, z_feat_mask)


def dummy_inputs(cfg: LoRATConfig, batch: int, device: torch.device) -> Inputs:
    """The paper's timing inputs: z and x filled with 0.5, every template token foreground."""
    z = torch.full((batch, 3, cfg.template_size, cfg.template_size), 0.5, device=device)
    x = torch.full((batch, 3, cfg.search_size, cfg.search_size), 0.5, device=device)
    mask = torch.ones(batch, cfg.template_grid, cfg.template_grid, dtype=torch.long, device=device)
    return z, x, mask


def realistic_inputs(cfg: LoRATConfig, batch: int, device: torch.device, seed: int) -> Inputs:
    """Standard-normal images (the scale of normalised crops) and the token mask of a centred box of half
    the template side, where a tracked object sits in a template crop of area factor 2."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 3, cfg.template_size, cfg.template_size, generator=gen)
    x = torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=gen)
    size = cfg.template_size
    mask = token_mask(np.array([size / 4, size / 4, 3 * size / 4, 3 * size / 4]), size, cfg.template_grid)
    masks = torch.from_numpy(mask).expand(batch, -1, -1)
    return z.to(device), x.to(device), masks.to(device)


def accuracy(reference: Dict[str, torch.Tensor], out: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Largest |difference| of logits and boxes, and the share of samples with the same arg-max cell."""
    ref_logits, logits = reference["score_map"].float(), out["score_map"].float()
    same_cell = ref_logits.flatten(1).argmax(1) == logits.flatten(1).argmax(1)
    return {"max_abs_logit": (logits - ref_logits).abs().max().item(),
            "max_abs_box": (out["boxes"].float() - reference["boxes"].float()).abs().max().item(),
            "argmax_agreement": same_cell.float().mean().item()}


def plan_modes(args: argparse.Namespace, device: torch.device, skipped: List[str]) -> List[str]:
    modes = ["eager"] + (["compile"] if args.compile else [])
    if args.cuda_graphs:
        if device.type == "cuda":
            modes.append("cuda-graphs")
        else:
            skipped.append("cuda-graphs: CUDA only")
    return modes


def plan_precisions(args: argparse.Namespace, device: torch.device, skipped: List[str]) -> List[str]:
    chosen = args.precisions or [resolve_precision("auto", device)]
    out = []
    for precision in chosen:
        if precision not in PRECISIONS:
            raise SystemExit(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        if precision == "fp16" and device.type != "cuda":
            skipped.append("fp16: CUDA only (use bf16 on the CPU)")
        elif precision == "int8" and device.type != "cpu":
            skipped.append("int8: CPU only (dynamic quantisation kernels)")
        else:
            out.append(precision)
    return out


class VariantRun:
    """The rows of one variant: the model, its reference outputs, and the measurement of one setting."""

    def __init__(self, args: argparse.Namespace, variant: str, device: torch.device) -> None:
        self.args, self.variant, self.device = args, variant, device
        self.cfg = get_config(variant)
        torch.manual_seed(args.seed)
        self.model: torch.nn.Module = create_model(self.cfg, init_values=1.0).to(device).eval()
        self.acc_inputs: Optional[Inputs] = None
        self.reference: Optional[Dict[str, torch.Tensor]] = None
        if args.accuracy_batch:
            self.acc_inputs = realistic_inputs(self.cfg, args.accuracy_batch, device, args.seed)
            with torch.inference_mode():
                self.reference = self.model(*self.acc_inputs)
        self.rows: List[Dict] = []

    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def measure(self, lora: str, precision: str, mode: str, batch: int, params: int) -> None:
        args, device = self.args, self.device
        forward: Callable = self.model
        if MODES[mode] is not None:
            torch._dynamo.reset()  # a fresh compile per setting, never a cache-limit fallback to eager
            forward = torch.compile(self.model, mode=MODES[mode])
        inputs = dummy_inputs(self.cfg, batch, device)
        with torch.inference_mode(), precision_context(precision, device):
            times = time_calls(lambda _: forward(*inputs), args.warmup, args.iters, device)
            acc: Optional[Dict[str, float]] = None
            if mode == "eager" and self.acc_inputs is not None:
                acc = accuracy(self.reference, forward(*self.acc_inputs))
        stats = summarize(times)
        row = {"variant": self.variant, "params": params, "lora": lora, "precision": precision, "mode": mode,
               "batch": batch, **stats, "fps": 1e3 / stats["mean_ms"], "samples_per_s": batch * 1e3 / stats["mean_ms"],
               "accuracy": acc, "times_ms": times}
        self.rows.append(row)
        print(f"{self.variant} {lora} {precision} {mode} batch {batch}: {stats['mean_ms']:.2f} ms", file=sys.stderr)

    def run(self, precisions: List[str], modes: List[str]) -> List[Dict]:
        float_precisions = [p for p in precisions if p != "int8"]
        lora_params = self.params()
        if "unmerged" in self.args.lora:
            self.each_setting("unmerged", float_precisions, modes, lora_params)
        merge_lora(self.model)
        merged_params = self.params()
        if "merged" in self.args.lora:
            self.each_setting("merged", float_precisions, modes, merged_params)
        if "int8" in precisions:
            self.model = quantize_int8(self.model, inplace=True)  # g-378 is never held twice
            self.each_setting("merged", ["int8"], ["eager"], merged_params)
        return self.rows

    def each_setting(self, lora: str, precisions: List[str], modes: List[str], params: int) -> None:
        for precision in precisions:
            for mode in modes:
                for batch in self.args.batch:
                    self.measure(lora, precision, mode, batch, params)


def table(rows: List[Dict]) -> str:
    headers = ["variant", "params (M)", "LoRA", "precision", "mode", "batch", "mean ms", "median ms", "fps",
               "samples/s", "max Δlogit", "max Δbox", "argmax agree"]
    cells = []
    for r in rows:
        acc = r["accuracy"]
        acc_cells = ([f"{acc['max_abs_logit']:.2e}", f"{acc['max_abs_box']:.2e}", f"{acc['argmax_agreement']:.2f}"]
                     if acc else ["-", "-", "-"])
        cells.append([r["variant"], f"{r['params'] / 1e6:.1f}", r["lora"], r["precision"], r["mode"], str(r["batch"]),
                      f"{r['mean_ms']:.2f}", f"{r['median_ms']:.2f}", f"{r['fps']:.1f}", f"{r['samples_per_s']:.1f}",
                      *acc_cells])
    return markdown_table(headers, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=csv_list, default=["B-224"], help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--batch", type=csv_ints, default=[1], help="batch sizes, e.g. 1,8")
    parser.add_argument("--precisions", type=csv_list,
                        help="fp32, fp16, bf16, int8 (default: fp16 on CUDA, as the paper; fp32 on the CPU)")
    parser.add_argument("--lora", type=csv_list, default=["unmerged", "merged"], help="unmerged, merged or both")
    parser.add_argument("--compile", action="store_true", help="also torch.compile rows")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="also torch.compile(mode='reduce-overhead') rows (CUDA graphs; CUDA only)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed passes per setting")
    parser.add_argument("--iters", type=int, default=100, help="timed passes per setting")
    parser.add_argument("--accuracy-batch", type=int, default=4, help="random inputs for the accuracy columns (0: off)")
    parser.add_argument("--seed", type=int, default=0)
    add_common_args(parser)
    args = parser.parse_args()
    apply_threads(args)
    unknown = [v for v in args.variants if v not in VARIANTS]
    unknown += [m for m in args.lora if m not in ("unmerged", "merged")]
    if unknown:
        raise SystemExit(f"unknown variant or LoRA setting: {', '.join(unknown)}")
    device = args.device

    skipped: List[str] = []
    precisions = plan_precisions(args, device, skipped)
    modes = plan_modes(args, device, skipped)
    for note in skipped:
        print(f"skipped {note}", file=sys.stderr)
    rows = []
    for variant in args.variants:
        rows += VariantRun(args, variant, device).run(precisions, modes)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    title = (f"LoRAT model-only forward, {device_name(device)} ({device.type}, {torch.get_num_threads()} threads), "
             f"{args.warmup} warm-up + {args.iters} timed passes on 0.5-filled inputs; fps = 1000 / mean ms; "
             f"accuracy vs the unmerged fp32 eager outputs on {args.accuracy_batch} random-normal inputs")
    emit_tables([(title, table(rows))], args.markdown)
    settings = {"variants": args.variants, "batch": args.batch, "precisions": precisions, "lora": args.lora,
                "modes": modes, "warmup": args.warmup, "iters": args.iters, "accuracy_batch": args.accuracy_batch,
                "seed": args.seed, "weights": "random, LayerScale init 1.0", "skipped": skipped}
    write_json(args.json, device, settings, rows)


if __name__ == "__main__":
    main()
