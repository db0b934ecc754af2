"""Building a LoRAT, then loading weights into it: a DINOv2 backbone file and a LoRAT checkpoint."""
from __future__ import annotations

import logging
from typing import Optional, Union

import torch

from ..model.backbone import create_vit
from ..model.config import LoRATConfig, get_config
from ..model.lora import iter_lora, merge_lora, set_lora_scaling
from ..model.network import LoRAT
from .checkpoint import (LORA, MERGED, BackboneNotLoRATError, LoRATCheckpoint, check_compatible, infer_variant,
                         needs_backbone, read_checkpoint)
from .files import WeightFileError, optional_path, read_state_dict
from .formats import dinov2_to_lorat, dinov2_to_timm, infer_dinov2

log = logging.getLogger(__name__)


def _listing(keys: list) -> str:
    return ", ".join(keys[:6]) + (" ..." if len(keys) > 6 else "")


def load_backbone(model: LoRAT, path: str) -> None:
    """Load a Meta ``dinov2_vit*14_pretrain.pth`` or a timm ``.safetensors`` DINOv2 file into a model that has
    no adapters yet, the position grid resized to the search grid on the way.

    Any mismatch is reported with the file, the backbone the variant needs and what the file holds.
    """
    config = model.config
    spec = config.backbone
    expected = spec.meta_file or "a DINOv2 checkpoint"
    state = dinov2_to_timm(read_state_dict(path, "backbone file", f"Variant {config.name} needs the DINOv2 "
                                                                  f"{spec.name} weights ({expected}); pass its "
                                                                  f"local path."))
    if "reg_token" in state:
        raise WeightFileError(
            f"{path} is a DINOv2 with register tokens; LoRAT uses the plain DINOv2 {spec.name} ({expected}).")
    shape = infer_dinov2(state)
    found = shape.describe() if shape.embed_dim is not None else (
        f"no 'patch_embed.proj.weight' (keys start with: {', '.join(list(state)[:4])})")
    state = dinov2_to_lorat(state, config.search_grid)
    target = {k: v for k, v in model.state_dict().items() if not model.is_trainable_name(k)}
    mismatch = [k for k in target if k not in state or state[k].shape != target[k].shape]
    if mismatch:
        detail = mismatch[0]
        if detail in state:
            detail += f" has shape {tuple(state[detail].shape)}, expected {tuple(target[detail].shape)}"
        else:
            detail += " is missing"
        raise WeightFileError(
            f"{path} does not match variant {config.name}: expected DINOv2 {spec.describe()}, "
            f"found {found} ({detail}). Use {expected} for {config.name}, or the variant that fits this file.")
    unexpected = [k for k in state if k not in target]
    if unexpected:
        raise WeightFileError(f"{path}: unexpected keys for DINOv2 {spec.name}: {', '.join(unexpected[:5])}")
    model.load_state_dict(state, strict=False)


def create_model(config: LoRATConfig, backbone: Optional[str] = None, lora: bool = True,
                 init_values: float = 1e-5, lora_init: str = "bert") -> LoRAT:
    """A trainable LoRAT, as training starts from.

    Args:
        config: the variant (:func:`vot_lorat.get_config`).
        backbone: a DINOv2 weight file to start the ViT from; None: random weights.
        lora: add adapters of ``config.lora_rank`` and train only them, the token-type embedding and the head
            (the paper's setting); False: no adapters, every parameter trains (full fine-tuning).
        init_values: LayerScale's initial gammas, for a ViT that starts from random weights.
        lora_init: how the adapters start: ``bert`` (the official default), ``lora`` or ``gaussian``.

    Returns:
        The model, in train mode, on the CPU.
    """
    model = LoRAT(config, create_vit(config.backbone, config.drop_path_rate, init_values))
    if backbone is not None:
        load_backbone(model, backbone)
    if lora:
        model.enable_lora(config.lora_rank, config.lora_alpha, config.lora_dropout, config.use_rslora, lora_init)
        model.freeze_for_lora()
    else:
        model.unfreeze_all()
    return model


def load_checkpoint(model: LoRAT, ckpt: LoRATCheckpoint) -> None:
    """Load a LoRAT checkpoint into a built model: the variant, layout, LoRA rank, keys and shapes are checked
    first, the LoRA scaling is taken from the file. Used for inference, fine-tuning from weights and resuming.

    A LoRA-only file must hold every trainable tensor; other layouts every tensor but ``pos_embed``, which
    otherwise stays the backbone file's.
    """
    config = model.config
    check_compatible(ckpt, config)
    adapters = [lora for _, lora in iter_lora(model)]
    if ckpt.layout == MERGED and adapters:
        raise WeightFileError(f"{ckpt.path}: merged weights (no LoRA adapters) do not fit a model with adapters; "
                              f"build the model without LoRA (create_model(..., lora=False); training: "
                              f"--full-finetune).")
    if ckpt.layout != MERGED and not adapters:
        raise WeightFileError(f"{ckpt.path}: a {ckpt.layout} checkpoint needs a model with LoRA adapters, this "
                              f"{config.name} model has none; build it with LoRA (create_model(..., lora=True)).")
    if adapters and ckpt.lora_rank != adapters[0].rank:
        raise WeightFileError(
            f"{ckpt.path}: checkpoint has LoRA rank {ckpt.lora_rank}, the {config.name} model was built with rank "
            f"{adapters[0].rank}. Build it from config.replace(lora_rank={ckpt.lora_rank}) (training: --lora-rank "
            f"{ckpt.lora_rank}), or use load_model, which takes the rank from the checkpoint.")
    target = model.state_dict()
    unexpected = [k for k in ckpt.state if k not in target]
    if unexpected:
        raise WeightFileError(f"{ckpt.path}: keys this {config.name} model does not have: {_listing(unexpected)}")
    if ckpt.layout == LORA:
        required = [k for k in target if model.is_trainable_name(k)]
    else:
        required = [k for k in target if k != "pos_embed"]
    missing = [k for k in required if k not in ckpt.state]
    if missing:
        raise WeightFileError(f"{ckpt.path}: incomplete {ckpt.layout} checkpoint, missing {_listing(missing)}")
    for key, value in ckpt.state.items():
        if value.shape != target[key].shape:
            raise WeightFileError(f"{ckpt.path}: {key} has shape {tuple(value.shape)}, "
                                  f"{config.name} expects {tuple(target[key].shape)}")
    if adapters:
        set_lora_scaling(model, ckpt.lora_alpha, ckpt.use_rslora)
    model.load_state_dict(ckpt.state, strict=False)


def load_model(variant: Union[str, LoRATConfig, None], backbone: Optional[str] = None,
               weights: Optional[str] = None, device: Union[str, torch.device] = "cpu", *,
               merge: Optional[bool] = None) -> LoRAT:
    """A LoRAT with its weights, ready to track.

    Args:
        variant: "B-224", ..., "g-378", "tiny", or a config; None: the one ``weights`` was made for (see
            :func:`vot_lorat.weights.checkpoint.infer_variant`).
        backbone: Meta's ``dinov2_vit*14_pretrain.pth`` or a timm ``.safetensors``; needed unless ``weights``
            is a whole (merged or fully fine-tuned) model.
        weights: a LoRAT checkpoint in any released layout, whose adapters set the LoRA rank; None gives fresh
            adapters and head (for training).
        device: where the model runs.
        merge: fold LoRA into the weights, so that the forward pass costs what the plain ViT costs (default:
            when weights are given).

    Returns:
        The model in eval mode on ``device``.

    Raises:
        WeightFileError: a file is missing, unreadable, or does not fit the variant; the message names the fix.
    """
    backbone = optional_path(backbone)
    weights = optional_path(weights)
    try:
        ckpt = read_checkpoint(weights) if weights is not None else None
    except BackboneNotLoRATError as exc:
        if backbone is None:
            raise
        raise WeightFileError(f"backbone and weights look swapped: {exc}, and the LoRAT weights may be the file "
                              f"given as backbone ({backbone})") from None
    if variant is None:
        if ckpt is None:
            raise ValueError("give the variant, or LoRAT weights to read it from")
        variant = infer_variant(ckpt)
    config = get_config(variant) if isinstance(variant, str) else variant
    if ckpt is not None:
        check_compatible(ckpt, config)  # load_checkpoint checks again; here a wrong file fails before a ViT is built
        if ckpt.lora_rank is not None:
            config = config.replace(lora_rank=ckpt.lora_rank)
    if backbone is None and (ckpt is None or needs_backbone(ckpt)):
        if ckpt is not None:
            spec = config.backbone
            raise WeightFileError(
                f"{weights} holds only the LoRAT adapters and head; it needs the DINOv2 {spec.name} backbone "
                f"({spec.meta_file or 'a DINOv2 checkpoint'}): pass backbone=PATH (CLI: --backbone PATH).")
        if config.backbone.timm_name is not None:
            log.warning("no backbone weights given for %s: the ViT starts from random weights", config.name)

    model = create_model(config, backbone, lora=ckpt is None or ckpt.layout != MERGED)
    if ckpt is not None:
        load_checkpoint(model, ckpt)
    if merge if merge is not None else ckpt is not None:
        merge_lora(model)
    model.requires_grad_(ckpt is None)
    if ckpt is None:
        model.freeze_for_lora()
    return model.to(device).eval()
