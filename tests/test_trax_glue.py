"""The TraX request handling with real trax regions and requests, without a toolkit process."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trax
from trax.image import FileImage
from trax.server import Request

import vot_lorat
from vot_lorat.masks.box_masks import BoxMaskGenerator
from vot_lorat.toolkit.session import TrackingSession
from vot_lorat.toolkit.trax_adapter import TraxAdapter
from vot_lorat.tracking.tracker import LoRATTracker

from scenes import write_scene_frames


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return write_scene_frames(tmp_path_factory.mktemp("frames"), 4242, 6, targets=2)


def _glue(masks: bool) -> TraxAdapter:
    torch.manual_seed(0)
    model = vot_lorat.create_model(vot_lorat.get_config("tiny"), init_values=1.0).eval()
    return TraxAdapter(TrackingSession(LoRATTracker(model), BoxMaskGenerator() if masks else None), masks)


def _request(kind, path, objects=None):
    return Request(kind, {"color": FileImage.create(path)}, objects, None)


def test_mask_rectangle_and_empty_initial_regions(frames):
    scene, paths = frames
    glue = _glue(masks=True)
    b0 = scene.boxes(0)[0].astype(int)
    crop = np.ones((b0[3] - b0[1], b0[2] - b0[0]), np.uint8)
    x, y, w, h = scene.boxes(1)[0]
    objects = [(trax.Mask.create(crop, int(b0[0]), int(b0[1])), {}), (trax.Rectangle.create(x, y, w - x, h - y), {}),
               (trax.Mask.create(np.zeros((1, 1), np.uint8)), {})]
    first = glue.initialize(_request(trax.TraxStatus.INITIALIZE, paths[0], objects))
    assert len(first) == 3
    assert np.array_equal(glue.session.slots[0].last.box, b0) and glue.session.slots[2].tracker_id is None
    reply = glue.frame(_request(trax.TraxStatus.FRAME, paths[1]))
    assert len(reply) == 3 and all(r.type == trax.Region.MASK for r, _ in reply)
    assert reply[2][0].array().sum() == 0 and 0 <= reply[0][1]["confidence"] <= 1


def test_unreadable_frame_and_an_error_keep_the_object_count(frames, monkeypatch):
    scene, paths = frames
    glue = _glue(masks=False)
    x, y, x2, y2 = scene.boxes(0)[0]
    glue.initialize(_request(trax.TraxStatus.INITIALIZE, paths[0], [(trax.Rectangle.create(x, y, x2 - x, y2 - y), {})]))
    good = glue.frame(_request(trax.TraxStatus.FRAME, paths[1]))
    again = glue.frame(_request(trax.TraxStatus.FRAME, "/no/such/frame.jpg"))
    assert str(good[0][0]) == str(again[0][0])
    # a late object arrives with a frame whose tracking fails: the answer still has both objects
    monkeypatch.setattr(glue.session, "step", lambda image: (_ for _ in ()).throw(RuntimeError("boom")))
    late = _request(trax.TraxStatus.FRAME, paths[2], [(trax.Rectangle.create(5, 5, 20, 20), {})])
    with pytest.raises(RuntimeError):
        glue.frame(late)
    assert len(glue.recover(late)) == 2
    # an initialisation that fails answers with the given regions and makes the objects absent
    init = _request(trax.TraxStatus.INITIALIZE, paths[0], [(trax.Rectangle.create(1, 1, 9, 9), {})] * 3)
    assert len(glue.recover(init)) == 3 and len(glue.session.slots) == 3
