"""LoRA placement, initialisation, freezing and merging."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import vot_lorat
from vot_lorat.model.config import get_config
from vot_lorat.model.lora import LoRA, LoRALinear, QKVLoRALinear, has_lora, merge_lora


def _inputs(cfg, batch=2):
    g = torch.Generator().manual_seed(7)
    return (torch.randn(batch, 3, cfg.template_size, cfg.template_size, generator=g),
            torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=g),
            torch.randint(0, 2, (batch, cfg.template_grid, cfg.template_grid), generator=g))


@pytest.mark.parametrize("variant", ["tiny", "tiny-g"])
def test_lora_on_every_linear_of_every_block_with_split_qkv(variant):
    model = vot_lorat.create_model(get_config(variant))
    for block in model.blocks:
        assert isinstance(block.attn.qkv, QKVLoRALinear)
        for part in (block.attn.qkv.q, block.attn.qkv.k, block.attn.qkv.v, block.attn.proj, block.mlp.fc1,
                     block.mlp.fc2):
            assert isinstance(part, LoRALinear)
    dim = model.config.backbone.embed_dim
    keys = model.state_dict().keys()
    assert "blocks.0.attn.qkv.q.lora.A" in keys and "blocks.0.attn.qkv.v.linear.weight" in keys
    assert model.state_dict()["blocks.0.attn.qkv.k.lora.B"].shape == (dim, model.config.lora_rank)
    # no adapters outside the blocks' Linear layers
    assert not any(".lora." in k for k in keys if k.startswith(("head.", "patch_embed.", "norm.")))


def test_qkv_split_keeps_the_fused_rows():
    linear = nn.Linear(8, 24)
    from vot_lorat.model.lora import apply_lora

    block = nn.Module()
    block.attn = nn.Module()
    block.attn.qkv = linear
    block.attn.proj = nn.Linear(8, 8)
    block.mlp = nn.Module()
    block.mlp.fc1 = nn.Linear(8, 16)
    block.mlp.fc2 = nn.Linear(16, 8)
    w = linear.weight.detach().clone()
    apply_lora(nn.ModuleList([block]), rank=2, alpha=2)
    qkv = block.attn.qkv
    assert torch.equal(qkv.q.linear.weight, w[:8]) and torch.equal(qkv.k.linear.weight, w[8:16])
    assert torch.equal(qkv.v.linear.weight, w[16:])


def test_reference_initialisation_is_bert_style():
    lora = LoRA(512, 512, rank=64, alpha=64)
    for p in (lora.A, lora.B):
        assert abs(p.std().item() - 0.02) < 0.002  # truncated normal std 0.02: B is not zero
        assert p.abs().max() <= 2.0
    zero_b = LoRA(64, 64, rank=8, alpha=8, init="lora")
    assert torch.count_nonzero(zero_b.B) == 0


def test_freezing_leaves_only_lora_token_types_and_head():
    model = vot_lorat.create_model(get_config("tiny"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    assert all(".lora." in n or n == "token_type_embed" or n.startswith("head.") for n in trainable)
    assert "token_type_embed" in trainable and "head.cls_mlp.layers.0.weight" in trainable
    assert not model.pos_embed.requires_grad and not model.blocks[0].norm1.weight.requires_grad
    full = vot_lorat.create_model(get_config("tiny"), lora=False)
    assert not has_lora(full) and all(p.requires_grad for p in full.parameters())


@pytest.mark.parametrize("variant", ["tiny", "tiny-g"])
def test_merged_equals_unmerged(variant):
    cfg = get_config(variant)
    model = vot_lorat.create_model(cfg, init_values=1.0).eval()
    # make the update large enough that a wrong merge would show
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora." in name:
                p.normal_(0, 0.05)
    z, x, mask = _inputs(cfg)
    with torch.no_grad():
        before = model(z, x, mask)
        merge_lora(model)
        after = model(z, x, mask)
    assert not has_lora(model)
    assert isinstance(model.blocks[0].attn.qkv, nn.Linear)
    assert model.blocks[0].attn.qkv.out_features == 3 * cfg.backbone.embed_dim
    for key in ("score_map", "boxes"):
        assert (before[key] - after[key]).abs().max() < 1e-5
    assert before["score_map"].std() > 1e-3


def test_lora_changes_the_output():
    """The adapters are on the forward path: zeroing them moves the output."""
    torch.manual_seed(0)  # the weights and inputs are random: the same ones whatever ran before
    cfg = get_config("tiny")
    model = vot_lorat.create_model(cfg, init_values=1.0).eval()
    z, x, mask = _inputs(cfg)
    adapters = [p for name, p in model.named_parameters() if name.endswith("lora.B")]
    with torch.no_grad():
        for p in adapters:  # updates of a trained size (the fresh ones are tiny: std 0.02 x 0.02)
            p.normal_(0, 0.2)
        with_lora = model(z, x, mask)["score_map"]
        for p in adapters:
            p.zero_()
        without = model(z, x, mask)["score_map"]
    assert (with_lora - without).abs().max() > 0.1 * without.std()  # the fresh head's logits are small
