"""SAM box -> mask for segmentation stacks: the tracker predicts boxes, VOTS wants disjoint masks.

Two modes:
- ``crop``: what the official LoRAT code does. Per object, a pixel-aligned SiamFC crop (area factor 2) of
  the frame at SAM's input size, the rasterised box as the prompt, the 256x256 low-res logits
  thresholded, and the binary mask bilinearly back-projected onto the frame (any non-zero value counts,
  a slight dilation) at the official sample positions (``_sample_grid``). The image encoder takes the
  crops ``SamOptions.encoder_batch`` at a time.
- ``frame``: cheaper. One embedding of the whole frame (SAM's own resize + pad) for all objects, and all
  box prompts decoded in one call. The low-res logits are bilinearly resampled straight onto the frame
  (the exact map from frame pixels to the grid, padding cut away, at the sample positions of the crop
  mode) and thresholded there: a low-res cell covers several frame pixels here, so the crop mode's binary
  resampling would dilate masks by half a cell (~4 px on a 1080p frame).

Both modes then apply a guard against empty or absurd masks and make the masks disjoint (``SamOptions.guard``
and ``SamOptions.disjoint`` turn these off, for each object's mask as SAM gives it). Memory:
back-projection resamples only the frame rectangle each mask can reach, and full-frame logits (to settle
overlaps) are made only for objects whose rectangles meet another's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.build_sam import sam_model_registry
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from ..device import PRECISIONS, autocast
from ..frames.reading import frame_tensor
from ..tracking import box as bx
from ..tracking.crop import CropBatch, CropParams, image_mean, siamfc_params
from ..weights.files import WeightFileError, read_state_dict
from ..weights.formats import infer_sam_encoder
from .overlaps import keep_every_object, resolve_overlaps
from .regions import FrameMask, PixelRect, box_rect, intersection

SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
MODES = ("crop", "frame")
GUARDS = ("box", "empty", "none")
BF16_WEIGHTS = "bf16-weights"  # SAM's weights and input converted to bfloat16, no autocast: the official code
SAM_PRECISIONS = PRECISIONS + (BF16_WEIGHTS,)


@dataclass(frozen=True)
class SamModelType:
    """A SAM architecture: how to build it, the checkpoint Meta publishes for it, and the (image-encoder width,
    number of blocks) that tell its checkpoints apart."""

    build: Callable[[], Sam]
    checkpoint: str
    encoder: Tuple[int, int]


SAM_MODEL_TYPES: Dict[str, SamModelType] = {
    "vit_b": SamModelType(sam_model_registry["vit_b"], "sam_vit_b_01ec64.pth", (768, 12)),
    "vit_l": SamModelType(sam_model_registry["vit_l"], "sam_vit_l_0b3195.pth", (1024, 24)),
    "vit_h": SamModelType(sam_model_registry["vit_h"], "sam_vit_h_4b8939.pth", (1280, 32)),
}


def register_sam_model(name: str, model_type: SamModelType) -> None:
    """Make another SAM architecture loadable by name (``load_sam(name, ...)``, ``LORAT_SAM_MODEL``)."""
    SAM_MODEL_TYPES[name] = model_type


def load_sam(model_type: str, checkpoint: Union[str, Path], device: Union[str, torch.device] = "cpu") -> Sam:
    """SAM with Meta's weights, in eval mode.

    The file is checked before the model is built, so a missing, unreadable or wrong-size file says
    which file was expected instead of failing deep inside ``load_state_dict``.

    Args:
        model_type: ``vit_b``, ``vit_l`` or ``vit_h`` (or a name given to :func:`register_sam_model`).
        checkpoint: the local path of the matching ``sam_vit_*.pth``.
        device: where the model runs.

    Returns:
        The loaded SAM on ``device``.
    """
    if model_type not in SAM_MODEL_TYPES:
        raise ValueError(f"SAM model type must be one of {', '.join(SAM_MODEL_TYPES)}, got {model_type!r}")
    kind = SAM_MODEL_TYPES[model_type]
    need = f"SAM {model_type} needs Meta's {kind.checkpoint} ({SAM_URL}{kind.checkpoint})"
    path = str(checkpoint)
    state = read_state_dict(path, "SAM checkpoint", f"{need}.")
    found = infer_sam_encoder(state)
    if found is None:
        raise WeightFileError(f"{path} holds no SAM image encoder (no image_encoder.* weights); {need}")
    if found != kind.encoder:
        known = [name for name, other in SAM_MODEL_TYPES.items() if other.encoder == found]
        what = (f"{known[0]} weights (as in {SAM_MODEL_TYPES[known[0]].checkpoint})" if known
                else "an unknown SAM size")
        raise WeightFileError(f"{path} holds {what}: image encoder width {found[0]}, {found[1]} blocks; {need}")
    sam = kind.build()
    sam.load_state_dict(state)
    return sam.to(device).eval()


@dataclass(frozen=True)
class SamOptions:
    """How boxes become masks. ``guard``: what replaces an empty or absurd mask (``none`` keeps it)."""

    mode: str = "crop"
    multimask_output: bool = False  # True: of SAM's three masks, the one with the best predicted IoU
    mask_threshold: float = 0.0
    area_factor: float = 2.0  # crop mode: context around the box
    # crop mode: crops per image-encoder call. SAM's global attention holds a 4096 x 4096 matrix per head,
    # about 2 GB per vit_b crop in fp32: 16 crops at once exhaust 24 GB of RAM
    encoder_batch: int = 2
    precision: str = "fp32"  # fp16 / bf16: autocast, on CUDA only; bf16-weights: see SamMaskGenerator
    guard: str = "box"
    min_area_ratio: float = 0.05  # mask area / box area below this is absurd
    max_area_ratio: float = 4.0  # ... and above this
    # each pixel to one object, as VOTS scores masks; False keeps overlaps, as the official code reports masks
    disjoint: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.guard not in GUARDS:
            raise ValueError(f"guard must be one of {', '.join(GUARDS)}, got {self.guard!r}")
        if self.precision not in SAM_PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(SAM_PRECISIONS)}, got {self.precision!r}")
        if self.encoder_batch < 1:
            raise ValueError(f"encoder_batch must be at least 1, got {self.encoder_batch}")
        if self.area_factor <= 0 or not 0 <= self.min_area_ratio <= self.max_area_ratio:
            raise ValueError("area_factor must be positive and 0 <= min_area_ratio <= max_area_ratio")


def _convert_networks(sam: Sam, dtype: torch.dtype) -> None:
    """SAM's image encoder, prompt encoder and mask decoder in ``dtype``, as the official code converts them
    (the pixel normalisation stays float32). The prompt encoder's random frequencies keep their rounded values
    in float32: segment_anything encodes prompt coordinates in float32, and its outputs are converted for the
    decoder (:meth:`SamMaskGenerator._encode_prompts`)."""
    for network in (sam.image_encoder, sam.prompt_encoder, sam.mask_decoder):
        network.to(dtype)
    sam.prompt_encoder.pe_layer.float()


def _sample_grid(start: int, stop: int, length: int, scale: float, shift: float, cells: int) -> torch.Tensor:
    """``grid_sample`` coordinates (align_corners=False) of pixels ``start .. stop - 1`` of a frame row (or
    column) of ``length`` pixels, for the frame -> grid map ``grid = frame * scale + shift`` over ``cells``.

    Pixel k is sampled where the official back-projection samples it: at frame position ``k * length /
    (length - 1)`` (its grid is a ``torch.linspace`` over the row: the first pixel half a pixel early, the last
    half a pixel late), not at the pixel centre ``k + 0.5``. The arithmetic is the official one, in float32 on
    the CPU (the inverse map cast to float32, then divided out), so that a sample that lands on a cell edge
    falls the same way.
    """
    inverse_scale = torch.tensor(1 / scale, dtype=torch.float32)
    inverse_shift = torch.tensor(-shift / scale, dtype=torch.float32)
    positions = torch.linspace(0, length / cells, length, dtype=torch.float32)[start:stop]
    return (positions / inverse_scale - inverse_shift / inverse_scale / cells) * 2 - 1


@dataclass(frozen=True)
class MaskResult(FrameMask):
    """An object's mask (disjoint from the other objects' masks unless ``SamOptions.disjoint`` is off); ``rect``
    None when it is empty."""

    fallback: bool = False  # True when the guard replaced SAM's mask (by the box, or by nothing)


@dataclass
class _MaskPatch:
    """A mask and its logits on the frame rectangle ``rect``."""

    rect: PixelRect
    mask: np.ndarray
    logits: np.ndarray

    def intersects(self, other: "_MaskPatch") -> bool:
        return intersection(self.rect, other.rect) is not None

    def paste(self, canvas: np.ndarray, values: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = self.rect
        canvas[y1:y2, x1:x2] = values
        return canvas


class SamMaskGenerator:
    """Masks for the tracker's boxes, one SAM pass per frame for all objects (see the module doc); a
    :class:`vot_lorat.toolkit.session.MaskGenerator`.

    Precision ``bf16-weights`` runs SAM as the official LoRAT code does: its networks' weights and the
    normalised input converted to bfloat16, no autocast (it also runs on a CPU). ``fp16`` and ``bf16`` run the
    float32 SAM under autocast, on CUDA only.

    Args:
        sam: a SAM in eval mode (:func:`load_sam`), on the device to run on; with ``bf16-weights`` it is
            converted in place.
        options: how boxes become masks.
    """

    def __init__(self, sam: Sam, options: SamOptions = SamOptions()) -> None:
        self.sam = sam.eval()
        self.options = options
        self.device = sam.device
        if options.precision in ("fp16", "bf16") and self.device.type != "cuda":
            raise ValueError(f"precision {options.precision!r} (autocast) needs SAM on a CUDA device, it is on "
                             f"{self.device}; use 'fp32' or '{BF16_WEIGHTS}'")
        self.autocast = options.precision if options.precision in PRECISIONS else "fp32"
        self.dtype = torch.bfloat16 if options.precision == BF16_WEIGHTS else torch.float32
        if self.dtype != torch.float32:
            _convert_networks(sam, self.dtype)
        self.input_size = int(sam.image_encoder.img_size)  # 1024 for Meta's models
        grid_h, grid_w = sam.prompt_encoder.mask_input_size  # side of the low-res logits, 256 for Meta's
        if grid_h != grid_w:
            raise ValueError(f"expected a square low-res mask grid, got {grid_h}x{grid_w}")
        self.grid = int(grid_h)
        self.resize = ResizeLongestSide(self.input_size)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, boxes: np.ndarray,
                 confidences: Optional[Sequence[float]] = None) -> List[MaskResult]:
        """Full-frame masks for the objects' boxes, disjoint unless ``SamOptions.disjoint`` is off.

        Boxes are clipped to the frame; those with no area left (absent objects) get empty masks and
        cost no SAM work.

        Args:
            image: the frame, (H, W, 3) uint8 RGB.
            boxes: (N, 4) xyxy in frame pixels.
            confidences: (N,) the tracker's confidences (default: all equal); they settle the pixels that
                several masks claim where SAM's logits do not.

        Returns:
            One mask per box, in order.
        """
        frame = frame_tensor(image, torch.device("cpu"))  # checks the image; a view of a CPU image, no copy
        height, width = frame.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
            raise ValueError(f"boxes must be a finite (N, 4) xyxy array, got shape {boxes.shape}")
        priority = np.zeros(len(boxes)) if confidences is None else np.asarray(confidences, dtype=np.float64)
        if priority.shape != (len(boxes),):
            raise ValueError(f"confidences must have one value per box ({len(boxes)}), got shape {priority.shape}")
        boxes = bx.clip(boxes, width, height)
        present = np.flatnonzero(bx.is_valid(boxes))
        patches: List[Optional[_MaskPatch]] = [None] * len(boxes)
        fallback = [False] * len(boxes)
        if present.size:
            with autocast(self.autocast, self.device):
                if self.options.mode == "crop":
                    logits, to_grid = self._decode_crops(frame.to(self.device), boxes[present])
                else:
                    logits, to_grid = self._decode_frame(frame.numpy(), boxes[present])
            for i, patch in zip(present, self._to_frame(logits.float(), to_grid, width, height)):
                patches[i], fallback[i] = self._guard(patch, boxes[i], width, height)
        masks = [np.zeros((height, width), dtype=bool) for _ in patches]
        masks = [m if p is None else p.paste(m, p.mask) for m, p in zip(masks, patches)]
        rects = [None if p is None else p.rect for p in patches]
        if self.options.disjoint:
            masks = keep_every_object(resolve_overlaps(masks, priority, self._contest_logits(patches, width, height),
                                                       rects), rects, masks)
        return [MaskResult(m, r, f) for m, r, f in zip(masks, rects, fallback)]

    def _decode_crops(self, frame: torch.Tensor, boxes: np.ndarray) -> Tuple[torch.Tensor, np.ndarray]:
        """Reference mode: per-object crops, encoded a few at a time; logits and frame -> grid maps."""
        size, step = self.input_size, self.options.encoder_batch
        padding = image_mean(frame)
        params = siamfc_params(boxes, self.options.area_factor, (size, size))
        embeddings, scales, translations = [], [], []
        for i in range(0, len(boxes), step):
            crops = CropBatch(len(boxes[i:i + step]), size, frame.device, normalize=False)  # SAM normalises
            real = crops.crop(frame, CropParams(params.scale[i:i + step], params.translation[i:i + step]),
                              padding.expand(crops.batch.shape[0], 3))
            embeddings.append(self.sam.image_encoder(self.sam.preprocess(crops.batch).to(self.dtype)))
            scales.append(real.scale)
            translations.append(real.translation)
        real = CropParams(np.concatenate(scales), np.concatenate(translations))
        prompts = bx.clip(bx.rasterize(real.apply(boxes)), size, size)
        # the official code scales the float32 crop params to the grid in float64
        to_grid = np.concatenate([real.scale, real.translation], axis=1).astype(np.float64) * (self.grid / size)
        embeddings = torch.cat(embeddings)
        sparse, dense, image_pe = self._encode_prompts(prompts)

        def decode_one(embedding, sparse_one, dense_one):
            return self.sam.mask_decoder(embedding[None], image_pe, sparse_one[None], dense_one[None],
                                         self.options.multimask_output)

        # SAM's decoder repeats each image embedding for every prompt; vmap pairs crop i with prompt i
        # in one batched call instead of one call per object.
        logits, iou = torch.func.vmap(decode_one)(embeddings, sparse, dense)
        return self._select(logits[:, 0], iou[:, 0]), to_grid

    def _decode_frame(self, image: np.ndarray, boxes: np.ndarray) -> Tuple[torch.Tensor, np.ndarray]:
        """Cheap mode: one embedding of the whole frame, every box decoded in one call."""
        height, width = image.shape[:2]
        resized = self.resize.apply_image(image)  # numpy path: apply_image_torch is wrong in SAM 1.0
        new_h, new_w = resized.shape[:2]
        x = torch.from_numpy(resized).to(self.device).permute(2, 0, 1).float()
        embedding = self.sam.image_encoder(self.sam.preprocess(x)[None].to(self.dtype))
        sparse, dense, image_pe = self._encode_prompts(self.resize.apply_boxes(boxes, (height, width)))
        logits, iou = self.sam.mask_decoder(embedding, image_pe, sparse, dense, self.options.multimask_output)
        # frame pixel x -> resized x * new_w / width -> grid x * grid / input_size. The padding is cut away
        # (a last, partly padded cell stays) so that resampling clamps at the image edge, as a resize would.
        valid_h, valid_w = (-(-side * self.grid // self.input_size) for side in (new_h, new_w))
        scale = np.array([new_w / width, new_h / height]) * (self.grid / self.input_size)
        logits = self._select(logits, iou)[:, :valid_h, :valid_w]
        return logits, np.tile(np.concatenate([scale, [0.0, 0.0]]), (len(boxes), 1))

    def _encode_prompts(self, boxes: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The decoder's prompt inputs for (n, 4) xyxy boxes in SAM input pixels: sparse and dense embeddings and
        the image positional encoding, in the decoder's dtype."""
        prompt = torch.as_tensor(boxes, dtype=torch.float32, device=self.device)
        sparse, dense = self.sam.prompt_encoder(points=None, boxes=prompt, masks=None)
        image_pe = self.sam.prompt_encoder.get_dense_pe()
        return sparse.to(self.dtype), dense.to(self.dtype), image_pe.to(self.dtype)

    def _select(self, logits: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
        """(n, k, g, g) -> (n, g, g): the only mask, or the one with the best predicted IoU."""
        if not self.options.multimask_output:
            return logits[:, 0]
        return logits[torch.arange(len(logits), device=logits.device), iou.argmax(dim=1)]

    def _to_frame(self, logits: torch.Tensor, to_grid: np.ndarray, width: int,
                  height: int) -> List[Optional[_MaskPatch]]:
        """Resample each object's low-res logits (n, gh, gw) onto the frame rectangle its mask can reach.

        ``to_grid`` rows are (sx, sy, tx, ty): grid = frame * s + t in continuous coordinates. Both modes sample
        the frame pixels where the official code does (:func:`_sample_grid`). Crop mode resamples the binary
        mask with zero padding and keeps any non-zero value (the official code); frame mode resamples the
        logits (edge-clamped, as a resize would) and thresholds them.
        """
        threshold = self.options.mask_threshold
        on = logits > threshold
        cols = on.any(dim=1).cpu().numpy()
        rows = on.any(dim=2).cpu().numpy()
        grid_h, grid_w = logits.shape[-2:]
        patches: List[Optional[_MaskPatch]] = []
        for i in range(len(logits)):
            rect = self._reach(cols[i], rows[i], to_grid[i], width, height)
            if rect is None:
                patches.append(None)
                continue
            x1, y1, x2, y2 = rect
            gx = _sample_grid(x1, x2, width, to_grid[i, 0], to_grid[i, 2], grid_w).to(logits.device)
            gy = _sample_grid(y1, y2, height, to_grid[i, 1], to_grid[i, 3], grid_h).to(logits.device)
            grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)
            if self.options.mode == "crop":
                source, cut, padding = torch.stack([on[i].float(), logits[i]]), 0.0, "zeros"
            else:
                source, cut, padding = logits[i][None], threshold, "border"
            out = F.grid_sample(source[None], grid[None], mode="bilinear", padding_mode=padding,
                                align_corners=False)[0]
            patches.append(_MaskPatch(rect, (out[0] > cut).cpu().numpy(), out[-1].cpu().numpy()))
        return patches

    def _reach(self, cols: np.ndarray, rows: np.ndarray, to_grid: np.ndarray, width: int,
               height: int) -> Optional[PixelRect]:
        """Frame rectangle whose bilinear samples can touch a cell above the threshold; None if no cell is.
        A pixel more on each side than the samples can reach keeps float rounding out of the answer."""
        if not cols.any():
            return None
        bounds = []
        for on, scale, shift, limit in ((cols, to_grid[0], to_grid[2], width),
                                        (rows, to_grid[1], to_grid[3], height)):
            first, last = np.flatnonzero(on)[[0, -1]]
            # a bilinear sample at grid position p reaches cell j (centre j + 0.5) for p in (j - 0.5, j + 1.5);
            # pixel k samples frame position k * stretch (see _sample_grid), grid position that * scale + shift
            stretch = limit / (limit - 1) if limit > 1 else 1.0
            lo = int(np.floor((first - 0.5 - shift) / scale / stretch))
            hi = int(np.ceil((last + 1.5 - shift) / scale / stretch)) + 1
            bounds.append((max(lo, 0), min(hi, limit)))
        (x1, x2), (y1, y2) = bounds
        return (x1, y1, x2, y2) if x1 < x2 and y1 < y2 else None

    def _guard(self, patch: Optional[_MaskPatch], box: np.ndarray, width: int,
               height: int) -> Tuple[Optional[_MaskPatch], bool]:
        """Keep SAM's mask unless it is empty or its area is absurd for the box; say if it was replaced."""
        opts = self.options
        area = 0 if patch is None else int(patch.mask.sum())
        box_area = float(bx.area(box))
        plausible = area > 0 and opts.min_area_ratio * box_area <= area <= opts.max_area_ratio * box_area
        if opts.guard == "none" or plausible:
            return (patch if area > 0 else None), False
        if opts.guard == "empty":
            return None, True
        x1, y1, x2, y2 = rect = box_rect(box, height, width)
        shape = (y2 - y1, x2 - x1)
        # the filled box carries no SAM evidence: it claims contested pixels at the threshold logit
        return _MaskPatch(rect, np.ones(shape, bool), np.full(shape, opts.mask_threshold, np.float32)), True

    @staticmethod
    def _contest_logits(patches: List[Optional[_MaskPatch]], width: int,
                        height: int) -> Optional[List[Optional[np.ndarray]]]:
        """Full-frame logits only for objects whose rectangle meets another's: the only ones that can contest."""
        live = [i for i, p in enumerate(patches) if p is not None]
        involved = {i for i in live for j in live if i != j and patches[i].intersects(patches[j])}
        if not involved:
            return None
        return [patches[i].paste(np.full((height, width), -np.inf, np.float32), patches[i].logits)
                if i in involved else None for i in range(len(patches))]
