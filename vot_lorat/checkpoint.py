"""LoRAT checkpoint layouts: recognising them, checking them against a variant, and writing them.

Layouts (lorat_reference 2.2-2.4):
- ``lora``: the released files. LoRA A/B, ``token_type_embed``, ``head.*``; the 2024 files (named ``model.bin``
  but safetensors inside) add 0-d ``lora_alpha`` / ``use_rslora``, newer ``model.safetensors`` files do not.
- ``lora-full``: the whole unmerged training model (``...qkv.q.linear.weight`` plus the adapters).
- ``merged``: a plain model state dict (``...attn.qkv.weight``), from merging or full fine-tuning.
ViT-g files name the SwiGLU layers ``mlp.w12`` / ``mlp.w3``; timm (and our modules) call them ``fc1`` / ``fc2``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import torch

from .config import BACKBONES, LoRATConfig
from .lora import iter_lora
from .weights_io import WeightFileError, atomic_save_safetensors, read_with_metadata

LORA, LORA_FULL, MERGED = "lora", "lora-full", "merged"
_PREFIXES = ("module.", "_orig_mod.", "model.")


@dataclass
class LoRATCheckpoint:
    """A LoRAT state dict in our (timm) key names, with what was read from the file."""

    path: str
    state: Dict[str, torch.Tensor]
    layout: str
    lora_rank: Optional[int] = None
    lora_alpha: Optional[float] = None  # None: file has no alpha -> scaling 1.0, as the reference loaders do
    use_rslora: bool = False
    metadata: Dict[str, str] = field(default_factory=dict)


def _strip_prefix(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def from_official_keys(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        key = _strip_prefix(key).replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2.")
        out[key] = value
    return out


def to_official_keys(state: Dict[str, torch.Tensor], swiglu: bool) -> Dict[str, torch.Tensor]:
    if not swiglu:
        return dict(state)
    return {k.replace(".mlp.fc1.", ".mlp.w12.").replace(".mlp.fc2.", ".mlp.w3."): v for k, v in state.items()}


def _layout(state: Dict[str, torch.Tensor]) -> str:
    if any(k.endswith(".linear.weight") for k in state):
        return LORA_FULL
    if any(k.endswith(".lora.A") for k in state):
        return LORA
    if any(k.endswith("attn.qkv.weight") for k in state):
        return MERGED
    raise WeightFileError("not a LoRAT checkpoint: it has neither LoRA adapters (*.lora.A) nor ViT blocks "
                          "(blocks.N.attn.qkv.weight); keys start with " + ", ".join(list(state)[:4]))


def read_checkpoint(path: str) -> LoRATCheckpoint:
    """Read any LoRAT layout (see module doc) from safetensors or a torch pickle."""
    raw, meta = read_with_metadata(path, "LoRAT weights", "Give the local path of a LoRAT checkpoint (the released "
                                   "model.bin, or a model.safetensors written by python -m training)")
    raw = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    try:
        layout = _layout(raw)
    except WeightFileError as exc:
        raise WeightFileError(f"{path}: {exc}") from None
    alpha_t = raw.pop("lora_alpha", None)
    rslora_t = raw.pop("use_rslora", None)
    state = from_official_keys(raw)
    state.pop("head.bbox_offset", None)  # a non-persistent buffer; tolerated if someone saved it
    ranks = {v.shape[0] for k, v in state.items() if k.endswith(".lora.A")}
    if len(ranks) > 1:
        raise WeightFileError(f"{path}: LoRA adapters of different ranks {sorted(ranks)}; not a LoRAT checkpoint")
    return LoRATCheckpoint(
        path=path, state=state, layout=layout,
        lora_rank=ranks.pop() if ranks else None,
        lora_alpha=None if alpha_t is None else float(alpha_t.item()),
        use_rslora=bool(rslora_t.item()) if rslora_t is not None else False,
        metadata=meta,
    )


def _describe_found(state: Dict[str, torch.Tensor]) -> Dict[str, object]:
    dim = None
    for key in ("token_type_embed", "head.cls_mlp.layers.0.weight", "patch_embed.proj.weight"):
        if key in state:
            dim = state[key].shape[1] if key != "patch_embed.proj.weight" else state[key].shape[0]
            break
    blocks = [int(k.split(".")[1]) for k in state if k.startswith("blocks.")]
    depth = max(blocks) + 1 if blocks else None
    fc1 = [v for k, v in state.items() if k.startswith("blocks.0.mlp.fc1.") and k.endswith(("lora.B", "weight"))]
    fc2 = [v for k, v in state.items() if k.startswith("blocks.0.mlp.fc2.") and k.endswith(("lora.A", "weight"))]
    mlp = None
    if fc1 and fc2:
        mlp = "swiglu" if fc1[0].shape[0] == 2 * fc2[0].shape[-1] else "gelu"
    return {"dim": dim, "depth": depth, "mlp": mlp}


def _name_backbone(found: Dict[str, object]) -> str:
    for spec in BACKBONES.values():
        if (spec.embed_dim, spec.depth) == (found["dim"], found["depth"]) and found["mlp"] in (None, spec.mlp):
            return f"{spec.name} (embed dim {spec.embed_dim}, {spec.depth} blocks)"
    return f"an unknown ViT (embed dim {found['dim']}, {found['depth']} blocks)"


def check_compatible(ckpt: LoRATCheckpoint, config: LoRATConfig) -> None:
    """Reject a checkpoint made for another variant or LoRA rank, saying which and how to fix it."""
    spec = config.backbone
    found = _describe_found(ckpt.state)
    wanted_variant = ckpt.metadata.get("variant")
    if (found["dim"] not in (None, spec.embed_dim) or found["depth"] not in (None, spec.depth)
            or found["mlp"] not in (None, spec.mlp)):
        hint = f" (saved as {wanted_variant})" if wanted_variant else ""
        raise WeightFileError(
            f"{ckpt.path}: checkpoint is for {_name_backbone(found)}{hint}, but {config.name} uses "
            f"{spec.name} (embed dim {spec.embed_dim}, {spec.depth} blocks). Choose the variant that matches "
            f"the checkpoint.")
    if ckpt.layout != MERGED and ckpt.lora_rank != config.lora_rank:
        raise WeightFileError(
            f"{ckpt.path}: checkpoint has rank {ckpt.lora_rank}, {config.name} config expects "
            f"{config.lora_rank}. Pass lora_rank={ckpt.lora_rank} (CLI: --lora-rank {ckpt.lora_rank}) if this "
            f"checkpoint was trained with that rank.")
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


def trainable_state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The LoRA-only layout: adapters, token-type embedding and head (what the reference saves)."""
    return {k: v for k, v in model.state_dict().items()
            if ".lora." in k or k == "token_type_embed" or k.startswith("head.")}


def checkpoint_state(model: torch.nn.Module, layout: str = "2024") -> Dict[str, torch.Tensor]:
    """The tensors to save, in the official key names.

    A LoRA model is saved LoRA-only; ``layout="2024"`` adds ``lora_alpha``/``use_rslora`` as the released
    ``model.bin`` files do, ``layout="safetensors"`` leaves them out like newer releases (scaling must be 1).
    A model without adapters (merged or fully fine-tuned) is saved whole, ``pos_embed`` included.
    """
    config: LoRATConfig = model.config
    adapters = [lora for _, lora in iter_lora(model)]
    if adapters:
        state = trainable_state(model)
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
    return to_official_keys(state, config.backbone.mlp == "swiglu")


def save_checkpoint(model: torch.nn.Module, path: str, layout: str = "2024",
                    metadata: Optional[Dict[str, str]] = None) -> None:
    """Write a checkpoint the official code can load too (safetensors, atomic)."""
    config: LoRATConfig = model.config
    meta = {"format": "pt", "producer": "vot_lorat", "variant": config.name}
    meta.update(metadata or {})
    atomic_save_safetensors(checkpoint_state(model, layout), path, meta)
