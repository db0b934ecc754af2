"""DINOv2 ViTs built with timm, and their position grid resized to LoRAT's (pretrained weights are loaded by
:func:`vot_lorat.weights.loading.load_backbone`)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, SwiGLUPacked
from timm.models.vision_transformer import Block, VisionTransformer

from .config import PATCH_SIZE, BackboneSpec

SUBSET_DROP_ABOVE = 0.1  # DINOv2 uses batch-subset stochastic depth only above this rate


def _subset_residual(x: torch.Tensor, branch, drop_ratio: float) -> torch.Tensor:
    """``x + branch(x)`` for a random ``1 - drop_ratio`` share of the batch, the branch scaled up by
    ``B / kept``, and ``x`` for the rest: stochastic depth that skips the dropped samples' computation."""
    batch = x.shape[0]
    kept = max(int(batch * (1 - drop_ratio)), 1)
    index = torch.randperm(batch, device=x.device)[:kept]
    residual = branch(x[index])
    out = torch.index_add(x.flatten(1), 0, index, residual.flatten(1).to(x.dtype), alpha=batch / kept)
    return out.view_as(x)


class DINOv2Block(Block):
    """timm's ViT block with DINOv2's stochastic depth: at rates above 0.1 a training step computes the
    residual branches for a random subset of the batch only (ViT-g trains with 0.4); below, ordinary
    per-sample DropPath; at inference the plain block."""

    subset_drop_ratio: float = 0.0

    def forward(self, x: torch.Tensor, attn_mask=None, is_causal: bool = False) -> torch.Tensor:
        if self.training and self.subset_drop_ratio > SUBSET_DROP_ABOVE and attn_mask is None and not is_causal:
            x = _subset_residual(x, lambda t: self.ls1(self.attn(self.norm1(t))), self.subset_drop_ratio)
            return _subset_residual(x, lambda t: self.ls2(self.mlp(self.norm2(t))), self.subset_drop_ratio)
        return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)


def create_vit(spec: BackboneSpec, drop_path_rate: float = 0.0, init_values: float = 1e-5) -> VisionTransformer:
    """An untrained DINOv2-shaped ViT at the 518 px pretraining size (37x37 position grid).

    Stochastic depth is uniform over the blocks, as the official LoRAT builds DINOv2 (drop_path_uniform=True).
    """
    kwargs = dict(
        img_size=spec.pretrain_grid * PATCH_SIZE, patch_size=PATCH_SIZE, embed_dim=spec.embed_dim,
        depth=spec.depth, num_heads=spec.num_heads, mlp_ratio=spec.mlp_ratio, init_values=init_values,
        num_classes=0, qkv_bias=True, block_fn=DINOv2Block,
    )
    if spec.mlp == "swiglu":
        kwargs.update(mlp_layer=SwiGLUPacked, act_layer=nn.SiLU)
    vit = VisionTransformer(**kwargs)
    for block in vit.blocks:
        if drop_path_rate > SUBSET_DROP_ABOVE:
            block.subset_drop_ratio = drop_path_rate
        elif drop_path_rate > 0:
            block.drop_path1 = DropPath(drop_path_rate)
            block.drop_path2 = DropPath(drop_path_rate)
    return vit


def resize_pos_embed(pos_embed: torch.Tensor, size: int) -> torch.Tensor:
    """A ViT's (1, prefix + G*G, D) position embedding as the (1, size*size, D) LoRAT grid: the prefix (class
    token) slots dropped, the G x G patch grid resized bicubically as the official LoRAT does (``size=``,
    align_corners=False, no antialias, no offset, float32)."""
    tokens = pos_embed.shape[1]
    grid = math.isqrt(tokens)
    patches = pos_embed[:, tokens - grid * grid:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(patches.float(), size=(size, size), mode="bicubic", align_corners=False,
                            antialias=False)
    return resized.permute(0, 2, 3, 1).reshape(1, size * size, -1)
