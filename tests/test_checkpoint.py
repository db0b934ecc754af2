"""Saving and loading LoRAT checkpoints, and the errors a user sees for the wrong file."""
from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import vot_lorat
from vot_lorat import WeightFileError
from vot_lorat.model.config import get_config
from vot_lorat.model.lora import iter_lora
from vot_lorat.weights.checkpoint import read_checkpoint
from vot_lorat.weights.files import is_safetensors
from vot_lorat.weights.loading import load_checkpoint

from official_files import lorat_2024_state, meta_dinov2_state, write_model_bin


def _backbone(tmp_path, variant, name="dinov2.pth"):
    spec = get_config(variant).backbone
    torch.save(meta_dinov2_state(spec.embed_dim, spec.depth, spec.mlp == "swiglu", spec.mlp_hidden),
               tmp_path / name)
    return str(tmp_path / name)


def _inputs(cfg):
    g = torch.Generator().manual_seed(11)
    return (torch.randn(1, 3, cfg.template_size, cfg.template_size, generator=g),
            torch.randn(1, 3, cfg.search_size, cfg.search_size, generator=g),
            torch.ones(1, cfg.template_grid, cfg.template_grid, dtype=torch.long))


def _trained_like(variant, backbone):
    model = vot_lorat.load_model(variant, backbone)  # fresh adapters and head
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.05)
    return model


@pytest.mark.parametrize("variant,layout", [("tiny", "2024"), ("tiny-g", "2024"), ("tiny", "safetensors")])
def test_save_load_round_trip(tmp_path, variant, layout):
    backbone = _backbone(tmp_path, variant)
    model = _trained_like(variant, backbone)
    path = str(tmp_path / "model.bin")
    vot_lorat.save_checkpoint(model, path, layout=layout)
    assert is_safetensors(path)
    with safe_open(path, "pt") as f:
        keys = set(f.keys())
        assert f.metadata()["variant"] == variant
    if layout == "2024":
        assert {"lora_alpha", "use_rslora"} <= keys
    else:
        assert not {"lora_alpha", "use_rslora"} & keys
    # LoRA-only layout in the official names; ViT-g uses w12 / w3
    assert all(".lora." in k or k in ("token_type_embed", "lora_alpha", "use_rslora") or k.startswith("head.")
               for k in keys)
    if variant == "tiny-g":
        assert "blocks.0.mlp.w12.lora.A" in keys and not any(".fc1." in k for k in keys)
    cfg = model.config
    loaded = vot_lorat.load_model(variant, backbone, path, merge=False)
    z, x, mask = _inputs(cfg)
    with torch.no_grad():
        a = model.eval()(z, x, mask)["score_map"]
        b = loaded(z, x, mask)["score_map"]
        merged = vot_lorat.load_model(variant, backbone, path)(z, x, mask)["score_map"]
    assert torch.equal(a, b)
    assert (a - merged).abs().max() < 1e-5


def test_full_model_checkpoint_loads_without_backbone(tmp_path):
    model = vot_lorat.create_model(get_config("tiny"), lora=False)
    path = str(tmp_path / "full.safetensors")
    vot_lorat.save_checkpoint(model, path)
    loaded = vot_lorat.load_model("tiny", None, path)
    z, x, mask = _inputs(model.config)
    with torch.no_grad():
        assert torch.equal(model.eval()(z, x, mask)["boxes"], loaded(z, x, mask)["boxes"])


def test_merged_state_dict_of_a_lora_model_loads(tmp_path):
    backbone = _backbone(tmp_path, "tiny")
    model = _trained_like("tiny", backbone).eval()
    vot_lorat.merge_lora(model)
    torch.save(model.state_dict(), tmp_path / "merged.pth")  # a plain torch pickle, merged weights
    loaded = vot_lorat.load_model("tiny", None, str(tmp_path / "merged.pth"))
    z, x, mask = _inputs(model.config)
    with torch.no_grad():
        assert torch.equal(model(z, x, mask)["score_map"], loaded(z, x, mask)["score_map"])


def test_full_unmerged_training_state_with_ddp_prefix_loads(tmp_path):
    backbone = _backbone(tmp_path, "tiny")
    model = _trained_like("tiny", backbone).eval()
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "ddp.pth")
    loaded = vot_lorat.load_model("tiny", None, str(tmp_path / "ddp.pth"))
    z, x, mask = _inputs(model.config)
    with torch.no_grad():
        assert (model(z, x, mask)["score_map"] - loaded(z, x, mask)["score_map"]).abs().max() < 1e-5


def test_lora_rank_comes_from_the_checkpoint(tmp_path):
    backbone = _backbone(tmp_path, "tiny")
    spec = get_config("tiny").backbone  # the variant's rank is 8
    path = str(tmp_path / "model.bin")
    write_model_bin(lorat_2024_state(spec.embed_dim, spec.depth, False, spec.mlp_hidden, rank=16, alpha=16), path)
    model = vot_lorat.load_model("tiny", backbone, path, merge=False)
    assert model.config.lora_rank == 16 and model.blocks[0].attn.qkv.q.lora.rank == 16
    # a model built at another rank (training's explicit setting) is rejected, naming the fix
    with pytest.raises(WeightFileError, match="checkpoint has LoRA rank 16, the tiny model was built with rank 8.*"
                                              "lora_rank=16.*--lora-rank 16"):
        load_checkpoint(vot_lorat.create_model(get_config("tiny"), backbone), read_checkpoint(path))


def test_load_checkpoint_takes_the_lora_scaling_from_the_file(tmp_path):
    """Fine-tuning and resuming load through inference's loader: a file without lora_alpha means scaling 1.0,
    whatever the model was built with (tiny-g's config: alpha 8 / rank 4 = 2)."""
    backbone = _backbone(tmp_path, "tiny-g")
    spec = get_config("tiny-g").backbone
    newer = {k: v for k, v in lorat_2024_state(spec.embed_dim, spec.depth, True, spec.mlp_hidden, rank=4,
                                               alpha=8).items() if k not in ("lora_alpha", "use_rslora")}
    path = str(tmp_path / "model.safetensors")
    save_file(newer, path)
    model = vot_lorat.create_model(get_config("tiny-g"), backbone)
    assert {lora.scaling for _, lora in iter_lora(model)} == {2.0}
    load_checkpoint(model, read_checkpoint(path))
    assert {lora.scaling for _, lora in iter_lora(model)} == {1.0}
    z, x, mask = _inputs(model.config)
    with torch.no_grad():
        expected = vot_lorat.load_model("tiny-g", backbone, path, merge=False)(z, x, mask)["score_map"]
        assert torch.equal(model.eval()(z, x, mask)["score_map"], expected)


def test_layout_that_does_not_fit_the_model_names_the_fix(tmp_path):
    backbone = _backbone(tmp_path, "tiny")
    merged = vot_lorat.merge_lora(_trained_like("tiny", backbone))
    vot_lorat.save_checkpoint(merged, str(tmp_path / "merged.safetensors"))
    with pytest.raises(WeightFileError, match="merged weights .* build the model without LoRA"):
        load_checkpoint(vot_lorat.create_model(get_config("tiny"), backbone),
                        read_checkpoint(str(tmp_path / "merged.safetensors")))
    vot_lorat.save_checkpoint(_trained_like("tiny", backbone), str(tmp_path / "lora.safetensors"))
    with pytest.raises(WeightFileError, match="needs a model with LoRA adapters"):
        load_checkpoint(vot_lorat.create_model(get_config("tiny"), backbone, lora=False),
                        read_checkpoint(str(tmp_path / "lora.safetensors")))


def test_variant_mismatch_is_named(tmp_path):
    spec = get_config("tiny-g").backbone
    write_model_bin(lorat_2024_state(spec.embed_dim, spec.depth, True, spec.mlp_hidden, rank=8, alpha=8),
                    str(tmp_path / "model.bin"))
    backbone = _backbone(tmp_path, "tiny")
    with pytest.raises(WeightFileError, match=r"checkpoint is for ViT-tiny-swiglu/14 .* but tiny uses ViT-tiny/14"):
        vot_lorat.load_model("tiny", backbone, str(tmp_path / "model.bin"))


def test_same_backbone_other_crop_size_is_named(tmp_path):
    backbone = _backbone(tmp_path, "tiny")
    model = _trained_like("tiny", backbone)
    path = str(tmp_path / "model.bin")
    vot_lorat.save_checkpoint(model, path, metadata={"variant": "tiny-378"})
    with pytest.raises(WeightFileError, match="saved for tiny-378, not tiny"):
        vot_lorat.load_model("tiny", backbone, path)


def test_wrong_backbone_file_names_file_expected_and_found(tmp_path):
    wrong = _backbone(tmp_path, "tiny-g", "dinov2_vitg14_pretrain.pth")
    with pytest.raises(WeightFileError) as err:
        vot_lorat.load_model("tiny", wrong)
    msg = str(err.value)
    assert "dinov2_vitg14_pretrain.pth" in msg and "ViT-tiny/14" in msg and "embed dim 96, 3 blocks" in msg


def test_missing_files_are_clear(tmp_path):
    with pytest.raises(WeightFileError, match="backbone file not found: .*nope.pth.*dinov2_vitb14_pretrain.pth"):
        vot_lorat.load_model("B-224", str(tmp_path / "nope.pth"))
    with pytest.raises(WeightFileError, match="LoRAT weights not found: .*missing.bin"):
        vot_lorat.load_model("tiny", None, str(tmp_path / "missing.bin"))


def test_lora_checkpoint_without_backbone_asks_for_it(tmp_path):
    backbone = _backbone(tmp_path, "tiny")
    vot_lorat.save_checkpoint(_trained_like("tiny", backbone), str(tmp_path / "model.bin"))
    with pytest.raises(WeightFileError, match="needs the DINOv2 ViT-tiny/14 backbone"):
        vot_lorat.load_model("tiny", None, str(tmp_path / "model.bin"))


def test_garbage_file_is_rejected(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightFileError, match="cannot read weight file"):
        vot_lorat.load_model("tiny", None, str(tmp_path / "model.bin"))
    torch.save({"foo": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(WeightFileError, match="not a LoRAT checkpoint"):
        vot_lorat.load_model("tiny", None, str(tmp_path / "other.pth"))
