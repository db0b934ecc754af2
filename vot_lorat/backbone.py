"""DINOv2 ViTs built with timm, and loading Meta's or timm's pretrained weights from a local file."""
from __future__ import annotations

import re
from typing import Dict

import torch
import torch.nn as nn
from timm.layers import DropPath, SwiGLUPacked
from timm.models.vision_transformer import Block, VisionTransformer

from .config import PATCH_SIZE, BackboneSpec
from .weights_io import WeightFileError, read_state_dict


SUBSET_DROP_ABOVE = 0.1  # DINOv2 uses batch-subset stochastic depth only above this rate (lorat_reference 1.1)


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

    Stochastic depth is uniform over the blocks, as the reference builds DINOv2 (drop_path_uniform=True).
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


_CHUNKED_BLOCK = re.compile(r"^blocks\.\d+\.(\d+)\.")


def to_timm_keys(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Meta DINOv2 names -> timm names: drop mask_token, un-chunk blocks, giant w12/w3 -> fc1/fc2."""
    out = {}
    for key, value in state.items():
        if key == "mask_token":
            continue
        key = _CHUNKED_BLOCK.sub(r"blocks.\1.", key)
        key = key.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2.")
        out[key] = value
    return out


def describe_backbone_state(state: Dict[str, torch.Tensor]) -> str:
    """What a backbone state dict looks like, in the words of the error messages."""
    if "patch_embed.proj.weight" not in state:
        sample = ", ".join(list(state)[:4])
        return f"no 'patch_embed.proj.weight' (keys start with: {sample})"
    dim = state["patch_embed.proj.weight"].shape[0]
    depth = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("blocks.")), default=-1)
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    fc2 = state.get("blocks.0.mlp.fc2.weight")
    mlp = "unknown"
    if fc1 is not None and fc2 is not None:
        mlp = "SWIGLU" if fc1.shape[0] == 2 * fc2.shape[1] else "GELU"
    return f"embed dim {dim}, {depth} blocks, {mlp} MLP"


def load_backbone_weights(vit: VisionTransformer, path: str, spec: BackboneSpec, variant: str) -> None:
    """Load a Meta ``dinov2_vit*14_pretrain.pth`` or a timm ``.safetensors`` DINOv2 file into ``vit``.

    Any mismatch is reported with the file, the backbone the variant needs and what the file holds.
    """
    expected = spec.meta_file or "a DINOv2 checkpoint"
    state = read_state_dict(path, "backbone file", f"Variant {variant} needs the DINOv2 {spec.name} weights "
                                                   f"({expected}); pass its local path.")
    for nested in ("model", "state_dict", "teacher"):
        if nested in state and isinstance(state[nested], dict):
            state = state[nested]
    state = to_timm_keys({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
    if "reg_token" in state:
        raise WeightFileError(
            f"{path} is a DINOv2 with register tokens; LoRAT uses the plain DINOv2 {spec.name} ({expected}).")
    target = vit.state_dict()
    found = describe_backbone_state(state)
    mismatch = [k for k in target if k not in state or state[k].shape != target[k].shape]
    if mismatch:
        detail = mismatch[0]
        if detail in state:
            detail += f" has shape {tuple(state[detail].shape)}, expected {tuple(target[detail].shape)}"
        else:
            detail += " is missing"
        raise WeightFileError(
            f"{path} does not match variant {variant}: expected DINOv2 {spec.describe()}, "
            f"found {found} ({detail}). Use {expected} for {variant}, or the variant that fits this file.")
    unexpected = [k for k in state if k not in target and not k.startswith("head.")]
    if unexpected:
        raise WeightFileError(f"{path}: unexpected keys for DINOv2 {spec.name}: {', '.join(unexpected[:5])}")
    vit.load_state_dict({k: state[k] for k in target}, strict=True)


def pretrained_patch_grid(vit: VisionTransformer) -> torch.Tensor:
    """The patch position embeddings (no cls slot) as a (1, D, G, G) grid."""
    pos = vit.pos_embed.detach()
    num_prefix = pos.shape[1] - vit.patch_embed.num_patches
    patches = pos[:, num_prefix:]
    grid = int(round(patches.shape[1] ** 0.5))
    return patches.reshape(1, grid, grid, -1).permute(0, 3, 1, 2)


def resize_pos_embed(grid: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of a (1, D, G, G) grid to ``size x size`` tokens, as the reference does: ``size=``,
    align_corners=False, no antialias, no offset, float32 (lorat_reference 1.3). Returns (1, size*size, D)."""
    resized = torch.nn.functional.interpolate(grid.float(), size=(size, size), mode="bicubic",
                                              align_corners=False, antialias=False)
    return resized.permute(0, 2, 3, 1).reshape(1, size * size, -1)

