"""Crops, box maps, token masks and the post-process: the geometry the tracker and training share."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vot_lorat.tracking import box as bx
from vot_lorat.tracking.crop import CropParams, crop_one, crop_region, image_mean, siamfc_params, token_mask
from vot_lorat.tracking.postprocess import hann_window_2d, select_boxes


def _image(h=120, w=160, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_siamfc_params_square_object_gives_factor_times_side():
    params = siamfc_params([50, 40, 70, 60], 4.0, (224, 224))  # 20x20 box, area factor 4 -> 80 px context
    assert params.scale == pytest.approx([224 / 80, 224 / 80])
    crop_box = params.apply([50, 40, 70, 60])
    assert bx.centre(crop_box) == pytest.approx([112, 112])
    assert bx.size(crop_box) == pytest.approx([56, 56])


def test_context_formula_for_elongated_box():
    w, h, f = 40.0, 10.0, 2.0
    params = siamfc_params([0, 0, w, h], f, (112, 112))
    pad = (f - 1) * (w + h) / 2
    assert params.scale[0] == pytest.approx(np.sqrt(112 * 112 / ((w + pad) * (h + pad))))


@pytest.mark.parametrize("seed", range(20))
def test_boxes_round_trip_through_realised_crop(seed):
    rng = np.random.default_rng(seed)
    image = _image()
    b = bx.from_centre_size(rng.uniform([-20, -20], [180, 140]), rng.uniform(5, 80, 2))
    params = siamfc_params(b, rng.uniform(2, 5), (112, 112))
    _, real = crop_one(image, params, 112, image_mean(image))
    for probe in (b, b + rng.normal(0, 10, 4)):
        assert np.abs(real.invert(real.apply(probe)) - probe).max() < 1e-4


def test_crop_at_unit_scale_copies_pixels_and_fills_outside():
    image = _image()
    params = CropParams(np.array([1.0, 1.0]), np.array([30.0, 20.0]))  # image (0,0) -> crop (30,20)
    fill = torch.tensor([1.0, 2.0, 3.0])
    crop, real = crop_one(image, params, 64, fill)
    assert crop.shape == (3, 64, 64)
    assert torch.equal(crop[:, 20:, 30:], image[:44, :34].permute(2, 0, 1).float())
    assert (crop[:, :20, :] == fill.view(3, 1, 1)).all() and (crop[:, :, :30] == fill.view(3, 1, 1)).all()
    assert np.allclose(real.scale, 1) and np.allclose(real.translation, [30, 20])


def test_crop_resizes_only_the_rasterised_subrectangle():
    image = _image()
    params = siamfc_params([60.3, 50.7, 90.1, 75.2], 2.0, (56, 56))
    fill = image_mean(image)
    crop, real = crop_one(image, params, 56, fill)
    region = crop_region((160, 120), params, (56, 56))
    sx1, sy1, sx2, sy2 = region.source
    tx1, ty1, tx2, ty2 = region.target
    expect = F.interpolate(image[sy1:sy2, sx1:sx2].permute(2, 0, 1)[None].float(), size=(ty2 - ty1, tx2 - tx1),
                           mode="bilinear", align_corners=False)[0]
    assert (crop[:, ty1:ty2, tx1:tx2] - expect).abs().max() < 2e-4  # float rounding of the same blend
    # the realised params map the source rectangle exactly onto the target rectangle
    assert np.abs(real.apply(region.source.astype(float)) - region.target).max() < 1e-3
    # and differ from the requested ones by the rasterisation only
    assert np.abs(real.scale - params.scale).max() / params.scale[0] < 0.1


def test_crop_far_outside_is_all_fill():
    image = _image()
    params = siamfc_params([1000, 1000, 1010, 1010], 4.0, (32, 32))
    fill = torch.tensor([5.0, 6.0, 7.0])
    crop, real = crop_one(image, params, 32, fill)
    assert (crop == fill.view(3, 1, 1)).all()
    assert np.allclose(real.scale, params.scale)


def test_image_mean_is_per_channel_float_mean():
    image = _image()
    assert torch.allclose(image_mean(image), image.float().mean(dim=(0, 1)))


def test_token_mask_counts_partial_overlap():
    # box 14.5..30 px in a 56 px / 4-cell crop: x covers cells 1 and 2 (30/14 = 2.14), y 0.5..13.9 only cell 0
    mask = token_mask([14.5, 0.5, 30.0, 13.9], 56, 4)
    expect = np.zeros((4, 4), np.int64)
    expect[0, 1:3] = 1
    assert np.array_equal(mask, expect)
    # an edge exactly on a cell border does not spill into the next cell
    assert token_mask([14, 14, 28, 28], 56, 4).sum() == 1
    # clipped to the grid
    assert token_mask([-30, -30, 100, 100], 56, 4).sum() == 16


def test_rasterize_rule():
    assert bx.rasterize([1.2, 2.0, 3.0, 4.00005]).tolist() == [1, 2, 3, 4]
    assert bx.rasterize([1.2, 2.0, 3.01, 4.5]).tolist() == [1, 2, 4, 5]


def test_iou_and_conversions():
    a = bx.xywh_to_xyxy([0, 0, 10, 10])
    assert a.tolist() == [0, 0, 10, 10]
    assert bx.iou(a, [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert bx.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0
    assert bx.xyxy_to_xywh([2, 3, 5, 9]).tolist() == [2, 3, 3, 6]


def test_hann_window_is_symmetric_and_zero_at_edges():
    w = hann_window_2d(5, 5)
    assert w[0].abs().max() == 0 and w[:, 0].abs().max() == 0
    assert w[2, 2] == pytest.approx(1.0)
    assert torch.allclose(w, w.T)


def test_select_boxes_blends_window_but_reports_raw_score():
    g = 8
    score = torch.full((1, g, g), -10.0)
    score[0, 0, 0] = 10.0  # strong but at the window's zero edge
    score[0, 4, 4] = 0.0  # p = 0.5 near the centre
    boxes = torch.arange(g * g * 4, dtype=torch.float32).view(1, g, g, 4)
    window = hann_window_2d(g, g)
    chosen, conf = select_boxes(score, boxes, window, 0.45)
    # corner: 0.55 * 1.0 + 0.45 * 0 = 0.55; centre cell: 0.55 * 0.5 + 0.45 * 0.95^2 = 0.68 wins
    assert 0.55 * 0.5 + 0.45 * window[4, 4].item() > 0.55
    assert torch.equal(chosen[0], boxes[0, 4, 4]) and conf[0] == pytest.approx(0.5)
    no_window, conf0 = select_boxes(score, boxes, window, 0.0)
    assert torch.equal(no_window[0], boxes[0, 0, 0]) and conf0[0] == pytest.approx(torch.sigmoid(torch.tensor(10.0)))
