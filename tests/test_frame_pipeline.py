"""The frame pipeline around the network: decoding, the batched in-place crops, and the tracker built on them
giving the boxes of the per-object crop path (the reference crop + normalize), frame after frame."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import vot_lorat
from training.data.synthetic import SceneStyle, SyntheticScene
from vot_lorat.frames.reading import read_frame, read_rgb
from vot_lorat.tracking import box as bx
from vot_lorat.tracking.crop import CropBatch, crop_one, image_mean, normalize, siamfc_params, token_mask
from vot_lorat.tracking.postprocess import hann_window_2d, select_boxes
from vot_lorat.tracking.tracker import LoRATTracker

from reference_crop import reference_crop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_WEIGHTS = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _picture(height=120, width=160, seed=0):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(image, (7, 7), 3)  # JPEG-like content: smooth, with detail


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """One file per kind of image the decoder must handle as OpenCV does."""
    folder = tmp_path_factory.mktemp("images")
    rgb = _picture()
    cv2.imwrite(str(folder / "plain.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    Image.fromarray(rgb).save(folder / "progressive.jpg", quality=90, progressive=True)
    Image.fromarray(rgb).save(folder / "full_chroma.jpeg", quality=100, subsampling=0)
    Image.fromarray(rgb[..., 0]).save(folder / "grey.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise
    Image.fromarray(rgb).save(folder / "rotated.JPG", quality=90, exif=exif.tobytes())
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    data = (folder / "plain.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) * 2 // 3])
    cv2.imwrite(str(folder / "lossless.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


@pytest.mark.parametrize("name", ["plain.jpg", "progressive.jpg", "full_chroma.jpeg", "grey.jpg", "rotated.JPG",
                                  "cmyk.jpg", "truncated.jpg", "lossless.png"])
def test_read_frame_gives_opencvs_pixels(image_files, name):
    expected = read_rgb(str(image_files / name))
    frame = read_frame(str(image_files / name))
    assert frame.dtype == torch.uint8 and frame.is_contiguous()
    assert np.array_equal(frame.numpy(), expected)


def test_unreadable_frames_raise_the_same_error(tmp_path):
    (tmp_path / "not_a.jpg").write_bytes(b"not a jpeg at all")
    for name in ("not_a.jpg", "missing.jpg"):
        with pytest.raises(OSError, match=f"cannot read image .*{name}"):
            read_frame(str(tmp_path / name))


def _fills(count, seed):
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (count, 3)).astype(np.float32))


@pytest.mark.parametrize("width, height", [(400, 300), (1280, 720), (60, 40), (7, 5), (1, 9), (9, 1)])
def test_crop_batch_equals_the_reference_crop_then_normalize(width, height):
    rng = np.random.default_rng(width * height)
    image = torch.from_numpy(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    for size, count in ((112, 5), (56, 3), (17, 2)):
        centres = rng.uniform([-60, -60], [width + 60, height + 60], (count, 2))
        sides = rng.uniform(0.3, max(width, height) / 2, (count, 2))  # inside, across the border, outside
        boxes = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)
        fills = _fills(count, size)
        crops = CropBatch(count, size, image.device)
        params = siamfc_params(boxes, 4.0, (size, size))
        real = crops.crop(image, params, normalize(fills[:, :, None, None])[:, :, 0, 0])
        for i in range(count):
            one = siamfc_params(boxes[i], 4.0, (size, size))
            assert np.array_equal(params.scale[i], one.scale) and np.array_equal(params.translation[i], one.translation)
            expected, expected_real = reference_crop(image, one, size, fills[i])
            # float rounding only: F.interpolate's own kernels differ among themselves by as much
            assert (crops.batch[i] - normalize(expected)).abs().max() < 1e-5
            assert np.array_equal(real.scale[i], expected_real.scale)
            assert np.array_equal(real.translation[i], expected_real.translation)


@pytest.mark.parametrize("width, height", [(400, 300), (60, 40), (1, 9)])
def test_pixel_crops_equal_the_reference_crop(width, height):
    """Without normalisation (training's and SAM's crops): the reference's 0..255 values."""
    rng = np.random.default_rng(width + height)
    image = torch.from_numpy(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    for size in (112, 17):
        centres = rng.uniform([-20, -20], [width + 20, height + 20], (3, 2))
        sides = rng.uniform(0.3, max(width, height), (3, 2))
        for box in np.concatenate([centres - sides / 2, centres + sides / 2], axis=1):
            params = siamfc_params(box, 2.0, (size, size))
            crop, real = crop_one(image, params, size, image_mean(image))
            expected, expected_real = reference_crop(image, params, size, image_mean(image))
            assert crop.shape == (3, size, size) and (crop - expected).abs().max() < 2e-4
            assert np.array_equal(real.scale, expected_real.scale)
            assert np.array_equal(real.translation, expected_real.translation)


def test_crop_batch_writes_in_place():
    image = torch.from_numpy(_picture())
    crops = CropBatch(2, 56, image.device)
    batch = crops.batch
    for shift in (0.0, 7.5):
        boxes = np.array([[20 + shift, 30, 60, 70], [100, 10 + shift, 150, 60]])
        crops.crop(image, siamfc_params(boxes, 4.0, (56, 56)), torch.zeros(2, 3))
        assert crops.batch is batch and crops.batch.data_ptr() == batch.data_ptr()


def _per_object_tracking(model, frames, starts):
    """The tracking procedure with one reference crop + normalize per object, as the official code tracks:
    ``starts`` maps a frame index to the boxes that start there. Returns every (frame, object) box and
    confidence."""
    cfg = model.config
    size = cfg.search_size
    objects, out = [], []
    for t, rgb in enumerate(frames):
        frame = torch.from_numpy(rgb)
        height, width = rgb.shape[:2]
        if objects:
            crops, params = [], []
            for obj in objects:
                p = siamfc_params(bx.enlarge_to_min_size(obj["box"], cfg.min_object_size), cfg.search_area_factor,
                                  (size, size))
                crop, real = reference_crop(frame, p, size, obj["fill"])
                crops.append(crop)
                params.append(real)
            with torch.inference_mode():
                result = model(torch.stack([o["z"] for o in objects]), normalize(torch.stack(crops)),
                               torch.stack([o["mask"] for o in objects]))
                window = hann_window_2d(cfg.search_grid, cfg.search_grid)
                boxes, conf = select_boxes(result["score_map"], result["boxes"], window, cfg.window_penalty)
            found = torch.cat([boxes * size, conf[:, None]], 1).numpy().astype(np.float64)
            for obj, real, row in zip(objects, params, found):
                box = bx.clip(real.invert(row[:4]), width, height)
                if bx.is_valid(box):
                    obj["box"] = box
                out.append((t, box, row[4]))
        for box in starts.get(t, []):
            fill = image_mean(frame)
            tz = cfg.template_size
            crop, real = reference_crop(frame, siamfc_params(box, cfg.template_area_factor, (tz, tz)), tz, fill)
            mask = torch.from_numpy(token_mask(real.apply(box), tz, cfg.template_grid))
            objects.append({"z": normalize(crop), "mask": mask, "fill": fill, "box": np.asarray(box, float)})
    return out


def _batched_tracking(model, frames, starts):
    tracker = LoRATTracker(model)
    out = []
    for t, rgb in enumerate(frames):
        if tracker.objects:
            out += [(t, r.box_xyxy, r.confidence) for r in tracker.track(rgb)]
        for box in starts.get(t, []):
            tracker.add_object(rgb, box)
    return out


@pytest.mark.parametrize("weights", ["demo", "random"])
def test_tracker_gives_the_boxes_of_the_per_object_crop_path(weights):
    torch.manual_seed(0)
    if weights == "demo":
        model = vot_lorat.load_model("tiny", None, DEMO_WEIGHTS)
    else:
        model = vot_lorat.create_model(vot_lorat.get_config("tiny"), init_values=1.0).eval()
    scene = SyntheticScene(2024, 30, num_targets=3, style=SceneStyle(frame_sizes=((640, 360),)))
    frames = [scene.render(t) for t in range(scene.num_frames)]
    first = [scene.boxes(i)[0] for i in range(2)]
    late = scene.boxes(2)[10]
    starts = {0: [b for b in first if bx.is_valid(b)] + [np.array([600.0, 330.0, 660.0, 380.0])],  # off the edge
              10: [late] if bx.is_valid(late) else []}
    expected = _per_object_tracking(model, frames, starts)
    got = _batched_tracking(model, frames, starts)
    assert len(got) == len(expected) > 50
    for (t, box, conf), (t2, box2, conf2) in zip(got, expected):
        assert t == t2
        assert np.abs(box - box2).max() < 1e-3
        assert abs(conf - conf2) < 1e-4


@CUDA
def test_frames_decoded_and_cropped_on_the_gpu(image_files):
    device = torch.device("cuda")
    frame = read_frame(str(image_files / "plain.jpg"), device)
    assert frame.device.type == "cuda" and frame.shape == (120, 160, 3)
    # nvJPEG is not libjpeg-turbo: close, not equal
    assert (frame.cpu().int() - read_frame(str(image_files / "plain.jpg")).int()).abs().float().mean() < 2
    image = torch.from_numpy(_picture())
    boxes = np.array([[20, 30, 60, 70], [100, 10, 170, 60]], dtype=np.float64)
    params = siamfc_params(boxes, 4.0, (56, 56))
    on_cpu, on_gpu = CropBatch(2, 56, torch.device("cpu")), CropBatch(2, 56, device)
    on_cpu.crop(image, params, torch.zeros(2, 3))
    on_gpu.crop(image.to(device), params, torch.zeros(2, 3, device=device))
    assert (on_gpu.batch.cpu() - on_cpu.batch).abs().max() < 1e-5
