"""The anchor-free MLP head: a score logit and an (l, t, r, b) box per search-grid cell."""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn


class Mlp3(nn.Module):
    """Three Linear layers with exact GELU after the first two (submodules ``layers.{0,1,2}``)."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, out_dim)])
        self.act = nn.GELU()
        for layer in self.layers:
            nn.init.trunc_normal_(layer.weight, std=0.02, a=-2.0, b=2.0)  # reference head init
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.layers[0](x))
        x = self.act(self.layers[1](x))
        return self.layers[2](x)


def cell_centres(height: int, width: int) -> torch.Tensor:
    """Normalised centre (x, y) of every response-map cell, shape (H, W, 2)."""
    cx = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    cy = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    grid_y, grid_x = torch.meshgrid(cy, cx, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


class MlpAnchorFreeHead(nn.Module):
    """Score logits plus sigmoid (l, t, r, b) distances from each cell centre, as normalised xyxy boxes."""

    def __init__(self, dim: int, grid_size: int) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.cls_mlp = Mlp3(dim, 1)
        self.reg_mlp = Mlp3(dim, 4)
        self.register_buffer("bbox_offset", cell_centres(grid_size, grid_size), persistent=False)

    def forward(self, tokens: torch.Tensor) -> Dict[str, torch.Tensor]:
        b = tokens.shape[0]
        h = w = self.grid_size
        score_map = self.cls_mlp(tokens).to(torch.float32).view(b, h, w)
        ltrb = self.reg_mlp(tokens).to(torch.float32).sigmoid().view(b, h, w, 4)
        centre = self.bbox_offset
        boxes = torch.cat([centre - ltrb[..., :2], centre + ltrb[..., 2:]], dim=-1)
        return {"score_map": score_map, "boxes": boxes}
