"""The LoRAT network: one-stream DINOv2 ViT over template and search tokens, then the MLP head.

Submodule and parameter names match the released checkpoints: ``patch_embed.proj``, ``blocks``, ``norm``,
``pos_embed``, ``token_type_embed``, ``head``.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from .backbone import resize_pos_embed
from .config import LoRATConfig
from .head import MlpAnchorFreeHead
from .lora import apply_lora, has_lora

# token_type_embed rows, in the released checkpoints' order
TEMPLATE_BACKGROUND, TEMPLATE_FOREGROUND, SEARCH_REGION = 0, 1, 2


class LoRAT(nn.Module):
    """``model(z, x, z_feat_mask)`` -> ``{"score_map": (B,H,W) logits, "boxes": (B,H,W,4) normalised xyxy}``.

    Built from an untrained ViT; pretrained weights are loaded afterwards (:mod:`vot_lorat.weights.loading`).
    """

    def __init__(self, config: LoRATConfig, vit: VisionTransformer) -> None:
        super().__init__()
        self.config = config
        dim = config.backbone.embed_dim
        self.patch_embed = vit.patch_embed
        self.blocks = vit.blocks
        self.norm = vit.norm
        # One position embedding on the search grid; the template uses its top-left sub-grid. Frozen: a backbone
        # file's grid is resized into it at load time. Until then it holds the ViT's initial grid, resized.
        pos = resize_pos_embed(vit.pos_embed.detach(), config.search_grid)
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

    @staticmethod
    def is_trainable_name(name: str) -> bool:
        """The paper's PEFT setting: only LoRA, the token-type embedding and the head train (and are saved)."""
        return ".lora." in name or name == "token_type_embed" or name.startswith("head.")

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """The tensors a LoRA checkpoint holds: the adapters, the token-type embedding and the head."""
        return {k: v for k, v in self.state_dict().items() if self.is_trainable_name(k)}

    def freeze_for_lora(self) -> None:
        for name, param in self.named_parameters():
            param.requires_grad = self.is_trainable_name(name)

    def unfreeze_all(self) -> None:
        """Full fine-tuning: every parameter trains, the position embedding included (the paper's baseline)."""
        for param in self.parameters():
            param.requires_grad = True

    @property
    def has_lora(self) -> bool:
        return has_lora(self)


def count_parameters(model: LoRAT, trainable_only: bool = True) -> Dict[str, int]:
    """Parameter counts split into lora / head / token_type_embed / other."""
    counts = {"lora": 0, "head": 0, "token_type_embed": 0, "other": 0}
    for name, p in model.named_parameters():
        if trainable_only and not p.requires_grad:
            continue
        top = name.split(".", 1)[0]
        if top in ("head", "token_type_embed"):
            counts[top] += p.numel()
        else:
            counts["lora" if model.is_trainable_name(name) else "other"] += p.numel()
    counts["total"] = sum(counts.values())
    return counts
