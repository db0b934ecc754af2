"""The LoRAT network against files in the official layouts and an independent forward pass."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import vot_lorat
from vot_lorat.model.backbone import resize_pos_embed
from vot_lorat.model.config import get_config
from vot_lorat.model.network import count_parameters
from vot_lorat.weights.formats import from_meta_dinov2

from official_files import lorat_2024_state, meta_dinov2_state, reference_forward, write_model_bin

torch.manual_seed(0)


def _inputs(cfg, batch=2, seed=3):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 3, cfg.template_size, cfg.template_size, generator=g)
    x = torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=g)
    mask = (torch.rand(batch, cfg.template_grid, cfg.template_grid, generator=g) > 0.5).long()
    return z, x, mask


def _official_files(tmp_path, variant):
    cfg = get_config(variant)
    spec = cfg.backbone
    swiglu = spec.mlp == "swiglu"
    backbone = meta_dinov2_state(spec.embed_dim, spec.depth, swiglu, spec.mlp_hidden)
    lorat = lorat_2024_state(spec.embed_dim, spec.depth, swiglu, spec.mlp_hidden, cfg.lora_rank,
                             int(cfg.lora_alpha))
    torch.save(backbone, tmp_path / "dinov2_pretrain.pth")
    write_model_bin(lorat, str(tmp_path / "model.bin"))
    return cfg, backbone, lorat


@pytest.mark.parametrize("variant", ["tiny", "tiny-g"])
def test_2024_model_bin_matches_independent_forward(tmp_path, variant):
    cfg, backbone, lorat = _official_files(tmp_path, variant)
    model = vot_lorat.load_model(variant, str(tmp_path / "dinov2_pretrain.pth"), str(tmp_path / "model.bin"))
    assert not model.training
    z, x, mask = _inputs(cfg)
    with torch.no_grad():
        out = model(z, x, mask)
    ref = reference_forward(backbone, lorat, cfg.backbone.num_heads, cfg.backbone.mlp == "swiglu", z, x, mask,
                            cfg.search_grid)
    assert out["score_map"].shape == (2, cfg.search_grid, cfg.search_grid)
    assert out["boxes"].shape == (2, cfg.search_grid, cfg.search_grid, 4)
    assert out["score_map"].dtype == torch.float32
    # the outputs are not trivial: scores vary over the map and boxes are proper xyxy
    assert out["score_map"].std() > 0.01
    assert (out["boxes"][..., 2] > out["boxes"][..., 0]).all() and (out["boxes"][..., 3] > out["boxes"][..., 1]).all()
    assert (out["score_map"].double() - ref["score_map"]).abs().max() < 1e-4
    assert (out["boxes"].double() - ref["boxes"]).abs().max() < 1e-4


def test_newer_layout_without_scalars_uses_scaling_one(tmp_path):
    cfg, backbone, lorat = _official_files(tmp_path, "tiny-g")  # alpha 8, rank 4: scaling 2 in the 2024 file
    newer = {k: v for k, v in lorat.items() if k not in ("lora_alpha", "use_rslora")}
    save_file(newer, str(tmp_path / "model.safetensors"))
    model = vot_lorat.load_model("tiny-g", str(tmp_path / "dinov2_pretrain.pth"), str(tmp_path / "model.safetensors"))
    z, x, mask = _inputs(cfg)
    with torch.no_grad():
        out = model(z, x, mask)
    ref_one = reference_forward(backbone, newer, cfg.backbone.num_heads, True, z, x, mask, cfg.search_grid)
    ref_two = reference_forward(backbone, lorat, cfg.backbone.num_heads, True, z, x, mask, cfg.search_grid)
    assert (out["score_map"].double() - ref_one["score_map"]).abs().max() < 1e-4
    assert (out["score_map"].double() - ref_two["score_map"]).abs().max() > 1e-3


def test_timm_safetensors_backbone_equals_meta_pth(tmp_path):
    cfg, backbone, _ = _official_files(tmp_path, "tiny-g")
    timm_state = from_meta_dinov2(dict(backbone))
    save_file({k: v.contiguous() for k, v in timm_state.items()}, str(tmp_path / "timm.safetensors"))
    a = vot_lorat.load_model("tiny-g", str(tmp_path / "dinov2_pretrain.pth"), str(tmp_path / "model.bin"))
    b = vot_lorat.load_model("tiny-g", str(tmp_path / "timm.safetensors"), str(tmp_path / "model.bin"))
    z, x, mask = _inputs(cfg)
    with torch.no_grad():
        assert torch.equal(a(z, x, mask)["score_map"], b(z, x, mask)["score_map"])


def test_meta_pth_with_chunked_blocks_loads(tmp_path):
    cfg, backbone, _ = _official_files(tmp_path, "tiny")
    chunked = {}
    for k, v in backbone.items():
        if k.startswith("blocks."):
            i = int(k.split(".")[1])
            k = k.replace(f"blocks.{i}.", f"blocks.{i // 2}.{i}.", 1)
        chunked[k] = v
    torch.save(chunked, tmp_path / "chunked.pth")
    a = vot_lorat.load_model("tiny", str(tmp_path / "dinov2_pretrain.pth"), str(tmp_path / "model.bin"))
    b = vot_lorat.load_model("tiny", str(tmp_path / "chunked.pth"), str(tmp_path / "model.bin"))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_pos_embed_resize_is_bicubic_without_antialias():
    grid = torch.randn(1, 16, 37, 37)
    cls_slot = torch.randn(1, 1, 16)  # DINOv2's position embedding starts with the class token's
    ours = resize_pos_embed(torch.cat([cls_slot, grid.flatten(2).transpose(1, 2)], dim=1), 16)
    plain = F.interpolate(grid, size=(16, 16), mode="bicubic", align_corners=False, antialias=False)
    aa = F.interpolate(grid, size=(16, 16), mode="bicubic", align_corners=False, antialias=True)
    assert torch.equal(ours, plain.permute(0, 2, 3, 1).reshape(1, 256, 16))
    assert (ours - aa.permute(0, 2, 3, 1).reshape(1, 256, 16)).abs().max() > 1e-2


def test_template_uses_top_left_subgrid_and_token_types():
    model = vot_lorat.create_model(get_config("tiny"))
    cfg = model.config
    z, x, mask = _inputs(cfg, batch=1)
    seen = {}
    model.blocks[0].register_forward_pre_hook(lambda m, args: seen.setdefault("tokens", args[0].detach()))
    with torch.no_grad():
        model(z, x, mask)
    tokens = seen["tokens"][0]
    lz = cfg.template_grid ** 2
    dim = cfg.backbone.embed_dim
    pos = model.pos_embed.view(cfg.search_grid, cfg.search_grid, dim)
    with torch.no_grad():
        z_patch = model.patch_embed.proj(z).flatten(2).transpose(1, 2)[0]
        x_patch = model.patch_embed.proj(x).flatten(2).transpose(1, 2)[0]
    for row in range(cfg.template_grid):
        for col in range(cfg.template_grid):
            i = row * cfg.template_grid + col
            expect = z_patch[i] + pos[row, col] + model.token_type_embed[mask[0, row, col]]
            torch.testing.assert_close(tokens[i], expect, rtol=0, atol=1e-6)
    torch.testing.assert_close(tokens[lz:], x_patch + model.pos_embed[0] + model.token_type_embed[2], rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant,expected", [
    ("B-224", (10_616_832, 2_366_213, 2_304, 12_985_349)),
    ("L-378", (28_311_552, 4_203_525, 3_072, 32_518_149)),
    ("g-224", (70_778_880, 9_451_013, 4_608, 80_234_501)),
])
def test_trainable_parameter_counts_match_the_reference(variant, expected):
    with torch.device("meta"):
        model = vot_lorat.create_model(get_config(variant))
    c = count_parameters(model)
    assert (c["lora"], c["head"], c["token_type_embed"], c["total"]) == expected
    assert c["other"] == 0


@pytest.mark.parametrize("variant,sizes", [
    ("S-224", (112, 224, 4.0)), ("B-224", (112, 224, 4.0)), ("B-378", (196, 378, 5.0)),
    ("L-224", (112, 224, 4.0)), ("L-378", (196, 378, 5.0)), ("g-224", (112, 224, 4.0)), ("g-378", (196, 378, 5.0)),
])
def test_variant_crop_sizes(variant, sizes):
    cfg = get_config(variant)
    assert (cfg.template_size, cfg.search_size, cfg.search_area_factor) == sizes
    assert cfg.template_area_factor == 2.0 and cfg.lora_rank == 64 and cfg.lora_alpha == 64


def test_real_variant_shapes_on_meta_device():
    with torch.device("meta"):
        model = vot_lorat.create_model(get_config("B-378"))
        z = torch.empty(1, 3, 196, 196)
        x = torch.empty(1, 3, 378, 378)
        mask = torch.zeros(1, 14, 14, dtype=torch.long)
        out = model(z, x, mask)
    assert model.pos_embed.shape == (1, 27 * 27, 768)
    assert out["score_map"].shape == (1, 27, 27) and out["boxes"].shape == (1, 27, 27, 4)


def test_unknown_variant_lists_choices():
    with pytest.raises(ValueError, match="B-224"):
        get_config("B-999")


def test_dinov2_stochastic_depth_on_a_batch_subset():
    from vot_lorat.model.backbone import _subset_residual, create_vit
    from vot_lorat.model.config import VIT_TINY

    x = torch.randn(10, 5, 8)
    torch.manual_seed(0)
    out = _subset_residual(x, lambda t: torch.ones_like(t), 0.4)
    changed = (out != x).flatten(1).any(1)
    assert changed.sum() == 6  # int(10 * 0.6) samples get the branch ...
    assert torch.allclose((out - x)[changed], torch.full_like(x[changed], 10 / 6))  # ... scaled by B / kept
    vit = create_vit(VIT_TINY, drop_path_rate=0.4, init_values=1.0)
    assert all(b.subset_drop_ratio == 0.4 for b in vit.blocks)
    block = vit.blocks[0].eval()
    tokens = torch.randn(4, 6, VIT_TINY.embed_dim)
    with torch.no_grad():
        plain = tokens + block.ls1(block.attn(block.norm1(tokens)))
        plain = plain + block.ls2(block.mlp(block.norm2(plain)))
        assert torch.allclose(block(tokens), plain, atol=1e-6)  # inference: the ordinary block
    low = create_vit(VIT_TINY, drop_path_rate=0.1)
    assert low.blocks[0].subset_drop_ratio == 0.0 and low.blocks[0].drop_path1.drop_prob == 0.1


def test_lora_model_trains_through_subset_stochastic_depth():
    cfg = get_config("tiny-g").replace(drop_path_rate=0.4)
    model = vot_lorat.create_model(cfg, init_values=1.0).train()
    z, x, mask = _inputs(cfg, batch=5)
    out = model(z, x, mask)
    (out["score_map"].mean() + out["boxes"].mean()).backward()
    assert model.blocks[0].attn.qkv.q.lora.A.grad is not None
    assert model.blocks[0].attn.qkv.q.linear.weight.grad is None  # frozen
