"""The settings of the tracker process the VOT toolkit starts: one dataclass, read from ``LORAT_*`` environment
variables (``env_*`` keys in trackers.ini) and from flags, which win.

This module imports neither torch nor trax, so that writing a workspace's trackers.ini stays cheap.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

from ..options import add_flags, check_choices, env_values, given_values, option, to_env

ENV_PREFIX = "LORAT_"
MASK_MODES = ("none", "box", "sam")
SAM_MODES = ("crop", "frame")
SAM_MASKS = ("disjoint", "raw")
# "auto" and the tracker's precisions (vot_lorat.tracking.tracker.PRECISIONS); SAM has no int8
TRACKER_PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
# "auto" and vot_lorat.masks.sam.SAM_PRECISIONS
SAM_PRECISIONS = ("auto", "fp32", "fp16", "bf16", "bf16-weights")


@dataclass(frozen=True)
class ServerSettings:
    """Every setting of the tracker process; environment variable ``LORAT_<FIELD>`` (upper case)."""

    variant: Optional[str] = option(None, (
        "S-224, S-378, B-224, B-378, L-224, L-378, g-224, g-378 (the paper's), tiny (the demo model) or static (the "
        "static baseline, no model); none: read from the weights (their saved variant, their shapes, or a "
        "LoRAT-L-378 folder name)"))
    backbone: Optional[str] = option(None, (
        "the DINOv2 weights the LoRAT weights were trained on: Meta's dinov2_vit{s,b,l,g}14_pretrain.pth or a timm "
        ".safetensors; none: not needed when the weights are a whole model (merged or fully fine-tuned, as the "
        "demo's)"))
    weights: Optional[str] = option(None, (
        "the LoRAT weights: a released model.bin (2024), a model.safetensors (newer releases, python -m training) "
        "or a whole merged / fully fine-tuned model; none: refuse to start"))
    device: str = option("auto", "auto (cuda when torch sees a GPU, else cpu), cpu, cuda, cuda:N")
    precision: str = option("auto", (
        "auto (fp16 autocast on a GPU, as the paper runs LoRAT; fp32 on a CPU), fp32, fp16, bf16, or int8 (CPU "
        "only: int8 dynamic quantisation)"), choices=TRACKER_PRECISIONS)
    mask: str = option("none", (
        "none (report rectangles), box (masks filled from the boxes) or sam (SAM masks; needs sam-checkpoint)"),
        choices=MASK_MODES)
    absence_threshold: Optional[float] = option(None, (
        "report an object absent in a frame when its confidence (0 to 1) is below this; the tracker keeps its "
        "state; none: never (as the paper)"))
    threads: int = option(0, "CPU threads for torch; 0: torch's default (one per core)")
    read_ahead: bool = option(True, (
        "1: read the next frame while the current one is tracked; 0: read each frame only when the toolkit sends "
        "it, so that a realtime experiment's times include the decoding"))
    sam_model: str = option("vit_h", "vit_b, vit_l or vit_h: the SAM that sam-checkpoint holds")
    sam_checkpoint: Optional[str] = option(None, "Meta's sam_vit_{b,l,h}_*.pth, for mask sam; none: no SAM")
    sam_mode: str = option("crop", (
        "crop (the reference: one 1024 px crop per object) or frame (one SAM encoding per frame for all objects; "
        "much faster on a CPU)"), choices=SAM_MODES)
    sam_precision: str = option("auto", (
        "auto (bf16-weights on a GPU, as the official LoRAT code runs SAM; fp32 on a CPU), fp32, fp16 or bf16 "
        "(autocast, GPU only), bf16-weights (SAM's weights and input converted to bf16, no autocast)"),
        choices=SAM_PRECISIONS)
    sam_multimask: bool = option(False, (
        "1: SAM proposes 3 masks and the best-scored one is kept; 0: one mask (the reference)"))
    sam_masks: str = option("disjoint", (
        "disjoint (an empty or absurd SAM mask replaced by the box, and each pixel given to one object, as VOTS "
        "scores masks) or raw (each object's mask as SAM gives it, overlaps kept: the official LoRAT output)"),
        choices=SAM_MASKS)

    def __post_init__(self) -> None:
        """Values that cannot be meant are refused here, whether they come from the environment, flags or code."""
        check_choices(self, ENV_PREFIX)
        if self.absence_threshold is not None and not 0 <= self.absence_threshold <= 1:  # NaN fails too
            raise ValueError(f"LORAT_ABSENCE_THRESHOLD={str(self.absence_threshold)!r}: give a confidence from 0 "
                             f"to 1, or leave it unset to never report absence")
        if self.threads < 0:
            raise ValueError(f"LORAT_THREADS={str(self.threads)!r}: give a number of CPU threads, or 0 for torch's "
                             f"default")

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "ServerSettings":
        """The settings the ``LORAT_*`` variables of ``environ`` (default: this process's) give."""
        return cls(**env_values(cls, os.environ if environ is None else environ, ENV_PREFIX))

    def to_env(self) -> Dict[str, str]:
        """Every setting that is not None as the environment :meth:`from_env` reads back. Switches that are off
        are written too (``LORAT_SAM_MULTIMASK=0``): the toolkit passes its own environment to the tracker, and
        a variable left exported in that shell must not turn them on."""
        return to_env(self, ENV_PREFIX)


def parse_args(argv: Optional[Sequence[str]] = None, description: Optional[str] = None) -> ServerSettings:
    """The environment's settings with the flags of ``argv`` applied over them."""
    parser = argparse.ArgumentParser(prog="python -m vot_lorat", description=description,
                                     epilog="Each flag has an environment variable (trackers.ini: env_LORAT_X = ...); "
                                            "flags win. Booleans are 1 or 0 in the environment.")
    add_flags(parser, ServerSettings, ENV_PREFIX, os.environ)
    args = parser.parse_args(argv)
    values = env_values(ServerSettings, os.environ, ENV_PREFIX)
    values.update(given_values(args, ServerSettings))
    return ServerSettings(**values)
