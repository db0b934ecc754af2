"""The frame pipeline around the network: decoding, the batched in-place crops, and the tracker built on them
giving the boxes of the per-object crop path (crop_image + normalize), frame after frame."""
from __future__ import annotations

import os
import shutil
import sysconfig

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import vot_lorat
from vot_lorat import box as bx
from vot_lorat import crop as crop_module
from vot_lorat.crop import CropBatch, crop_image, image_mean, normalize, siamfc_params, token_mask
from vot_lorat.image_io import decode_jpeg_into, read_frame, read_rgb
from vot_lorat.postprocess import hann_window_2d, select_boxes
from vot_lorat.tracker import LoRATTracker
from training.data.synthetic import SceneStyle, SyntheticScene

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_WEIGHTS = os.path.join(ROOT, "vot_lorat", "weights", "lorat_tiny_synthetic.safetensors")
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


@pytest.mark.parametrize("name, decoded", [
    ("plain.jpg", True), ("progressive.jpg", True), ("full_chroma.jpeg", True), ("grey.jpg", True),
    ("rotated.JPG", False), ("cmyk.jpg", False), ("truncated.jpg", False), ("lossless.png", False)])
def test_decode_jpeg_into_gives_read_frames_pixels_or_leaves_the_file_to_it(image_files, name, decoded):
    path = str(image_files / name)
    out = np.full(200 * 200 * 3, 7, dtype=np.uint8)
    shape = decode_jpeg_into(path, out)
    if decoded:
        assert shape == (120, 160, 3)
        assert np.array_equal(out[:120 * 160 * 3].reshape(shape), read_frame(path).numpy())
    else:
        assert shape is None and (out == 7).all()
    assert decode_jpeg_into(path, np.empty(100, dtype=np.uint8)) is None  # too small a buffer: untouched too


def test_unreadable_frames_raise_the_same_error(tmp_path):
    (tmp_path / "not_a.jpg").write_bytes(b"not a jpeg at all")
    for name in ("not_a.jpg", "missing.jpg"):
        with pytest.raises(OSError, match=f"cannot read image .*{name}"):
            read_frame(str(tmp_path / name))


def _fills(count, seed):
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (count, 3)).astype(np.float32))


COMPILED = pytest.mark.skipif(crop_module._crop_kernel is None, reason="the C crop kernel is not built here")


@pytest.fixture(params=["compiled", "tensor"])
def crop_path(request, monkeypatch):
    """CropBatch on the CPU both ways: with the compiled kernel, and with the tensor operations used without it."""
    if request.param == "compiled" and crop_module._crop_kernel is None:
        pytest.skip("the C crop kernel is not built here")
    if request.param == "tensor":
        monkeypatch.setattr(crop_module, "_crop_kernel", None)
    return request.param


def test_the_crop_kernel_is_built_where_it_can_be():
    """setup.py builds it as optional: a broken build would pass unnoticed, the crops made the slow way."""
    headers = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    if not (shutil.which("cc") or shutil.which("gcc")) or not os.path.exists(headers):
        pytest.skip("no C compiler or Python headers here: the kernel cannot be built")
    assert crop_module._crop_kernel is not None, "vot_lorat._crop_kernel did not build: run ./install.sh, read pip"


@pytest.mark.parametrize("width, height", [(400, 300), (1280, 720), (60, 40), (7, 5), (1, 9), (9, 1)])
def test_crop_batch_equals_crop_image_then_normalize(width, height, crop_path):
    rng = np.random.default_rng(width * height)
    image = torch.from_numpy(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    for size, count in ((112, 5), (56, 3), (17, 2)):
        centres = rng.uniform([-60, -60], [width + 60, height + 60], (count, 2))
        sides = rng.uniform(0.3, max(width, height) / 2, (count, 2))  # inside, across the border, outside
        boxes = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)
        fills = _fills(count, size)
        crops = CropBatch(count, size, image.device)
        params = siamfc_params(boxes, 4.0, (size, size))
        real = crops.fill(image, params, normalize(fills[:, :, None, None])[:, :, 0, 0])
        for i in range(count):
            one = siamfc_params(boxes[i], 4.0, (size, size))
            assert np.array_equal(params.scale[i], one.scale) and np.array_equal(params.translation[i], one.translation)
            expected, expected_real = crop_image(image, one, (size, size), fills[i])
            # float rounding only: F.interpolate's own kernels differ among themselves by as much
            assert (crops.batch[i] - normalize(expected)).abs().max() < 1e-5
            assert np.array_equal(real.scale[i], expected_real.scale)
            assert np.array_equal(real.translation[i], expected_real.translation)


def test_crop_batch_writes_in_place(crop_path):
    image = torch.from_numpy(_picture())
    crops = CropBatch(2, 56, image.device)
    batch = crops.batch
    for shift in (0.0, 7.5):
        boxes = np.array([[20 + shift, 30, 60, 70], [100, 10 + shift, 150, 60]])
        crops.fill(image, siamfc_params(boxes, 4.0, (56, 56)), torch.zeros(2, 3))
        assert crops.batch is batch and crops.batch.data_ptr() == batch.data_ptr()


@COMPILED
def test_compiled_crops_equal_the_tensor_operations(monkeypatch):
    """The same taps, the same float operations: equal up to the fused multiply-adds torch's kernels may use."""
    rng = np.random.default_rng(7)
    for _ in range(60):
        height, width = (int(v) for v in rng.integers(1, 300, 2))
        image = torch.from_numpy(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        count, size = int(rng.integers(1, 5)), int(rng.integers(1, 60))
        centres = rng.uniform([-60, -60], [width + 60, height + 60], (count, 2))
        sides = rng.uniform(0.3, max(width, height), (count, 2))
        params = siamfc_params(np.concatenate([centres - sides / 2, centres + sides / 2], 1), 4.0, (size, size))
        fills = torch.from_numpy(rng.normal(0, 1, (count, 3)).astype(np.float32))
        compiled = CropBatch(count, size, image.device)
        compiled.fill(image, params, fills)
        with monkeypatch.context() as m:
            m.setattr(crop_module, "_crop_kernel", None)
            tensor = CropBatch(count, size, image.device)
        tensor.fill(image, params, fills)
        assert (compiled.batch - tensor.batch).abs().max() <= 1e-6


@COMPILED
def test_crop_kernel_refuses_arguments_that_would_leave_its_buffers():
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    out = np.zeros((1, 3, 8, 8), dtype=np.float32)
    scale = np.ones(3, dtype=np.float32)

    def fill(source, target=(0, 0, 8, 8), height=10, image=image, out=out, fills=np.zeros((1, 3), np.float32)):
        crop_module._crop_kernel.fill(image, height, 20, 8, np.array([target], dtype=np.int64),
                                      np.array([source], dtype=np.int64), fills, scale, scale, out)

    fill((0, 0, 20, 10))  # the whole image: fine
    with pytest.raises(ValueError, match="crop 0 has target 0..8 or source 0..21 outside its 0..8 crop and 0..20"):
        fill((0, 0, 21, 10))
    with pytest.raises(ValueError, match="source 5..5"):
        fill((0, 5, 20, 5))  # an empty source range
    with pytest.raises(ValueError, match="target 0..9"):
        fill((0, 0, 20, 10), target=(0, 0, 8, 9))
    with pytest.raises(ValueError, match="image has 600 bytes, 660 expected"):
        fill((0, 0, 20, 10), height=11)
    with pytest.raises(ValueError, match="out has 768 bytes, 3072 expected"):
        crop_module._crop_kernel.fill(image, 10, 20, 16, np.zeros((1, 4), np.int64), np.zeros((1, 4), np.int64),
                                      np.zeros((1, 3), np.float32), scale, scale, out)
    with pytest.raises(ValueError, match="fills has 24 bytes, 12 expected"):
        fill((0, 0, 20, 10), fills=np.zeros((1, 3)))  # float64 colours
    with pytest.raises(ValueError, match="not C-contiguous"):
        fill((0, 0, 20, 10), image=np.zeros((10, 40, 3), dtype=np.uint8)[:, ::2])  # not contiguous
    with pytest.raises(TypeError):
        fill((0, 0, 20, 10), out=out.tobytes())  # read-only


def test_without_the_kernel_the_cpu_crops_say_so_once(monkeypatch, caplog):
    monkeypatch.setattr(crop_module, "_crop_kernel", None)
    crop_module._say_kernel_missing.cache_clear()
    with caplog.at_level("WARNING", logger="vot_lorat.crop"):
        CropBatch(1, 8, torch.device("cpu"))
        CropBatch(2, 8, torch.device("cpu"))
    assert [r.getMessage() for r in caplog.records if "_crop_kernel is not built" in r.getMessage()] == [
        "vot_lorat._crop_kernel is not built, so crops on the CPU use slower tensor operations; run ./install.sh "
        "(or pip install -e .) where a C compiler and the Python headers are installed"]


def _per_object_tracking(model, frames, starts):
    """The tracking procedure with one crop_image + normalize per object (the pipeline before CropBatch):
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
                crop, real = crop_image(frame, p, (size, size), obj["fill"])
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
            crop, real = crop_image(frame, siamfc_params(box, cfg.template_area_factor, (tz, tz)), (tz, tz), fill)
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
    on_cpu.fill(image, params, torch.zeros(2, 3))
    on_gpu.fill(image.to(device), params, torch.zeros(2, 3, device=device))
    assert (on_gpu.batch.cpu() - on_cpu.batch).abs().max() < 1e-5
