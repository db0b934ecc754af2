"""Test-only models, registered for the tests (by conftest.py, and by the TraX server entry the toolkit tests
start): ``tiny-g``, a small LoRAT with ViT-g's SwiGLU MLP, and ``tiny``, SAM's real architecture at toy sizes.
Both run every code path of their full-size counterparts in milliseconds on a CPU."""
from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path
from typing import List

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from vot_lorat.masks.sam import SamModelType, register_sam_model
from vot_lorat.model.config import BackboneSpec, LoRATConfig, register_variant

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_WEIGHTS = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")

VIT_TINY_SWIGLU = BackboneSpec("ViT-tiny-swiglu/14", None, None, 96, 3, 4, "swiglu", 512)
TINY_G = LoRATConfig("tiny-g", VIT_TINY_SWIGLU, 42, 84, 4.0, lora_rank=4, lora_alpha=8.0)


def _tiny_sam_architecture() -> Sam:
    """256 px input, 16x16 embedding, 64x64 low-res grid; randomly initialised, eval mode."""
    image_size, patch, prompt_dim, depth = 256, 16, 32, 2
    grid = image_size // patch
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size, patch_size=patch, embed_dim=64, depth=depth, num_heads=2, mlp_ratio=2.0,
            out_chans=prompt_dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=4, global_attn_indexes=(depth - 1,)),
        prompt_encoder=PromptEncoder(embed_dim=prompt_dim, image_embedding_size=(grid, grid),
                                     input_image_size=(image_size, image_size), mask_in_chans=4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=64, num_heads=2),
            transformer_dim=prompt_dim, iou_head_depth=3, iou_head_hidden_dim=32),
    ).eval()


TINY_SAM = SamModelType(_tiny_sam_architecture, "a tiny SAM state dict saved with torch.save", (64, 2))


def register() -> None:
    """Make ``tiny-g`` and the ``tiny`` SAM known to vot_lorat in this process."""
    register_variant(TINY_G)
    register_sam_model("tiny", TINY_SAM)


def build_tiny_sam(seed: int = 0) -> Sam:
    """The tiny SAM, randomly initialised from ``seed`` (eval mode, CPU)."""
    torch.manual_seed(seed)
    return _tiny_sam_architecture()


def save_tiny_sam(path: Path, seed: int = 0) -> Sam:
    """Write the tiny SAM's state dict with ``torch.save``, the layout of Meta's ``sam_vit_*.pth`` files."""
    sam = build_tiny_sam(seed)
    torch.save(sam.state_dict(), path)
    return sam


def script_with_tiny_models(script: str, *args: str) -> List[str]:
    """The command that runs a benchmark script (``benchmarks/...py``) with the test-only models registered."""
    run = (f"import sys, runpy, tiny_models; tiny_models.register(); sys.argv = {[script, *args]!r}; "
           f"sys.path.insert(0, {os.path.dirname(os.path.abspath(script))!r}); "  # as python SCRIPT does
           f"runpy.run_path({script!r}, run_name='__main__')")
    return [sys.executable, "-c", run]
