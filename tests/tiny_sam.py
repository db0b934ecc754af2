"""Test helpers: a tiny SAM built from segment-anything's own blocks, and a way to save it to a file.

Real SAMs take seconds per image on these CPUs; this one keeps SAM's structure (windowed and global
attention, relative positions, two-way decoder, three multimask outputs) at a 256 px input, a 16x16
embedding and a 64x64 low-res mask grid, and runs in milliseconds.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

TINY_IMAGE_SIZE = 256
TINY_PATCH = 16
TINY_PROMPT_DIM = 32
TINY_ENCODER_DIM = 64
TINY_DEPTH = 2


def build_tiny_sam(seed: int = 0) -> Sam:
    """A randomly initialised SAM with the real architecture at toy sizes (eval mode, CPU)."""
    torch.manual_seed(seed)
    grid = TINY_IMAGE_SIZE // TINY_PATCH
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=TINY_IMAGE_SIZE, patch_size=TINY_PATCH, embed_dim=TINY_ENCODER_DIM, depth=TINY_DEPTH,
            num_heads=2, mlp_ratio=2.0, out_chans=TINY_PROMPT_DIM, qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True, window_size=4,
            global_attn_indexes=(TINY_DEPTH - 1,)),
        prompt_encoder=PromptEncoder(embed_dim=TINY_PROMPT_DIM, image_embedding_size=(grid, grid),
                                     input_image_size=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), mask_in_chans=4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=TINY_PROMPT_DIM, mlp_dim=64, num_heads=2),
            transformer_dim=TINY_PROMPT_DIM, iou_head_depth=3, iou_head_hidden_dim=32),
    )
    return sam.eval()


def save_tiny_sam(path: Path, seed: int = 0) -> Sam:
    """Write the tiny SAM's state dict with ``torch.save``, the layout of Meta's ``sam_vit_*.pth`` files."""
    sam = build_tiny_sam(seed)
    torch.save(sam.state_dict(), path)
    return sam
