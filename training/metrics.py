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
  so they count as failures (the LaSOT toolkit divides by every frame of the sequence).

Dataset numbers are the means of the per-sequence curves, in percent.

GOT-10k, as the GOT-10k toolkit (the ``got10k`` package, whose code the evaluation server runs) computes it:
IoUs of frames 1.. where the target is visible (``cover.label`` > 0), both boxes first clipped to the image
(x, y into the image, then w, h to what is left of it, so a box starting left of the image keeps its width),
pooled over all frames of all sequences: AO is their mean, SR0.5 / SR0.75 the share above 0.5 / 0.75, and the
success curve uses 101 thresholds.

Known convention differences, all on frames that real benchmark results rarely contain: the LaSOT toolkit
calls a ground-truth box invalid when any of x, y, w, h is <= 0 (its files are 1-based, so x = 0 is an
annotation error there), we when w or h is <= 0; the ``got10k`` package's OTB experiment neither replaces
empty predictions nor leaves out absent frames.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from vot_lorat.tracking import box as bx

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PIXEL_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
GOT10K_IOU_THRESHOLDS = np.linspace(0.0, 1.0, 101)


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
    for t in range(1, len(pred)):
        if not ok[t]:
            pred[t] = pred[t - 1]
    return pred


def ope_curves(pred_xyxy: np.ndarray, gt_xyxy: np.ndarray) -> Dict[str, np.ndarray]:
    """Success, precision and normalised precision curves of one sequence (module docstring), plus the IoU
    of every frame (NaN where the target is absent)."""
    gt = np.asarray(gt_xyxy, dtype=np.float64).reshape(-1, 4)
    if len(pred_xyxy) != len(gt):
        raise ValueError(f"{len(pred_xyxy)} predicted boxes for {len(gt)} ground-truth boxes")
    pred = fill_invalid_predictions(pred_xyxy, gt[0])
    valid = _valid(gt)
    p, g = pred[valid], gt[valid]
    iou = bx.iou(p, g)
    offset = bx.centre(p) - bx.centre(g)
    err = np.linalg.norm(offset, axis=1)
    norm_err = np.linalg.norm(offset / bx.size(g), axis=1)
    frames = max(len(gt), 1)
    ious = np.full(len(gt), np.nan)
    ious[valid] = iou
    return {
        "success": (iou[:, None] > IOU_THRESHOLDS[None]).sum(0) / frames,
        "precision": (err[:, None] <= PIXEL_THRESHOLDS[None]).sum(0) / frames,
        "norm_precision": (norm_err[:, None] <= NORM_THRESHOLDS[None]).sum(0) / frames,
        "iou": ious,
    }


def _mean_iou(curves: Dict[str, np.ndarray]) -> float:
    """Mean IoU over the frames after the first where the target is present (0 when there are none)."""
    later = curves["iou"][1:]
    return float(np.nanmean(later)) if np.isfinite(later).any() else 0.0


def ope_summary(curves: List[Dict[str, np.ndarray]]) -> Dict[str, Any]:
    """Dataset numbers in percent (success AUC, precision@20 px, normalised precision@0.2), the mean curves
    for plots, and the mean over sequences of the per-sequence mean IoU."""
    if not curves:
        return {"sequences": 0, "auc": float("nan"), "precision": float("nan"), "norm_precision": float("nan"),
                "mean_iou": float("nan")}
    success = np.mean([c["success"] for c in curves], axis=0)
    precision = np.mean([c["precision"] for c in curves], axis=0)
    norm = np.mean([c["norm_precision"] for c in curves], axis=0)
    return {
        "sequences": len(curves),
        "auc": float(success.mean() * 100),
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
