"""Procedural tracking sequences: textured objects moving over textured, panning backgrounds.

Every scene is a pure function of its seed, so a dataset of a million sequences costs nothing until a
frame is asked for, and training samples are reproducible. Scenes vary widely on purpose (the demo
model must track sequences it has never seen): textures (noise, stripes, checks, spots, gradients,
flat), grey low-contrast targets, dark noisy backgrounds, sizes from 20 px to a third of the frame,
look-alike distractors, occluders passing in front, targets leaving and re-entering the frame,
camera panning, flicker and blur.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import List, Optional, Tuple

import cv2
import numpy as np

from .sequence import Sequence, SequenceDataset

FRAME_SIZES = ((320, 240), (400, 300), (480, 360), (640, 360), (640, 480))


@dataclass(frozen=True)
class SceneStyle:
    """Ranges the generator draws from; ``held_out`` uses the same ranges with other seeds."""

    frame_sizes: Tuple[Tuple[int, int], ...] = FRAME_SIZES
    min_target: float = 20.0  # smallest target side in pixels
    max_target_frac: float = 1 / 3  # largest target side as a fraction of the frame height
    max_distractors: int = 4
    p_lookalike: float = 0.5  # chance that distractors copy the target's appearance
    max_occluders: int = 2
    p_leave: float = 0.3  # chance that a target leaves the frame and comes back
    p_grey_target: float = 0.2  # low-contrast grey target on a similar background
    p_dark_noisy: float = 0.2  # dark background with strong sensor noise
    max_speed: float = 0.25  # per-frame displacement, as a fraction of the target size
    p_blur: float = 0.15


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.random((max(2, h // cells), max(2, w // cells)), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _palette(rng: np.random.Generator, n: int, grey: bool = False, base: Optional[np.ndarray] = None,
             spread: float = 255.0) -> np.ndarray:
    if base is None:
        base = rng.uniform(0, 255, 3)
    cols = base[None] + rng.uniform(-spread, spread, (n, 3)) / 2
    if grey:
        cols = np.repeat(cols.mean(axis=1, keepdims=True), 3, axis=1)
    return np.clip(cols, 0, 255).astype(np.float32)


def make_texture(rng: np.random.Generator, h: int, w: int, grey: bool = False,
                 base: Optional[np.ndarray] = None, spread: float = 255.0, grain: bool = True) -> np.ndarray:
    """An (h, w, 3) float32 texture of a random kind."""
    kind = rng.integers(6)
    c = _palette(rng, 3, grey, base, spread)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) if kind in (1, 2, 4) else (None, None)
    if kind == 0:  # multi-octave noise between two colours
        t = 0.6 * _value_noise(rng, h, w, int(rng.integers(4, 24))) + 0.4 * _value_noise(rng, h, w, 3)
        tex = c[0] * t[..., None] + c[1] * (1 - t[..., None])
    elif kind == 1:  # stripes at a random angle
        a = rng.uniform(0, np.pi)
        period = rng.uniform(4, 24)
        t = 0.5 + 0.5 * np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period)
        tex = c[0] * t[..., None] + c[1] * (1 - t[..., None])
    elif kind == 2:  # checks
        s = rng.uniform(4, 20)
        t = ((np.floor(xx / s) + np.floor(yy / s)) % 2).astype(np.float32)
        tex = c[0] * t[..., None] + c[1] * (1 - t[..., None])
    elif kind == 3:  # spots
        tex = np.empty((h, w, 3), np.float32)
        tex[:] = c[0]
        for _ in range(int(rng.integers(3, 12))):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            radius = int(rng.integers(1, max(2, min(h, w) // 4)))
            cv2.circle(tex, centre, radius, c[int(rng.integers(1, 3))].tolist(), -1)
    elif kind == 4:  # gradient with noise
        a = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(a) + yy * np.sin(a))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        tex = c[0] * t[..., None] + c[1] * (1 - t[..., None])
    else:  # flat with a little grain
        tex = np.empty((h, w, 3), np.float32)
        tex[:] = c[0]
    if grain:
        tex += rng.uniform(0, 12) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return np.clip(tex, 0, 255, out=tex)


def make_shape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An (h, w) float32 alpha mask that touches all four sides of its rectangle."""
    kind = rng.integers(4)
    mask = np.zeros((h, w), np.uint8)
    if kind == 0:
        mask[:] = 1
    elif kind == 1:
        yy, xx = np.mgrid[0:h, 0:w]
        mask[((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1.05] = 1
    elif kind == 2:  # rounded rectangle
        r = int(min(h, w) * rng.uniform(0.1, 0.4))
        mask[:] = 1
        for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
            x0, x1 = (0, r) if cx == r else (w - r, w)
            y0, y1 = (0, r) if cy == r else (h - r, h)
            mask[y0:y1, x0:x1] = 0
            cv2.circle(mask, (cx, cy), r, 1, -1)
    else:  # star-ish polygon stretched to the rectangle
        n = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.5, 1.0, n)
        pts = np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)
        pts = (pts - pts.min(0)) / np.maximum(pts.max(0) - pts.min(0), 1e-6)
        pts = np.round(pts * [w - 1, h - 1]).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask.astype(np.float32)


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


@dataclass
class SceneObject:
    """One moving sprite: its appearance at a base size and its per-frame integer box (xyxy)."""

    texture: np.ndarray
    alpha: np.ndarray
    boxes: np.ndarray  # (T, 4) int64 xyxy, may lie partly or wholly outside the frame
    role: str  # "target", "distractor" or "occluder"


def _trajectory(rng: np.random.Generator, frames: int, width: int, height: int, size0: np.ndarray,
                min_side: float, max_side: float, max_speed: float, leave: bool) -> np.ndarray:
    """Smooth random motion with bounces, scale and aspect drift; optionally out of the frame and back."""
    accel = rng.normal(0, 0.35, (frames, 2)).tolist()
    scale_noise = (rng.normal(0, 0.0012, (frames, 2)) + rng.normal(0, 0.002, (frames, 1))).tolist()
    x, y = rng.uniform(0, width - size0[0]), rng.uniform(0, height - size0[1])
    lw, lh = float(np.log(size0[0])), float(np.log(size0[1]))
    lo, hi = float(np.log(min_side)), float(np.log(max_side))
    speed_scale = rng.uniform(0.02, 1.0) * max_speed
    vx, vy = (rng.normal(0, 1, 2) * speed_scale * size0.mean()).tolist()
    dlw = dlh = 0.0
    leave_at = int(rng.integers(frames // 4, max(frames // 4 + 1, frames // 2))) if leave else -1
    away = int(rng.integers(5, max(6, frames // 5)))
    leaving = False
    out = np.zeros((frames, 4))
    for t in range(frames):
        w, h = math.exp(lw), math.exp(lh)
        out[t] = (x, y, x + w, y + h)
        mean_side = (w + h) / 2
        # velocity: random acceleration with damping, bounded by the per-frame speed limit
        vx = 0.9 * vx + accel[t][0] * speed_scale * mean_side
        vy = 0.9 * vy + accel[t][1] * speed_scale * mean_side
        limit = max_speed * mean_side
        norm = math.hypot(vx, vy)
        if norm > limit:
            vx, vy = vx * limit / norm, vy * limit / norm
        if t == leave_at:  # head for the nearest side, fast, then come back
            leaving = True
            cx, cy = x + w / 2, y + h / 2
            side = int(np.argmin([cx, width - cx, cy, height - cy]))
            speed = max(limit, 4.0)
            vx, vy = ((-speed, 0.0), (speed, 0.0), (0.0, -speed), (0.0, speed))[side]
        if leaving:
            if x > width or x + w < 0 or y > height or y + h < 0:
                away -= 1
                if away <= 0:
                    vx, vy, leaving = -vx, -vy, False
        else:  # bounce at the borders
            if (x < 0 and vx < 0) or (x + w > width and vx > 0):
                vx = -vx
            if (y < 0 and vy < 0) or (y + h > height and vy > 0):
                vy = -vy
        x, y = x + vx, y + vy
        dlw = 0.95 * dlw + scale_noise[t][0]
        dlh = 0.95 * dlh + scale_noise[t][1]
        lw, lh = min(max(lw + dlw, lo), hi), min(max(lh + dlh, lo), hi)
    return np.round(out).astype(np.int64)


class SyntheticScene:
    """A sequence of ``num_frames`` frames with ``num_targets`` annotated objects.

    ``boxes(i)`` gives target i's xyxy box per frame (clipped to the frame; NaN when out of view) and
    ``render(t)`` the RGB frame with each target's visible mask.
    """

    def __init__(self, seed: int, num_frames: int = 200, num_targets: int = 1,
                 style: SceneStyle = SceneStyle()) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.num_frames = num_frames
        self.width, self.height = style.frame_sizes[int(rng.integers(len(style.frame_sizes)))]
        w, h = self.width, self.height
        dark = rng.random() < style.p_dark_noisy
        grey_target = rng.random() < style.p_grey_target
        self.noise = rng.uniform(8, 25) if dark else rng.uniform(0, 6)
        self.blur = rng.random() < style.p_blur
        pan = int(max(w, h) * 0.25)
        self.pan = pan
        bg_base = rng.uniform(5, 50, 3) if dark else rng.uniform(0, 255, 3)
        if grey_target:
            bg_base = np.full(3, rng.uniform(60, 200))
        # drawn at half resolution and upsampled: a quarter of the cost, and a softer look than the objects
        half = make_texture(rng, (h + 2 * pan) // 2, (w + 2 * pan) // 2, grey=grey_target or dark, base=bg_base,
                            spread=60.0 if dark else (80.0 if grey_target else 255.0), grain=False)
        self.background = cv2.resize(half, (w + 2 * pan, h + 2 * pan), interpolation=cv2.INTER_LINEAR)
        self.noise_tile = rng.standard_normal((96, 128, 3), dtype=np.float32)
        # camera: smooth pan inside the margin
        offsets = np.cumsum(rng.normal(0, rng.uniform(0, 2.0), (num_frames, 2)), axis=0)
        self.camera = np.clip(offsets + pan, 0, 2 * pan).astype(np.int64)
        self.flicker = 1 + np.cumsum(rng.normal(0, 0.01, num_frames)).clip(-0.3, 0.3)

        min_side = style.min_target
        max_side = max(min_side * 1.5, style.max_target_frac * h)
        self.objects: List[SceneObject] = []
        target_looks = []
        for _ in range(num_targets):
            size = np.exp(rng.uniform(np.log(min_side), np.log(max_side), 2) + rng.normal(0, 0.2, 2))
            size = np.clip(size, min_side, max_side)
            look = self._look(rng, size, grey_target, bg_base)
            target_looks.append(look)
            boxes = _trajectory(rng, num_frames, w, h, size, min_side * 0.8, max_side, style.max_speed,
                                rng.random() < style.p_leave)
            self.objects.append(SceneObject(look[0], look[1], boxes, "target"))
        for _ in range(int(rng.integers(0, style.max_distractors + 1))):
            size = np.clip(np.exp(rng.uniform(np.log(min_side), np.log(max_side), 2)), min_side, max_side)
            if target_looks and rng.random() < style.p_lookalike:
                tex, alpha = target_looks[int(rng.integers(len(target_looks)))]
                tex = np.clip(tex * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15, 3), 0, 255).astype(np.float32)
            else:
                tex, alpha = self._look(rng, size, False, None)
            boxes = _trajectory(rng, num_frames, w, h, size, min_side * 0.8, max_side, style.max_speed, False)
            self.objects.insert(0, SceneObject(tex, alpha, boxes, "distractor"))  # drawn below the targets
        for _ in range(int(rng.integers(0, style.max_occluders + 1))):
            thin, long = rng.uniform(0.05, 0.2), rng.uniform(0.3, 1.0)
            size = np.array([thin * w, long * h]) if rng.random() < 0.5 else np.array([long * w, thin * h])
            tex, alpha = self._look(rng, size, False, None, rectangle=rng.random() < 0.5)
            boxes = _trajectory(rng, num_frames, w, h, size, 4.0, max(w, h), style.max_speed * 0.5, False)
            self.objects.append(SceneObject(tex, alpha, boxes, "occluder"))  # drawn above everything
        self.targets = [o for o in self.objects if o.role == "target"]

    @staticmethod
    def _look(rng, size, grey, base, rectangle=False):
        h, w = max(4, int(size[1])), max(4, int(size[0]))
        tex = make_texture(rng, h, w, grey=grey, base=base, spread=70.0 if grey else 255.0)
        alpha = np.ones((h, w), np.float32) if rectangle else make_shape(rng, h, w)
        return tex, alpha

    def boxes(self, target: int = 0) -> np.ndarray:
        """(T, 4) float64 xyxy clipped to the frame; NaN rows where less than 20 % of the box is in view."""
        raw = self.targets[target].boxes.astype(np.float64)
        clipped = raw.copy()
        clipped[:, 0::2] = clipped[:, 0::2].clip(0, self.width)
        clipped[:, 1::2] = clipped[:, 1::2].clip(0, self.height)
        visible = _area(clipped) >= 0.2 * _area(raw)
        for occluder in (o for o in self.objects if o.role == "occluder"):
            ob = occluder.boxes.astype(np.float64)
            lt = np.maximum(clipped[:, :2], ob[:, :2])
            rb = np.minimum(clipped[:, 2:], ob[:, 2:])
            covered = np.prod(np.clip(rb - lt, 0, None), axis=1)
            visible &= covered < 0.7 * np.maximum(_area(clipped), 1e-9)
        clipped[~visible] = np.nan
        return clipped

    def render(self, t: int, with_masks: bool = False):
        """Frame ``t`` as (H, W, 3) uint8 RGB, and with ``with_masks`` one visible uint8 mask per target."""
        h, w = self.height, self.width
        cx, cy = self.camera[t]
        frame = self.background[cy:cy + h, cx:cx + w].copy()
        masks = {id(o): np.zeros((h, w), np.uint8) for o in self.targets} if with_masks else {}
        for obj in self.objects:
            x1, y1, x2, y2 = (int(v) for v in obj.boxes[t])
            bw, bh = x2 - x1, y2 - y1
            if bw < 1 or bh < 1:
                continue
            fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            if fx1 >= fx2 or fy1 >= fy2:
                continue
            tex = cv2.resize(obj.texture, (bw, bh), interpolation=cv2.INTER_LINEAR)
            alpha = cv2.resize(obj.alpha, (bw, bh), interpolation=cv2.INTER_NEAREST)
            sx, sy = fx1 - x1, fy1 - y1
            a = alpha[sy:sy + fy2 - fy1, sx:sx + fx2 - fx1, None]
            region = frame[fy1:fy2, fx1:fx2]
            region[:] = tex[sy:sy + fy2 - fy1, sx:sx + fx2 - fx1] * a + region * (1 - a)
            hit = a[..., 0] > 0.5
            for m in masks.values():  # whatever is drawn on top hides what is below
                m[fy1:fy2, fx1:fx2][hit] = 0
            if id(obj) in masks:
                masks[id(obj)][fy1:fy2, fx1:fx2][hit] = 1
        frame *= self.flicker[t]
        if self.noise > 1:  # sensor noise: the scene's noise tile at a per-frame offset
            dy, dx = np.random.default_rng((self.seed, t)).integers(0, (96, 128))
            tile = np.roll(self.noise_tile, (int(dy), int(dx)), axis=(0, 1))
            reps = (-(-h // 96), -(-w // 128), 1)
            frame += self.noise * np.tile(tile, reps)[:h, :w]
        if self.blur:
            frame = cv2.GaussianBlur(frame, (5, 5), 1.2)
        image = np.clip(frame, 0, 255).astype(np.uint8)
        if with_masks:
            return image, [masks[id(o)] for o in self.targets]
        return image


@dataclass
class SyntheticSpec:
    """A dataset of ``num_sequences`` scenes whose seeds start at ``seed_offset``."""

    num_sequences: int = 100_000
    num_frames: int = 200
    seed_offset: int = 0
    style: SceneStyle = field(default_factory=SceneStyle)


HELD_OUT_SEED_OFFSET = 10_000_000  # training seeds stay below this; evaluation scenes start here


class SyntheticSequence(Sequence):
    """One target of a synthetic scene, rendered on demand."""

    def __init__(self, seed: int, num_frames: int, style: SceneStyle) -> None:
        self.name = f"synthetic-{seed:08d}"
        self.scene = SyntheticScene(seed, num_frames, 1, style)
        self.boxes = self.scene.boxes(0)

    def frame(self, index: int) -> np.ndarray:
        return self.scene.render(index)


class SyntheticDataset(SequenceDataset):
    """``num_sequences`` procedural sequences; nothing is generated until a sample asks for it."""

    name = "synthetic"

    def __init__(self, spec: SyntheticSpec = SyntheticSpec()) -> None:
        if spec.seed_offset + spec.num_sequences > HELD_OUT_SEED_OFFSET and spec.seed_offset < HELD_OUT_SEED_OFFSET:
            raise ValueError("synthetic training seeds would overlap the held-out evaluation seeds")
        self.spec = spec

    def __len__(self) -> int:
        return self.spec.num_sequences

    def __getitem__(self, index: int) -> SyntheticSequence:
        if not 0 <= index < self.spec.num_sequences:
            raise IndexError(index)
        return SyntheticSequence(self.spec.seed_offset + index, self.spec.num_frames, self.spec.style)
