"""The tracking procedure and the multi-object session, without the toolkit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import vot_lorat
from training.data.synthetic import SyntheticScene
from vot_lorat.masks.box_masks import BoxMaskGenerator
from vot_lorat.masks.regions import box_mask, crop_to_content, pad_mask, tight_box
from vot_lorat.toolkit.session import TrackingSession
from vot_lorat.tracking import box as bx
from vot_lorat.tracking.static import StaticTracker
from vot_lorat.tracking.tracker import LoRATTracker


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return vot_lorat.create_model(vot_lorat.get_config("tiny"), init_values=1.0).eval()


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(12345, 25, num_targets=3)


def test_batched_objects_match_tracking_each_alone(model, scene):
    boxes0 = [scene.boxes(i)[0] for i in range(3)]
    together = LoRATTracker(model)
    for b in boxes0:
        together.add_object(scene.render(0), b)
    alone = []
    for b in boxes0:
        t = LoRATTracker(model)
        t.add_object(scene.render(0), b)
        alone.append(t)
    for frame in range(1, scene.num_frames):
        image = scene.render(frame)
        joint = together.track(image)
        for i, t in enumerate(alone):
            single = t.track(image)[0]
            assert np.abs(joint[i].box_xyxy - single.box_xyxy).max() < 1e-4
            assert abs(joint[i].confidence - single.confidence) < 1e-5


def test_objects_added_later_join_the_batch(model, scene):
    tracker = LoRATTracker(model)
    tracker.add_object(scene.render(0), scene.boxes(0)[0])
    tracker.track(scene.render(1))
    late = tracker.add_object(scene.render(2), scene.boxes(1)[2])
    out = tracker.track(scene.render(3))
    assert len(out) == 2 and list(tracker.objects) == [0, late]


def test_warm_up_leaves_no_trace(model, scene):
    """A warmed-up tracker tracks exactly as a fresh one, from id 0; one that holds objects is left alone."""
    fresh, warmed = LoRATTracker(model), LoRATTracker(model)
    warmed.warm_up()
    assert not warmed.objects
    for tracker in (fresh, warmed):
        assert [tracker.add_object(scene.render(0), scene.boxes(i)[0]) for i in range(2)] == [0, 1]
    warmed.warm_up()
    assert list(warmed.objects) == [0, 1]
    for frame in range(1, 6):
        image = scene.render(frame)
        for a, b in zip(fresh.track(image), warmed.track(image)):
            assert np.array_equal(a.box_xyxy, b.box_xyxy) and a.confidence == b.confidence


def test_output_box_is_clipped_and_state_only_takes_valid_boxes(model):
    tracker = LoRATTracker(model)
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    tracker.add_object(image, [70, 50, 80, 60])  # in the bottom-right corner
    for _ in range(5):
        result = tracker.track(image)[0]
        assert (result.box_xyxy >= 0).all() and result.box_xyxy[2] <= 80 and result.box_xyxy[3] <= 60
        assert bx.is_valid(tracker.objects[0].box)


def test_initial_box_validation(model):
    tracker = LoRATTracker(model)
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="positive size"):
        tracker.add_object(image, [10, 10, 10, 20])
    with pytest.raises(ValueError, match="uint8 RGB"):
        tracker.add_object(np.zeros((40, 40), np.uint8), [1, 1, 5, 5])


def test_session_keeps_order_absent_and_unreadable_frames(model, scene):
    session = TrackingSession(LoRATTracker(model), BoxMaskGenerator())
    first = session.start(scene.render(0), [scene.boxes(0)[0], None, scene.boxes(1)[0]])
    assert first[1].box is None and len(first) == 3
    out = session.step(scene.render(1))
    assert out[1].box is None and out[0].box is not None and out[2].box is not None
    assert out[0].mask.mask.shape == (scene.height, scene.width) and not (out[0].mask.mask & out[2].mask.mask).any()
    repeat = session.step(None)  # unreadable frame: the last answers again
    assert all(a is b for a, b in zip(repeat, out))
    assert len(session.step(scene.render(2))) == 3


def test_session_defers_objects_whose_first_frame_is_unreadable(model, scene):
    session = TrackingSession(LoRATTracker(model))
    first = session.start(None, [scene.boxes(0)[0]])
    assert np.array_equal(first[0].box, scene.boxes(0)[0])
    assert session.step(None)[0] is first[0]
    assert not session.tracker.objects
    session.step(scene.render(1))
    assert len(session.tracker.objects) == 1


def test_absence_threshold_hides_low_confidence_but_keeps_tracking(model, scene):
    session = TrackingSession(LoRATTracker(model), absence_threshold=1.01)  # every confidence is below
    session.start(scene.render(0), [scene.boxes(0)[0]])
    out = session.step(scene.render(1))
    assert out[0].box is None and out[0].confidence > 0
    assert bx.is_valid(session.tracker.objects[0].box)


def test_static_tracker_reports_the_initial_box():
    tracker = StaticTracker()
    image = np.zeros((50, 60, 3), np.uint8)
    tracker.add_object(image, [5, 5, 20, 30])
    assert np.array_equal(tracker.track(image)[0].box_xyxy, [5, 5, 20, 30])


def test_pad_mask_with_offsets_like_the_toolkit_sends_them():
    crop = np.ones((4, 6), np.uint8)
    full = pad_mask(crop, (3, 2), 10, 12)
    assert full.shape == (10, 12) and full.sum() == 24 and full[2:6, 3:9].all()
    # a crop that runs past the frame (toolkit issue 98: array(True) is not frame-sized)
    edge = pad_mask(crop, (9, 8), 10, 12)
    assert edge.sum() == 2 * 3 and edge[8:10, 9:12].all()
    assert np.array_equal(tight_box(crop, (3, 2)), [3, 2, 9, 6])
    assert tight_box(np.zeros((3, 3))) is None


def test_box_masks_and_trax_crops():
    mask = box_mask([2.5, 1.0, 5.0, 4.2], 8, 8)
    assert np.array_equal(np.argwhere(mask).min(0), [1, 2]) and np.array_equal(np.argwhere(mask).max(0), [4, 4])
    crop, x0, y0 = crop_to_content(mask)
    assert (x0, y0) == (2, 1) and crop.shape == (4, 3) and crop.dtype == np.uint8 and crop.flags["C_CONTIGUOUS"]
    empty, ex, ey = crop_to_content(np.zeros((5, 5), bool))
    assert empty.shape == (1, 1) and empty.sum() == 0
    first, second = BoxMaskGenerator()(np.zeros((10, 10, 3), np.uint8), np.array([[0, 0, 6, 6], [3, 3, 9, 9]]),
                                       np.array([0.2, 0.9]))
    a, b = first.mask, second.mask
    assert not (a & b).any() and b.sum() == 36 and a.sum() == 36 - 9
    assert first.rect == (0, 0, 6, 6) and crop_to_content(a, first.rect)[0].shape == (6, 6)


def test_int8_precision_needs_merged_weights_and_stays_close(model, scene):
    import copy

    with pytest.raises(ValueError, match="merged weights"):
        LoRATTracker(model, precision="int8")
    merged = vot_lorat.merge_lora(copy.deepcopy(model))
    fp32, int8 = LoRATTracker(merged), LoRATTracker(merged, precision="int8")
    for t in (fp32, int8):
        t.add_object(scene.render(0), scene.boxes(0)[0])
    a, b = fp32.track(scene.render(1))[0], int8.track(scene.render(1))[0]
    size = bx.size(scene.boxes(0)[0]).mean()
    assert np.abs(a.box_xyxy - b.box_xyxy).max() < 0.25 * size
    assert "quantized" in type(int8.model.blocks[0].attn.qkv).__module__ and int8.model is not merged


def test_overlap_resolution_inside_rects_equals_the_full_frame_answer():
    from vot_lorat.masks.overlaps import resolve_overlaps

    rng = np.random.default_rng(1)
    masks, rects = [], []
    for _ in range(6):
        x1, y1 = rng.integers(0, 40, 2)
        x2, y2 = x1 + rng.integers(1, 25), y1 + rng.integers(1, 25)
        m = np.zeros((60, 70), bool)
        m[y1:y2, x1:x2] = rng.random((y2 - y1, x2 - x1)) > 0.3
        masks.append(m)
        rects.append((int(x1), int(y1), int(x2), int(y2)))
    priority = rng.random(6)
    full = resolve_overlaps(masks, priority)
    within_rects = resolve_overlaps(masks, priority, rects=rects)
    assert all(np.array_equal(a, b) for a, b in zip(full, within_rects))
    assert sum(m.astype(int) for m in within_rects).max() <= 1
