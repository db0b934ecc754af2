"""LoRA adapters on the ViT's Linear layers, their freezing rules, and merging them into the weights.

Module names follow the released checkpoints: a wrapped Linear keeps the
frozen layer as ``.linear`` and the adapter as ``.lora`` with ``A [r, in]`` and ``B [out, r]``;
the fused ``attn.qkv`` is split into ``q``, ``k`` and ``v`` with one adapter each.
"""
from __future__ import annotations

import math
from typing import Iterator, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def lora_scaling(alpha: float | None, rank: int, use_rslora: bool = False) -> float:
    """alpha/r (alpha/sqrt(r) for rsLoRA); 1.0 when alpha is unknown, as the reference loaders do."""
    if alpha is None:
        return 1.0
    return float(alpha) / (math.sqrt(rank) if use_rslora else rank)


class LoRA(nn.Module):
    """The low-rank update ``x @ A^T @ B^T * scaling``."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float | None,
                 dropout: float = 0.0, use_rslora: bool = False, init: str = "bert") -> None:
        super().__init__()
        if rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {rank}")
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.empty(out_features, rank))
        self.alpha = alpha
        self.use_rslora = use_rslora
        self.scaling = lora_scaling(alpha, rank, use_rslora)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_parameters(init)

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    def reset_parameters(self, init: str = "bert") -> None:
        if init == "bert":
            # The official LoRAT default: A and B both truncated normal std 0.02, cut at +-2 (B is not zero).
            nn.init.trunc_normal_(self.A, std=0.02, a=-2.0, b=2.0)
            nn.init.trunc_normal_(self.B, std=0.02, a=-2.0, b=2.0)
        elif init == "lora":
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
            nn.init.zeros_(self.B)
        elif init == "gaussian":
            nn.init.normal_(self.A, std=1.0 / self.rank)
            nn.init.zeros_(self.B)
        else:
            raise ValueError(f"unknown LoRA init {init!r}; choose bert, lora or gaussian")

    def delta_weight(self) -> torch.Tensor:
        """B @ A * scaling in float32: the update that merging adds to the frozen weight."""
        return (self.B.float() @ self.A.float()) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(self.dropout(x), self.A), self.B) * self.scaling


class LoRALinear(nn.Module):
    """A frozen Linear plus a LoRA update."""

    def __init__(self, linear: nn.Linear, lora: LoRA) -> None:
        super().__init__()
        self.linear = linear
        self.lora = lora

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.lora(x)

    def merged(self) -> nn.Linear:
        out = nn.Linear(self.linear.in_features, self.linear.out_features, bias=self.linear.bias is not None,
                        device=self.linear.weight.device, dtype=self.linear.weight.dtype)
        with torch.no_grad():
            w = self.linear.weight
            out.weight.copy_((w.float() + self.lora.delta_weight()).to(w.dtype))
            if self.linear.bias is not None:
                out.bias.copy_(self.linear.bias)  # LoRA never changes biases
        return out


class QKVLoRALinear(nn.Module):
    """The fused qkv Linear split by rows into q, k, v, each with its own adapter; outputs ``[q|k|v]``."""

    def __init__(self, q: LoRALinear, k: LoRALinear, v: LoRALinear) -> None:
        super().__init__()
        self.q, self.k, self.v = q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)

    def merged(self) -> nn.Linear:
        parts = [self.q.merged(), self.k.merged(), self.v.merged()]
        dim_in = parts[0].in_features
        has_bias = parts[0].bias is not None
        out = nn.Linear(dim_in, sum(p.out_features for p in parts), bias=has_bias,
                        device=parts[0].weight.device, dtype=parts[0].weight.dtype)
        with torch.no_grad():
            out.weight.copy_(torch.cat([p.weight for p in parts]))
            if has_bias:
                out.bias.copy_(torch.cat([p.bias for p in parts]))
        return out


def _split_linear(linear: nn.Linear, parts: int) -> Tuple[nn.Linear, ...]:
    rows = linear.out_features // parts
    out = []
    for i in range(parts):
        piece = nn.Linear(linear.in_features, rows, bias=linear.bias is not None,
                          device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            piece.weight.copy_(linear.weight[i * rows:(i + 1) * rows])
            if linear.bias is not None:
                piece.bias.copy_(linear.bias[i * rows:(i + 1) * rows])
        out.append(piece)
    return tuple(out)


def _wrap(linear: nn.Linear, rank: int, alpha: float | None, dropout: float, use_rslora: bool,
          init: str) -> LoRALinear:
    lora = LoRA(linear.in_features, linear.out_features, rank, alpha, dropout, use_rslora, init)
    lora.to(device=linear.weight.device)
    return LoRALinear(linear, lora)


# The Linear layers of a timm ViT block that carry LoRA; timm's SwiGLUPacked names the reference's
# w12 / w3 as fc1 / fc2, so the same list covers ViT-g.
LORA_TARGETS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


def apply_lora(blocks: nn.ModuleList, rank: int, alpha: float | None, dropout: float = 0.0,
               use_rslora: bool = False, init: str = "bert") -> None:
    """Wrap every target Linear of every block in place (qkv split into three adapters)."""
    for block in blocks:
        for target in LORA_TARGETS:
            parent_name, attr = target.split(".")
            parent = getattr(block, parent_name)
            layer = getattr(parent, attr)
            if not isinstance(layer, nn.Linear):
                raise TypeError(f"cannot apply LoRA to {target}: it is already a {type(layer).__name__}")
            if attr == "qkv":
                q, k, v = _split_linear(layer, 3)
                wrapped = QKVLoRALinear(*(_wrap(p, rank, alpha, dropout, use_rslora, init) for p in (q, k, v)))
            else:
                wrapped = _wrap(layer, rank, alpha, dropout, use_rslora, init)
            setattr(parent, attr, wrapped)


def iter_lora(module: nn.Module) -> Iterator[Tuple[str, LoRA]]:
    for name, m in module.named_modules():
        if isinstance(m, LoRA):
            yield name, m


def has_lora(module: nn.Module) -> bool:
    return next(iter_lora(module), None) is not None


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every adapter into its Linear (W + B@A*scaling, in float32) so inference pays nothing for LoRA."""
    for name, child in list(module.named_children()):
        if isinstance(child, (LoRALinear, QKVLoRALinear)):
            setattr(module, name, child.merged())
        else:
            merge_lora(child)
    return module


def set_lora_scaling(module: nn.Module, alpha: float | None, use_rslora: bool) -> None:
    """Apply the alpha / rsLoRA flag a checkpoint carries to every adapter."""
    for _, lora in iter_lora(module):
        lora.alpha = alpha
        lora.use_rslora = use_rslora
        lora.scaling = lora_scaling(alpha, lora.rank, use_rslora)
