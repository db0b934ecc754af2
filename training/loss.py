"""The LoRAT paper's loss: IoU-aware binary cross-entropy plus GIoU, normalised by the number of positives."""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from . import distributed

EPS = 1e-6  # mmdet bbox_overlaps / GIoU eps used by the reference


def box_iou_giou(pred: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Aligned IoU and GIoU of xyxy boxes (..., 4)."""
    lt = torch.max(pred[..., :2], target[..., :2])
    rb = torch.min(pred[..., 2:], target[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_p = (pred[..., 2:] - pred[..., :2]).clamp(min=0).prod(-1)
    area_t = (target[..., 2:] - target[..., :2]).clamp(min=0).prod(-1)
    union = (area_p + area_t - inter).clamp(min=EPS)
    iou = inter / union
    enclose = (torch.max(pred[..., 2:], target[..., 2:]) - torch.min(pred[..., :2], target[..., :2]))
    enclose_area = enclose.clamp(min=0).prod(-1).clamp(min=EPS)
    return iou, iou - (enclose_area - union) / enclose_area


def num_positives(positives: torch.Tensor) -> torch.Tensor:
    """Positive cells in the batch, averaged over ranks, at least 1."""
    return distributed.mean(positives.sum().float()).clamp(min=1.0)


def lorat_loss(outputs: Dict[str, torch.Tensor], positives: torch.Tensor,
               target_box: torch.Tensor) -> Dict[str, torch.Tensor]:
    """``outputs``: score_map (B,H,W) logits, boxes (B,H,W,4); ``positives`` (B,H,W) bool: every cell the
    target covers; ``target_box`` (B,4) normalised xyxy. Every positive cell regresses the whole box and its
    classification target is the IoU of its own predicted box with the truth."""
    score = outputs["score_map"].float()
    boxes = outputs["boxes"].float()
    n_pos = num_positives(positives)
    pred = boxes[positives]
    truth = target_box[:, None, None, :].expand_as(boxes)[positives]
    iou, giou = box_iou_giou(pred, truth)
    cls_target = torch.zeros_like(score)
    cls_target[positives] = iou.detach().to(score.dtype)
    cls = F.binary_cross_entropy_with_logits(score, cls_target, reduction="sum") / n_pos
    reg = (1 - giou).sum() / n_pos
    return {"loss": cls + reg, "cls": cls.detach(), "giou": reg.detach(), "iou": iou.detach().mean()
            if iou.numel() else torch.zeros(())}
