"""State-dict conversion: each source format's key names -> the names of our (timm) modules and back, and
what architecture a state dict holds.

Source formats: Meta's DINOv2 ``.pth``, timm's DINOv2 ``.safetensors``, the 2024 LoRAT ``model.bin``
(safetensors inside, with 0-d ``lora_alpha`` / ``use_rslora``) and the newer LoRAT ``model.safetensors``
(without them). ViT-g files name the SwiGLU layers ``mlp.w12`` / ``mlp.w3``; timm calls them ``fc1`` / ``fc2``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from ..model.backbone import resize_pos_embed
from ..model.config import BACKBONES, BackboneSpec

StateDict = Dict[str, torch.Tensor]

_CHUNKED_BLOCK = re.compile(r"^blocks\.\d+\.(\d+)\.")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")  # DDP, torch.compile, a wrapping module


def _swiglu_to_timm(key: str) -> str:
    return key.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2.")


# --- DINOv2 backbones -----------------------------------------------------------------------------------------


def from_meta_dinov2(state: StateDict) -> StateDict:
    """Meta's ``dinov2_vit*14_pretrain.pth`` -> timm names: no ``mask_token`` (used only by DINOv2's masked
    pretraining), blocks un-chunked (``blocks.<chunk>.<i>.`` -> ``blocks.<i>.``), ViT-g's w12/w3 -> fc1/fc2."""
    return {_swiglu_to_timm(_CHUNKED_BLOCK.sub(r"blocks.\1.", key)): value
            for key, value in state.items() if key != "mask_token"}


def from_timm_dinov2(state: StateDict) -> StateDict:
    """timm's DINOv2 ``.safetensors``: timm names already; a classifier head, if the file has one, is not backbone."""
    return {key: value for key, value in state.items() if not key.startswith("head.")}


def dinov2_to_timm(state: StateDict) -> StateDict:
    """Any DINOv2 file's state dict in timm names, Meta's or timm's format told apart by its keys."""
    for nested in ("model", "state_dict", "teacher"):  # training checkpoints wrap the weights
        if isinstance(state.get(nested), dict):
            state = state[nested]
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    meta = "mask_token" in state or any(_CHUNKED_BLOCK.match(k) or ".mlp.w12." in k for k in state)
    return from_meta_dinov2(state) if meta else from_timm_dinov2(state)


def dinov2_to_lorat(state: StateDict, search_grid: int) -> StateDict:
    """A DINOv2 state dict (timm names) as LoRAT backbone parameters, as timm's checkpoint filters adapt
    pretrained weights at load time: no class token (LoRAT has none), the pretraining position grid
    resized to the search grid."""
    out = {k: v for k, v in state.items() if k != "cls_token"}
    if "pos_embed" in out:
        out["pos_embed"] = resize_pos_embed(out["pos_embed"], search_grid)
    return out


# --- LoRAT checkpoints ----------------------------------------------------------------------------------------


def _strip_prefixes(key: str) -> str:
    while key.startswith(_WRAPPER_PREFIXES):
        key = key[key.index(".") + 1:]
    return key


def from_lorat_safetensors(state: StateDict) -> StateDict:
    """A newer LoRAT ``model.safetensors`` (or any LoRAT state dict without the LoRA scalars) -> our names:
    wrapper prefixes stripped, ViT-g's w12/w3 -> fc1/fc2, the non-persistent ``head.bbox_offset`` dropped."""
    out = {_swiglu_to_timm(_strip_prefixes(k)): v for k, v in state.items()}
    out.pop("head.bbox_offset", None)
    return out


def from_lorat_2024(state: StateDict) -> Tuple[StateDict, Optional[float], bool]:
    """The 2024 LoRAT ``model.bin``: the newer layout plus 0-d ``lora_alpha`` / ``use_rslora``, returned apart
    as (state, alpha, use_rslora); an absent alpha is None (scaling 1.0, as the official loaders use)."""
    state = dict(state)
    alpha = state.pop("lora_alpha", None)
    rslora = state.pop("use_rslora", None)
    return (from_lorat_safetensors(state), None if alpha is None else float(alpha.item()),
            False if rslora is None else bool(rslora.item()))


def to_official(state: StateDict, swiglu: bool) -> StateDict:
    """Our names -> the official LoRAT names (ViT-g: fc1/fc2 -> w12/w3), for files the official code loads."""
    if not swiglu:
        return dict(state)
    return {k.replace(".mlp.fc1.", ".mlp.w12.").replace(".mlp.fc2.", ".mlp.w3."): v for k, v in state.items()}


# --- what a state dict holds ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViTShape:
    """The ViT a state dict (timm names) holds; None where the state dict does not tell."""

    embed_dim: Optional[int]
    depth: Optional[int]
    mlp: Optional[str]  # "gelu" or "swiglu"

    def fits(self, spec: BackboneSpec) -> bool:
        return all(found in (None, wanted) for found, wanted in
                   ((self.embed_dim, spec.embed_dim), (self.depth, spec.depth), (self.mlp, spec.mlp)))

    def describe(self) -> str:
        return f"embed dim {self.embed_dim}, {self.depth} blocks, {self.mlp.upper() if self.mlp else 'unknown'} MLP"

    def name(self) -> str:
        """The known backbone with this width and depth, in the words of the error messages."""
        for spec in BACKBONES.values():
            if (spec.embed_dim, spec.depth) == (self.embed_dim, self.depth) and self.mlp in (None, spec.mlp):
                return f"{spec.name} (embed dim {spec.embed_dim}, {spec.depth} blocks)"
        return f"an unknown ViT (embed dim {self.embed_dim}, {self.depth} blocks)"


def _depth(state: StateDict) -> Optional[int]:
    blocks = [int(k.split(".")[1]) for k in state if k.startswith("blocks.")]
    return max(blocks) + 1 if blocks else None


def _mlp(state: StateDict) -> Optional[str]:
    """SwiGLU's fc1 has twice the outputs fc2 takes in; GELU's the same number. Read from plain weights or from
    the adapters (fc1's B has fc1's outputs, fc2's A has fc2's inputs)."""
    fc1 = [v for k, v in state.items() if k.startswith("blocks.0.mlp.fc1.") and k.endswith(("lora.B", "weight"))]
    fc2 = [v for k, v in state.items() if k.startswith("blocks.0.mlp.fc2.") and k.endswith(("lora.A", "weight"))]
    if not (fc1 and fc2):
        return None
    return "swiglu" if fc1[0].shape[0] == 2 * fc2[0].shape[-1] else "gelu"


def infer_dinov2(state: StateDict) -> ViTShape:
    """The ViT a DINOv2 backbone state dict (timm names) holds."""
    patch = state.get("patch_embed.proj.weight")
    return ViTShape(None if patch is None else patch.shape[0], _depth(state), _mlp(state))


def infer_lorat(state: StateDict) -> ViTShape:
    """The ViT a LoRAT checkpoint (our names) was made for; a LoRA-only file has no patch embedding, so its
    width comes from the token-type embedding or the head."""
    for key, dim_axis in (("token_type_embed", 1), ("head.cls_mlp.layers.0.weight", 1),
                          ("patch_embed.proj.weight", 0)):
        if key in state:
            return ViTShape(state[key].shape[dim_axis], _depth(state), _mlp(state))
    return ViTShape(None, _depth(state), _mlp(state))


def infer_sam_encoder(state: StateDict) -> Optional[Tuple[int, int]]:
    """(width, depth) of the image encoder a SAM state dict holds; None when it holds none."""
    patch = state.get("image_encoder.patch_embed.proj.weight")
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks.")}
    if not isinstance(patch, torch.Tensor) or not blocks:
        return None
    return int(patch.shape[0]), max(blocks) + 1
