"""SAM box -> mask: geometry of both modes, batching, the guard, overlap resolution, and loading weights."""
from __future__ import annotations

from dataclasses import replace
from typing import Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide
from torch import nn

from vot_lorat.masks.overlaps import resolve_overlaps
from vot_lorat.masks.sam import MaskResult, SamMaskGenerator, SamOptions, load_sam
from vot_lorat.tracking import box as bx
from vot_lorat.tracking.crop import CropParams, crop_region, image_mean, siamfc_params

from reference_crop import reference_crop
from tiny_models import build_tiny_sam, save_tiny_sam

# --- a stub SAM whose decoder draws the prompted box: the geometry becomes checkable ----------------------


class _ZeroEncoder(nn.Module):
    def __init__(self, img_size: int, dim: int) -> None:
        super().__init__()
        self.img_size, self.dim = img_size, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.dim, self.img_size // 16, self.img_size // 16)


class _BoxPromptEncoder(nn.Module):
    """Carries the box prompt (input-image pixels) through in the first four sparse values."""

    def __init__(self, img_size: int, dim: int) -> None:
        super().__init__()
        self.dim, self.embed = dim, img_size // 16
        self.input_image_size = (img_size, img_size)
        self.mask_input_size = (4 * self.embed, 4 * self.embed)

    def forward(self, points, boxes, masks):
        assert points is None and masks is None
        sparse = boxes.new_zeros(len(boxes), 2, self.dim)
        sparse[:, 0, :4] = boxes
        return sparse, boxes.new_zeros(len(boxes), self.dim, self.embed, self.embed)

    def get_dense_pe(self) -> torch.Tensor:
        return torch.zeros(1, self.dim, self.embed, self.embed)


class _BoxMaskDecoder(nn.Module):
    """Low-res logits +-10: the grid cells whose centre lies in the prompted box (``kind='box'``), none
    (``empty``), all (``full``), one cell (``dot``); ``multi`` gives (empty, full, box) with box rated best;
    ``noise`` gives fixed random logits, whatever the prompt."""

    def __init__(self, img_size: int, kind: str = "box") -> None:
        super().__init__()
        self.img_size, self.grid, self.kind = img_size, img_size // 4, kind
        self.register_buffer("noise", torch.randn(self.grid, self.grid, generator=torch.Generator().manual_seed(0)))

    def forward(self, image_embeddings, image_pe, sparse, dense, multimask_output):
        box = sparse[:, 0, :4] * (self.grid / self.img_size)
        centres = torch.arange(self.grid, dtype=torch.float32) + 0.5
        in_x = (centres >= box[:, 0:1]) & (centres < box[:, 2:3])
        in_y = (centres >= box[:, 1:2]) & (centres < box[:, 3:4])
        inside = in_y[:, :, None] & in_x[:, None, :]
        if self.kind == "empty":
            inside = torch.zeros_like(inside)
        elif self.kind == "full":
            inside = torch.ones_like(inside)
        elif self.kind == "dot":
            inside = torch.zeros_like(inside)
            inside[:, self.grid // 2, self.grid // 2] = True
        logits = (inside.float() * 20 - 10)[:, None]
        if self.kind == "noise":
            logits = self.noise.expand_as(logits) * 5
        if not multimask_output:
            return logits, torch.zeros(len(box), 1)
        if self.kind != "multi":
            return logits.expand(-1, 3, -1, -1), torch.zeros(len(box), 3)
        masks = torch.cat([torch.full_like(logits, -10.0), torch.full_like(logits, 10.0), logits], dim=1)
        return masks, torch.tensor([0.1, 0.5, 0.9]).expand(len(box), 3)


def stub_sam(kind: str = "box", img_size: int = 1024) -> Sam:
    """Real SAM sizes (1024 px input, 256 px low-res grid) at no cost."""
    return Sam(image_encoder=_ZeroEncoder(img_size, 8), prompt_encoder=_BoxPromptEncoder(img_size, 8),
               mask_decoder=_BoxMaskDecoder(img_size, kind)).eval()


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _box_mask(box, height: int, width: int) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in np.floor(np.asarray(box) + [0, 0, 1 - 1e-4, 1 - 1e-4]))
    mask = np.zeros((height, width), dtype=bool)
    mask[max(y1, 0):y2, max(x1, 0):x2] = True
    return mask


def _assert_within_one_pixel(mask: np.ndarray, box) -> None:
    """Pixels whose centre lies over 1 px inside the box are set, those over 1 px outside are not."""
    height, width = mask.shape
    cx = np.arange(width) + 0.5
    cy = np.arange(height) + 0.5
    x1, y1, x2, y2 = box
    inside = ((cy[:, None] > y1 + 1) & (cy[:, None] < y2 - 1)) & ((cx > x1 + 1) & (cx < x2 - 1))
    outside = ((cy[:, None] < y1 - 1) | (cy[:, None] > y2 + 1)) | ((cx < x1 - 1) | (cx > x2 + 1))
    assert mask[inside].all(), "pixels well inside the box are missing"
    assert not mask[outside].any(), "pixels well outside the box are set"


FRAMES = {
    "landscape": (160, 240, [[20.3, 30.7, 61.2, 70.1], [0.0, 100.0, 25.5, 160.0], [200.4, -10.0, 260.0, 40.2],
                             [100.0, 120.5, 180.0, 126.8], [150.2, 60.0, 158.9, 67.3]]),
    "portrait": (300, 200, [[-15.0, -12.0, 30.5, 40.0], [60.1, 80.6, 140.9, 200.2], [170.0, 250.0, 230.0, 330.0],
                            [10.0, 260.0, 50.0, 300.0]]),
}


@pytest.mark.parametrize("mode", ["crop", "frame"])
@pytest.mark.parametrize("frame", sorted(FRAMES))
def test_mask_is_the_prompted_box_in_frame_coordinates(mode, frame):
    height, width, boxes = FRAMES[frame]
    generator = SamMaskGenerator(stub_sam(), SamOptions(mode=mode))
    results = generator(_image(height, width), np.array(boxes))
    assert len(results) == len(boxes)
    for result, box in zip(results, boxes):
        assert not result.fallback
        clipped = np.clip(box, 0, [width, height, width, height])
        _assert_within_one_pixel(result.mask, clipped)


def _official_resample(low_res: torch.Tensor, scale, translation, height: int, width: int,
                       padding: str = "zeros") -> torch.Tensor:
    """The official back-projection of a (gh, gw) low-res map onto a whole (height, width) frame, written out
    in its order of operations: ``scale`` / ``translation`` (per axis, float64) map the grid to the frame; the
    frame's sampling grid is ``torch.linspace(0, W / gw, W)`` per axis (pixel k at frame position
    k * W / (W - 1)), divided by the scale, shifted by translation / scale / gw, then * 2 - 1, all in float32;
    then ``grid_sample`` (bilinear, align_corners=False)."""
    grid_h, grid_w = low_res.shape[-2:]
    s = torch.from_numpy(np.asarray(scale, np.float64)).to(torch.float32).view(1, 1, 1, 2)
    t = torch.from_numpy(np.asarray(translation, np.float64)).to(torch.float32).view(1, 1, 1, 2)
    x = torch.linspace(0, width / grid_w, width, dtype=torch.float32)
    y = torch.linspace(0, height / grid_h, height, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1).unsqueeze(0)
    grid = grid / s
    t = t / s
    t[..., 0] /= grid_w
    t[..., 1] /= grid_h
    grid = (grid - t) * 2 - 1
    return F.grid_sample(low_res[None, None].float(), grid, mode="bilinear", padding_mode=padding,
                         align_corners=False)[0, 0]


def _reference_crop_mode(low_res: torch.Tensor, box, height: int, width: int, size: int = 1024) -> np.ndarray:
    """The official code's crop mode: the float32 crop params scaled to the low-res grid (in float64),
    inverted, the binary mask resampled onto the whole frame, any non-zero value kept."""
    real = crop_region((width, height), siamfc_params(box, 2.0, (size, size)), (size, size)).params
    return _official_back_projection(low_res > 0, real, size, height, width)


def _official_back_projection(binary: torch.Tensor, real, size: int, height: int, width: int) -> np.ndarray:
    grid = binary.shape[-1]
    params = np.stack([real.scale, real.translation]) * (np.array([grid, grid]) / np.array([size, size]))
    inverse_scale, inverse_translation = 1.0 / params[0], -params[1] / params[0]
    return _official_resample(binary, inverse_scale, inverse_translation, height, width).to(torch.bool).numpy()


def _reference_frame_mode(low_res: torch.Tensor, height: int, width: int,
                          size: int = 1024) -> Tuple[np.ndarray, np.ndarray]:
    """Cut the padding off the low-res grid, resample it onto the frame at the official positions (edge
    clamped, as a resize), threshold. Also says where the logit is too close to the threshold for two float32
    resampling routes to agree."""
    new_h, new_w = ResizeLongestSide.get_preprocess_shape(height, width, size)
    grid = low_res.shape[-1]
    assert new_h * grid % size == 0 and new_w * grid % size == 0, "pick frames whose valid grid is whole cells"
    valid_h, valid_w = new_h * grid // size, new_w * grid // size
    logits = _official_resample(low_res[:valid_h, :valid_w], [width / valid_w, height / valid_h], [0.0, 0.0],
                                height, width, padding="border")
    return (logits > 0).numpy(), (logits.abs() > 1e-3).numpy()


@pytest.mark.parametrize("kind", ["box", "noise"])
@pytest.mark.parametrize("height,width,box", [(384, 512, [100.3, 50.2, 171.9, 140.6]),
                                              (400, 300, [-20.0, 310.5, 60.2, 400.0]),
                                              (192, 256, [200.0, 0.0, 256.0, 30.3]),
                                              (768, 1024, [300.3, 200.6, 700.2, 520.9])])  # cells of 2-4 px
def test_back_projection_matches_the_whole_frame_formulas_exactly(kind, height, width, box):
    """Windowed resampling equals the official whole-frame back-projection (crop) and the same resampling of
    the frame-mode grid (frame) pixel for pixel, the official sample positions included."""
    image, boxes = _image(height, width), np.array([box])
    clipped = np.clip(box, 0, [width, height, width, height])
    decoder = _BoxMaskDecoder(1024, kind)
    for mode in ("crop", "frame"):
        sam = stub_sam(kind)
        prompts, sparse = [], []

        def record(module, args, kwargs, out) -> None:
            prompts.append(kwargs["boxes"])
            sparse.append(out[0])

        sam.prompt_encoder.register_forward_hook(record, with_kwargs=True)
        got = SamMaskGenerator(sam, SamOptions(mode=mode, guard="none"))(image, boxes)[0].mask
        low_res = decoder(None, None, sparse[0], None, False)[0][0, 0]
        if mode == "crop":
            real = crop_region((width, height), siamfc_params(clipped, 2.0, (1024, 1024)), (1024, 1024)).params
            prompt = np.clip(np.floor(real.apply(clipped) + [0, 0, 1 - 1e-4, 1 - 1e-4]), 0, 1024)
            assert prompts[0].tolist() == [prompt.tolist()], "the rasterised box in the crop"
            expected, clear = _reference_crop_mode(low_res, clipped, height, width), np.ones_like(got)
        else:
            expected, clear = _reference_frame_mode(low_res, height, width)
        assert expected.any() and (~clear).mean() < 1e-3
        assert np.array_equal(got[clear], expected[clear]), f"{mode}: {np.sum(got != expected)} pixels differ"


@pytest.mark.parametrize("mode", ["crop", "frame"])
def test_geometry_holds_for_a_small_sam_input_too(mode):
    """The crop size and the low-res grid follow the model (here 256 px input, 64 px grid)."""
    box = [30.2, 20.7, 52.0, 41.5]
    result = SamMaskGenerator(stub_sam(img_size=256), SamOptions(mode=mode))(_image(64, 60), np.array([box]))
    _assert_within_one_pixel(result[0].mask, box)


@pytest.mark.parametrize("mode", ["crop", "frame"])
def test_multimask_takes_the_best_rated_mask(mode):
    box = [40.0, 30.0, 90.0, 80.0]
    options = SamOptions(mode=mode, multimask_output=True, guard="none")
    result = SamMaskGenerator(stub_sam("multi"), options)(_image(120, 160), np.array([box]))
    _assert_within_one_pixel(result[0].mask, box)


# --- the tiny SAM: batching, shapes, disjointness ------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_sam()


def _count_calls(module: nn.Module) -> list:
    shapes = []
    module.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    return shapes


@pytest.mark.parametrize("mode", ["crop", "frame"])
@pytest.mark.parametrize("boxes", [[[30, 20, 90, 70]],
                                   [[30, 20, 90, 70], [60, 40, 150, 110], [0, 0, 0, 0], [5, 80, 40, 118],
                                    [150, 100, 200, 150]]])
def test_tiny_sam_few_encoder_calls_and_one_decoder_call_per_frame(mode, boxes):
    sam = build_tiny_sam()
    encoder_calls, decoder_calls = _count_calls(sam.image_encoder), _count_calls(sam.mask_decoder)
    height, width = 120, 160
    results = SamMaskGenerator(sam, SamOptions(mode=mode, encoder_batch=3))(_image(height, width),
                                                                           np.array(boxes, float))
    present = [i for i, b in enumerate(boxes) if b[2] > b[0] and b[3] > b[1]]
    crops = [3] * (len(present) // 3) + [len(present) % 3] * (len(present) % 3 > 0)
    assert encoder_calls == [(n, 3, 256, 256) for n in (crops if mode == "crop" else [1])]
    assert len(decoder_calls) == 1
    assert len(results) == len(boxes) and all(isinstance(r, MaskResult) for r in results)
    for i, result in enumerate(results):
        assert result.mask.shape == (height, width) and result.mask.dtype == np.bool_
        assert result.mask.any() == (i in present)
    assert np.sum([r.mask for r in results], axis=0).max() <= 1


def test_encoding_crops_in_chunks_changes_no_mask(tiny):
    boxes = np.array([[30, 20, 90, 70], [60, 40, 150, 110], [5, 80, 40, 118], [100, 10, 140, 60]], float)
    image = _image(120, 160)
    one = SamMaskGenerator(tiny, SamOptions(guard="none", encoder_batch=1))(image, boxes)
    every = SamMaskGenerator(tiny, SamOptions(guard="none", encoder_batch=8))(image, boxes)
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(one, every))
    with pytest.raises(ValueError, match="encoder_batch"):
        SamOptions(encoder_batch=0)


def test_crop_mode_feeds_sam_normalised_crops_padded_with_the_frame_mean(tiny):
    sam = build_tiny_sam()
    inputs = []
    sam.image_encoder.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    image = _image(100, 140)
    SamMaskGenerator(sam)(image, np.array([[0.0, 0.0, 40.0, 30.0], [60.0, 30.0, 120.0, 90.0]]))
    assert inputs[0].shape == (2, 3, 256, 256)
    mean = torch.from_numpy(image.reshape(-1, 3).mean(axis=0)).float()
    padding = (mean - sam.pixel_mean[:, 0, 0]) / sam.pixel_std[:, 0, 0]
    assert torch.allclose(inputs[0][0, :, 0, 0], padding, atol=1e-4), "top-left of a corner box's crop is padding"


@pytest.mark.parametrize("mode", ["crop", "frame"])
def test_no_sam_work_without_present_objects(mode):
    sam = build_tiny_sam()
    encoder_calls = _count_calls(sam.image_encoder)
    generator = SamMaskGenerator(sam, SamOptions(mode=mode))
    assert generator(_image(50, 70), np.zeros((0, 4))) == []
    results = generator(_image(50, 70), np.array([[0, 0, 0, 0], [80, 60, 90, 70], [10, 10, 10, 40]], float))
    assert encoder_calls == []
    assert [(r.mask.any(), r.fallback) for r in results] == [(False, False)] * 3


def test_tiny_sam_multimask_and_threshold_options_run(tiny):
    boxes = np.array([[30, 20, 90, 70], [100, 30, 150, 100]], float)
    for mode in ("crop", "frame"):
        base = SamMaskGenerator(tiny, SamOptions(mode=mode, guard="none"))(_image(120, 160), boxes)
        lower = SamMaskGenerator(tiny, SamOptions(mode=mode, guard="none", mask_threshold=-1e9))(_image(120, 160),
                                                                                              boxes)
        multi = SamMaskGenerator(tiny, SamOptions(mode=mode, multimask_output=True))(_image(120, 160), boxes)
        assert all((lo.mask | b.mask).sum() >= b.mask.sum() for lo, b in zip(lower, base))
        assert sum(r.mask.sum() for r in lower) > sum(r.mask.sum() for r in base)
        assert len(multi) == 2


def test_bad_inputs_and_options_are_rejected(tiny):
    generator = SamMaskGenerator(tiny)
    with pytest.raises(ValueError, match="uint8"):
        generator(np.zeros((10, 10, 3), np.float32), np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        generator(_image(10, 10), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="confidences"):
        generator(_image(10, 10), np.zeros((2, 4)), confidences=[1.0])
    for bad in ({"mode": "tile"}, {"guard": "maybe"}, {"precision": "fp8"}, {"min_area_ratio": 5.0}):
        with pytest.raises(ValueError):
            SamOptions(**bad)
    for precision in ("fp16", "bf16"):
        with pytest.raises(ValueError, match="CUDA"):
            SamMaskGenerator(tiny, SamOptions(precision=precision))


# --- the guard ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["crop", "frame"])
def test_guard_replaces_empty_and_absurd_masks(mode):
    image = _image(120, 160)
    box = np.array([[40.0, 50.0, 100.0, 56.0]])  # thin: even the crop is over 4x the box area
    expected = _box_mask(box[0], 120, 160)
    for kind in ("empty", "full", "dot"):
        result = SamMaskGenerator(stub_sam(kind), SamOptions(mode=mode))(image, box)[0]
        assert result.fallback and np.array_equal(result.mask, expected), kind
        empty = SamMaskGenerator(stub_sam(kind), SamOptions(mode=mode, guard="empty"))(image, box)[0]
        assert empty.fallback and not empty.mask.any(), kind
    kept = SamMaskGenerator(stub_sam("full"), SamOptions(mode=mode, guard="none"))(image, box)[0]
    assert not kept.fallback and kept.mask.sum() > 4 * expected.sum()
    normal = SamMaskGenerator(stub_sam("box"), SamOptions(mode=mode))(image, box)[0]
    assert not normal.fallback
    _assert_within_one_pixel(normal.mask, box[0])


def test_guard_limits_are_options():
    image, box = _image(120, 160), np.array([[40.0, 50.0, 100.0, 56.0]])
    options = SamOptions(mode="frame", max_area_ratio=1000.0)
    assert not SamMaskGenerator(stub_sam("full"), options)(image, box)[0].fallback
    options = SamOptions(mode="frame", min_area_ratio=1.5)
    assert SamMaskGenerator(stub_sam("box"), options)(image, box)[0].fallback


# --- overlaps -----------------------------------------------------------------------------------------------


def _rect(shape, x1, y1, x2, y2) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def test_logits_decide_contested_pixels():
    a, b = _rect((6, 8), 0, 0, 5, 6), _rect((6, 8), 3, 0, 8, 6)  # columns 3 and 4 contested
    la = np.zeros((6, 8), np.float32)
    lb = np.zeros((6, 8), np.float32)
    la[:, 3], lb[:, 3] = 2.0, 1.0  # a wins column 3
    la[:, 4], lb[:, 4] = 1.0, 3.0  # b wins column 4
    ra, rb = resolve_overlaps([a, b], priority=[0.0, 10.0], logits=[la, lb])
    assert np.array_equal(ra, _rect((6, 8), 0, 0, 4, 6))
    assert np.array_equal(rb, _rect((6, 8), 4, 0, 8, 6))
    assert a.sum() == 30 and b.sum() == 30, "inputs are not modified"


def test_priority_decides_without_logits_and_breaks_ties():
    a, b, c = _rect((5, 5), 0, 0, 3, 3), _rect((5, 5), 2, 2, 5, 5), _rect((5, 5), 0, 4, 1, 5)
    ra, rb, rc = resolve_overlaps([a, b, c], priority=[0.2, 0.9, 0.0])
    assert not ra[2, 2] and rb[2, 2]
    assert ra.sum() == 8 and rb.sum() == 9 and rc is c, "uncontested pixels and masks are untouched"
    ra, rb, _ = resolve_overlaps([a, b, c], priority=[0.5, 0.5, 0.0])
    assert ra[2, 2] and not rb[2, 2], "equal priority: the lower index wins"
    logits = [np.ones((5, 5)), np.ones((5, 5)), None]
    ra, rb, _ = resolve_overlaps([a, b, c], priority=[0.2, 0.9, 0.0], logits=logits)
    assert rb[2, 2] and not ra[2, 2], "equal logits: priority decides"


def test_three_way_overlap_and_errors():
    masks = [_rect((4, 4), 0, 0, 4, 4), _rect((4, 4), 1, 1, 3, 3), _rect((4, 4), 2, 2, 4, 4)]
    logits = [np.full((4, 4), 1.0), np.full((4, 4), 2.0), np.full((4, 4), 3.0)]
    out = resolve_overlaps(masks, [0, 0, 0], logits)
    assert np.sum(out, axis=0).max() == 1 and np.sum(out, axis=0).min() == 1
    assert out[2][2, 2] and out[1][1, 1] and out[0][0, 0]
    with pytest.raises(ValueError, match="logits"):
        resolve_overlaps(masks, [0, 0, 0], [logits[0], None, logits[2]])
    with pytest.raises(ValueError, match="priority"):
        resolve_overlaps(masks, [0, 0])
    assert resolve_overlaps([], []) == []


@pytest.mark.parametrize("mode", ["crop", "frame"])
def test_generator_gives_contested_pixels_away_once(mode):
    boxes = np.array([[20.0, 20.0, 80.0, 80.0], [50.0, 40.0, 110.0, 100.0]])
    for confidences, winner in (([0.3, 0.8], 1), ([0.8, 0.3], 0)):
        results = SamMaskGenerator(stub_sam(), SamOptions(mode=mode))(_image(120, 160), boxes, confidences)
        union = _box_mask(boxes[0], 120, 160) | _box_mask(boxes[1], 120, 160)
        assert not (results[0].mask & results[1].mask).any()
        assert abs(int((results[0].mask | results[1].mask).sum()) - int(union.sum())) <= 4 * 140
        assert results[winner].mask[60, 65], "the stub's logits tie, so the higher confidence wins"


# --- loading weights ------------------------------------------------------------------------------------------


def test_load_sam_errors_name_the_expected_file(tmp_path):
    with pytest.raises(ValueError, match="vit_b, vit_l, vit_h"):
        load_sam("vit_s", tmp_path / "x.pth")
    with pytest.raises(FileNotFoundError, match=r"missing\.pth.*sam_vit_b_01ec64\.pth"):
        load_sam("vit_b", tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"not a PyTorch state dict.*sam_vit_h_4b8939\.pth"):
        load_sam("vit_h", junk)
    other = tmp_path / "lorat.pth"
    torch.save({"head.cls_mlp.layers.0.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match="no SAM image encoder"):
        load_sam("vit_b", other)
    # the keys that identify vit_l weights (width 1024, 24 blocks), without their 1.2 GB of values
    vit_l = {"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 1, 1, 1)}
    vit_l.update({f"image_encoder.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(24)})
    wrong = tmp_path / "sam_vit_l_0b3195.pth"
    torch.save(vit_l, wrong)
    with pytest.raises(ValueError, match=r"holds vit_l weights.*1024, 24 blocks.*sam_vit_b_01ec64\.pth"):
        load_sam("vit_b", wrong)


def test_load_sam_loads_a_checkpoint_file(tmp_path):
    """The real loading path (a real vit_b file is 375 MB): the tiny type reads its own file."""
    saved = save_tiny_sam(tmp_path / "tiny_sam.pth", seed=3)
    loaded = load_sam("tiny", tmp_path / "tiny_sam.pth")
    assert not loaded.training and loaded.device.type == "cpu"
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(ValueError, match=r"holds tiny weights.*sam_vit_b_01ec64\.pth"):
        load_sam("vit_b", tmp_path / "tiny_sam.pth")

def test_the_server_uses_sam_as_the_sessions_mask_generator(tmp_path):
    """No adapter: the generator the server builds is the SamMaskGenerator, and a session takes its masks."""
    from vot_lorat.masks.regions import FrameMask
    from vot_lorat.toolkit.server import build_mask_generator
    from vot_lorat.toolkit.session import TrackingSession
    from vot_lorat.toolkit.settings import ServerSettings
    from vot_lorat.tracking.static import StaticTracker

    save_tiny_sam(tmp_path / "tiny_sam.pth")
    cfg = ServerSettings(mask="sam", sam_model="tiny", sam_checkpoint=str(tmp_path / "tiny_sam.pth"))
    generator = build_mask_generator(cfg, torch.device("cpu"))
    assert isinstance(generator, SamMaskGenerator) and generator.options.precision == "fp32"
    session = TrackingSession(StaticTracker(), generator)
    session.start(_image(120, 160), [np.array([20.0, 20.0, 80.0, 80.0]), np.array([50.0, 40.0, 110.0, 100.0])])
    states = session.step(_image(120, 160))
    assert all(isinstance(s.mask, FrameMask) for s in states)
    assert not (states[0].mask.mask & states[1].mask.mask).any()


# --- the whole crop mode against the official rules, on the tiny SAM --------------------------------------


def _official_low_res(sam: Sam, image: np.ndarray, box) -> Tuple[torch.Tensor, CropParams]:
    """The official segmentify post-processing for one box up to SAM's output, written out: the pixel-aligned
    crop (area factor 2, frame-mean padding) at SAM's input size, SAM's normalisation, the rasterised box
    clipped to the crop as the prompt, one mask; its low-res logits and the crop's realised params."""
    size = int(sam.image_encoder.img_size)
    frame = torch.from_numpy(image)
    crop, real = reference_crop(frame, siamfc_params(np.asarray(box), 2.0, (size, size)), size, image_mean(frame))
    crop = (crop - sam.pixel_mean) / sam.pixel_std
    prompt = np.clip(np.floor(real.apply(np.asarray(box)) + [0, 0, 1 - 1e-4, 1 - 1e-4]), 0, size)
    with torch.inference_mode():
        embedding = sam.image_encoder(crop[None])
        sparse, dense = sam.prompt_encoder(points=None, boxes=torch.tensor(prompt[None], dtype=torch.float32),
                                           masks=None)
        low_res, _ = sam.mask_decoder(embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, False)
    return low_res[0, 0], real


OFFICIAL_CASES = {  # frame (height, width): boxes, one at a time as the official code takes them
    (240, 320): [[120.4, 80.2, 190.7, 150.9],  # mid-frame
                 [0.0, 60.3, 41.5, 130.0], [270.2, 0.0, 320.0, 47.7],  # at an edge, in a corner
                 [3.2, 2.6, 316.9, 238.1],  # nearly the whole frame: the crop is scaled down
                 [150.3, 110.6, 154.1, 113.8],  # 4 x 3 px: the crop is scaled up about 30x
                 [100.0, 90.0, 180.0, 170.0], [140.0, 120.0, 220.0, 200.0]],  # two overlapping boxes
    (720, 1280): [[600.7, 300.1, 701.3, 420.6], [1200.5, 650.2, 1280.0, 720.0], [10.2, 15.9, 12.4, 17.3],
                  [100.0, 50.0, 1100.0, 700.0]],
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("frame", sorted(OFFICIAL_CASES))
def test_crop_mode_equals_the_official_rules_on_the_tiny_sam(seed, frame):
    """Crop, normalisation, prompt, SAM, threshold and back-projection together: each box's mask is the
    official one, pixel for pixel (guard off; one box per call, as the official code has no overlaps). The
    random tiny SAM's logits lie mostly on one side of 0, so the (configurable, in both codes) threshold is
    set at their 90th percentile: scattered low-res cells are on, and the masks have edges all over the crop."""
    height, width = frame
    sam = build_tiny_sam(seed)
    image = _image(height, width, seed)
    for box in OFFICIAL_CASES[frame]:
        low_res, real = _official_low_res(sam, image, box)
        threshold = float(low_res.quantile(0.9))
        expected = _official_back_projection(low_res > threshold, real, int(sam.image_encoder.img_size), height,
                                             width)
        crop_area = _box_mask(bx.clip(real.invert([0, 0, 256, 256]), width, height), height, width).sum()
        assert 0 < expected.sum() < 0.9 * crop_area
        generator = SamMaskGenerator(sam, SamOptions(mode="crop", guard="none", mask_threshold=threshold))
        got = generator(image, np.array([box]))[0].mask
        assert np.array_equal(got, expected), f"{box}: {int((got != expected).sum())} pixels differ"


# --- precision: the official bfloat16 conversion ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["crop", "frame"])
def test_bf16_weights_converts_sam_and_its_input_and_uses_no_autocast(mode):
    """SAM's networks and the normalised input in bfloat16, as the official code runs SAM; the pixel
    normalisation stays float32 (it happens before the conversion). Runs on a CPU."""
    image, boxes = _image(120, 160), np.array([[30.0, 20.0, 90.0, 70.0], [60.0, 40.0, 150.0, 110.0]])
    inputs = {}

    def run(precision: str):
        def record(module, args, out) -> None:
            inputs.setdefault(precision, (args[0], torch.is_autocast_enabled("cpu")))

        sam = build_tiny_sam()
        sam.image_encoder.register_forward_hook(record)
        generator = SamMaskGenerator(sam, SamOptions(mode=mode, guard="none", precision=precision))
        return sam, generator, generator(image, boxes)

    sam, generator, results = run("bf16-weights")
    assert generator.sam is sam, "converted in place"
    for name, weight in [*sam.image_encoder.named_parameters(), *sam.mask_decoder.named_parameters(),
                         *sam.prompt_encoder.named_parameters()]:
        assert weight.dtype == torch.bfloat16, name
    assert sam.pixel_mean.dtype == sam.pixel_std.dtype == torch.float32
    frequencies = sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    assert frequencies.dtype == torch.float32 and torch.equal(frequencies, frequencies.bfloat16().float())
    _, _, reference = run("fp32")
    (encoded, autocast_on), (normalised, _) = inputs["bf16-weights"], inputs["fp32"]
    assert encoded.dtype == torch.bfloat16 and not autocast_on
    assert normalised.dtype == torch.float32 and torch.equal(encoded, normalised.bfloat16())
    for ours, fp32 in zip(results, reference):
        assert ours.mask.shape == (120, 160) and ours.mask.dtype == np.bool_
        if mode == "crop":  # measured IoU 0.987 and 0.993 against fp32
            assert (ours.mask & fp32.mask).sum() > 0.9 * (ours.mask | fp32.mask).sum()


def test_the_server_runs_sam_as_the_official_code_on_a_gpu_and_in_fp32_on_a_cpu(tmp_path, monkeypatch):
    """``auto``: bf16-weights on CUDA (the SAM is loaded on the CPU here, where bf16 runs too), fp32 on a CPU."""
    import vot_lorat.masks.sam as sam_module
    from vot_lorat.toolkit.server import build_mask_generator
    from vot_lorat.toolkit.settings import ServerSettings

    monkeypatch.setattr(sam_module, "load_sam", lambda model_type, checkpoint, device: build_tiny_sam())
    cfg = ServerSettings(mask="sam", sam_model="tiny", sam_checkpoint=str(tmp_path / "tiny_sam.pth"))
    on_gpu = build_mask_generator(cfg, torch.device("cuda"))
    assert on_gpu.options.precision == "bf16-weights" and on_gpu.dtype == torch.bfloat16
    assert next(on_gpu.sam.mask_decoder.parameters()).dtype == torch.bfloat16
    assert build_mask_generator(cfg, torch.device("cpu")).options.precision == "fp32"
    chosen = build_mask_generator(replace(cfg, sam_precision="bf16-weights"), torch.device("cpu"))
    assert chosen.options.precision == "bf16-weights"
    assert ServerSettings.from_env({"LORAT_SAM_PRECISION": "bf16-weights"}).sam_precision == "bf16-weights"


# --- raw masks: each object's mask as SAM gives it ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["crop", "frame"])
def test_raw_masks_keep_overlaps_and_sams_own_masks(mode):
    """``disjoint=False`` with the guard off: each object's mask is the one it gets alone, overlaps kept."""
    image = _image(120, 160)
    boxes = np.array([[20.0, 20.0, 80.0, 80.0], [50.0, 40.0, 110.0, 100.0], [40.0, 100.0, 100.0, 106.0]])
    raw = SamOptions(mode=mode, guard="none", disjoint=False)
    together = SamMaskGenerator(stub_sam(), raw)(image, boxes, [0.9, 0.1, 0.5])
    alone = [SamMaskGenerator(stub_sam(), raw)(image, box[None])[0] for box in boxes]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(together, alone))
    assert (together[0].mask & together[1].mask).any(), "the overlap is kept"
    disjoint = SamMaskGenerator(stub_sam(), SamOptions(mode=mode, guard="none"))(image, boxes, [0.9, 0.1, 0.5])
    assert not (disjoint[0].mask & disjoint[1].mask).any()
    full = SamMaskGenerator(stub_sam("full"), raw)(image, boxes[2:])[0]
    assert not full.fallback and full.mask.sum() > 4 * _box_mask(boxes[2], 120, 160).sum(), "no guard"


def test_the_server_setting_for_raw_masks(tmp_path, monkeypatch):
    import vot_lorat.masks.sam as sam_module
    from vot_lorat.toolkit.server import build_mask_generator
    from vot_lorat.toolkit.settings import ServerSettings

    monkeypatch.setattr(sam_module, "load_sam", lambda model_type, checkpoint, device: build_tiny_sam())
    cfg = ServerSettings(mask="sam", sam_model="tiny", sam_checkpoint=str(tmp_path / "tiny_sam.pth"))
    assert cfg.sam_masks == "disjoint"
    default = build_mask_generator(cfg, torch.device("cpu")).options
    assert default.disjoint and default.guard == "box"
    raw = ServerSettings.from_env({**cfg.to_env(), "LORAT_SAM_MASKS": "raw"})
    options = build_mask_generator(raw, torch.device("cpu")).options
    assert not options.disjoint and options.guard == "none"
    with pytest.raises(ValueError, match="LORAT_SAM_MASKS"):
        ServerSettings.from_env({"LORAT_SAM_MASKS": "overlapping"})
