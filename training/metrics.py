"""One-pass evaluation measures in the LaSOT / pytracking convention.

Per sequence: success curve over IoU thresholds 0, 0.05, ..., 1 (a frame succeeds when IoU > t), its
mean is the success AUC; precision = share of frames whose centre error is <= 20 px; normalised
precision = share whose centre error divided by the ground-truth size is <= 0.2. Frames without a
valid ground-truth box (absent target) are left out, as the LaSOT toolkit does. Dataset numbers are
means over sequences.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from vot_lorat import box as bx

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PIXEL_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0


def sequence_curves(pred_xywh: np.ndarray, gt_xywh: np.ndarray) -> Dict[str, np.ndarray]:
    """Success, precision and normalised precision curves of one sequence, plus per-frame IoU."""
    pred = np.asarray(pred_xywh, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_xywh, dtype=np.float64).reshape(-1, 4)
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted boxes for {len(gt)} ground-truth boxes")
    valid = np.isfinite(gt).all(axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    pred_ok = np.isfinite(pred).all(axis=1)
    p = np.where(pred_ok[:, None], pred, 0.0)
    iou = np.where(valid & pred_ok, bx.iou(bx.xywh_to_xyxy(p), bx.xywh_to_xyxy(np.where(valid[:, None], gt, 0))), 0)
    centre_p = p[:, :2] + p[:, 2:] / 2
    g = np.where(valid[:, None], gt, 1.0)
    centre_g = g[:, :2] + g[:, 2:] / 2
    err = np.linalg.norm(centre_p - centre_g, axis=1)
    norm_err = np.linalg.norm((centre_p - centre_g) / g[:, 2:], axis=1)
    err[~pred_ok] = np.inf
    norm_err[~pred_ok] = np.inf
    n = max(int(valid.sum()), 1)
    iou_v, err_v, nerr_v = iou[valid], err[valid], norm_err[valid]
    return {
        "success": (iou_v[:, None] > IOU_THRESHOLDS[None]).sum(0) / n,
        "precision": (err_v[:, None] <= PIXEL_THRESHOLDS[None]).sum(0) / n,
        "norm_precision": (nerr_v[:, None] <= NORM_THRESHOLDS[None]).sum(0) / n,
        "iou": np.where(valid, iou, np.nan),
    }


def summarize(curves: List[Dict[str, np.ndarray]]) -> Dict[str, float]:
    """Dataset numbers in percent: success AUC, precision@20px, normalised precision@0.2, and mean IoU
    over all valid frames after the first (the first frame is the given box)."""
    if not curves:
        return {"auc": float("nan"), "precision": float("nan"), "norm_precision": float("nan"),
                "mean_iou": float("nan"), "sequences": 0}
    success = np.mean([c["success"] for c in curves], axis=0)
    precision = np.mean([c["precision"] for c in curves], axis=0)
    norm = np.mean([c["norm_precision"] for c in curves], axis=0)
    per_seq_iou = [float(np.nanmean(c["iou"][1:])) if np.isfinite(c["iou"][1:]).any() else 0.0 for c in curves]
    return {
        "auc": float(success.mean() * 100),
        "precision": float(precision[20] * 100),
        "norm_precision": float(norm[20] * 100),
        "mean_iou": float(np.mean(per_seq_iou)),
        "sequences": len(curves),
    }
