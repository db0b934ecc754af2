"""Building a LoRAT from a variant name, a DINOv2 backbone file and a LoRAT checkpoint."""
from __future__ import annotations

import logging
from typing import Optional, Union

import torch

from .backbone import create_vit, load_backbone_weights
from .checkpoint import LORA, LORA_FULL, MERGED, LoRATCheckpoint, check_compatible, read_checkpoint
from .config import LoRATConfig, get_config
from .lora import merge_lora, set_lora_scaling
from .model import LoRAT
from .weights_io import WeightFileError, optional_path

log = logging.getLogger(__name__)


def create_model(config: LoRATConfig, backbone: Optional[str] = None, lora: bool = True,
                 init_values: float = 1e-5, lora_init: str = "bert") -> LoRAT:
    """A trainable LoRAT: DINOv2 weights from ``backbone`` (random when None), fresh head and adapters.

    With ``lora=False`` the model has no adapters and every parameter trains (full fine-tuning).
    """
    vit = create_vit(config.backbone, config.drop_path_rate, init_values)
    if backbone is not None:
        load_backbone_weights(vit, backbone, config.backbone, config.name)
    model = LoRAT(config, vit)
    if lora:
        model.enable_lora(config.lora_rank, config.lora_alpha, config.lora_dropout, config.use_rslora, lora_init)
        model.freeze_for_lora()
    else:
        model.unfreeze_all()
    return model


def _load_into(model: LoRAT, ckpt: LoRATCheckpoint, needs_pos_embed: bool) -> None:
    target = model.state_dict()
    state = dict(ckpt.state)
    unexpected = [k for k in state if k not in target]
    if unexpected:
        raise WeightFileError(f"{ckpt.path}: keys this {model.config.name} model does not have: "
                              f"{', '.join(unexpected[:6])}{' ...' if len(unexpected) > 6 else ''}")
    if ckpt.layout == LORA:
        required = [k for k in target if ".lora." in k or k == "token_type_embed" or k.startswith("head.")]
    else:
        required = [k for k in target if k != "pos_embed" or needs_pos_embed]
    missing = [k for k in required if k not in state]
    if missing:
        raise WeightFileError(f"{ckpt.path}: incomplete {ckpt.layout} checkpoint, missing "
                              f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    for key, value in state.items():
        if value.shape != target[key].shape:
            raise WeightFileError(f"{ckpt.path}: {key} has shape {tuple(value.shape)}, "
                                  f"{model.config.name} expects {tuple(target[key].shape)}")
    model.load_state_dict(state, strict=False)


def load_model(variant: Union[str, LoRATConfig], backbone: Optional[str] = None, weights: Optional[str] = None,
               device: Union[str, torch.device] = "cpu", *, lora_rank: Optional[int] = None,
               merge: Optional[bool] = None) -> LoRAT:
    """An eval-mode LoRAT for ``variant`` ("B-224", ..., "tiny").

    ``backbone``: Meta ``dinov2_vit*14_pretrain.pth`` or timm ``.safetensors``; needed unless ``weights`` is a
    whole (merged or fully fine-tuned) model. ``weights``: a LoRAT checkpoint in any released layout; None gives
    fresh adapters and head (for training). ``merge`` folds LoRA into the weights (default: when weights are
    given), so the forward pass costs what the plain ViT costs.
    """
    config = get_config(variant) if isinstance(variant, str) else variant
    if lora_rank is not None:
        config = config.replace(lora_rank=lora_rank)
    backbone = optional_path(backbone)
    weights = optional_path(weights)
    ckpt = read_checkpoint(weights) if weights is not None else None
    if ckpt is not None:
        check_compatible(ckpt, config)
    self_contained = ckpt is not None and ckpt.layout in (MERGED, LORA_FULL) and "pos_embed" in ckpt.state
    if backbone is None and not self_contained:
        if ckpt is not None:
            spec = config.backbone
            raise WeightFileError(
                f"{weights} holds only the LoRAT adapters and head; it needs the DINOv2 {spec.name} backbone "
                f"({spec.meta_file or 'a DINOv2 checkpoint'}): pass backbone=PATH (CLI: --backbone PATH).")
        if config.backbone.timm_name is not None:
            log.warning("no backbone weights given for %s: the ViT starts from random weights", config.name)

    if ckpt is not None and ckpt.layout == MERGED:
        model = create_model(config, backbone, lora=False)
    else:
        model = create_model(config, backbone, lora=True)
    if ckpt is not None:
        if ckpt.layout != MERGED:
            set_lora_scaling(model, ckpt.lora_alpha, ckpt.use_rslora)
        _load_into(model, ckpt, needs_pos_embed=backbone is None)
    if merge if merge is not None else ckpt is not None:
        merge_lora(model)
    model.requires_grad_(ckpt is None)
    if ckpt is None:
        model.freeze_for_lora()
    return model.to(device).eval()
