"""The LoRAT network: one-stream DINOv2 ViT over template and search tokens, then the MLP head.

Submodule and parameter names match the released checkpoints (lorat_reference 1.3, 2.2):
``patch_embed.proj``, ``blocks``, ``norm``, ``pos_embed``, ``token_type_embed``, ``head``.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from .backbone import pretrained_patch_grid, resize_pos_embed
from .config import LoRATConfig
from .head import MlpAnchorFreeHead
from .lora import apply_lora, has_lora

# token_type_embed rows (lorat_reference 1.3)
TEMPLATE_BACKGROUND, TEMPLATE_FOREGROUND, SEARCH_REGION = 0, 1, 2


class LoRAT(nn.Module):
    """``model(z, x, z_feat_mask)`` -> ``{"score_map": (B,H,W) logits, "boxes": (B,H,W,4) normalised xyxy}``."""

    def __init__(self, config: LoRATConfig, vit: VisionTransformer) -> None:
        super().__init__()
        self.config = config
        dim = config.backbone.embed_dim
        self.patch_embed = vit.patch_embed
        self.blocks = vit.blocks
        self.norm = vit.norm
        # Shared position embedding: the pretrained 37x37 grid resized to the search grid; the template uses
        # its top-left sub-grid. Frozen, and recomputed from the backbone rather than stored (lorat_reference 1.3).
        pos = resize_pos_embed(pretrained_patch_grid(vit), config.search_grid)
        self.pos_embed = nn.Parameter(pos, requires_grad=False)
        self.token_type_embed = nn.Parameter(torch.empty(3, dim))
        nn.init.trunc_normal_(self.token_type_embed, std=0.02, a=-2.0, b=2.0)
        self.head = MlpAnchorFreeHead(dim, config.search_grid)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """Patchify without timm's input-size assertion: (B, 3, H, W) -> (B, H/14 * W/14, D), row-major."""
        return self.patch_embed.proj(image).flatten(2).transpose(1, 2)

    def forward(self, z: torch.Tensor, x: torch.Tensor, z_feat_mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        grid = self.config.search_grid
        dim = self.pos_embed.shape[-1]
        z_h, z_w = z_feat_mask.shape[-2:]
        z_pos = self.pos_embed.view(1, grid, grid, dim)[:, :z_h, :z_w, :].reshape(1, z_h * z_w, dim)
        z_tokens = self.embed(z) + z_pos + self.token_type_embed[z_feat_mask.flatten(1).long()]
        x_tokens = self.embed(x) + self.pos_embed + self.token_type_embed[SEARCH_REGION]
        tokens = torch.cat([z_tokens, x_tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return self.head(tokens[:, z_tokens.shape[1]:])

    def enable_lora(self, rank: int, alpha: float | None, dropout: float = 0.0, use_rslora: bool = False,
                    init: str = "bert") -> None:
        apply_lora(self.blocks, rank, alpha, dropout, use_rslora, init)

    def freeze_for_lora(self) -> None:
        """Train only LoRA, the token-type embedding and the head (the paper's PEFT setting)."""
        for name, param in self.named_parameters():
            param.requires_grad = ".lora." in name or name == "token_type_embed" or name.startswith("head.")

    def unfreeze_all(self) -> None:
        """Full fine-tuning: every parameter trains, the position embedding included (the reference baseline)."""
        for param in self.parameters():
            param.requires_grad = True

    @property
    def has_lora(self) -> bool:
        return has_lora(self)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> Dict[str, int]:
    """Parameter counts split into lora / head / token_type_embed / other."""
    counts = {"lora": 0, "head": 0, "token_type_embed": 0, "other": 0}
    for name, p in model.named_parameters():
        if trainable_only and not p.requires_grad:
            continue
        if ".lora." in name:
            counts["lora"] += p.numel()
        elif name.startswith("head."):
            counts["head"] += p.numel()
        elif name == "token_type_embed":
            counts["token_type_embed"] += p.numel()
        else:
            counts["other"] += p.numel()
    counts["total"] = sum(counts.values())
    return counts
