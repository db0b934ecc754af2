"""Model variants as plain data: the backbone, the crop sizes and the LoRA settings of each LoRAT."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional

PATCH_SIZE = 14  # DINOv2 patch size
PRETRAIN_GRID = 37  # DINOv2 checkpoints are trained at 518 px = 37x37 patches


@dataclass(frozen=True)
class BackboneSpec:
    """A DINOv2 ViT: the timm architecture it maps to and its shape."""

    name: str  # "ViT-B/14"
    timm_name: Optional[str]  # timm registry name; None for a backbone without pretrained weights (the demo's)
    meta_file: Optional[str]  # Meta's checkpoint file name, for error messages
    embed_dim: int
    depth: int
    num_heads: int
    mlp: str = "gelu"  # "gelu" (fc1 -> GELU -> fc2) or "swiglu" (packed w12 -> SiLU gate -> w3)
    mlp_hidden: int = 0  # width of fc1's output (SwiGLU: both halves)
    pretrain_grid: int = PRETRAIN_GRID

    @property
    def mlp_ratio(self) -> float:
        return self.mlp_hidden / self.embed_dim

    def describe(self) -> str:
        return f"{self.name} (embed dim {self.embed_dim}, {self.depth} blocks, {self.mlp.upper()} MLP)"


VIT_S14 = BackboneSpec("ViT-S/14", "vit_small_patch14_dinov2", "dinov2_vits14_pretrain.pth", 384, 12, 6, "gelu", 1536)
VIT_B14 = BackboneSpec("ViT-B/14", "vit_base_patch14_dinov2", "dinov2_vitb14_pretrain.pth", 768, 12, 12, "gelu", 3072)
VIT_L14 = BackboneSpec("ViT-L/14", "vit_large_patch14_dinov2", "dinov2_vitl14_pretrain.pth", 1024, 24, 16, "gelu", 4096)
# ViT-g: DINOv2's fused SwiGLU, hidden (int(4*1536*2/3)+7)//8*8 = 4096, so w12 has 8192 outputs
VIT_G14 = BackboneSpec("ViT-g/14", "vit_giant_patch14_dinov2", "dinov2_vitg14_pretrain.pth", 1536, 40, 24, "swiglu",
                       8192)

# The demo model's backbone: LoRAT's code paths at a size that trains and runs on a CPU.
VIT_TINY = BackboneSpec("ViT-tiny/14", None, None, 128, 4, 4, "gelu", 512)

BACKBONES: Dict[str, BackboneSpec] = {b.name: b for b in (VIT_S14, VIT_B14, VIT_L14, VIT_G14, VIT_TINY)}


@dataclass(frozen=True)
class LoRATConfig:
    """Everything that fixes a LoRAT network and its crops."""

    name: str
    backbone: BackboneSpec
    template_size: int  # template crop side in pixels
    search_size: int  # search crop side in pixels
    search_area_factor: float
    template_area_factor: float = 2.0  # 2 in every official LoRAT config
    drop_path_rate: float = 0.0  # uniform over blocks; used in training only
    lora_rank: int = 64  # r = 64 (paper, config/LoRAT/B-224)
    lora_alpha: float = 64.0  # alpha = 64 -> scaling 1.0 (paper)
    lora_dropout: float = 0.0
    use_rslora: bool = False
    min_object_size: float = 10.0  # search-crop box sides are raised to >= 10 px, as the official tracker does
    window_penalty: float = 0.45  # Hann window blend at inference, the official tracker's value

    @property
    def template_grid(self) -> int:
        return self.template_size // PATCH_SIZE

    @property
    def search_grid(self) -> int:
        return self.search_size // PATCH_SIZE

    def replace(self, **changes) -> "LoRATConfig":
        return dataclasses.replace(self, **changes)


def _variant(name, backbone, size, drop_path_rate=0.0, **kw) -> LoRATConfig:
    # 224 variants: 112 template / 224 search / area 4; 378 variants: 196 / 378 / area 5 (paper; official configs)
    template, search, area = {224: (112, 224, 4.0), 378: (196, 378, 5.0)}[size]
    return LoRATConfig(name, backbone, template, search, area, drop_path_rate=drop_path_rate, **kw)


VARIANTS: Dict[str, LoRATConfig] = {
    c.name: c
    for c in (
        _variant("S-224", VIT_S14, 224),
        _variant("S-378", VIT_S14, 378),
        _variant("B-224", VIT_B14, 224),
        _variant("B-378", VIT_B14, 378),
        _variant("L-224", VIT_L14, 224, 0.1),  # drop path 0.1 for ViT-L (official configs)
        _variant("L-378", VIT_L14, 378, 0.1),
        _variant("g-224", VIT_G14, 224, 0.4),  # drop path 0.4 for ViT-g (official configs)
        _variant("g-378", VIT_G14, 378, 0.4),
        # the demo model (vot_lorat/checkpoints/): crops 56 / 112
        LoRATConfig("tiny", VIT_TINY, 56, 112, 4.0, lora_rank=8, lora_alpha=8.0),
    )
}


def register_variant(config: LoRATConfig) -> None:
    """Make another variant known by name (to :func:`get_config`, ``load_model``, the settings), its backbone
    with it: the tests register small ones that run the SwiGLU path in milliseconds."""
    VARIANTS[config.name] = config
    BACKBONES[config.backbone.name] = config.backbone


def list_variants() -> List[str]:
    """The names of the known variants."""
    return list(VARIANTS)


def get_config(variant: str) -> LoRATConfig:
    """Look a variant up by name ("B-224", "L-378", ..., "tiny")."""
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown LoRAT variant {variant!r}; choose one of: {', '.join(VARIANTS)}") from None
