"""Tracking benchmark measures, computed the way each benchmark's own toolkit computes them.

One-pass evaluation (OPE; LaSOT, LaSOT_ext, TrackingNet, OTB-style datasets), as the LaSOT evaluation toolkit
and pytracking's analysis compute it, per sequence:

- frame 0 is scored as the given box;
- a prediction that is not finite or has no area is replaced by the previous frame's prediction;
- success curve: share of frames whose IoU is > t, t = 0, 0.05, ..., 1 (21 thresholds); its mean is the
  success AUC (a perfect sequence scores 20/21: no IoU exceeds 1);
- precision: share of frames whose centre error is <= t px, t = 0..50; precision@20 is the quoted number;
- normalised precision: the centre error with x divided by the ground-truth width and y by its height, <= t,
  t = 0, 0.01, ..., 0.5; the quoted number is at 0.2;
- frames where the target is absent (no valid ground-truth box) are not scored but stay in the denominator,
  so they count as failures (the LaSOT toolkit divides by every frame of the sequence);
- where the absence of the target is known apart from the box (LaSOT's ``full_occlusion.txt`` and
  ``out_of_view.txt``: the ``visible`` argument), a present frame whose ground-truth box has no area is a
  success of both precision curves at every threshold and a failure of the success curve, as the LaSOT toolkit
  scores it (pytracking agrees for normalised precision and the success curve, and counts a pixel precision
  failure there).

Dataset numbers are the means of the per-sequence curves, in percent.

GOT-10k, as the GOT-10k toolkit (the ``got10k`` package, whose code the evaluation server runs) computes it:
IoUs of frames 1.. where the target is visible (``cover.label`` > 0), both boxes first clipped to the image
(x, y into the image, then w, h to what is left of it, so a box starting left of the image keeps its width),
pooled over all frames of all sequences: AO is their mean, SR0.5 / SR0.75 the share above 0.5 / 0.75, and the
success curve uses 101 thresholds.

Known convention differences, all on frames that real benchmark results rarely contain: the LaSOT toolkit
calls a ground-truth box invalid when any of x, y, w, h is <= 0 (its files are 1-based, so x = 0 is an
annotation error there), we when w or h is <= 0; the normalised centre error is the centre offset divided by
the ground-truth size (the toolkits divide both centres first and then subtract, which can round an error of
exactly 0.2 to either side of the threshold; here it stays 0.2, a success); the ``got10k`` package's OTB
experiment neither replaces empty predictions nor leaves out absent frames.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from vot_lorat.tracking import box as bx

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PIXEL_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
GOT10K_IOU_THRESHOLDS = np.linspace(0.0, 1.0, 101)
OP50, OP75 = 10, 15  # IOU_THRESHOLDS[10] == 0.5 and [15] == 0.75 exactly


def _valid(boxes_xyxy: np.ndarray) -> np.ndarray:
    finite = np.isfinite(boxes_xyxy).all(axis=1)
    out = np.zeros(len(boxes_xyxy), dtype=bool)
    out[finite] = bx.is_valid(boxes_xyxy[finite])
    return out


def fill_invalid_predictions(pred_xyxy: np.ndarray, first_xyxy: np.ndarray) -> np.ndarray:
    """Frame 0 set to the given box; a prediction that is not finite or has no area replaced by the previous
    frame's (LaSOT toolkit)."""
    pred = np.array(pred_xyxy, dtype=np.float64).reshape(-1, 4)
    pred[0] = first_xyxy
    ok = _valid(pred)
    ok[0] = True  # frame 0 is the given box, never replaced
    # each frame takes the prediction of the last frame at or before it whose prediction is valid
    last_valid = np.maximum.accumulate(np.where(ok, np.arange(len(pred)), 0))
    return pred[last_valid]


def ope_curves(pred_xyxy: np.ndarray, gt_xyxy: np.ndarray,
               visible: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Success, precision and normalised precision curves of one sequence (module docstring), plus the IoU
    of every frame (NaN where the target is absent or its box has no area).

    Args:
        pred_xyxy: (T, 4) predicted boxes.
        gt_xyxy: (T, 4) ground-truth boxes, NaN where there is none.
        visible: (T,) whether the target is present, where the dataset says so apart from the boxes (LaSOT's
            absence flags); a present frame without a valid box then counts as a precision success. None: the
            target is present exactly where the box is valid.
    """
    gt = np.asarray(gt_xyxy, dtype=np.float64).reshape(-1, 4)
    if len(pred_xyxy) != len(gt):
        raise ValueError(f"{len(pred_xyxy)} predicted boxes for {len(gt)} ground-truth boxes")
    pred = fill_invalid_predictions(pred_xyxy, gt[0])
    valid = _valid(gt)
    if visible is not None and len(visible) != len(gt):
        raise ValueError(f"{len(visible)} visibility flags for {len(gt)} ground-truth boxes")
    # present frames whose box has no area: the LaSOT toolkit sets their centre error to -1, a success at
    # every threshold
    empty_present = 0 if visible is None else int((np.asarray(visible, dtype=bool) & ~valid).sum())
    p, g = pred[valid], gt[valid]
    iou = bx.iou(p, g)
    offset = bx.centre(p) - bx.centre(g)
    err = np.linalg.norm(offset, axis=1)
    norm_err = np.linalg.norm(offset / bx.size(g), axis=1)
    frames = max(len(gt), 1)
    ious = np.full(len(gt), np.nan)
    ious[valid] = iou
    return {
        "success": (len(iou) - _count_at_most(iou, IOU_THRESHOLDS)) / frames,
        "precision": (_count_at_most(err, PIXEL_THRESHOLDS) + empty_present) / frames,
        "norm_precision": (_count_at_most(norm_err, NORM_THRESHOLDS) + empty_present) / frames,
        "iou": ious,
    }


def _count_at_most(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of the (finite) ``values`` are <= each threshold: the same comparisons as ``values[:, None] <=
    thresholds``, made by one sort and a binary search (many times faster on sequences of thousands of frames)."""
    return np.searchsorted(np.sort(values), thresholds, side="right")


def _mean_iou(curves: Dict[str, np.ndarray]) -> float:
    """Mean IoU over the frames after the first where the target is present (0 when there are none)."""
    later = curves["iou"][1:]
    return float(np.nanmean(later)) if np.isfinite(later).any() else 0.0


def ope_summary(curves: List[Dict[str, np.ndarray]]) -> Dict[str, Any]:
    """Dataset numbers in percent (success AUC, the success rates at IoU 0.5 and 0.75 that pytracking calls
    OP50 / OP75, precision@20 px, normalised precision@0.2), the mean curves for plots, and the mean over
    sequences of the per-sequence mean IoU."""
    if not curves:
        return {"sequences": 0, "auc": float("nan"), "op50": float("nan"), "op75": float("nan"),
                "precision": float("nan"), "norm_precision": float("nan"), "mean_iou": float("nan")}
    success = np.mean([c["success"] for c in curves], axis=0)
    precision = np.mean([c["precision"] for c in curves], axis=0)
    norm = np.mean([c["norm_precision"] for c in curves], axis=0)
    return {
        "sequences": len(curves),
        "auc": float(success.mean() * 100),
        "op50": float(success[OP50] * 100),
        "op75": float(success[OP75] * 100),
        "precision": float(precision[20] * 100),
        "norm_precision": float(norm[20] * 100),
        "mean_iou": float(np.mean([_mean_iou(c) for c in curves])),
        "success_curve": success.tolist(),
        "precision_curve": precision.tolist(),
        "norm_precision_curve": norm.tolist(),
    }


def _clip_as_got10k(boxes_xyxy: np.ndarray, width: float, height: float) -> np.ndarray:
    """x, y clipped into the image, then w, h clipped to what is left of it (the GOT-10k toolkit's bound)."""
    xywh = bx.xyxy_to_xywh(boxes_xyxy)
    xywh[:, 0] = np.clip(xywh[:, 0], 0, width)
    xywh[:, 1] = np.clip(xywh[:, 1], 0, height)
    xywh[:, 2] = np.clip(xywh[:, 2], 0, width - xywh[:, 0])
    xywh[:, 3] = np.clip(xywh[:, 3], 0, height - xywh[:, 1])
    return bx.xywh_to_xyxy(xywh)


def got10k_ious(pred_xyxy: np.ndarray, gt_xyxy: np.ndarray, width: float, height: float) -> np.ndarray:
    """IoUs of the frames after the first where the target is visible, as the GOT-10k toolkit scores them."""
    gt = np.asarray(gt_xyxy, dtype=np.float64).reshape(-1, 4)
    pred = np.asarray(pred_xyxy, dtype=np.float64).reshape(-1, 4)
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted boxes for {len(gt)} ground-truth boxes")
    scored = np.isfinite(gt).all(axis=1)
    scored[0] = False
    p = np.where(np.isfinite(pred[scored]), pred[scored], 0.0)
    return bx.iou(_clip_as_got10k(p, width, height), _clip_as_got10k(gt[scored], width, height))


def got10k_summary(ious: List[np.ndarray]) -> Dict[str, Any]:
    """AO, SR0.5 and SR0.75 in percent over the IoUs of all sequences pooled, and the 101-point success curve."""
    pooled = np.concatenate([np.asarray(i, dtype=np.float64) for i in ious]) if ious else np.zeros(0)
    if not len(pooled):
        return {"sequences": len(ious), "ao": float("nan"), "sr50": float("nan"), "sr75": float("nan")}
    return {
        "sequences": len(ious),
        "ao": float(pooled.mean() * 100),
        "sr50": float((pooled > 0.5).mean() * 100),
        "sr75": float((pooled > 0.75).mean() * 100),
        "success_curve": (pooled[:, None] > GOT10K_IOU_THRESHOLDS[None]).mean(0).tolist(),
    }
