"""LoRAT weight files: recognising their layout, checking them against a variant, and writing them.

Layouts:
- ``lora``: the released files. LoRA A/B, ``token_type_embed``, ``head.*``; the 2024 files (named ``model.bin``
  but safetensors inside) add 0-d ``lora_alpha`` / ``use_rslora``, newer ``model.safetensors`` files do not.
- ``lora-full``: the whole unmerged training model (``...qkv.q.linear.weight`` plus the adapters).
- ``merged``: a plain model state dict (``...attn.qkv.weight``), from merging or full fine-tuning.
Key names are converted in :mod:`vot_lorat.weights.formats`; loading into a model is
:func:`vot_lorat.weights.loading.load_checkpoint`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch

from ..model.config import VARIANTS, LoRATConfig
from ..model.lora import iter_lora
from ..model.network import LoRAT
from .files import WeightFileError, atomic_save_safetensors, read_with_metadata
from .formats import from_lorat_2024, from_lorat_safetensors, infer_lorat, to_official

LORA, LORA_FULL, MERGED = "lora", "lora-full", "merged"


@dataclass
class LoRATCheckpoint:
    """A LoRAT state dict in our (timm) key names, with what was read from the file."""

    path: str
    state: Dict[str, torch.Tensor]
    layout: str
    lora_rank: Optional[int] = None  # None for merged weights, which have no adapters
    lora_alpha: Optional[float] = None  # None: file has no alpha -> scaling 1.0, as the official loaders do
    use_rslora: bool = False
    metadata: Dict[str, str] = field(default_factory=dict)


def _layout(state: Dict[str, torch.Tensor]) -> str:
    if any(k.endswith(".linear.weight") for k in state):
        return LORA_FULL
    if any(k.endswith(".lora.A") for k in state):
        return LORA
    if any(k.endswith("attn.qkv.weight") for k in state):
        return MERGED
    raise WeightFileError("not a LoRAT checkpoint: it has neither LoRA adapters (*.lora.A) nor ViT blocks "
                          "(blocks.N.attn.qkv.weight); keys start with " + ", ".join(list(state)[:4]))


class BackboneNotLoRATError(WeightFileError):
    """The file given as LoRAT weights is a plain ViT (a DINOv2 backbone): the two paths may be swapped."""


VARIANT_IN_PATH = re.compile(r"(?<![A-Za-z])([SBLg])-(224|378)(?!\d)")


def variant_from_path(path: str) -> Optional[str]:
    """``.../LoRAT-L-378/model.bin`` -> ``L-378`` (the released folders carry the variant in their names)."""
    found = VARIANT_IN_PATH.findall(path)
    return f"{found[-1][0]}-{found[-1][1]}" if found else None


def infer_variant(ckpt: LoRATCheckpoint) -> str:
    """The variant a checkpoint was made for: the one saved in it, else the only variant its shapes fit (the ViT
    from the weights, the search size from a whole model's position embedding), else the one its path names
    (``LoRAT-L-378/model.bin``: the released LoRA files fit both crop sizes of their ViT)."""
    saved = ckpt.metadata.get("variant")
    if saved in VARIANTS:
        return saved
    found = infer_lorat(ckpt.state)
    tokens = ckpt.state["pos_embed"].shape[1] if "pos_embed" in ckpt.state else None
    fits = [c.name for c in VARIANTS.values()
            if found.embed_dim is not None and found.fits(c.backbone) and tokens in (None, c.search_grid ** 2)]
    if len(fits) == 1:
        return fits[0]
    named = variant_from_path(ckpt.path)
    if named in fits:
        return named
    if not fits:
        raise WeightFileError(f"{ckpt.path}: no LoRAT variant fits this checkpoint ({found.name()}); is it a LoRAT "
                              f"checkpoint?")
    raise WeightFileError(f"{ckpt.path}: the checkpoint's shapes fit {', '.join(fits)}; give the variant "
                          f"(--variant, LORAT_VARIANT)")


def read_checkpoint(path: str) -> LoRATCheckpoint:
    """Read a LoRAT checkpoint of any layout (see the module doc), from safetensors or a torch pickle.

    Args:
        path: the file.

    Returns:
        Its tensors in our key names, with the layout, LoRA rank, alpha and metadata found.

    Raises:
        WeightFileError: the file is missing, unreadable or not a LoRAT checkpoint.
    """
    raw, meta = read_with_metadata(path, "LoRAT weights", "Give the local path of a LoRAT checkpoint (the released "
                                   "model.bin, or a model.safetensors written by python -m training)")
    raw = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if "lora_alpha" in raw or "use_rslora" in raw:
        state, alpha, use_rslora = from_lorat_2024(raw)
    else:
        state, alpha, use_rslora = from_lorat_safetensors(raw), None, False
    try:
        layout = _layout(state)
    except WeightFileError as exc:
        raise WeightFileError(f"{path}: {exc}") from None
    if layout == MERGED and not any(k.startswith("head.") for k in state):
        raise BackboneNotLoRATError(f"{path} holds a ViT without the LoRAT head (no head.*): a DINOv2 backbone, "
                                    f"not LoRAT weights")
    ranks = {v.shape[0] for k, v in state.items() if k.endswith(".lora.A")}
    if len(ranks) > 1:
        raise WeightFileError(f"{path}: LoRA adapters of different ranks {sorted(ranks)}; not a LoRAT checkpoint")
    return LoRATCheckpoint(path=path, state=state, layout=layout, lora_rank=ranks.pop() if ranks else None,
                           lora_alpha=alpha, use_rslora=use_rslora, metadata=meta)


def needs_backbone(ckpt: LoRATCheckpoint) -> bool:
    """True unless the checkpoint is a whole model (merged or the full training model, position embedding
    included): the released LoRA-only files need the DINOv2 weights they were trained on."""
    return not (ckpt.layout in (MERGED, LORA_FULL) and "pos_embed" in ckpt.state)


def check_compatible(ckpt: LoRATCheckpoint, config: LoRATConfig) -> None:
    """Reject a checkpoint made for another variant, saying which and how to fix it."""
    spec = config.backbone
    found = infer_lorat(ckpt.state)
    wanted_variant = ckpt.metadata.get("variant")
    if not found.fits(spec):
        hint = f" (saved as {wanted_variant})" if wanted_variant else ""
        raise WeightFileError(
            f"{ckpt.path}: checkpoint is for {found.name()}{hint}, but {config.name} uses "
            f"{spec.name} (embed dim {spec.embed_dim}, {spec.depth} blocks). Choose the variant that matches "
            f"the checkpoint.")
    if "pos_embed" in ckpt.state:
        tokens = ckpt.state["pos_embed"].shape[1]
        if tokens != config.search_grid ** 2:
            raise WeightFileError(
                f"{ckpt.path}: position embedding has {tokens} tokens, {config.name} needs "
                f"{config.search_grid}x{config.search_grid}={config.search_grid ** 2} (search {config.search_size} "
                f"px). Choose the variant with the matching search size.")
    if wanted_variant and wanted_variant != config.name and wanted_variant.split("-")[0] == config.name.split("-")[0]:
        # Same backbone, other crop size (B-224 vs B-378): shapes cannot tell, the metadata can.
        raise WeightFileError(f"{ckpt.path}: checkpoint was saved for {wanted_variant}, not {config.name}. "
                              f"Use variant {wanted_variant}.")


def checkpoint_state(model: LoRAT, layout: str = "2024") -> Dict[str, torch.Tensor]:
    """The tensors to save, in the official key names.

    A LoRA model is saved LoRA-only (its trainable tensors, what the official code saves); ``layout="2024"``
    adds ``lora_alpha``/``use_rslora`` as the released ``model.bin`` files do, ``layout="safetensors"`` leaves
    them out like newer releases (scaling must be 1). A model without adapters (merged or fully fine-tuned) is
    saved whole, ``pos_embed`` included.
    """
    adapters = [lora for _, lora in iter_lora(model)]
    if adapters:
        state = model.trainable_state_dict()
        alpha, rslora = adapters[0].alpha, adapters[0].use_rslora
        if layout == "2024":
            if alpha is not None:
                alpha_value = int(alpha) if float(alpha).is_integer() else float(alpha)
                state["lora_alpha"] = torch.tensor(alpha_value)
            state["use_rslora"] = torch.tensor(bool(rslora))
        elif layout == "safetensors":
            if adapters[0].scaling != 1.0:
                raise ValueError(f"the newer layout stores no lora_alpha, so LoRA scaling {adapters[0].scaling} "
                                 f"would be read back as 1.0; save with layout='2024'")
        else:
            raise ValueError(f"unknown checkpoint layout {layout!r}; choose '2024' or 'safetensors'")
    else:
        state = dict(model.state_dict())
    return to_official(state, model.config.backbone.mlp == "swiglu")


def save_checkpoint(model: LoRAT, path: str, layout: str = "2024", metadata: Optional[Dict[str, str]] = None) -> None:
    """Write a checkpoint that the official code can load too (safetensors, through a temporary file, so that a
    crash never leaves half a file).

    Args:
        model: the model; with adapters only its trainable tensors are saved (see :func:`checkpoint_state`).
        path: the file to write.
        layout: ``2024`` (as the released ``model.bin``, with ``lora_alpha`` / ``use_rslora``) or
            ``safetensors`` (as newer releases).
        metadata: strings saved in the file's header beside the variant.
    """
    meta = {"format": "pt", "producer": "vot_lorat", "variant": model.config.name}
    meta.update(metadata or {})
    atomic_save_safetensors(checkpoint_state(model, layout), path, meta)
