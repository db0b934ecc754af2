"""DeiT III augmentation as the official LoRAT code applies it: each operation is checked pixel for pixel
against the official steps written out here (torchvision's ``to_pil_image`` on the [0, 1] crop, the PIL
operation, torchvision's ``to_tensor``), on a fixed crop that colour jitter left off the 8-bit grid."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import ImageFilter, ImageOps

from training.data.augment import AugmentConfig, apply_deit3, color_jitter, deit3_choice
from vot_lorat.tracking.crop import crop_one, image_mean, siamfc_params


def _fixed_crop() -> torch.Tensor:
    """A 112 px crop of a blocky random image, / 255 and colour-jittered: fractional values in [0, 1], as
    crops reach DeiT III in training, with edges inside and frame-mean padding at one border (for the blur)."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (12, 16, 3)).astype(np.uint8)
    image = torch.from_numpy(np.kron(coarse, np.ones((15, 15, 1), np.uint8)))  # 180 x 240, 15 px blocks
    box = np.array([10.3, 60.7, 80.2, 118.9])
    crop, _ = crop_one(image, siamfc_params(box, 4.0, (112, 112)), 112, image_mean(image))
    crop = color_jitter(np.random.default_rng(3), crop / 255.0, AugmentConfig())
    assert not torch.equal(crop * 255, (crop * 255).floor()), "the crop must be off the 8-bit grid"
    return crop


def _official(crop: torch.Tensor, kind: str, radius: float) -> torch.Tensor:
    """The official DeiT3Augmentation's steps for one crop."""
    picture = F.to_pil_image(crop, mode="RGB")
    if kind == "grayscale":
        picture = T.Grayscale(3)(picture)
    elif kind == "solarize":
        picture = ImageOps.solarize(picture)
    else:
        picture = picture.filter(ImageFilter.GaussianBlur(radius=radius))
    return F.to_tensor(picture)


@pytest.mark.parametrize("kind,radius", [("grayscale", 0.0), ("solarize", 0.0), ("blur", 0.1), ("blur", 1.37),
                                         ("blur", 2.0)])
def test_each_operation_gives_pillows_pixels(kind, radius):
    crop = _fixed_crop()
    ours = apply_deit3(crop, kind, radius)
    expected = _official(crop, kind, radius)
    assert ours.dtype == torch.float32 and ours.shape == crop.shape
    assert torch.equal(ours, expected), f"{kind}: {int((ours != expected).sum())} values differ"
    assert torch.equal(ours * 255, (ours * 255).round()), "the result lies on the 8-bit grid"
    assert not torch.equal(ours, crop)


def test_conversion_to_8_bits_truncates():
    """x * 255 cut to an integer, not rounded: 0.999 / 255 becomes 0, 254.9 / 255 becomes 254 (which solarize
    turns into 1)."""
    crop = torch.tensor([0.999, 1.0, 254.9, 255.0], dtype=torch.float32).div(255).view(1, 2, 2).expand(3, 2, 2)
    # solarize leaves values under 128 as they are: what comes back is the conversion alone
    low = apply_deit3(crop * 0.4, "solarize", 0.0) * 255
    assert low[0].flatten().tolist() == [0.0, 0.0, 101.0, 102.0]
    assert (apply_deit3(crop, "solarize", 0.0) * 255)[0].flatten().tolist() == [0.0, 1.0, 1.0, 0.0]


def test_draws_are_the_official_ones():
    """The operation's index, then a radius for blur only; the next draws of the generator line up."""
    cfg = AugmentConfig()
    for seed in range(40):
        ours, official = np.random.default_rng(seed), np.random.default_rng(seed)
        kind, radius = deit3_choice(ours, cfg)
        index = official.choice(3)
        assert kind == ("grayscale", "solarize", "blur")[index]
        assert radius == (official.uniform(0.1, 2.0) if index == 2 else 0.0)
        assert ours.random() == official.random()


def test_an_unknown_operation_is_refused():
    with pytest.raises(ValueError, match="grayscale, solarize, blur"):
        apply_deit3(torch.zeros(3, 4, 4), "posterize", 0.0)
